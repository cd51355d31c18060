//! Compares two runs query by query: a change per metric and a verdict.
//!
//! A figure regresses when it grows by more than its relative threshold
//! **and** by more than its absolute floor (defaults: 5% and 1 MiB; for
//! `allocations`, a count, 5% and 1000). Both are needed: 5% of a 100 KiB
//! figure is noise, and 1 MiB of a 10 GiB one is too. It improves when it
//! shrinks by as much. Relative changes are taken against the magnitude of
//! the baseline (untracked bytes may be negative); from a baseline of 0, any
//! change past the floor counts.
//!
//! Queries are compared as wholes first:
//!
//! | baseline | current | outcome | regression? |
//! |---|---|---|---|
//! | ok | ok | figures compared | if any figure regressed |
//! | ok | not ok | new failure | yes |
//! | not ok | ok | fixed | no |
//! | not ok | not ok | still failing | no |
//! | present | absent | missing in current | no (reported) |
//! | absent | ok | new query | no |
//! | absent | not ok | new failure | yes |
//!
//! The two runs must have been made under the same memory limit: peaks
//! under different pool limits are different experiments, and comparing
//! them is refused ([`CompareError`]).

use serde::Serialize;

use crate::run::{QueryResult, Run, Status};
use crate::units::MIB;

/// A figure that `compare` judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// `peak_rss_bytes`: the kernel's peak RSS of the query's process.
    PeakRss,
    /// `heap_peak_bytes`: the peak of requested heap bytes, from the report.
    HeapPeak,
    /// `reserved_peak_bytes`: the pool's peak reservations, from the report.
    ReservedPeak,
    /// `allocations`: the number of allocations, from the report.
    Allocations,
    /// `untracked_peak_bytes`: the largest `heap live - reserved`, from the report.
    UntrackedPeak,
    /// `peak_rss_growth_bytes`: peak RSS minus the RSS when the measured
    /// window began (the query's growth, not the process's baggage).
    PeakRssGrowth,
    /// `heap_growth_bytes`: heap peak minus the live heap when the
    /// measured window began.
    HeapGrowth,
}

impl Metric {
    /// Every metric, in table order.
    pub const ALL: [Metric; 7] = [
        Metric::PeakRss,
        Metric::HeapPeak,
        Metric::ReservedPeak,
        Metric::Allocations,
        Metric::UntrackedPeak,
        Metric::PeakRssGrowth,
        Metric::HeapGrowth,
    ];

    /// The name on the command line and in JSON (`peak_rss`).
    pub fn key(self) -> &'static str {
        match self {
            Metric::PeakRss => "peak_rss",
            Metric::HeapPeak => "heap_peak",
            Metric::ReservedPeak => "reserved_peak",
            Metric::Allocations => "allocations",
            Metric::UntrackedPeak => "untracked_peak",
            Metric::PeakRssGrowth => "peak_rss_growth",
            Metric::HeapGrowth => "heap_growth",
        }
    }

    /// The name in tables (`peak RSS`).
    pub fn label(self) -> &'static str {
        match self {
            Metric::PeakRss => "peak RSS",
            Metric::HeapPeak => "heap peak",
            Metric::ReservedPeak => "reserved peak",
            Metric::Allocations => "allocations",
            Metric::UntrackedPeak => "untracked peak",
            Metric::PeakRssGrowth => "peak RSS growth",
            Metric::HeapGrowth => "heap growth",
        }
    }

    /// True for byte figures; false for the allocation count.
    pub fn is_bytes(self) -> bool {
        self != Metric::Allocations
    }

    /// The metric a key names.
    pub fn from_key(key: &str) -> Result<Metric, String> {
        Metric::ALL
            .into_iter()
            .find(|m| m.key() == key)
            .ok_or_else(|| {
                let keys: Vec<&str> = Metric::ALL.iter().map(|m| m.key()).collect();
                format!("unknown metric `{key}` (one of {})", keys.join(", "))
            })
    }

    /// This metric's (median) value in a query.
    pub fn value(self, query: &QueryResult) -> Option<i128> {
        let f = &query.figures;
        match self {
            Metric::PeakRss => f.peak_rss_bytes.map(i128::from),
            Metric::HeapPeak => f.heap_peak_bytes.map(i128::from),
            Metric::ReservedPeak => f.reserved_peak_bytes.map(i128::from),
            Metric::Allocations => f.allocations.map(i128::from),
            Metric::UntrackedPeak => f.untracked_peak_bytes.map(i128::from),
            Metric::PeakRssGrowth => f.peak_rss_growth_bytes.map(i128::from),
            Metric::HeapGrowth => f.heap_growth_bytes.map(i128::from),
        }
    }
}

