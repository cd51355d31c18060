//! The sweep's results: `memledger.sweep/1`.
//!
//! One [`Sweep`] holds a [`SweepContext`] and one [`QuerySweep`] per query:
//! its run without a limit, every limit it ran at (a [`Point`] each, in
//! ascending order of limit), the minimum limit it passed at and the limits
//! above that where it failed. Byte figures are integers in bytes, times in
//! milliseconds; a figure nobody measured is `null`, never `0`. Ratios
//! (`rss_over_limit`) are JSON numbers, `null` when either side is missing.
//!
//! "Passed" means the run's status is `ok`; every other status (`failed`,
//! `oom`, `timeout`, `signal`) fails at that limit.
//!
//! Compatibility: as for runs, a reader accepts the major version it knows
//! and ignores unknown fields; an unknown major is refused by name.

use std::path::Path;

use memledger_profiler::report::schema_major;
use serde::{Deserialize, Serialize};

use super::search::Phase;
use crate::run::{Machine, RUN_READ_CAP, Status};

/// The schema tag of every sweep this crate writes.
pub const SWEEP_SCHEMA: &str = "memledger.sweep/1";
/// The major version of [`SWEEP_SCHEMA`] this crate reads.
pub const SWEEP_MAJOR: u32 = 1;
/// The schema family, without its version.
pub const SWEEP_FAMILY: &str = "memledger.sweep";
/// The file a sweep is written to inside its output directory.
pub const SWEEP_FILE: &str = "sweep.json";

/// A whole sweep.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sweep {
    /// Always [`SWEEP_SCHEMA`] for sweeps written by this crate.
    pub schema: String,
    /// What ran, where, when, and how the search was set.
    pub context: SweepContext,
    /// True when the sweep was interrupted before every query was searched.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
    /// In the order of the suite; ids are unique.
    #[serde(default)]
    pub queries: Vec<QuerySweep>,
}

/// What ran, where, when, and how the search was set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SweepContext {
    /// `mem_profile <version>`.
    pub tool: String,
    /// `builtin`, `tpch` or `command`.
    pub suite: String,
    /// The command each query ran, `{query}` standing for the query.
    pub command: String,
    /// `git rev-parse HEAD` of the current directory, if it is in a repository.
    pub git_revision: Option<String>,
    /// The machine the sweep was made on.
    pub machine: Machine,
    /// When the sweep started, RFC 3339 in UTC.
    pub date: String,
    /// The resolution as given: `2%` (of each query's top) or `1048576B`.
    pub resolution: String,
    /// The number of grid limits.
    pub grid: u32,
    /// `--max-limit`, when given: the top of every query's search.
    pub max_limit_bytes: Option<u64>,
    /// Queries swept at once.
    pub jobs: u32,
    /// Each run was killed after this long; `null`: no timeout.
    pub timeout_ms: Option<u64>,
    /// The RSS sampling interval (also passed as `MEMLEDGER_SAMPLE_MS`).
    pub sample_ms: u64,
    /// Wall time of the whole sweep so far.
    pub wall_ms: u64,
}

/// Where a query's sweep stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SweepStatus {
    /// Searched to the end: `minimum_limit_bytes` is set.
    Done,
    /// It failed without a limit, so no limit was searched.
    FailedUnlimited,
    /// It passed without a limit but failed at every limit tried.
    NoPassingLimit,
    /// The sweep was interrupted while this query was being searched; the
    /// limits that finished are listed, the minimum is an upper bound.
    Interrupted,
    /// Being searched now (a file left with it was cut short without
    /// being able to say so: the harness itself was killed).
    Running,
}

impl SweepStatus {
    /// The name used in JSON and tables.
    pub fn name(self) -> &'static str {
        match self {
            SweepStatus::Done => "done",
            SweepStatus::FailedUnlimited => "failed_unlimited",
            SweepStatus::NoPassingLimit => "no_passing_limit",
            SweepStatus::Interrupted => "interrupted",
            SweepStatus::Running => "running",
        }
    }
}

/// What set the top of a query's search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TopSource {
    /// The reserved peak of the run without a limit.
    ReservedPeak,
    /// `--max-limit`.
    MaxLimit,
    /// The peak RSS of the run without a limit (it wrote no report).
    PeakRss,
}

