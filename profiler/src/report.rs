//! The child's report: `memledger.report/1.1`.
//!
//! This is the contract between a measured process and whoever reads its
//! figures (`mem_profile`, CI scripts, people). Every byte figure is an
//! integer in bytes; signed where counting-mode attribution can make it
//! negative (a scope or thread that frees more than it allocated).
//!
//! Compatibility: readers accept any `memledger.report/<major>` whose major
//! they know ([`REPORT_MAJOR`]) and ignore unknown fields, so minor additions
//! never break an older reader. [`Report::from_json`] refuses an unknown major
//! with a message that says which versions it reads.
//!
//! Minor versions: `1.1` added `audit.window_start`, the heap and RSS when
//! the measured window (the session) began, and `stacks`, the sampled
//! allocation stacks.

use serde::{Deserialize, Serialize};

pub use crate::stacks::{Frame, ScopeStacks, StackReport, StacksReport};

/// The schema tag written into every report.
pub const REPORT_SCHEMA: &str = "memledger.report/1.1";
/// The major version of [`REPORT_SCHEMA`] this crate reads and writes.
pub const REPORT_MAJOR: u32 = 1;

/// One process's memory report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Always [`REPORT_SCHEMA`] for reports written by this crate.
    pub schema: String,
    /// What wrote it: `memledger-profiler <version>`.
    #[serde(default)]
    pub tool: String,
    /// A free label, e.g. the query id the process ran.
    #[serde(default)]
    pub label: Option<String>,
    /// `counting`, `owner`, or `none` when the tracked allocator is not installed.
    #[serde(default)]
    pub attribution: String,
    /// The pool kind the session ran under (`unbounded`, `greedy`, `fair`, `arbiter`, ...).
    #[serde(default)]
    pub pool: Option<String>,
    /// The pool limit in bytes, if any.
    #[serde(default)]
    pub memory_limit_bytes: Option<u64>,
    /// Wall time of the session in milliseconds.
    #[serde(default)]
    pub wall_ms: u64,
    /// An error the measured work ended with (e.g. a pool refusal), verbatim.
    #[serde(default)]
    pub error: Option<String>,
    /// What the kernel says about the process.
    pub process: ProcessReport,
    /// What the tracked allocator saw, process-wide.
    pub heap: HeapReport,
    /// Per OS thread, with an `exited` row for threads that ended.
    #[serde(default)]
    pub threads: Vec<ThreadReport>,
    /// Per scope: allocated, reserved, untracked.
    #[serde(default)]
    pub scopes: Vec<ScopeReport>,
    /// Distinct scope names that found the allocator's scope table full
    /// ([`MAX_SCOPES`](memledger_alloc::MAX_SCOPES)): their bytes went to
    /// the `overflow` scope, so no scope of that name is listed. 0 when
    /// every scope fit.
    #[serde(default)]
    pub overflowed_scope_names: u64,
    /// Per consumer: reserved now and at its peak.
    #[serde(default)]
    pub consumers: Vec<ConsumerReport>,
    /// Reserved vs. allocated vs. resident, with the time-aligned peaks.
    pub audit: AuditReport,
    /// The sampled timeline.
    #[serde(default)]
    pub timeline: Timeline,
    /// Memory outside the global allocator, reported by hand per scope.
    #[serde(default)]
    pub external: Vec<ExternalReport>,
    /// Sampled allocation stacks (since `memledger.report/1.1`); absent
    /// when stacks were not sampled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stacks: Option<StacksReport>,
}