/// When a change in one metric is a regression (or an improvement).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rule {
    /// Relative change needed, as a fraction (`0.05` = 5%).
    pub threshold: f64,
    /// Absolute change needed, in bytes (a count for `allocations`).
    pub floor: u64,
}

/// One [`Rule`] per metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rules {
    rules: [Rule; Metric::ALL.len()],
}

impl Default for Rules {
    fn default() -> Rules {
        Rules::new(0.05, MIB)
    }
}

impl Rules {
    /// The default floor for `allocations` (a count, not bytes).
    pub const ALLOCATIONS_FLOOR: u64 = 1000;

    /// `threshold` for every metric, `floor` for every byte metric.
    pub fn new(threshold: f64, floor: u64) -> Rules {
        let rules = Metric::ALL.map(|m| Rule {
            threshold,
            floor: if m.is_bytes() {
                floor
            } else {
                Rules::ALLOCATIONS_FLOOR
            },
        });
        Rules { rules }
    }

    /// The rule of one metric.
    pub fn get(&self, metric: Metric) -> Rule {
        self.rules[metric as usize]
    }

    /// Overrides one metric's threshold.
    pub fn set_threshold(&mut self, metric: Metric, threshold: f64) {
        self.rules[metric as usize].threshold = threshold;
    }

    /// Overrides one metric's floor.
    pub fn set_floor(&mut self, metric: Metric, floor: u64) {
        self.rules[metric as usize].floor = floor;
    }

    /// Judges a change from `baseline` to `current`.
    pub fn judge(&self, metric: Metric, baseline: i128, current: i128) -> Verdict {
        let rule = self.get(metric);
        let change = current - baseline;
        let magnitude = baseline.unsigned_abs() as f64;
        let relative_exceeded =
            |amount: i128| magnitude == 0.0 || amount as f64 / magnitude > rule.threshold;
        if change > i128::from(rule.floor) && relative_exceeded(change) {
            Verdict::Regression
        } else if -change > i128::from(rule.floor) && relative_exceeded(-change) {
            Verdict::Improvement
        } else {
            Verdict::Unchanged
        }
    }
}

/// The verdict on one metric of one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Grew past both the threshold and the floor.
    Regression,
    /// Shrank past both the threshold and the floor.
    Improvement,
    /// Moved less than the threshold or the floor.
    Unchanged,
    /// Measured on one side only.
    NotComparable,
}

impl Verdict {
    /// The word in tables.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Regression => "regression",
            Verdict::Improvement => "improvement",
            Verdict::Unchanged => "unchanged",
            Verdict::NotComparable => "not comparable",
        }
    }
}

/// One metric of one query on both sides.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricChange {
    /// Which figure.
    pub metric: Metric,
    /// Its value in the baseline, if measured there.
    pub baseline: Option<i128>,
    /// Its value in the current run, if measured there.
    pub current: Option<i128>,
    /// What the change amounts to.
    pub verdict: Verdict,
}

impl MetricChange {
    /// `current - baseline`, when both exist.
    pub fn change(&self) -> Option<i128> {
        Some(self.current? - self.baseline?)
    }

    /// The change relative to the baseline's magnitude, when it is not 0.
    pub fn relative(&self) -> Option<f64> {
        let baseline = self.baseline?;
        (baseline != 0).then(|| self.change().unwrap_or(0) as f64 / baseline.unsigned_abs() as f64)
    }
}

/// What happened to a query as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// `ok` on both sides: the figures were compared.
    Compared,
    /// Not `ok` in the current run, and `ok` (or absent) in the baseline: a regression.
    NewFailure,
    /// Not `ok` in the baseline, `ok` now.
    Fixed,
    /// Not `ok` on either side.
    StillFailing,
    /// In the baseline only.
    MissingInCurrent,
    /// In the current run only, and `ok`.
    NewQuery,
}

impl Outcome {
    /// The words in tables.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Compared => "compared",
            Outcome::NewFailure => "new failure",
            Outcome::Fixed => "fixed",
            Outcome::StillFailing => "still failing",
            Outcome::MissingInCurrent => "missing in current",
            Outcome::NewQuery => "new query",
        }
    }
}

