//! Two sweeps compared, query by query, on the minimum limit: what CI
//! gates on ("q7 no longer runs in 32 MiB"). `mem_profile compare` comes
//! here when either side is a `memledger.sweep/…` file (or a directory
//! holding `sweep.json`).
//!
//! | baseline | current | outcome | regression |
//! |---|---|---|---|
//! | minimum M | minimum M' > M by more than the threshold, the floor and the resolution | `regression` | yes |
//! | minimum M | minimum M' < M by as much | `improvement` | no |
//! | minimum M | minimum within those | `unchanged` | no |
//! | minimum M | none (fails unlimited, or at every limit) | `no longer runs` | yes |
//! | none | minimum M' | `now runs` | no |
//! | none | none | `still fails` | no |
//! | present | absent | `missing in current` | no (reported) |
//! | absent | present | `new query` | no |
//!
//! A growth must pass all three: `--threshold` (relative to the baseline's
//! minimum), `--floor` (bytes), and the larger resolution of the two
//! searches (each minimum is exact only to its step, so a smaller change
//! is noise of the search itself). Limits at which a query fails above its
//! minimum are listed for both sides but judge nothing: the grid moves
//! with the top. An interrupted sweep is refused (exit 2): a minimum it did
//! not finish searching is only an upper bound.

use serde::Serialize;

use super::results::{QuerySweep, Sweep, SweepStatus};
use crate::cli::CompareArgs;
use crate::export::{Format, markdown, short_revision, table};
use crate::units::{format_mib_change, format_percent, format_percent_change, format_size};
use crate::{EXIT_OK, EXIT_REGRESSION};

/// The schema tag of a sweep comparison in JSON.
pub const SWEEP_COMPARE_SCHEMA: &str = "memledger.sweep-compare/1";

/// What happened to one query's minimum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The minimum grew past every allowance.
    Regression,
    /// The minimum shrank past every allowance.
    Improvement,
    /// Within the allowances.
    Unchanged,
    /// It had a minimum and has none now.
    NoLongerRuns,
    /// It had none and has one now.
    NowRuns,
    /// Neither side has a minimum.
    StillFails,
    /// Only in the baseline.
    MissingInCurrent,
    /// Only in the current sweep.
    NewQuery,
}

impl Outcome {
    /// Words for tables.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Regression => "regression",
            Outcome::Improvement => "improvement",
            Outcome::Unchanged => "unchanged",
            Outcome::NoLongerRuns => "no longer runs",
            Outcome::NowRuns => "now runs",
            Outcome::StillFails => "still fails",
            Outcome::MissingInCurrent => "missing in current",
            Outcome::NewQuery => "new query",
        }
    }

    /// True for the outcomes that make `compare` exit 3.
    pub fn is_regression(self) -> bool {
        matches!(self, Outcome::Regression | Outcome::NoLongerRuns)
    }
}

/// One query on both sides.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryChange {
    /// The query's id.
    pub id: String,
    /// The baseline's minimum limit.
    pub baseline_minimum_bytes: Option<u64>,
    /// The current minimum limit.
    pub current_minimum_bytes: Option<u64>,
    /// `current - baseline`, when both exist.
    pub change_bytes: Option<i128>,
    /// `change / baseline`, when both exist and the baseline is above 0.
    pub relative: Option<f64>,
    /// The larger of the two searches' resolutions.
    pub resolution_bytes: Option<u64>,
    /// The verdict.
    pub outcome: Outcome,
    /// Limits above the minimum where the baseline failed.
    pub baseline_failing_above_bytes: Vec<u64>,
    /// Limits above the minimum where the current sweep failed.
    pub current_failing_above_bytes: Vec<u64>,
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Side {
    /// The file as given.
    pub path: String,
    /// The git revision it was made at, if known.
    pub git_revision: Option<String>,
    /// When it was made.
    pub date: String,
}

/// Two sweeps compared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepComparison {
    /// Always [`SWEEP_COMPARE_SCHEMA`].
    pub schema: &'static str,
    /// The baseline.
    pub baseline: Side,
    /// The sweep judged.
    pub current: Side,
    /// `--threshold` as a fraction.
    pub threshold: f64,
    /// `--floor` in bytes.
    pub floor_bytes: u64,
    /// One entry per query of either side: the baseline's order, then new ones.
    pub queries: Vec<QueryChange>,
}

