//! The harness's results: `memledger.run/1.2`.
//!
//! One [`Run`] holds the [`Context`] (what ran, where, when, under which
//! limits) and one [`QueryResult`] per query. Byte figures are integers in
//! bytes, times in milliseconds. A figure nobody measured is `null`, never
//! `0`: a query without a child report has `null` heap and reserved figures.
//!
//! Figures of a query (its top-level ones and `median`) are the median over
//! its repeats that ended `ok` (over all repeats when none did); `min` is the
//! minimum over the same repeats; `repeats` lists every repeat. The status is
//! that of the first repeat that was not `ok`, if any; `exit_code`, `signal`,
//! `error`, `stderr_tail`, `timeline` and `report` come from that repeat, or
//! from the last one when all were `ok`.
//!
//! A baseline is a run stripped of its bulk (timelines, reports, repeats,
//! stderr) so that it reads well in review; it is still `memledger.run/1`
//! and every reader here takes either.
//!
//! Compatibility: a reader accepts the major version it knows and ignores
//! unknown fields; an unknown major is refused with a message that names it.
//! Minor versions: `1.1` added the `interrupted` status and the run's
//! `interrupted` flag; `1.2` added the figures at the start of the measured
//! window and the growth figures of each query (`window_start_*`,
//! `*_growth_bytes`, `*_growth_per_reserved`), and the context's `shard`
//! and `merged_from`, the context's `stack_sample_bytes` and each query's
//! `stacks` (its sampled-stack files).
//!
//! Growth figures are about the query, not the process: what the process
//! held when its measured window began (data loaded before the session,
//! the runtime's own baggage) is taken out. `peak_rss_growth_bytes` is the
//! peak RSS minus the RSS at the window's start, `heap_growth_bytes` the heap
//! peak minus the live heap then; each is divided by the reserved peak in
//! `*_growth_per_reserved`. Every one is `null` when an input is (a child
//! without a report, a report older than `memledger.report/1.1`), when the
//! difference does not fit, or, for a ratio, when the reserved peak is 0.

use std::path::Path;

use memledger_profiler::report::{Report, schema_major};
use serde::{Deserialize, Serialize};

/// The schema tag of every run this crate writes.
pub const RUN_SCHEMA: &str = "memledger.run/1.2";
/// The major version of [`RUN_SCHEMA`] this crate reads and writes.
pub const RUN_MAJOR: u32 = 1;
/// The file a run is written to inside its output directory.
pub const RUN_FILE: &str = "run.json";
/// The largest run file `mem_profile` reads (1 GiB): a bound against a path
/// that names something endless, far above any real run.
pub const RUN_READ_CAP: u64 = 1 << 30;

/// A whole run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// Always [`RUN_SCHEMA`] for runs written by this crate.
    pub schema: String,
    /// What ran, where, when, and under which limits.
    pub context: Context,
    /// True when the run was interrupted (Ctrl-C or `SIGTERM`) before every
    /// query and repeat ran; absent (false) otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
    /// In the order they ran; ids are unique.
    #[serde(default)]
    pub queries: Vec<QueryResult>,
}

/// What ran, where, when, and under which limits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Context {
    /// `mem_profile <version>`.
    pub tool: String,
    /// `builtin` or `command`.
    pub suite: String,
    /// The command each query ran, `{query}` standing for the query.
    pub command: String,
    /// `git rev-parse HEAD` of the current directory, if it is in a repository.
    pub git_revision: Option<String>,
    /// The machine the run was made on.
    pub machine: Machine,
    /// When the run started, RFC 3339 in UTC.
    pub date: String,
    /// The pool limit passed as `MEMLEDGER_MEMORY_LIMIT`; `null`: unbounded.
    pub memory_limit_bytes: Option<u64>,
    /// Each query was killed after this long; `null`: no timeout.
    pub timeout_ms: Option<u64>,
    /// The RSS sampling interval (also passed as `MEMLEDGER_SAMPLE_MS`).
    pub sample_ms: u64,
    /// Mean bytes between sampled allocation stacks (`--stacks`, passed as
    /// `MEMLEDGER_SAMPLE_BYTES`); absent when stacks were not sampled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_sample_bytes: Option<u64>,
    /// Runs per query.
    pub repeat: u32,
    /// The shard of the selected queries this run ran (`--shard K/N`);
    /// `null` when it ran them all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    /// For a run made by `mem_profile merge`: the runs merged into it, in
    /// the order given (the context above is the first one's, without its
    /// shard). Absent otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<MergedPart>,
}