/// What the kernel (and mimalloc, when it is the inner allocator) says about the process.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessReport {
    /// The process id.
    pub pid: u32,
    /// Resident set size when the report was written (`VmRSS`); `null`
    /// when `/proc/self/status` could not be read.
    pub rss_bytes: Option<u64>,
    /// Peak resident set size (`VmHWM` from `/proc/self/status`); `null`
    /// when it could not be read.
    pub peak_rss_bytes: Option<u64>,
    /// `VmHWM` as read, kept under its kernel name for cross-checks; `null`
    /// when it could not be read.
    pub vm_hwm_bytes: Option<u64>,
    /// mimalloc's own `mi_process_info` peak RSS, when mimalloc is the inner
    /// allocator. mimalloc takes it from `getrusage`, whose high-water mark
    /// survives `exec`: it can exceed `vm_hwm_bytes` by what the process
    /// image before `exec` (the parent, at fork) had resident.
    #[serde(default)]
    pub mimalloc_peak_rss_bytes: Option<u64>,
    /// mimalloc's own `mi_process_info` peak commit, when mimalloc is the inner allocator.
    #[serde(default)]
    pub mimalloc_peak_commit_bytes: Option<u64>,
}

/// The global allocator's figures for the whole process (all 0 when the
/// tracked allocator is not installed).
///
/// Live figures exclude the profiler's own bookkeeping (its internal
/// scope, [`internal_live_bytes`](Self::internal_live_bytes)); peaks and
/// totals include it (it is small: ledger rows and the bounded timeline).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HeapReport {
    /// Requested bytes live at the end.
    pub live_requested_bytes: i64,
    /// Usable bytes live at the end.
    pub live_usable_bytes: i64,
    /// Highest live requested bytes of the process.
    pub peak_requested_bytes: i64,
    /// Highest live usable bytes of the process.
    pub peak_usable_bytes: i64,
    /// Cumulative requested bytes allocated.
    pub total_requested_bytes: u64,
    /// Cumulative usable bytes allocated.
    pub total_usable_bytes: u64,
    /// Allocations (`alloc`, `alloc_zeroed`).
    pub allocations: u64,
    /// Deallocations.
    pub deallocations: u64,
    /// Successful reallocations.
    pub reallocations: u64,
    /// Peaks are published from thread-local deltas: each may be off by at most
    /// this many bytes (live threads × flush threshold). Live and total figures are exact.
    pub peak_error_bytes: u64,
    /// Live bytes of the profiler's own bookkeeping (scope
    /// `memledger.internal`: ledger rows, the timeline) at the end, left out
    /// of the live figures above.
    #[serde(default)]
    pub internal_live_bytes: i64,
}

/// One OS thread (or the `exited` row holding every thread that ended).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ThreadReport {
    /// Kernel thread id; 0 for the `exited` row.
    pub tid: u64,
    /// The thread's name (`comm`), `exited` for the row of ended threads.
    pub name: String,
    /// True for the row of ended threads.
    pub exited: bool,
    /// Requested bytes it allocated minus what it freed (counting mode: can be negative).
    pub live_requested_bytes: i64,
    /// Highest `live_requested_bytes`.
    pub peak_requested_bytes: i64,
    /// Cumulative requested bytes it allocated.
    pub total_requested_bytes: u64,
    /// Allocations it made.
    pub allocations: u64,
    /// Deallocations it made.
    pub deallocations: u64,
}

/// One scope: what its code allocated, what its consumers reserved, and the gap.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScopeReport {
    /// The scope's name.
    pub name: String,
    /// Requested bytes its code holds at the end.
    pub live_requested_bytes: i64,
    /// Usable bytes its code holds at the end.
    pub live_usable_bytes: i64,
    /// Highest `live_requested_bytes`.
    pub peak_requested_bytes: i64,
    /// Highest `live_usable_bytes`.
    pub peak_usable_bytes: i64,
    /// Cumulative requested bytes allocated in it.
    pub total_requested_bytes: u64,
    /// Allocations made in it.
    pub allocations: u64,
    /// Deallocations made in it.
    pub deallocations: u64,
    /// Reserved now by the consumers tied to this scope.
    pub reserved_bytes: u64,
    /// Highest reserved value of those consumers together.
    pub reserved_peak_bytes: u64,
    /// `live_requested - reserved` now.
    pub untracked_bytes: i64,
    /// Highest `live_requested - reserved`, as far as it was seen: the
    /// largest of the sampler's scope walks, `peak_requested_bytes -
    /// reserved_peak_bytes` and the value at the end. A lower bound of the
    /// true peak, exact when the peak lasted across a walk (every 10 samples).
    pub untracked_peak_bytes: i64,
    /// Bytes outside the global allocator reported by hand for this scope.
    pub external_bytes: u64,
}