impl SweepComparison {
    /// How many queries regressed.
    pub fn regressions(&self) -> usize {
        self.queries
            .iter()
            .filter(|q| q.outcome.is_regression())
            .count()
    }
}

/// Refuses a sweep whose minimums are not final.
fn complete(path: &str, sweep: &Sweep) -> Result<(), String> {
    let cut = sweep
        .queries
        .iter()
        .find(|q| matches!(q.status, SweepStatus::Interrupted | SweepStatus::Running));
    if sweep.interrupted || cut.is_some() {
        return Err(format!(
            "{path}: the sweep was interrupted{}; compare sweeps that ran to the end",
            cut.map_or_else(String::new, |q| format!(
                " (query `{}` was not finished)",
                q.id
            ))
        ));
    }
    Ok(())
}

/// The minimum, when the query has one.
fn minimum(q: &QuerySweep) -> Option<u64> {
    (q.status == SweepStatus::Done)
        .then_some(q.minimum_limit_bytes)
        .flatten()
}

fn failing_above(q: &QuerySweep) -> Vec<u64> {
    q.non_monotonic.iter().map(|f| f.limit_bytes).collect()
}

/// Compares two complete sweeps.
pub fn compare(
    baseline: (&str, &Sweep),
    current: (&str, &Sweep),
    threshold: f64,
    floor: u64,
) -> Result<SweepComparison, String> {
    complete(baseline.0, baseline.1)?;
    complete(current.0, current.1)?;
    let side = |(path, sweep): (&str, &Sweep)| Side {
        path: path.to_string(),
        git_revision: sweep.context.git_revision.clone(),
        date: sweep.context.date.clone(),
    };
    let mut queries = Vec::new();
    for base in &baseline.1.queries {
        let Some(cur) = current.1.query(&base.id) else {
            queries.push(QueryChange {
                id: base.id.clone(),
                baseline_minimum_bytes: minimum(base),
                current_minimum_bytes: None,
                change_bytes: None,
                relative: None,
                resolution_bytes: base.resolution_bytes,
                outcome: Outcome::MissingInCurrent,
                baseline_failing_above_bytes: failing_above(base),
                current_failing_above_bytes: Vec::new(),
            });
            continue;
        };
        let resolution = base.resolution_bytes.max(cur.resolution_bytes);
        let (b, c) = (minimum(base), minimum(cur));
        let change = b.zip(c).map(|(b, c)| i128::from(c) - i128::from(b));
        let relative = b
            .zip(change)
            .filter(|&(b, _)| b > 0)
            .map(|(b, change)| change as f64 / b as f64);
        let outcome = match (b, c, change) {
            (Some(b), Some(_), Some(change)) => {
                let beyond = |amount: i128| {
                    amount > i128::from(floor)
                        && amount > i128::from(resolution.unwrap_or(0))
                        && amount as f64 > b as f64 * threshold
                };
                if beyond(change) {
                    Outcome::Regression
                } else if beyond(-change) {
                    Outcome::Improvement
                } else {
                    Outcome::Unchanged
                }
            }
            (Some(_), None, _) => Outcome::NoLongerRuns,
            (None, Some(_), _) => Outcome::NowRuns,
            _ => Outcome::StillFails,
        };
        queries.push(QueryChange {
            id: base.id.clone(),
            baseline_minimum_bytes: b,
            current_minimum_bytes: c,
            change_bytes: change,
            relative,
            resolution_bytes: resolution,
            outcome,
            baseline_failing_above_bytes: failing_above(base),
            current_failing_above_bytes: failing_above(cur),
        });
    }
    for cur in &current.1.queries {
        if baseline.1.query(&cur.id).is_none() {
            queries.push(QueryChange {
                id: cur.id.clone(),
                baseline_minimum_bytes: None,
                current_minimum_bytes: minimum(cur),
                change_bytes: None,
                relative: None,
                resolution_bytes: cur.resolution_bytes,
                outcome: Outcome::NewQuery,
                baseline_failing_above_bytes: Vec::new(),
                current_failing_above_bytes: failing_above(cur),
            });
        }
    }
    Ok(SweepComparison {
        schema: SWEEP_COMPARE_SCHEMA,
        baseline: side(baseline),
        current: side(current),
        threshold,
        floor_bytes: floor,
        queries,
    })
}