/// One of `N` disjoint parts of a suite's queries: `K/N`, `1 <= K <= N`.
///
/// The selected queries are sorted by id and dealt out in turn: the query
/// at position `i` (from 0) of the sorted list belongs to shard
/// `i % N + 1`. Which shard a query lands in depends only on the ids
/// selected, not on the order they were listed in or on the machine, and
/// shard sizes differ by at most one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// `K`, from 1.
    pub index: u32,
    /// `N`, at least 1.
    pub count: u32,
}

impl Shard {
    /// Parses `K/N` (`1 <= K <= N`).
    pub fn parse(text: &str) -> Result<Shard, String> {
        let bad = || format!("`{text}` is not a shard K/N with 1 <= K <= N (e.g. 2/4)");
        let (k, n) = text.trim().split_once('/').ok_or_else(bad)?;
        let index: u32 = k.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    /// Whether the query at `position` of the sorted id list belongs here.
    pub fn holds(self, position: usize) -> bool {
        position % self.count as usize + 1 == self.index as usize
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// One run merged into another: where and when it was made.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MergedPart {
    /// When it started, RFC 3339 in UTC.
    pub date: String,
    /// Its git revision, if it recorded one.
    pub git_revision: Option<String>,
    /// The machine it was made on.
    pub machine: Machine,
    /// Its shard, if it ran one.
    pub shard: Option<Shard>,
    /// How many queries it brought.
    pub queries: usize,
}

/// The machine the run was made on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Machine {
    /// The host name (`uname -n`).
    pub hostname: String,
    /// CPUs available to the harness.
    pub cpus: u32,
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// Physical memory in bytes.
    pub memory_bytes: u64,
}

/// How a query ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Exited 0, and its report (if any) was readable and had no error.
    Ok,
    /// Exited non-zero, could not be executed, or wrote a broken report or one with an error.
    Failed,
    /// Killed by a signal the harness did not send (other than an OOM kill).
    Signal,
    /// Killed by the harness after `--timeout`.
    Timeout,
    /// Out of memory: a `SIGKILL` the harness did not send (the kernel's OOM
    /// killer or a memory cgroup), or an abort after an allocation failure.
    Oom,
    /// The run was interrupted (Ctrl-C or `SIGTERM`) before all of this
    /// query's repeats ran; the finished ones are kept.
    Interrupted,
}