/// One holder of a reservation, or the consumers of one name that finished
/// (see `registrations`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConsumerReport {
    /// The consumer's name.
    pub name: String,
    /// The scope its reservation is held against.
    pub scope: String,
    /// Whether it can spill.
    pub can_spill: bool,
    /// Reserved at the end.
    pub reserved_bytes: u64,
    /// Highest reservation (of any consumer the row stands for).
    pub reserved_peak_bytes: u64,
    /// Reservation requests the pool refused (summed over the row).
    #[serde(default)]
    pub refusals: u64,
    /// Times the pool asked it to spill (arbiter pools; summed over the row).
    #[serde(default)]
    pub spills: u64,
    /// How many consumers the row stands for: 1 for a consumer still
    /// registered; consumers that unregistered are folded into one row per
    /// pool, scope, name and spill flag (name `(others)` past 4096 rows).
    #[serde(default = "one")]
    pub registrations: u64,
}

fn one() -> u64 {
    1
}

/// Reserved vs. allocated vs. resident.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditReport {
    /// Reserved by all consumers now.
    pub reserved_bytes: u64,
    /// Highest reserved total since the process started (exact: the ledger
    /// sees every change).
    pub reserved_peak_bytes: u64,
    /// Global `heap live (requested) - reserved` now.
    pub untracked_bytes: i64,
    /// The time-aligned peaks: at each peak, the other two values.
    pub peaks: AlignedPeaks,
    /// The largest untracked value seen.
    pub drift_peak: DriftPeak,
    /// Every scope with live or reserved bytes at the sample where the heap
    /// was highest: which code held the heap at its peak, against its reservations.
    #[serde(default)]
    pub scopes_at_heap_peak: Vec<ScopeAtPeak>,
    /// The heap and RSS when the measured window (the session) began: what
    /// the process held before the query's work, so that readers can tell
    /// the query's growth from the process's baggage. `null` in reports
    /// older than `1.1`.
    #[serde(default)]
    pub window_start: Option<WindowStart>,
}

/// The process's memory when the measured window began.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowStart {
    /// Live heap (requested bytes, the profiler's own excluded) then;
    /// `null` when the tracked allocator is not installed.
    pub heap_live_bytes: Option<i64>,
    /// Resident set size then (`/proc/self/statm`); `null` when it could
    /// not be read.
    pub rss_bytes: Option<u64>,
}

impl WindowStart {
    /// The heap and RSS of this process now.
    pub fn now() -> WindowStart {
        let heap_live_bytes = memledger_alloc::is_installed()
            .then(|| memledger_alloc::heap().live_requested - crate::internal::internal_live());
        WindowStart {
            heap_live_bytes,
            rss_bytes: crate::proc::rss_bytes(),
        }
    }
}

/// One scope at the heap peak.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScopeAtPeak {
    /// The scope's name.
    pub scope: String,
    /// Requested bytes its code held then.
    pub live_requested_bytes: i64,
    /// Reserved then by its consumers.
    pub reserved_bytes: u64,
}

/// The values of RSS, heap and reserved at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instant {
    /// Milliseconds since the session started.
    pub t_ms: u64,
    /// Resident set size then; `null` when `/proc/self/statm` could not be read.
    pub rss_bytes: Option<u64>,
    /// Live heap (requested bytes) then.
    pub heap_live_bytes: i64,
    /// Reserved total then.
    pub reserved_bytes: u64,
}

impl Instant {
    /// `heap_live - reserved` at this instant.
    pub fn untracked_bytes(&self) -> i64 {
        self.heap_live_bytes - self.reserved_bytes as i64
    }
}

