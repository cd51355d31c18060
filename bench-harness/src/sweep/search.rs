//! The search for the smallest limit a query passes at, and for the limits
//! above it where it fails: pure logic over a `probe` that runs the query
//! at one limit and says whether it passed.
//!
//! ```text
//!  limit ─▶ 0 ·· s ·· 2s ···························· top       2·top  4·top
//!  grid:         g1      g2      g3  ...  g(N-1)      gN = top  (above, only
//!                fail    PASS    fail      pass       pass       when gN fails)
//!  bisection:  ──┤ (g1, g2] halved down to one step s ├──▶ minimum
//!  non-monotonic: g3 (fails above a limit that passed)
//! ```
//!
//! Every limit is a multiple of the step `s` (the resolution), so the
//! result is exact on that lattice: a query that passes at and above 20 MiB
//! and fails below, searched with a 1 MiB step, has the minimum 20 MiB.
//!
//! 1. **Grid**: the `N` limits `k × top / N` (`k = 1..N`, rounded up to the
//!    lattice) run from the lowest up. If even `top` fails, `2 × top` and
//!    `4 × top` are tried ("above").
//! 2. **Bisection** between the lowest grid limit that passed and the one
//!    below it (or 0, which is never run) until they are one step apart;
//!    the upper one is the minimum.
//! 3. **Non-monotonic points** are the limits run above the minimum that
//!    failed. The grid is what finds them, so a failing band narrower than
//!    `top / N` can slip between two grid limits; a band between the lowest
//!    passing grid limit and the one below can make the minimum come out
//!    higher than the true one (the bisection takes the band's top).
//!
//! Runs: `N` on the grid (two more when `top` fails), then about
//! `log2(top / (N × s))` for the bisection; a limit is never run twice.

/// Which part of the search ran a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// The run without a limit that sets the top.
    Unlimited,
    /// One of the `N` grid limits.
    Grid,
    /// Above the top (`2 × top`, `4 × top`), tried when the top failed.
    Above,
    /// A step of the bisection.
    Bisect,
}

/// What to search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The highest grid limit (the unlimited reserved peak, or what stood in).
    pub top: u64,
    /// The step; every limit run is a multiple of it (at least 1).
    pub step: u64,
    /// Grid limits (at least 1).
    pub grid: u32,
}

/// What the search found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The smallest limit that passed, on the lattice; `None` when none did.
    pub minimum: Option<u64>,
    /// The limit one step (or one grid step, when the bisection had nothing
    /// to halve) below the minimum that failed; `None` when the minimum is
    /// the smallest limit (one step) and nothing below it was run.
    pub failing_below: Option<u64>,
    /// Every limit run, in the order run, with whether it passed.
    pub tried: Vec<(u64, Phase, bool)>,
    /// False when `probe` stopped the search (an interrupt).
    pub complete: bool,
}

impl Found {
    /// The limits run above the minimum that failed, in ascending order.
    pub fn non_monotonic(&self) -> Vec<u64> {
        let Some(minimum) = self.minimum else {
            return Vec::new();
        };
        let mut failing: Vec<u64> = self
            .tried
            .iter()
            .filter(|&&(limit, _, passed)| limit > minimum && !passed)
            .map(|&(limit, _, _)| limit)
            .collect();
        failing.sort_unstable();
        failing
    }
}

/// The grid's lattice indices: `ceil(k × top / (N × step))` for `k = 1..N`,
/// ascending, without repeats, and only those whose limit fits a `u64`.
pub fn grid_indices(plan: &Plan) -> Vec<u64> {
    let step = u128::from(plan.step.max(1));
    let top = u128::from(plan.top.max(1));
    let n = u128::from(plan.grid.max(1));
    let mut indices: Vec<u64> = (1..=n)
        .map(|k| (k * top).div_ceil(n * step))
        .filter(|&index| index * step <= u128::from(u64::MAX))
        .filter_map(|index| u64::try_from(index).ok())
        .collect();
    indices.dedup();
    indices
}