impl Status {
    /// The lowercase name used in JSON and tables.
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Failed => "failed",
            Status::Signal => "signal",
            Status::Timeout => "timeout",
            Status::Oom => "oom",
            Status::Interrupted => "interrupted",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The figures of one run of a query (or their min or median over repeats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Figures {
    /// Wall time from start to exit.
    pub wall_ms: u64,
    /// Peak RSS of the query's process alone, as the kernel measured it.
    pub peak_rss_bytes: Option<u64>,
    /// From the child's report: `heap.peak_requested_bytes`.
    pub heap_peak_bytes: Option<i64>,
    /// From the child's report: `audit.reserved_peak_bytes`.
    pub reserved_peak_bytes: Option<u64>,
    /// From the child's report: `heap.allocations`.
    pub allocations: Option<u64>,
    /// From the child's report: untracked bytes at the heap peak.
    pub untracked_at_heap_peak_bytes: Option<i64>,
    /// From the child's report: `audit.drift_peak.untracked_bytes`.
    pub untracked_peak_bytes: Option<i64>,
    /// From the child's report: `audit.window_start.rss_bytes`, the RSS
    /// when the measured window began.
    pub window_start_rss_bytes: Option<u64>,
    /// From the child's report: `audit.window_start.heap_live_bytes`, the
    /// live heap when the measured window began.
    pub window_start_heap_live_bytes: Option<i64>,
    /// `peak_rss_bytes - window_start_rss_bytes` (see the module docs).
    pub peak_rss_growth_bytes: Option<i64>,
    /// `heap_peak_bytes - window_start_heap_live_bytes` (see the module docs).
    pub heap_growth_bytes: Option<i64>,
}

impl Figures {
    /// The harness's own measurements plus what the child's report says.
    pub fn new(wall_ms: u64, peak_rss_bytes: Option<u64>, report: Option<&Report>) -> Figures {
        let mut figures = Figures {
            wall_ms,
            peak_rss_bytes,
            ..Figures::default()
        };
        if let Some(report) = report {
            figures.heap_peak_bytes = Some(report.heap.peak_requested_bytes);
            figures.reserved_peak_bytes = Some(report.audit.reserved_peak_bytes);
            figures.allocations = Some(report.heap.allocations);
            let at_heap_peak = &report.audit.peaks.heap;
            figures.untracked_at_heap_peak_bytes =
                untracked(at_heap_peak.heap_live_bytes, at_heap_peak.reserved_bytes);
            figures.untracked_peak_bytes = Some(report.audit.drift_peak.untracked_bytes);
            if let Some(start) = report.audit.window_start {
                figures.window_start_rss_bytes = start.rss_bytes;
                figures.window_start_heap_live_bytes = start.heap_live_bytes;
            }
        }
        figures.peak_rss_growth_bytes = difference(
            figures.peak_rss_bytes.map(i128::from),
            figures.window_start_rss_bytes.map(i128::from),
        );
        figures.heap_growth_bytes = difference(
            figures.heap_peak_bytes.map(i128::from),
            figures.window_start_heap_live_bytes.map(i128::from),
        );
        figures
    }

    /// `peak_rss_growth_bytes / reserved_peak_bytes` (see the module docs).
    pub fn peak_rss_growth_per_reserved(&self) -> Option<f64> {
        per_reserved(
            self.peak_rss_growth_bytes.map(|b| b as f64),
            self.reserved_peak_bytes,
        )
    }

    /// `heap_growth_bytes / reserved_peak_bytes` (see the module docs).
    pub fn heap_growth_per_reserved(&self) -> Option<f64> {
        per_reserved(
            self.heap_growth_bytes.map(|b| b as f64),
            self.reserved_peak_bytes,
        )
    }

    /// Each figure reduced over `all` with `pick` (applied to the sorted
    /// values that exist); `None` where no repeat has the figure.
    fn reduce(all: &[Figures], pick: fn(usize) -> usize) -> Figures {
        fn by<T: Ord + Copy>(
            all: &[Figures],
            get: impl Fn(&Figures) -> Option<T>,
            pick: fn(usize) -> usize,
        ) -> Option<T> {
            let mut values: Vec<T> = all.iter().filter_map(get).collect();
            values.sort_unstable();
            values.get(pick(values.len())).copied()
        }
        Figures {
            wall_ms: by(all, |f| Some(f.wall_ms), pick).unwrap_or(0),
            peak_rss_bytes: by(all, |f| f.peak_rss_bytes, pick),
            heap_peak_bytes: by(all, |f| f.heap_peak_bytes, pick),
            reserved_peak_bytes: by(all, |f| f.reserved_peak_bytes, pick),
            allocations: by(all, |f| f.allocations, pick),
            untracked_at_heap_peak_bytes: by(all, |f| f.untracked_at_heap_peak_bytes, pick),
            untracked_peak_bytes: by(all, |f| f.untracked_peak_bytes, pick),
            window_start_rss_bytes: by(all, |f| f.window_start_rss_bytes, pick),
            window_start_heap_live_bytes: by(all, |f| f.window_start_heap_live_bytes, pick),
            peak_rss_growth_bytes: by(all, |f| f.peak_rss_growth_bytes, pick),
            heap_growth_bytes: by(all, |f| f.heap_growth_bytes, pick),
        }
    }

    /// The per-figure minimum.
    pub fn min(all: &[Figures]) -> Figures {
        Figures::reduce(all, |_| 0)
    }

    /// The per-figure median (the lower middle value for an even count, so
    /// that every figure is one that was measured).
    pub fn median(all: &[Figures]) -> Figures {
        Figures::reduce(all, |n| n.saturating_sub(1) / 2)
    }
}

/// `heap_live - reserved`, or `None` when the difference does not fit an
/// `i64` (a report with extreme values: the figure is not trustworthy, and
/// a wrapped or saturated number would hide that).
pub fn untracked(heap_live_bytes: i64, reserved_bytes: u64) -> Option<i64> {
    i64::try_from(i128::from(heap_live_bytes) - i128::from(reserved_bytes)).ok()
}

/// `a - b` when both exist and the difference fits an `i64`.
fn difference(a: Option<i128>, b: Option<i128>) -> Option<i64> {
    i64::try_from(a?.checked_sub(b?)?).ok()
}

/// `bytes / reserved`, or `None` without both or when `reserved` is 0.
pub fn per_reserved(bytes: Option<f64>, reserved: Option<u64>) -> Option<f64> {
    let reserved = reserved.filter(|&r| r > 0)?;
    Some(bytes? / reserved as f64)
}

/// One repeat of a query, as listed in `repeats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repeat {
    /// How this repeat ended.
    pub status: Status,
    /// Its exit code, when it exited.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// The signal that killed it, when one did.
    #[serde(default)]
    pub signal: Option<i32>,
    /// Its figures.
    #[serde(flatten)]
    pub figures: Figures,
}

/// Everything known about one repeat, before repeats are folded into a [`QueryResult`].
#[derive(Debug, Clone, PartialEq)]
pub struct RepeatRecord {
    /// Status and figures, as listed in `repeats`.
    pub repeat: Repeat,
    /// The pool limit it ran under.
    pub limit_bytes: Option<u64>,
    /// Why it is not `ok`.
    pub error: Option<String>,
    /// The last 2 KiB of its stderr.
    pub stderr_tail: String,
    /// Its RSS timeline.
    pub timeline: Vec<(u64, u64)>,
    /// Its report, when readable.
    pub report: Option<Report>,
}

/// One query of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryResult {
    /// `q3`, `sort`, ...
    pub id: String,
    /// How it ended (the first repeat that was not `ok` decides).
    pub status: Status,
    /// Its exit code, when it exited.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// The signal that killed it, when one did.
    #[serde(default)]
    pub signal: Option<i32>,
    /// The median figures over the repeats (see the module docs).
    #[serde(flatten)]
    pub figures: Figures,
    /// The median `peak_rss_growth_bytes` over the median reserved peak
    /// (see the module docs).
    #[serde(default)]
    pub peak_rss_growth_per_reserved: Option<f64>,
    /// The median `heap_growth_bytes` over the median reserved peak.
    #[serde(default)]
    pub heap_growth_per_reserved: Option<f64>,
    /// The pool limit it ran under: its report's, else the run's.
    #[serde(default)]
    pub limit_bytes: Option<u64>,
    /// Why it is not `ok`: the report's error text (a pool refusal, verbatim)
    /// or what the harness saw. `null` when `ok`.
    #[serde(default)]
    pub error: Option<String>,
    /// The last 2 KiB of its stderr.
    #[serde(default)]
    pub stderr_tail: String,
    /// `[t_ms, rss_bytes]` polled from `/proc/<pid>/statm`.
    #[serde(default)]
    pub timeline: Vec<(u64, u64)>,
    /// Every repeat, in order.
    #[serde(default)]
    pub repeats: Vec<Repeat>,
    /// The per-figure minimum over the repeats.
    #[serde(default)]
    pub min: Option<Figures>,
    /// The per-figure median over the repeats (the same as the top-level figures).
    #[serde(default)]
    pub median: Option<Figures>,
    /// The child's own report, when it wrote a readable one.
    #[serde(default)]
    pub report: Option<Report>,
    /// Where its sampled-stack files are, relative to the run's out
    /// directory (`run --stacks`; since `memledger.run/1.2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stacks: Option<crate::stacks::StackFiles>,
}