/// One query's sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuerySweep {
    /// `q3`, `sort`, ...
    pub id: String,
    /// Where its sweep stands.
    pub status: SweepStatus,
    /// The run without a limit (`null` only when it was interrupted).
    pub unlimited: Option<Point>,
    /// The top of the search: the highest grid limit before rounding.
    #[serde(default)]
    pub top_bytes: Option<u64>,
    /// What set the top.
    #[serde(default)]
    pub top_source: Option<TopSource>,
    /// The step of the search in bytes: the minimum is exact to this.
    #[serde(default)]
    pub resolution_bytes: Option<u64>,
    /// The smallest limit it passed at; the true minimum is above
    /// `failing_below_minimum_bytes` and at most this.
    #[serde(default)]
    pub minimum_limit_bytes: Option<u64>,
    /// The highest limit below the minimum that was run and failed (one
    /// step below it once the bisection ended); `null` when nothing below
    /// the minimum was run.
    #[serde(default)]
    pub failing_below_minimum_bytes: Option<u64>,
    /// The limits above the minimum at which it failed: pass/fail is not
    /// monotonic in the limit there.
    #[serde(default)]
    pub non_monotonic: Vec<FailingLimit>,
    /// The largest `peak RSS / limit` over the limits it passed at.
    #[serde(default)]
    pub worst_rss_over_limit: Option<f64>,
    /// Runs made for this query, the unlimited one included.
    #[serde(default)]
    pub runs: u32,
    /// The sum of those runs' wall times.
    #[serde(default)]
    pub wall_ms: u64,
    /// The SVG plot's file name, beside `sweep.json`.
    #[serde(default)]
    pub plot: Option<String>,
    /// Why there is no minimum (`failed_unlimited`, `no_passing_limit`).
    #[serde(default)]
    pub error: Option<String>,
    /// Every limit run, ascending.
    #[serde(default)]
    pub points: Vec<Point>,
}

/// A limit above the minimum that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailingLimit {
    /// The limit.
    pub limit_bytes: u64,
    /// How the run ended.
    pub status: Status,
    /// The pool's error text (verbatim) or what the harness saw.
    pub error: Option<String>,
}

/// One run of a query at one limit (or without one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// The limit passed as `MEMLEDGER_MEMORY_LIMIT`; `null`: unlimited.
    pub limit_bytes: Option<u64>,
    /// Which part of the search ran it.
    pub phase: Phase,
    /// How the run ended; `ok` is a pass.
    pub status: Status,
    /// Its exit code, when it exited.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// The signal that killed it, when one did.
    #[serde(default)]
    pub signal: Option<i32>,
    /// Wall time from start to exit.
    pub wall_ms: u64,
    /// Peak RSS of the query's process tree, as the kernel measured it.
    #[serde(default)]
    pub peak_rss_bytes: Option<u64>,
    /// From the report: `heap.peak_requested_bytes`.
    #[serde(default)]
    pub heap_peak_bytes: Option<i64>,
    /// From the report: `audit.reserved_peak_bytes`.
    #[serde(default)]
    pub reserved_peak_bytes: Option<u64>,
    /// From the report: spills the pool asked for, summed over consumers.
    #[serde(default)]
    pub spills: Option<u64>,
    /// From the report: reservations the pool refused, summed over
    /// consumers (an operator that spills on refusal spilled about as often).
    #[serde(default)]
    pub refusals: Option<u64>,
    /// `peak_rss_bytes / limit_bytes`: above 1, the process outgrew its limit.
    #[serde(default)]
    pub rss_over_limit: Option<f64>,
    /// Why it is not `ok`: the report's error (the pool's text) or what
    /// the harness saw.
    #[serde(default)]
    pub error: Option<String>,
}

impl Point {
    /// True when the run passed.
    pub fn passed(&self) -> bool {
        self.status == Status::Ok
    }
}

/// `peak / limit`, `None` when either is missing or the limit is 0.
pub fn ratio(peak: Option<u64>, limit: Option<u64>) -> Option<f64> {
    match (peak, limit) {
        (Some(peak), Some(limit)) if limit > 0 => Some(peak as f64 / limit as f64),
        _ => None,
    }
}