/// Runs the search. `probe(limit, phase)` runs the query at `limit` bytes
/// and returns whether it passed, or `None` to stop (the search then
/// reports what it found so far, `complete: false`).
pub fn search(plan: &Plan, mut probe: impl FnMut(u64, Phase) -> Option<bool>) -> Found {
    let step = plan.step.max(1);
    let mut found = Found {
        minimum: None,
        failing_below: None,
        tried: Vec::new(),
        complete: false,
    };
    // Lattice index → limit; callers run only indices whose limit fits.
    let limit_of = |index: u64| index.checked_mul(step);
    let mut run = |index: u64, phase: Phase, found: &mut Found| -> Option<bool> {
        let limit = index.saturating_mul(step);
        if let Some(&(_, _, passed)) = found.tried.iter().find(|t| t.0 == limit) {
            return Some(passed);
        }
        let passed = probe(limit, phase)?;
        found.tried.push((limit, phase, passed));
        Some(passed)
    };

    // 1. The grid, then above the top while nothing passed.
    let mut lowest_pass: Option<u64> = None;
    let mut below_pass: u64 = 0;
    let mut highest_index = 0;
    for index in grid_indices(plan) {
        let Some(passed) = run(index, Phase::Grid, &mut found) else {
            return finish(found, lowest_pass, below_pass, step, false);
        };
        highest_index = index;
        if passed && lowest_pass.is_none() {
            lowest_pass = Some(index);
        } else if lowest_pass.is_none() {
            below_pass = index;
        }
    }
    let mut above = highest_index;
    for _ in 0..2 {
        if lowest_pass.is_some() {
            break;
        }
        let Some(index) = above.checked_mul(2) else {
            break;
        };
        if limit_of(index).is_none() {
            break;
        }
        above = index;
        let Some(passed) = run(index, Phase::Above, &mut found) else {
            return finish(found, lowest_pass, below_pass, step, false);
        };
        if passed {
            lowest_pass = Some(index);
        } else {
            below_pass = index;
        }
    }

    // 2. The bisection below the lowest limit that passed.
    let Some(mut hi) = lowest_pass else {
        return finish(found, None, below_pass, step, true);
    };
    let mut lo = below_pass;
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        match run(mid, Phase::Bisect, &mut found) {
            None => return finish(found, Some(hi), lo, step, false),
            Some(true) => hi = mid,
            Some(false) => lo = mid,
        }
    }
    finish(found, Some(hi), lo, step, true)
}