impl QueryResult {
    /// Folds the repeats of one query (at least one) into its result.
    pub fn from_repeats(id: &str, records: &[RepeatRecord]) -> QueryResult {
        let shown = records
            .iter()
            .find(|r| r.repeat.status != Status::Ok)
            .or(records.last());
        let ok: Vec<Figures> = records
            .iter()
            .filter(|r| r.repeat.status == Status::Ok)
            .map(|r| r.repeat.figures)
            .collect();
        let pool: Vec<Figures> = if ok.is_empty() {
            records.iter().map(|r| r.repeat.figures).collect()
        } else {
            ok
        };
        let median = Figures::median(&pool);
        QueryResult {
            id: id.to_string(),
            status: shown.map_or(Status::Failed, |r| r.repeat.status),
            exit_code: shown.and_then(|r| r.repeat.exit_code),
            signal: shown.and_then(|r| r.repeat.signal),
            figures: median,
            peak_rss_growth_per_reserved: median.peak_rss_growth_per_reserved(),
            heap_growth_per_reserved: median.heap_growth_per_reserved(),
            limit_bytes: shown.and_then(|r| r.limit_bytes),
            error: shown.and_then(|r| r.error.clone()),
            stderr_tail: shown.map(|r| r.stderr_tail.clone()).unwrap_or_default(),
            timeline: shown.map(|r| r.timeline.clone()).unwrap_or_default(),
            repeats: records.iter().map(|r| r.repeat.clone()).collect(),
            min: Some(Figures::min(&pool)),
            median: Some(median),
            report: shown.and_then(|r| r.report.clone()),
            stacks: None,
        }
    }
}

