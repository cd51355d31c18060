//! From the rounds' raw figures to what the tables show: per-round ratios to
//! bare mimalloc, their median and their spread.

use crate::footprint::{Footprint, Pattern};
use crate::protocol::ChildReport;
use crate::workload::Workload;

/// Every child report, `reports[contender][round]`, the baseline first.
#[derive(Debug, Clone, Default)]
pub struct Rounds {
    /// One list of rounds per contender, in the contenders' order.
    pub reports: Vec<Vec<ChildReport>>,
}

/// A median and the range it came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// The median (the mean of the middle two for an even count).
    pub median: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`, or `None` when there are none (NaNs skipped).
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }
}

/// One contender on one workload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cell {
    /// ns per operation over the rounds.
    pub ns: Spread,
    /// Per-round ratio to bare mimalloc in the same round, over the rounds.
    pub ratio: Option<Spread>,
}

impl Rounds {
    /// `contender`'s figures on `workload` (the baseline is contender 0), or
    /// `None` when it never ran it.
    pub fn cell(&self, contender: usize, workload: Workload) -> Option<Cell> {
        let own = self.reports.get(contender)?;
        let base = self.reports.first()?;
        let ns = Spread::of(own.iter().filter_map(|r| r.ns(workload)))?;
        let ratio = Spread::of(own.iter().zip(base).filter_map(|(r, b)| {
            let (mine, theirs) = (r.ns(workload)?, b.ns(workload)?);
            (theirs > 0.0).then(|| mine / theirs)
        }));
        Some(Cell { ns, ratio })
    }

    /// The first round's footprint of `pattern` for the contender whose
    /// binary measured it (the patterns are fixed, so every round agrees).
    pub fn footprint(&self, contender: usize, pattern: Pattern) -> Option<Footprint> {
        self.reports
            .get(contender)?
            .iter()
            .find_map(|r| r.footprint(pattern))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(pairs: f64) -> ChildReport {
        ChildReport {
            ns_per_op: vec![(Workload::Pairs, pairs)],
            footprints: Vec::new(),
        }
    }

    #[test]
    fn spread_takes_the_median_and_range() {
        let s = Spread::of([3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(Spread::of([4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
        assert_eq!(Spread::of([]), None);
        assert_eq!(Spread::of([f64::NAN, 5.0]).unwrap().median, 5.0);
    }

    #[test]
    fn ratios_are_taken_within_each_round() {
        // The baseline doubles in round 2; so does the other: ratio stays 1.5.
        let rounds = Rounds {
            reports: vec![
                vec![report(10.0), report(20.0), report(10.0)],
                vec![report(15.0), report(30.0), report(16.0)],
            ],
        };
        let cell = rounds.cell(1, Workload::Pairs).unwrap();
        let ratio = cell.ratio.unwrap();
        assert_eq!(ratio.median, 1.5);
        assert_eq!(ratio.min, 1.5);
        assert!((ratio.max - 1.6).abs() < 1e-12);
        assert_eq!(cell.ns.median, 16.0);
        assert_eq!(rounds.cell(1, Workload::Churn), None);
    }
}
