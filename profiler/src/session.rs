//! The session: what a benchmark binary holds while it runs, and the report
//! it writes when it ends.
//!
//! [`Session::from_env`] reads the harness protocol's variables
//! (`MEMLEDGER_REPORT`, `MEMLEDGER_MEMORY_LIMIT`, `MEMLEDGER_SAMPLE_MS`) and
//! starts the sampler. [`Session::finish`] stops it, builds the
//! `memledger.report/1` report and writes it atomically (a temporary file in
//! the same folder, then a rename) where `MEMLEDGER_REPORT` says. A session
//! dropped without `finish` (an early return, a `?`) finishes in `Drop`, so
//! the report is written anyway (a write error is then printed to stderr).
//!
//! ```no_run
//! use memledger_profiler::{MemoryConsumer, PoolKind, Session};
//!
//! let session = Session::from_env().with_pool_kind(PoolKind::Fair);
//! let pool = session.pool(); // limited by MEMLEDGER_MEMORY_LIMIT, if set
//! let mut sorter = MemoryConsumer::new("ExternalSorter[0]")
//!     .with_can_spill(true)
//!     .register(&pool);
//! sorter.try_grow(1 << 20)?;
//! // ... the work ...
//! drop(sorter);
//! let report = session.finish()?; // written to MEMLEDGER_REPORT, if set
//! print!("{}", memledger_profiler::summary(&report));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The sampler's bookkeeping lives in the profiler's internal scope, which
//! reports leave out of the user's figures; the report itself is allocated
//! in the scope of the code that calls [`Session::finish`] (after the heap
//! figures were read).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::audit;
use crate::internal::{internal_live, internal_scope};
use crate::pool::{MemoryPool, PoolKind, limit_from_env};
use crate::proc;
use crate::report::{ProcessReport, Report, WindowStart};
use crate::sampler::{Observed, Sampler};

/// The sampling interval when `MEMLEDGER_SAMPLE_MS` is unset.
pub const DEFAULT_SAMPLE_MS: u64 = 10;

/// A measured run. See the module docs.
pub struct Session {
    report_path: Option<PathBuf>,
    memory_limit: Option<u64>,
    label: Option<String>,
    pool_name: Option<String>,
    pool_kind: Option<PoolKind>,
    pool: OnceLock<Arc<dyn MemoryPool>>,
    error: Option<String>,
    sampler: Option<Sampler>,
    start: std::time::Instant,
    window_start: WindowStart,
    finished: bool,
}