/// Why a run could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunError {
    /// Not JSON, or JSON of the wrong shape.
    Malformed(String),
    /// JSON with another schema family (or none).
    NotARun(String),
    /// `memledger.run/<major>` with a major this reader does not know.
    UnknownMajor(String),
    /// Two queries share an id: which row a comparison should use is unknown.
    DuplicateId(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Malformed(why) => write!(f, "malformed memledger run: {why}"),
            RunError::NotARun(found) => {
                write!(
                    f,
                    "not a memledger run (schema {found}; expected {RUN_SCHEMA})"
                )
            }
            RunError::UnknownMajor(found) => write!(
                f,
                "unsupported run schema `{found}`: this mem_profile reads memledger.run/{RUN_MAJOR}"
            ),
            RunError::DuplicateId(id) => write!(
                f,
                "malformed memledger run: the query id `{id}` appears more than once"
            ),
        }
    }
}

impl std::error::Error for RunError {}

impl Run {
    /// An empty run with the current schema tag.
    pub fn new(context: Context) -> Run {
        Run {
            schema: RUN_SCHEMA.to_string(),
            context,
            interrupted: false,
            queries: Vec::new(),
        }
    }

    /// Parses a run (or baseline), refusing other schemas and unknown majors.
    pub fn from_json(text: &str) -> Result<Run, RunError> {
        #[derive(Deserialize)]
        struct Tag {
            schema: Option<serde_json::Value>,
        }
        let tag: Tag =
            serde_json::from_str(text).map_err(|e| RunError::Malformed(e.to_string()))?;
        let schema = match tag.schema {
            Some(serde_json::Value::String(s)) => s,
            Some(other) => return Err(RunError::NotARun(format!("`{other}`"))),
            None => return Err(RunError::NotARun("missing".to_string())),
        };
        match schema_major(&schema) {
            Some(("memledger.run", RUN_MAJOR)) => {}
            Some(("memledger.run", _)) => return Err(RunError::UnknownMajor(schema)),
            _ => return Err(RunError::NotARun(format!("`{schema}`"))),
        }
        let run: Run =
            serde_json::from_str(text).map_err(|e| RunError::Malformed(e.to_string()))?;
        let mut ids = std::collections::HashSet::new();
        if let Some(duplicate) = run.queries.iter().find(|q| !ids.insert(q.id.as_str())) {
            return Err(RunError::DuplicateId(duplicate.id.clone()));
        }
        Ok(run)
    }