/// At the RSS peak, the heap peak and the reserved peak: all three values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlignedPeaks {
    /// At the sampled RSS peak.
    pub rss: Instant,
    /// At the sampled heap peak.
    pub heap: Instant,
    /// At the reserved peak (the ledger's exact instant when it fell in the session).
    pub reserved: Instant,
}

/// The largest gap between heap and reservations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DriftPeak {
    /// Heap live − reserved, at its largest sampled value.
    pub untracked_bytes: i64,
    /// Milliseconds since the session started.
    pub t_ms: u64,
    /// Live heap (requested bytes) then.
    pub heap_live_bytes: i64,
    /// Reserved total then.
    pub reserved_bytes: u64,
    /// The consumer whose reservation changed last before that instant.
    pub consumer: Option<String>,
}

/// The sampled timeline, bounded in memory (downsampled, extremes kept).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// The sampling interval in milliseconds.
    pub interval_ms: u64,
    /// True when samples were merged to stay within the bound.
    pub downsampled: bool,
    /// The samples, in time order. After downsampling, each holds the
    /// maxima of the samples merged into it and the time of the first.
    pub samples: Vec<Sample>,
}

/// One timeline sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Milliseconds since the session started.
    pub t_ms: u64,
    /// Resident set size (`/proc/self/statm`); `null` when it could not be read.
    pub rss_bytes: Option<u64>,
    /// Live heap (requested bytes), the profiler's own excluded.
    pub heap_live_bytes: i64,
    /// Reserved total.
    pub reserved_bytes: u64,
    /// `heap_live_bytes - reserved_bytes`.
    pub untracked_bytes: i64,
    /// The largest scopes by live bytes at that instant: `[name, live_requested_bytes]`.
    #[serde(default)]
    pub top_scopes: Vec<(String, i64)>,
}

/// Memory outside the global allocator, reported by hand.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExternalReport {
    /// The scope that reported them.
    pub scope: String,
    /// The last value reported.
    pub bytes: u64,
    /// The highest value reported.
    pub peak_bytes: u64,
}

/// Why a report could not be read.
#[derive(Debug)]
pub enum ReportError {
    /// Not JSON, or JSON of the wrong shape.
    Malformed(String),
    /// A `schema` this reader does not know.
    UnknownSchema(String),
}

impl std::fmt::Display for ReportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReportError::Malformed(why) => write!(f, "malformed memledger report: {why}"),
            ReportError::UnknownSchema(found) => write!(
                f,
                "unsupported report schema `{found}`: this memledger reads memledger.report/{REPORT_MAJOR}"
            ),
        }
    }
}

impl std::error::Error for ReportError {}

/// Splits `"<family>/<major>[.<minor>]"` into family and major; `None` if
/// the tag has no `/` or the major is not a number.
pub fn schema_major(tag: &str) -> Option<(&str, u32)> {
    let (family, version) = tag.rsplit_once('/')?;
    let major = version.split('.').next()?.parse().ok()?;
    Some((family, major))
}

impl Report {
    /// An empty report with the current schema tag.
    pub fn new() -> Self {
        Report {
            schema: REPORT_SCHEMA.to_string(),
            tool: concat!("memledger-profiler ", env!("CARGO_PKG_VERSION")).to_string(),
            ..Report::default()
        }
    }

    /// Parses a report, refusing an unknown schema family or major version.
    pub fn from_json(text: &str) -> Result<Report, ReportError> {
        #[derive(Deserialize)]
        struct Tag {
            schema: Option<String>,
        }
        let tag: Tag =
            serde_json::from_str(text).map_err(|e| ReportError::Malformed(e.to_string()))?;
        let schema = tag
            .schema
            .ok_or_else(|| ReportError::Malformed("no `schema` field".into()))?;
        match schema_major(&schema) {
            Some(("memledger.report", REPORT_MAJOR)) => {}
            _ => return Err(ReportError::UnknownSchema(schema)),
        }
        serde_json::from_str(text).map_err(|e| ReportError::Malformed(e.to_string()))
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        // Serializing plain structs of numbers and strings cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}