/// One query on both sides.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryComparison {
    /// The query's id.
    pub id: String,
    /// Its status in the baseline; `None` when absent there.
    pub baseline_status: Option<Status>,
    /// Its status in the current run; `None` when absent there.
    pub current_status: Option<Status>,
    /// What happened to it as a whole.
    pub outcome: Outcome,
    /// The metrics measured on at least one side (only for `compared`).
    pub metrics: Vec<MetricChange>,
}

impl QueryComparison {
    /// How many regressions this query counts: one per regressed metric, or
    /// one for a new failure.
    pub fn regressions(&self) -> usize {
        match self.outcome {
            Outcome::NewFailure => 1,
            _ => self
                .metrics
                .iter()
                .filter(|m| m.verdict == Verdict::Regression)
                .count(),
        }
    }
}

/// Where a side of the comparison came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Side {
    /// The path as given.
    pub path: String,
    /// The run's git revision, if it recorded one.
    pub git_revision: Option<String>,
    /// When the run was made (RFC 3339).
    pub date: String,
}

/// A whole comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// The reference run.
    pub baseline: Side,
    /// The run being judged.
    pub current: Side,
    /// The memory limit both runs were made under.
    pub memory_limit_bytes: Option<u64>,
    /// The thresholds and floors applied.
    pub rules: Rules,
    /// Baseline order, then queries new in the current run.
    pub queries: Vec<QueryComparison>,
}

impl Comparison {
    /// Regressions over all queries.
    pub fn regressions(&self) -> usize {
        self.queries.iter().map(|q| q.regressions()).sum()
    }

    /// How many queries have an outcome.
    pub fn count(&self, outcome: Outcome) -> usize {
        self.queries.iter().filter(|q| q.outcome == outcome).count()
    }
}

/// Why two runs cannot be compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompareError(pub String);

impl std::fmt::Display for CompareError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CompareError {}

/// Compares `current` against `baseline` (paths only label the sides).
pub fn compare(
    baseline: (&str, &Run),
    current: (&str, &Run),
    rules: &Rules,
) -> Result<Comparison, CompareError> {
    let (base_path, base) = baseline;
    let (cur_path, cur) = current;
    if base.context.memory_limit_bytes != cur.context.memory_limit_bytes {
        let limit = |l: Option<u64>| l.map_or("unbounded".to_string(), crate::units::format_mib);
        return Err(CompareError(format!(
            "the runs have different memory limits ({} in {base_path}, {} in {cur_path}); \
             compare runs made with the same --memory-limit",
            limit(base.context.memory_limit_bytes),
            limit(cur.context.memory_limit_bytes)
        )));
    }
    if !base.queries.iter().any(|q| cur.query(&q.id).is_some()) {
        return Err(CompareError(format!(
            "{base_path} and {cur_path} have no query in common"
        )));
    }

    let mut queries: Vec<QueryComparison> = base
        .queries
        .iter()
        .map(|b| compare_query(Some(b), cur.query(&b.id), rules))
        .collect();
    queries.extend(
        cur.queries
            .iter()
            .filter(|c| base.query(&c.id).is_none())
            .map(|c| compare_query(None, Some(c), rules)),
    );
    let side = |path: &str, run: &Run| Side {
        path: path.to_string(),
        git_revision: run.context.git_revision.clone(),
        date: run.context.date.clone(),
    };
    Ok(Comparison {
        baseline: side(base_path, base),
        current: side(cur_path, cur),
        memory_limit_bytes: base.context.memory_limit_bytes,
        rules: rules.clone(),
        queries,
    })
}