impl QuerySweep {
    /// The points that failed above the minimum, and the worst passing
    /// overshoot, recomputed from `points` and `minimum_limit_bytes`.
    pub fn derive(&mut self) {
        self.points.sort_by_key(|p| p.limit_bytes);
        self.non_monotonic = match self.minimum_limit_bytes {
            Some(minimum) => self
                .points
                .iter()
                .filter(|p| !p.passed() && p.limit_bytes.is_some_and(|l| l > minimum))
                .map(|p| FailingLimit {
                    limit_bytes: p.limit_bytes.unwrap_or_default(),
                    status: p.status,
                    error: p.error.clone(),
                })
                .collect(),
            None => Vec::new(),
        };
        self.worst_rss_over_limit = self
            .points
            .iter()
            .filter(|p| p.passed())
            .filter_map(|p| p.rss_over_limit)
            .fold(None, |worst: Option<f64>, r| {
                Some(worst.map_or(r, |w| w.max(r)))
            });
    }
}

/// Why a sweep could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SweepError {
    /// Not JSON, or JSON of the wrong shape.
    Malformed(String),
    /// JSON with another schema family (or none).
    NotASweep(String),
    /// `memledger.sweep/<major>` with a major this reader does not know.
    UnknownMajor(String),
}

impl std::fmt::Display for SweepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SweepError::Malformed(why) => write!(f, "malformed memledger sweep: {why}"),
            SweepError::NotASweep(found) => write!(
                f,
                "not a memledger sweep (schema {found}; expected {SWEEP_SCHEMA})"
            ),
            SweepError::UnknownMajor(found) => write!(
                f,
                "unsupported sweep schema `{found}`: this mem_profile reads {SWEEP_FAMILY}/{SWEEP_MAJOR}"
            ),
        }
    }
}

impl std::error::Error for SweepError {}

/// The `schema` tag of a JSON text, if it has a string one.
pub fn schema_tag(text: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Tag {
        schema: Option<serde_json::Value>,
    }
    match serde_json::from_str::<Tag>(text).ok()?.schema {
        Some(serde_json::Value::String(s)) => Some(s),
        _ => None,
    }
}

impl Sweep {
    /// An empty sweep with the current schema tag.
    pub fn new(context: SweepContext) -> Sweep {
        Sweep {
            schema: SWEEP_SCHEMA.to_string(),
            context,
            interrupted: false,
            queries: Vec::new(),
        }
    }

    /// Parses a sweep, refusing other schemas, unknown majors and repeated ids.
    pub fn from_json(text: &str) -> Result<Sweep, SweepError> {
        let _: serde_json::Value =
            serde_json::from_str(text).map_err(|e| SweepError::Malformed(e.to_string()))?;
        let schema = schema_tag(text).ok_or_else(|| SweepError::NotASweep("missing".into()))?;
        match schema_major(&schema) {
            Some((SWEEP_FAMILY, SWEEP_MAJOR)) => {}
            Some((SWEEP_FAMILY, _)) => return Err(SweepError::UnknownMajor(schema)),
            _ => return Err(SweepError::NotASweep(format!("`{schema}`"))),
        }
        let sweep: Sweep =
            serde_json::from_str(text).map_err(|e| SweepError::Malformed(e.to_string()))?;
        let mut ids = std::collections::HashSet::new();
        if let Some(duplicate) = sweep.queries.iter().find(|q| !ids.insert(q.id.as_str())) {
            return Err(SweepError::Malformed(format!(
                "the query id `{}` appears more than once",
                duplicate.id
            )));
        }
        Ok(sweep)
    }

    /// Reads a sweep from a file, or from `sweep.json` in a directory. The
    /// error is one line that names the file.
    pub fn read(path: &Path) -> Result<Sweep, String> {
        let file = sweep_file(path);
        let text = crate::files::read_limited(&file, RUN_READ_CAP, true)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        Sweep::from_json(&text).map_err(|e| format!("{}: {e}", file.display()))
    }