impl Session {
    /// A session configured from the environment, sampler started:
    /// `MEMLEDGER_REPORT` (where to write, unset: nowhere),
    /// `MEMLEDGER_MEMORY_LIMIT` (see [`limit_from_env`]) and
    /// `MEMLEDGER_SAMPLE_MS` (a whole number of milliseconds above 0; unset
    /// or malformed: [`DEFAULT_SAMPLE_MS`]) and `MEMLEDGER_SAMPLE_BYTES`
    /// (mean bytes between sampled allocation stacks, see
    /// [`stacks`](crate::stacks); unset: none; malformed: none, with a
    /// warning on stderr).
    pub fn from_env() -> Session {
        match crate::stacks::sample_bytes_from_env() {
            Ok(Some(bytes)) => memledger_alloc::stacks::start_sampling(bytes),
            Ok(None) => {}
            Err(e) => eprintln!("memledger: {e}"),
        }
        let sample_ms = std::env::var("MEMLEDGER_SAMPLE_MS")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&ms| ms > 0)
            .unwrap_or(DEFAULT_SAMPLE_MS);
        Session::new(
            std::env::var_os("MEMLEDGER_REPORT").map(PathBuf::from),
            limit_from_env(),
            Duration::from_millis(sample_ms),
        )
    }

    /// A session writing to `report_path` (if any) when it ends, with the
    /// pool limit `memory_limit` in bytes (if any), sampling every `interval`
    /// (at least 1 ms).
    pub fn new(
        report_path: Option<PathBuf>,
        memory_limit: Option<u64>,
        interval: Duration,
    ) -> Session {
        Session::with_sampler(report_path, memory_limit, Sampler::start(interval))
    }

    /// A session like [`new`](Self::new) whose sampler has no thread: it
    /// samples only at [`record_sample`](Self::record_sample) and when the
    /// report is built, so its timeline is exactly the instants the program
    /// chose (tests, programs with their own phases).
    pub fn manual(report_path: Option<PathBuf>, memory_limit: Option<u64>) -> Session {
        Session::with_sampler(
            report_path,
            memory_limit,
            Sampler::manual(crate::sampler::MAX_SAMPLES),
        )
    }

    /// A session whose times (the report's `t_ms`) count from the
    /// sampler's start, like its samples; the heap and RSS read here are
    /// the report's `audit.window_start`.
    fn with_sampler(
        report_path: Option<PathBuf>,
        memory_limit: Option<u64>,
        sampler: Sampler,
    ) -> Session {
        Session {
            report_path,
            memory_limit,
            label: None,
            pool_name: None,
            pool_kind: None,
            pool: OnceLock::new(),
            error: None,
            start: sampler.started_at(),
            window_start: WindowStart::now(),
            sampler: Some(sampler),
            finished: false,
        }
    }

    /// Takes one timeline sample now (RSS, heap, reserved, with a walk over
    /// every scope), whatever the sampling interval.
    pub fn record_sample(&self) {
        if let Some(sampler) = &self.sampler {
            sampler.record_now();
        }
    }

    /// The pool limit for this run, from `MEMLEDGER_MEMORY_LIMIT`.
    pub fn memory_limit(&self) -> Option<u64> {
        self.memory_limit
    }

    /// Where the report goes.
    pub fn report_path(&self) -> Option<&Path> {
        self.report_path.as_deref()
    }

    /// Chooses the kind of pool [`pool`](Self::pool) builds (before it is
    /// first called; later calls change nothing). Without it: a
    /// [`GreedyPool`](crate::GreedyPool) when a limit is set (as DataFusion
    /// does), else an [`UnboundedPool`](crate::UnboundedPool).
    pub fn with_pool_kind(mut self, kind: PoolKind) -> Session {
        self.pool_kind = Some(kind);
        self
    }

    /// The session's pool, built on first call with its kind (see
    /// [`with_pool_kind`](Self::with_pool_kind)) and the session's memory
    /// limit (no limit: an unbounded pool whatever the kind); every call
    /// returns the same pool. The report names its kind unless
    /// [`set_pool_kind`](Self::set_pool_kind) said otherwise.
    pub fn pool(&self) -> Arc<dyn MemoryPool> {
        let pool = self.pool.get_or_init(|| {
            let default = match self.memory_limit {
                Some(_) => PoolKind::Greedy,
                None => PoolKind::Unbounded,
            };
            self.pool_kind.unwrap_or(default).build(self.memory_limit)
        });
        Arc::clone(pool)
    }

    /// A free label (the query id).
    pub fn set_label(&mut self, label: &str) {
        self.label = Some(label.to_string());
    }

    /// The pool's name for the report, when the run uses a pool the session
    /// did not build (a DataFusion pool, say).
    pub fn set_pool_kind(&mut self, kind: &str) {
        self.pool_name = Some(kind.to_string());
    }

    /// The error the run ended with (a pool refusal's text, verbatim).
    pub fn set_error(&mut self, error: &str) {
        self.error = Some(error.to_string());
    }

    /// The report so far, without stopping the sampler or writing anything.
    pub fn report(&self) -> Report {
        let observed = match &self.sampler {
            Some(s) => s.snapshot(),
            None => Observed::default(),
        };
        self.build_and_release(observed)
    }

    /// Stops the sampler, builds the report and writes it where
    /// `MEMLEDGER_REPORT` says (if set), through a temporary file in the
    /// same folder and a rename, so a reader never sees half a report.
    /// Returns the report, or the error of the write.
    pub fn finish(mut self) -> io::Result<Report> {
        self.finish_inner()
    }

    fn finish_inner(&mut self) -> io::Result<Report> {
        self.finished = true;
        let observed = match self.sampler.take() {
            Some(s) => s.stop(),
            None => Observed::default(),
        };
        let report = self.build_and_release(observed);
        if let Some(path) = &self.report_path {
            write_atomically(path, report.to_json().as_bytes())?;
        }
        Ok(report)
    }

    /// Builds the report, then frees what the sampler gathered in the
    /// internal scope, where it was allocated.
    fn build_and_release(&self, observed: Observed) -> Report {
        let report = self.build(&observed);
        internal_scope().in_scope(|| drop(observed));
        report
    }

    fn build(&self, observed: &Observed) -> Report {
        let own = internal_live();
        let heap = audit::heap_report(own);
        let (vm_rss, vm_hwm) = proc::status_rss_hwm();
        let mimalloc = if memledger_alloc::is_installed() {
            proc::mimalloc_peaks()
        } else {
            None
        };
        let pool_name = self
            .pool_name
            .clone()
            .or_else(|| self.pool.get().map(|p| p.name().to_string()));
        let mut audit = audit::audit_report(observed, heap.live_requested_bytes, self.start, own);
        audit.window_start = Some(self.window_start);
        Report {
            label: self.label.clone(),
            attribution: memledger_alloc::attribution()
                .map_or("none", |a| a.name())
                .to_string(),
            pool: pool_name,
            memory_limit_bytes: self.memory_limit,
            wall_ms: self.start.elapsed().as_millis() as u64,
            error: self.error.clone(),
            process: ProcessReport {
                pid: std::process::id(),
                rss_bytes: vm_rss,
                peak_rss_bytes: vm_hwm,
                vm_hwm_bytes: vm_hwm,
                mimalloc_peak_rss_bytes: mimalloc.map(|m| m.0),
                mimalloc_peak_commit_bytes: mimalloc.map(|m| m.1),
            },
            audit,
            heap,
            threads: audit::thread_reports(),
            scopes: audit::scope_reports(observed),
            overflowed_scope_names: memledger_alloc::overflowed_scope_names(),
            consumers: audit::consumer_reports(),
            timeline: observed.timeline.clone(),
            external: audit::external_reports(),
            // Symbolizing allocates (debug info): in the internal scope.
            stacks: internal_scope().in_scope(|| {
                let mut stacks = crate::stacks::stacks_report(
                    &observed.stacks_at_heap_peak,
                    &observed.scopes_at_heap_peak,
                )?;
                let later = std::env::var(crate::stacks::SYMBOLIZE_ENV).is_ok_and(|v| v == "later");
                if !later {
                    crate::stacks::symbolize(&mut stacks);
                }
                Some(stacks)
            }),
            ..Report::new()
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if !self.finished {
            if let Err(e) = self.finish_inner() {
                eprintln!("memledger: could not write the report: {e}");
            }
        }
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