/// One query; at least one side is present.
fn compare_query(
    baseline: Option<&QueryResult>,
    current: Option<&QueryResult>,
    rules: &Rules,
) -> QueryComparison {
    let ok = |q: Option<&QueryResult>| q.map(|q| q.status == Status::Ok);
    let outcome = match (ok(baseline), ok(current)) {
        (Some(true), Some(true)) => Outcome::Compared,
        (Some(true), Some(false)) => Outcome::NewFailure,
        (Some(false), Some(true)) => Outcome::Fixed,
        (Some(false), Some(false)) => Outcome::StillFailing,
        (Some(_), None) => Outcome::MissingInCurrent,
        (None, Some(true)) => Outcome::NewQuery,
        (None, _) => Outcome::NewFailure,
    };
    let metrics = match (outcome, baseline, current) {
        (Outcome::Compared, Some(b), Some(c)) => Metric::ALL
            .into_iter()
            .filter_map(|metric| {
                let (before, after) = (metric.value(b), metric.value(c));
                let verdict = match (before, after) {
                    (None, None) => return None,
                    (Some(before), Some(after)) => rules.judge(metric, before, after),
                    _ => Verdict::NotComparable,
                };
                Some(MetricChange {
                    metric,
                    baseline: before,
                    current: after,
                    verdict,
                })
            })
            .collect(),
        _ => Vec::new(),
    };
    QueryComparison {
        id: baseline
            .or(current)
            .map(|q| q.id.clone())
            .unwrap_or_default(),
        baseline_status: baseline.map(|q| q.status),
        current_status: current.map(|q| q.status),
        outcome,
        metrics,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::run::{Context, Figures};
    use crate::units::KIB;

    /// A query with the given status and peak RSS (other figures derived from it).
    pub(crate) fn query(id: &str, status: Status, rss: u64) -> QueryResult {
        QueryResult {
            id: id.to_string(),
            status,
            exit_code: Some(if status == Status::Ok { 0 } else { 1 }),
            signal: None,
            figures: Figures {
                wall_ms: 100,
                peak_rss_bytes: Some(rss),
                heap_peak_bytes: Some(rss as i64 / 2),
                reserved_peak_bytes: Some(rss / 4),
                allocations: Some(10_000),
                untracked_at_heap_peak_bytes: Some(rss as i64 / 4),
                untracked_peak_bytes: Some(rss as i64 / 4),
                ..Figures::default()
            },
            peak_rss_growth_per_reserved: None,
            heap_growth_per_reserved: None,
            limit_bytes: None,
            error: (status != Status::Ok).then(|| "exited with code 1".to_string()),
            stderr_tail: String::new(),
            timeline: Vec::new(),
            repeats: Vec::new(),
            min: None,
            median: None,
            report: None,
            stacks: None,
        }
    }

    pub(crate) fn run(queries: Vec<QueryResult>) -> Run {
        let mut run = Run::new(Context {
            date: "2025-01-02T03:04:05Z".into(),
            ..Context::default()
        });
        run.queries = queries;
        run
    }

    fn one(base: QueryResult, cur: QueryResult) -> Comparison {
        compare(
            ("base.json", &run(vec![base])),
            ("cur.json", &run(vec![cur])),
            &Rules::default(),
        )
        .unwrap()
    }

    fn verdict(c: &Comparison, metric: Metric) -> Verdict {
        c.queries[0]
            .metrics
            .iter()
            .find(|m| m.metric == metric)
            .unwrap()
            .verdict
    }

    #[test]
    fn twenty_percent_more_peak_rss_is_a_regression() {
        let mut cur = query("q1", Status::Ok, 100 * MIB);
        cur.figures.peak_rss_bytes = Some(120 * MIB);
        let c = one(query("q1", Status::Ok, 100 * MIB), cur);
        assert_eq!(verdict(&c, Metric::PeakRss), Verdict::Regression);
        assert_eq!(verdict(&c, Metric::HeapPeak), Verdict::Unchanged);
        assert_eq!(c.regressions(), 1);
    }

    #[test]
    fn three_percent_more_is_not() {
        let mut cur = query("q1", Status::Ok, 100 * MIB);
        cur.figures.peak_rss_bytes = Some(103 * MIB);
        let c = one(query("q1", Status::Ok, 100 * MIB), cur);
        assert_eq!(verdict(&c, Metric::PeakRss), Verdict::Unchanged);
        assert_eq!(c.regressions(), 0);
    }

    #[test]
    fn twenty_percent_of_100_kib_is_under_the_floor() {
        let mut cur = query("q1", Status::Ok, 100 * KIB);
        cur.figures.peak_rss_bytes = Some(120 * KIB);
        let c = one(query("q1", Status::Ok, 100 * KIB), cur);
        assert_eq!(verdict(&c, Metric::PeakRss), Verdict::Unchanged);
        assert_eq!(c.regressions(), 0);
    }

    #[test]
    fn a_big_absolute_change_under_the_threshold_is_not() {
        let rules = Rules::default();
        // +2 MiB is past the 1 MiB floor, but only 1% of 200 MiB.
        assert_eq!(
            rules.judge(Metric::PeakRss, (200 * MIB) as i128, (202 * MIB) as i128),
            Verdict::Unchanged
        );
        assert_eq!(
            rules.judge(Metric::PeakRss, (100 * MIB) as i128, (80 * MIB) as i128),
            Verdict::Improvement
        );
        assert_eq!(
            rules.judge(
                Metric::UntrackedPeak,
                -((10 * MIB) as i128),
                -((5 * MIB) as i128)
            ),
            Verdict::Regression,
            "less over-reservation is more untracked"
        );
        assert_eq!(
            rules.judge(Metric::ReservedPeak, 0, (2 * MIB) as i128),
            Verdict::Regression,
            "from zero, the floor decides"
        );
        assert_eq!(
            rules.judge(Metric::Allocations, 10_000, 12_000),
            Verdict::Regression
        );
        assert_eq!(
            rules.judge(Metric::Allocations, 100, 900),
            Verdict::Unchanged,
            "under the allocation floor"
        );
    }

    #[test]
    fn per_metric_overrides() {
        let mut rules = Rules::default();
        rules.set_threshold(Metric::PeakRss, 0.25);
        assert_eq!(
            rules.judge(Metric::PeakRss, (100 * MIB) as i128, (120 * MIB) as i128),
            Verdict::Unchanged
        );
        assert_eq!(
            rules.judge(Metric::HeapPeak, (100 * MIB) as i128, (120 * MIB) as i128),
            Verdict::Regression
        );
        rules.set_floor(Metric::HeapPeak, 64 * MIB);
        assert_eq!(
            rules.judge(Metric::HeapPeak, (100 * MIB) as i128, (120 * MIB) as i128),
            Verdict::Unchanged
        );
    }

    #[test]
    fn a_query_that_newly_fails_is_a_regression() {
        let c = one(
            query("q1", Status::Ok, 100 * MIB),
            query("q1", Status::Oom, 100 * MIB),
        );
        assert_eq!(c.queries[0].outcome, Outcome::NewFailure);
        assert!(c.queries[0].metrics.is_empty());
        assert_eq!(c.regressions(), 1);

        let still = one(
            query("q1", Status::Failed, MIB),
            query("q1", Status::Failed, MIB),
        );
        assert_eq!(still.queries[0].outcome, Outcome::StillFailing);
        assert_eq!(still.regressions(), 0);
        let fixed = one(
            query("q1", Status::Failed, MIB),
            query("q1", Status::Ok, MIB),
        );
        assert_eq!(fixed.queries[0].outcome, Outcome::Fixed);
        assert_eq!(fixed.regressions(), 0);
    }

    #[test]
    fn queries_missing_on_one_side_are_reported() {
        let base = run(vec![
            query("q1", Status::Ok, MIB),
            query("q2", Status::Ok, MIB),
        ]);
        let cur = run(vec![
            query("q1", Status::Ok, MIB),
            query("q3", Status::Ok, MIB),
            query("q4", Status::Failed, MIB),
        ]);
        let c = compare(("b", &base), ("c", &cur), &Rules::default()).unwrap();
        let outcomes: Vec<(&str, Outcome)> = c
            .queries
            .iter()
            .map(|q| (q.id.as_str(), q.outcome))
            .collect();
        assert_eq!(
            outcomes,
            [
                ("q1", Outcome::Compared),
                ("q2", Outcome::MissingInCurrent),
                ("q3", Outcome::NewQuery),
                ("q4", Outcome::NewFailure),
            ]
        );
        assert_eq!(c.regressions(), 1, "only the new query that fails");
    }

    #[test]
    fn figures_measured_on_one_side_only_are_not_comparable() {
        let mut cur = query("q1", Status::Ok, MIB);
        cur.figures.heap_peak_bytes = None;
        cur.figures.reserved_peak_bytes = None;
        let mut base = query("q1", Status::Ok, MIB);
        base.figures.reserved_peak_bytes = None;
        let c = one(base, cur);
        assert_eq!(verdict(&c, Metric::HeapPeak), Verdict::NotComparable);
        assert!(
            c.queries[0]
                .metrics
                .iter()
                .all(|m| m.metric != Metric::ReservedPeak),
            "measured on neither side: no row"
        );
    }

    #[test]
    fn mismatched_runs_are_refused() {
        let mut base = run(vec![query("q1", Status::Ok, MIB)]);
        base.context.memory_limit_bytes = Some(512 * MIB);
        let cur = run(vec![query("q1", Status::Ok, MIB)]);
        let err = compare(("b", &base), ("c", &cur), &Rules::default()).unwrap_err();
        assert!(err.0.contains("different memory limits"), "{err}");
        assert!(err.0.contains("512.0 MiB in b, unbounded in c"), "{err}");

        let other = run(vec![query("q9", Status::Ok, MIB)]);
        let err = compare(("b", &cur), ("c", &other), &Rules::default()).unwrap_err();
        assert!(err.0.contains("no query in common"), "{err}");
    }
}