    /// Pretty JSON, newline-terminated.
    pub fn to_json(&self) -> String {
        // Plain structs of numbers and strings: serializing cannot fail
        // (non-finite ratios are never made: see `ratio`).
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// The query with this id.
    pub fn query(&self, id: &str) -> Option<&QuerySweep> {
        self.queries.iter().find(|q| q.id == id)
    }
}

/// The file a path names: itself, or `sweep.json` inside a directory.
pub fn sweep_file(path: &Path) -> std::path::PathBuf {
    if path.is_dir() {
        path.join(SWEEP_FILE)
    } else {
        path.to_path_buf()
    }
}

/// True when `path` (a file, or a directory holding `sweep.json` and no
/// `run.json`) holds a `memledger.sweep/…` document, whatever its version.
pub fn is_sweep(path: &Path) -> bool {
    if path.is_dir() {
        return path.join(SWEEP_FILE).is_file() && !path.join(crate::run::RUN_FILE).exists();
    }
    crate::files::read_limited(path, RUN_READ_CAP, true)
        .ok()
        .and_then(|text| schema_tag(&text))
        .and_then(|tag| schema_major(&tag).map(|(family, _)| family == SWEEP_FAMILY))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn point(limit: Option<u64>, status: Status, rss: u64) -> Point {
        Point {
            limit_bytes: limit,
            phase: Phase::Grid,
            status,
            exit_code: Some(if status == Status::Ok { 0 } else { 1 }),
            signal: None,
            wall_ms: 10,
            peak_rss_bytes: Some(rss),
            heap_peak_bytes: None,
            reserved_peak_bytes: Some(rss / 2),
            spills: None,
            refusals: Some(0),
            rss_over_limit: ratio(Some(rss), limit),
            error: (status != Status::Ok).then(|| "Resources exhausted".to_string()),
        }
    }

    #[test]
    fn non_monotonic_points_and_the_worst_overshoot_are_derived() {
        let mut q = QuerySweep {
            id: "q1".into(),
            status: SweepStatus::Done,
            unlimited: Some(point(None, Status::Ok, 100)),
            top_bytes: Some(80),
            top_source: Some(TopSource::ReservedPeak),
            resolution_bytes: Some(10),
            minimum_limit_bytes: Some(20),
            failing_below_minimum_bytes: Some(10),
            non_monotonic: Vec::new(),
            worst_rss_over_limit: None,
            runs: 5,
            wall_ms: 50,
            plot: None,
            error: None,
            points: vec![
                point(Some(60), Status::Failed, 90),
                point(Some(10), Status::Failed, 90),
                point(Some(20), Status::Ok, 50),
                point(Some(40), Status::Ok, 60),
                point(Some(80), Status::Oom, 200),
            ],
        };
        q.derive();
        let limits: Vec<Option<u64>> = q.points.iter().map(|p| p.limit_bytes).collect();
        assert_eq!(limits, [Some(10), Some(20), Some(40), Some(60), Some(80)]);
        let failing: Vec<(u64, Status)> = q
            .non_monotonic
            .iter()
            .map(|f| (f.limit_bytes, f.status))
            .collect();
        assert_eq!(failing, [(60, Status::Failed), (80, Status::Oom)]);
        assert_eq!(
            q.worst_rss_over_limit,
            Some(2.5),
            "50 / 20, failing points left out"
        );
        assert_eq!(ratio(Some(1), Some(0)), None);
        assert_eq!(ratio(None, Some(4)), None);
    }

    #[test]
    fn schemas_are_checked_by_family_and_major() {
        let sweep = Sweep::new(SweepContext::default());
        let json = sweep.to_json();
        assert!(
            json.starts_with("{\n  \"schema\": \"memledger.sweep/1\""),
            "{json}"
        );
        assert_eq!(Sweep::from_json(&json), Ok(sweep));
        assert!(Sweep::from_json(r#"{"schema":"memledger.sweep/1.3","context":{}}"#).is_ok());
        assert_eq!(
            Sweep::from_json(r#"{"schema":"memledger.sweep/2"}"#)
                .unwrap_err()
                .to_string(),
            "unsupported sweep schema `memledger.sweep/2`: this mem_profile reads memledger.sweep/1"
        );
        assert!(matches!(
            Sweep::from_json(r#"{"schema":"memledger.run/1.1"}"#),
            Err(SweepError::NotASweep(_))
        ));
        assert!(matches!(
            Sweep::from_json("{"),
            Err(SweepError::Malformed(_))
        ));
        assert!(matches!(
            Sweep::from_json(r#"{"schema":"memledger.sweep/1","queries":[{"id":"a"}]}"#),
            Err(SweepError::Malformed(_))
        ));
    }
}