    /// Reads a run from a file, or from `run.json` in a directory. The error
    /// is one line that names the file.
    pub fn read(path: &Path) -> Result<Run, String> {
        let file = if path.is_dir() {
            path.join(RUN_FILE)
        } else {
            path.to_path_buf()
        };
        let text = crate::files::read_limited(&file, RUN_READ_CAP, true)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        Run::from_json(&text).map_err(|e| format!("{}: {e}", file.display()))
    }

    /// Pretty JSON, newline-terminated.
    pub fn to_json(&self) -> String {
        // Plain structs of numbers and strings: serializing cannot fail.
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// The run as a baseline: the same schema without timelines, reports,
    /// repeats, min and median and stderr, pretty JSON, newline-terminated,
    /// fields in the same order as in a run.
    pub fn to_baseline_json(&self) -> String {
        /// The fields of a query that a baseline keeps.
        #[derive(Serialize)]
        struct BaselineQuery<'a> {
            id: &'a str,
            status: Status,
            exit_code: Option<i32>,
            signal: Option<i32>,
            #[serde(flatten)]
            figures: &'a Figures,
            limit_bytes: Option<u64>,
            error: Option<&'a str>,
        }
        #[derive(Serialize)]
        struct Baseline<'a> {
            schema: &'a str,
            context: &'a Context,
            queries: Vec<BaselineQuery<'a>>,
        }
        let baseline = Baseline {
            schema: &self.schema,
            context: &self.context,
            queries: self
                .queries
                .iter()
                .map(|q| BaselineQuery {
                    id: &q.id,
                    status: q.status,
                    exit_code: q.exit_code,
                    signal: q.signal,
                    figures: &q.figures,
                    limit_bytes: q.limit_bytes,
                    error: q.error.as_deref(),
                })
                .collect(),
        };
        // Plain structs of numbers and strings: serializing cannot fail.
        let mut text = serde_json::to_string_pretty(&baseline).unwrap_or_default();
        text.push('\n');
        text
    }

    /// The query with this id.
    pub fn query(&self, id: &str) -> Option<&QueryResult> {
        self.queries.iter().find(|q| q.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: Status, wall_ms: u64, rss: u64, heap: Option<i64>) -> RepeatRecord {
        RepeatRecord {
            repeat: Repeat {
                status,
                exit_code: Some(if status == Status::Ok { 0 } else { 1 }),
                signal: None,
                figures: Figures {
                    wall_ms,
                    peak_rss_bytes: Some(rss),
                    heap_peak_bytes: heap,
                    ..Figures::default()
                },
            },
            limit_bytes: None,
            error: (status != Status::Ok).then(|| format!("repeat at {wall_ms} failed")),
            stderr_tail: String::new(),
            timeline: vec![(0, rss)],
            report: None,
        }
    }

    #[test]
    fn repeats_fold_into_min_and_median_of_ok_runs() {
        let records = [
            record(Status::Ok, 30, 300, Some(3)),
            record(Status::Ok, 10, 100, Some(1)),
            record(Status::Ok, 20, 200, Some(2)),
            record(Status::Ok, 40, 400, None),
        ];
        let q = QueryResult::from_repeats("q1", &records);
        assert_eq!(q.status, Status::Ok);
        assert_eq!(q.figures.wall_ms, 20, "lower median of 10,20,30,40");
        assert_eq!(q.figures.peak_rss_bytes, Some(200));
        assert_eq!(
            q.figures.heap_peak_bytes,
            Some(2),
            "median of the 3 that exist"
        );
        assert_eq!(q.figures.allocations, None, "never measured stays null");
        assert_eq!(q.min.unwrap().peak_rss_bytes, Some(100));
        assert_eq!(q.median, Some(q.figures));
        assert_eq!(q.repeats.len(), 4);
        assert_eq!(q.timeline, vec![(0, 400)], "the last repeat is shown");
    }

    #[test]
    fn a_failed_repeat_sets_the_status_but_not_the_figures() {
        let records = [
            record(Status::Ok, 10, 100, None),
            record(Status::Failed, 99, 999, None),
            record(Status::Ok, 30, 300, None),
        ];
        let q = QueryResult::from_repeats("q1", &records);
        assert_eq!(q.status, Status::Failed);
        assert_eq!(q.error.as_deref(), Some("repeat at 99 failed"));
        assert_eq!(
            q.figures.peak_rss_bytes,
            Some(100),
            "median of the ok repeats"
        );
        let all_failed = QueryResult::from_repeats("q2", &records[1..2]);
        assert_eq!(all_failed.figures.peak_rss_bytes, Some(999));
    }

    #[test]
    fn runs_round_trip_and_nulls_stay_null() {
        let mut run = Run::new(Context {
            tool: "mem_profile test".into(),
            sample_ms: 20,
            repeat: 1,
            ..Context::default()
        });
        run.queries.push(QueryResult::from_repeats(
            "q1",
            &[record(Status::Ok, 5, 42, None)],
        ));
        let json = run.to_json();
        assert!(json.contains("\"heap_peak_bytes\": null"), "{json}");
        assert!(json.contains("\"peak_rss_bytes\": 42"), "{json}");
        assert_eq!(Run::from_json(&json), Ok(run.clone()));

        let baseline = run.to_baseline_json();
        assert!(
            baseline.starts_with("{\n  \"schema\": \"memledger.run/1.2\""),
            "{baseline}"
        );
        assert!(!baseline.contains("timeline"), "{baseline}");
        assert!(!baseline.contains("repeats"), "{baseline}");
        let back = Run::from_json(&baseline).unwrap();
        assert_eq!(back.queries[0].figures, run.queries[0].figures);
        assert!(back.queries[0].timeline.is_empty());
    }

    #[test]
    fn extreme_report_values_never_wrap() {
        let mut report = Report::new();
        report.audit.peaks.heap.heap_live_bytes = i64::MIN;
        report.audit.peaks.heap.reserved_bytes = u64::MAX;
        let figures = Figures::new(1, None, Some(&report));
        assert_eq!(
            figures.untracked_at_heap_peak_bytes, None,
            "not representable: unmeasured, not i64::MAX"
        );
        report.audit.peaks.heap.heap_live_bytes = 10;
        report.audit.peaks.heap.reserved_bytes = 4;
        let figures = Figures::new(1, None, Some(&report));
        assert_eq!(figures.untracked_at_heap_peak_bytes, Some(6));
        assert_eq!(untracked(i64::MAX, 0), Some(i64::MAX));
        assert_eq!(untracked(-1, i64::MAX as u64), Some(i64::MIN));
        assert_eq!(untracked(-2, i64::MAX as u64), None);
    }

    #[test]
    fn duplicate_ids_are_malformed() {
        let text = r#"{"schema":"memledger.run/1","context":{},"queries":[
            {"id":"q7","status":"failed"},{"id":"q7","status":"ok"}]}"#;
        assert_eq!(
            Run::from_json(text),
            Err(RunError::DuplicateId("q7".to_string()))
        );
    }

    #[test]
    fn unknown_schemas_are_refused_by_name() {
        let err = Run::from_json(r#"{"schema":"memledger.run/2","queries":[]}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported run schema `memledger.run/2`: this mem_profile reads memledger.run/1"
        );
        let err = Run::from_json(r#"{"schema":"memledger.report/1"}"#).unwrap_err();
        assert!(matches!(err, RunError::NotARun(_)), "{err}");
        assert!(matches!(Run::from_json("{}"), Err(RunError::NotARun(_))));
        assert!(matches!(Run::from_json("[1,"), Err(RunError::Malformed(_))));
        let err = Run::from_json(r#"{"schema":"memledger.run/1","queries":[{"id":"q1"}]}"#);
        assert!(
            matches!(err, Err(RunError::Malformed(_))),
            "status is required"
        );
        assert!(Run::from_json(r#"{"schema":"memledger.run/1.4","context":{}}"#).is_ok());
    }

    #[test]
    fn growth_leaves_out_what_the_process_held_at_the_window_start() {
        use memledger_profiler::report::WindowStart;
        let mut report = Report::new();
        report.heap.peak_requested_bytes = 100;
        report.audit.reserved_peak_bytes = 20;
        let without = Figures::new(1, Some(300), Some(&report));
        assert_eq!(without.peak_rss_growth_bytes, None, "no window start: null");
        assert_eq!(without.heap_growth_per_reserved(), None);

        report.audit.window_start = Some(WindowStart {
            heap_live_bytes: Some(60),
            rss_bytes: Some(200),
        });
        let f = Figures::new(1, Some(300), Some(&report));
        assert_eq!(f.window_start_rss_bytes, Some(200));
        assert_eq!(f.peak_rss_growth_bytes, Some(100));
        assert_eq!(f.heap_growth_bytes, Some(40));
        assert_eq!(f.peak_rss_growth_per_reserved(), Some(5.0));
        assert_eq!(f.heap_growth_per_reserved(), Some(2.0));
        let q = QueryResult::from_repeats(
            "q1",
            &[RepeatRecord {
                repeat: Repeat {
                    status: Status::Ok,
                    exit_code: Some(0),
                    signal: None,
                    figures: f,
                },
                limit_bytes: None,
                error: None,
                stderr_tail: String::new(),
                timeline: Vec::new(),
                report: None,
            }],
        );
        assert_eq!(q.heap_growth_per_reserved, Some(2.0));
        assert_eq!(q.peak_rss_growth_per_reserved, Some(5.0));

        report.audit.reserved_peak_bytes = 0;
        let f = Figures::new(1, Some(300), Some(&report));
        assert_eq!(f.heap_growth_bytes, Some(40));
        assert_eq!(f.heap_growth_per_reserved(), None, "nothing reserved: null");

        report.audit.window_start = Some(WindowStart {
            heap_live_bytes: Some(i64::MIN),
            rss_bytes: None,
        });
        report.heap.peak_requested_bytes = i64::MAX;
        let f = Figures::new(1, Some(300), Some(&report));
        assert_eq!(f.heap_growth_bytes, None, "does not fit: null, not wrapped");
        assert_eq!(f.peak_rss_growth_bytes, None, "RSS at the start unread");
        let f = Figures::new(1, None, None);
        assert_eq!(f.peak_rss_growth_bytes, None);
    }

    #[test]
    fn shards_parse_and_deal_out_positions() {
        assert_eq!(Shard::parse("2/3"), Ok(Shard { index: 2, count: 3 }));
        for bad in ["0/3", "4/3", "1/0", "1", "a/b", "-1/3", "1/3/4"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
        let positions = |s: &str| -> Vec<usize> {
            let shard = Shard::parse(s).unwrap();
            (0..7).filter(|&i| shard.holds(i)).collect()
        };
        assert_eq!(positions("1/3"), [0, 3, 6]);
        assert_eq!(positions("2/3"), [1, 4]);
        assert_eq!(positions("3/3"), [2, 5]);
        assert_eq!(positions("1/1"), [0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(Shard { index: 2, count: 5 }.to_string(), "2/5");
    }
}