/// Fills in the minimum and the limit that failed below it.
fn finish(
    mut found: Found,
    lowest_pass: Option<u64>,
    below: u64,
    step: u64,
    complete: bool,
) -> Found {
    found.minimum = lowest_pass.and_then(|index| index.checked_mul(step));
    found.failing_below = match (found.minimum, below) {
        (Some(_), 0) | (None, _) => None,
        (Some(_), index) => index.checked_mul(step),
    };
    found.complete = complete;
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIB: u64 = 1 << 20;

    /// Searches a known curve, counting the runs.
    fn search_curve(plan: &Plan, passes: impl Fn(u64) -> bool) -> Found {
        search(plan, |limit, _| Some(passes(limit)))
    }

    #[test]
    fn a_monotonic_curve_gives_its_exact_minimum() {
        let plan = Plan {
            top: 64 * MIB,
            step: MIB,
            grid: 8,
        };
        let found = search_curve(&plan, |limit| limit >= 20 * MIB);
        assert_eq!(found.minimum, Some(20 * MIB));
        assert_eq!(found.failing_below, Some(19 * MIB));
        assert!(found.non_monotonic().is_empty());
        assert!(found.complete);
        // 8 grid limits (8..64 MiB), then (16, 24] halved: 20, 18, 19.
        let limits: Vec<u64> = found.tried.iter().map(|t| t.0 / MIB).collect();
        assert_eq!(limits, [8, 16, 24, 32, 40, 48, 56, 64, 20, 18, 19]);
    }

    #[test]
    fn a_failing_band_above_the_minimum_is_reported() {
        let plan = Plan {
            top: 64 * MIB,
            step: MIB,
            grid: 8,
        };
        // Fails below 20 MiB and in [40, 50) MiB.
        let found = search_curve(&plan, |limit| {
            limit >= 20 * MIB && !(40 * MIB..50 * MIB).contains(&limit)
        });
        assert_eq!(found.minimum, Some(20 * MIB));
        assert_eq!(found.non_monotonic(), [40 * MIB, 48 * MIB]);
    }

    #[test]
    fn a_top_that_fails_is_searched_above() {
        let plan = Plan {
            top: 10 * MIB,
            step: MIB,
            grid: 2,
        };
        let found = search_curve(&plan, |limit| limit >= 30 * MIB);
        let phases: Vec<(u64, Phase)> = found.tried.iter().map(|t| (t.0 / MIB, t.1)).collect();
        assert_eq!(
            &phases[..4],
            &[
                (5, Phase::Grid),
                (10, Phase::Grid),
                (20, Phase::Above),
                (40, Phase::Above)
            ]
        );
        assert_eq!(found.minimum, Some(30 * MIB));
        assert_eq!(found.failing_below, Some(29 * MIB));

        let never = search_curve(&plan, |_| false);
        assert_eq!(never.minimum, None);
        assert_eq!(never.tried.len(), 4);
        assert!(never.complete);
    }

    #[test]
    fn a_query_that_passes_everywhere_has_the_smallest_limit() {
        let plan = Plan {
            top: 0,
            step: 4096,
            grid: 8,
        };
        let found = search_curve(&plan, |_| true);
        assert_eq!(found.minimum, Some(4096));
        assert_eq!(found.failing_below, None, "nothing below one step runs");
        assert_eq!(
            found.tried.len(),
            1,
            "a zero top is one step: one grid limit"
        );
    }

    #[test]
    fn an_interrupt_keeps_what_was_found() {
        let plan = Plan {
            top: 64 * MIB,
            step: MIB,
            grid: 8,
        };
        let mut runs = 0;
        let found = search(&plan, |limit, _| {
            runs += 1;
            (runs <= 9).then_some(limit >= 20 * MIB)
        });
        assert!(!found.complete);
        assert_eq!(found.tried.len(), 9);
        assert_eq!(
            found.minimum,
            Some(20 * MIB),
            "the bisection's first step passed"
        );
        assert_eq!(found.failing_below, Some(16 * MIB), "not halved further");
    }

    #[test]
    fn limits_never_overflow() {
        let plan = Plan {
            top: u64::MAX,
            step: u64::MAX / 3,
            grid: 8,
        };
        let found = search_curve(&plan, |_| false);
        assert_eq!(found.minimum, None);
        assert!(found.tried.iter().all(|t| t.0 % (u64::MAX / 3) == 0));
    }

    proptest! {
        /// On a monotonic curve the minimum is the threshold rounded up to
        /// the lattice, in at most N + log2(top / (N × step)) + 1 runs.
        #[test]
        fn monotonic_curves_are_found_exactly(
            threshold in 1u64..=1 << 30,
            top in 1u64..=1 << 30,
            step_shift in 10u32..20,
            grid in 1u32..=16,
        ) {
            let step = 1u64 << step_shift;
            let plan = Plan { top, step, grid };
            let found = search_curve(&plan, |limit| limit >= threshold);
            let expected = threshold.div_ceil(step) * step;
            let top_limit = top.div_ceil(step) * step;
            if expected <= top_limit * 4 {
                prop_assert_eq!(found.minimum, Some(expected));
                if expected > step {
                    prop_assert_eq!(found.failing_below, Some(expected - step));
                }
            } else {
                prop_assert_eq!(found.minimum, None);
            }
            prop_assert!(found.non_monotonic().is_empty());
            // The bracket the bisection halves: one grid step, or the
            // span between two limits above the top.
            let bracket = if expected <= top_limit {
                (top_limit / step).div_ceil(u64::from(grid)) + 1
            } else {
                2 * top_limit / step
            };
            let bisect = 64 - bracket.leading_zeros() as usize;
            prop_assert!(
                found.tried.len() <= grid as usize + 2 + bisect,
                "{} runs", found.tried.len()
            );
            let mut limits: Vec<u64> = found.tried.iter().map(|t| t.0).collect();
            limits.sort_unstable();
            limits.dedup();
            prop_assert_eq!(limits.len(), found.tried.len(), "no limit runs twice");
        }
    }
}