/// The columns of the comparison's table.
const COLUMNS: [&str; 6] = [
    "query",
    "baseline minimum",
    "current minimum",
    "change",
    "verdict",
    "fails above minimum (baseline → current)",
];

/// Which of [`COLUMNS`] hold numbers (right-aligned).
const NUMERIC: [bool; 6] = [false, true, true, true, false, false];

fn cells(q: &QueryChange) -> Vec<String> {
    let mib = |b: Option<u64>| b.map_or_else(|| "-".to_string(), format_size);
    let list = |limits: &[u64]| {
        if limits.is_empty() {
            "none".to_string()
        } else {
            limits
                .iter()
                .map(|&l| format_size(l))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let change = match (q.change_bytes, q.relative) {
        (Some(c), Some(r)) => format!("{} ({})", format_mib_change(c), format_percent_change(r)),
        (Some(c), None) => format_mib_change(c),
        _ => "-".to_string(),
    };
    vec![
        q.id.clone(),
        mib(q.baseline_minimum_bytes),
        mib(q.current_minimum_bytes),
        change,
        q.outcome.label().to_string(),
        format!(
            "{} → {}",
            list(&q.baseline_failing_above_bytes),
            list(&q.current_failing_above_bytes)
        ),
    ]
}

/// The comparison in a format.
pub fn render(comparison: &SweepComparison, format: Format) -> String {
    use crate::export::github_comment::{COMMENT_MAX_BYTES, TRUNCATED_NOTE};
    if format == Format::GithubComment {
        let text = render(comparison, Format::Markdown);
        return markdown::fit(&text, COMMENT_MAX_BYTES, TRUNCATED_NOTE);
    }
    if format == Format::Json {
        let mut text = serde_json::to_string_pretty(comparison).unwrap_or_default();
        text.push('\n');
        return text;
    }
    let side = |s: &Side| {
        format!(
            "{} ({}{})",
            s.path,
            s.git_revision
                .as_deref()
                .map_or_else(String::new, |r| format!("{} ", short_revision(r))),
            s.date
        )
    };
    let regressions = comparison.regressions();
    let verdict = if regressions == 0 {
        "no regression".to_string()
    } else {
        format!("{regressions} queries need more memory")
    };
    let rules = format!(
        "a regression: the minimum limit grew by more than {}, {} and the search's resolution, or the query no longer runs",
        format_percent(comparison.threshold),
        format_size(comparison.floor_bytes)
    );
    let rows: Vec<Vec<String>> = comparison.queries.iter().map(cells).collect();
    match format {
        Format::Markdown => {
            let mut out = format!(
                "## mem_profile compare (sweeps)\n\n**{verdict}**\n\n- baseline: {}\n- current: {}\n\n{rules}\n\n",
                side(&comparison.baseline),
                side(&comparison.current)
            );
            let rows: Vec<Vec<String>> = rows
                .into_iter()
                .zip(&comparison.queries)
                .map(|(mut row, q)| {
                    if q.outcome.is_regression() {
                        row[4] = format!("**{}**", row[4]);
                    }
                    row
                })
                .collect();
            out.push_str(&markdown::table(&COLUMNS, &NUMERIC, &rows));
            out
        }
        _ => {
            let mut out = format!(
                "baseline: {}\ncurrent:  {}\n{rules}\n{verdict}\n\n",
                side(&comparison.baseline),
                side(&comparison.current)
            );
            out.push_str(&table::render(&COLUMNS, &NUMERIC, &rows));
            out
        }
    }
}

/// `mem_profile compare` on sweeps: exit 3 on a regression.
pub fn command(args: &CompareArgs) -> Result<u8, String> {
    if !args.rules.metric_threshold.is_empty() || !args.rules.metric_floor.is_empty() {
        return Err(
            "--metric-threshold and --metric-floor apply to runs; sweeps compare their minimum \
             limit with --threshold and --floor"
                .to_string(),
        );
    }
    let baseline = Sweep::read(&args.baseline)?;
    let current = Sweep::read(&args.current)?;
    let comparison = compare(
        (&args.baseline.display().to_string(), &baseline),
        (&args.current.display().to_string(), &current),
        args.rules.threshold,
        args.rules.floor,
    )?;
    crate::app::emit(&render(&comparison, args.format));
    crate::github::append_step_summary(
        &render(&comparison, Format::Markdown),
        crate::github::COMPARE_NOTE,
    );
    Ok(if comparison.regressions() > 0 {
        EXIT_REGRESSION
    } else {
        EXIT_OK
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::results::SweepContext;

    const MIB: u64 = 1 << 20;

    fn sweep(minimums: &[(&str, Option<u64>)]) -> Sweep {
        let mut sweep = Sweep::new(SweepContext::default());
        for &(id, minimum) in minimums {
            sweep.queries.push(QuerySweep {
                id: id.to_string(),
                status: if minimum.is_some() {
                    SweepStatus::Done
                } else {
                    SweepStatus::FailedUnlimited
                },
                unlimited: None,
                top_bytes: None,
                top_source: None,
                resolution_bytes: Some(MIB / 2),
                minimum_limit_bytes: minimum,
                failing_below_minimum_bytes: None,
                non_monotonic: Vec::new(),
                worst_rss_over_limit: None,
                runs: 1,
                wall_ms: 1,
                plot: None,
                error: None,
                points: Vec::new(),
            });
        }
        sweep
    }

    #[test]
    fn a_minimum_that_grew_past_every_allowance_is_a_regression() {
        let base = sweep(&[
            ("q1", Some(32 * MIB)),
            ("q2", Some(32 * MIB)),
            ("q3", Some(32 * MIB)),
            ("q4", Some(100 * MIB)),
            ("q5", None),
            ("q6", Some(MIB)),
        ]);
        let cur = sweep(&[
            ("q1", Some(40 * MIB)),
            ("q2", Some(33 * MIB)),
            ("q3", None),
            ("q4", Some(50 * MIB)),
            ("q5", Some(8 * MIB)),
            ("q7", Some(MIB)),
        ]);
        let c = compare(("a", &base), ("b", &cur), 0.05, MIB).unwrap();
        let outcomes: Vec<(&str, Outcome)> = c
            .queries
            .iter()
            .map(|q| (q.id.as_str(), q.outcome))
            .collect();
        assert_eq!(
            outcomes,
            [
                ("q1", Outcome::Regression),
                ("q2", Outcome::Unchanged),
                ("q3", Outcome::NoLongerRuns),
                ("q4", Outcome::Improvement),
                ("q5", Outcome::NowRuns),
                ("q6", Outcome::MissingInCurrent),
                ("q7", Outcome::NewQuery),
            ]
        );
        assert_eq!(c.regressions(), 2);
        assert_eq!(c.queries[0].change_bytes, Some(8 * MIB as i128));
        assert_eq!(c.queries[0].relative, Some(0.25));
    }

    #[test]
    fn a_change_within_the_resolution_is_not_a_regression() {
        let mut base = sweep(&[("q1", Some(100 * MIB))]);
        let mut cur = sweep(&[("q1", Some(104 * MIB))]);
        // 4 MiB is past 1 MiB and 2% of 100 MiB...
        let c = compare(("a", &base), ("b", &cur), 0.02, MIB).unwrap();
        assert_eq!(c.queries[0].outcome, Outcome::Regression);
        // ...but not past a 4 MiB step of either search.
        cur.queries[0].resolution_bytes = Some(4 * MIB);
        let c = compare(("a", &base), ("b", &cur), 0.02, MIB).unwrap();
        assert_eq!(c.queries[0].outcome, Outcome::Unchanged);
        assert_eq!(c.queries[0].resolution_bytes, Some(4 * MIB));
        base.interrupted = true;
        let err = compare(("a", &base), ("b", &cur), 0.02, MIB).unwrap_err();
        assert!(err.starts_with("a: the sweep was interrupted"), "{err}");
    }
}
