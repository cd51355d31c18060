//! The session: what a benchmark binary holds while it runs, and the report
//! it writes when it ends.
//!
//! [`Session::from_env`] reads the harness protocol's variables
//! (`MEMLEDGER_REPORT`, `MEMLEDGER_MEMORY_LIMIT`, `MEMLEDGER_SAMPLE_MS`) and
//! starts the sampler. [`Session::finish`] stops it, builds the
//! `memledger.report/1` report and writes it atomically (a temporary file in
//! the same folder, then a rename) where `MEMLEDGER_REPORT` says. A session
//! dropped without `finish` (an early return, a `?`) finishes in `Drop`, so
//! the report is written anyway.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::ledger::ledger;
use crate::pool::limit_from_env;
use crate::proc;
use crate::report::{
    AuditReport, ConsumerReport, ExternalReport, HeapReport, ProcessReport, Report, ScopeReport,
    ThreadReport,
};
use crate::sampler::{Observed, SAMPLER_SCOPE, Sampler, sampler_live};

/// The sampling interval when `MEMLEDGER_SAMPLE_MS` is unset.
pub const DEFAULT_SAMPLE_MS: u64 = 10;

/// A measured run. See the module docs.
pub struct Session {
    report_path: Option<PathBuf>,
    memory_limit: Option<u64>,
    label: Option<String>,
    pool: Option<String>,
    error: Option<String>,
    sampler: Option<Sampler>,
    start: std::time::Instant,
    finished: bool,
}

impl Session {
    /// A session configured from the environment, sampler started.
    pub fn from_env() -> Session {
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

    /// A session writing to `report_path` (if any), sampling every `interval`.
    pub fn new(
        report_path: Option<PathBuf>,
        memory_limit: Option<u64>,
        interval: Duration,
    ) -> Session {
        Session {
            report_path,
            memory_limit,
            label: None,
            pool: None,
            error: None,
            sampler: Some(Sampler::start(interval)),
            start: std::time::Instant::now(),
            finished: false,
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

    /// A free label (the query id).
    pub fn set_label(&mut self, label: &str) {
        self.label = Some(label.to_string());
    }

    /// The pool kind the run used, for the report.
    pub fn set_pool_kind(&mut self, kind: &str) {
        self.pool = Some(kind.to_string());
    }

    /// The error the run ended with (a pool refusal's text, verbatim).
    pub fn set_error(&mut self, error: &str) {
        self.error = Some(error.to_string());
    }

    /// Builds the report now, without stopping the sampler.
    pub fn report(&self) -> Report {
        let mut observed = Observed::default();
        if let Some(s) = &self.sampler {
            observed.timeline.interval_ms = 0;
            observed.record(crate::sampler::sample_now(s.elapsed_ms(), false), 2);
        }
        self.build(observed)
    }

    /// Stops the sampler, builds the report and writes it where
    /// `MEMLEDGER_REPORT` says (if set). Returns the report.
    pub fn finish(mut self) -> io::Result<Report> {
        self.finish_inner()
    }

    fn finish_inner(&mut self) -> io::Result<Report> {
        self.finished = true;
        let observed = match self.sampler.take() {
            Some(s) => s.stop(),
            None => Observed::default(),
        };
        let report = self.build(observed);
        if let Some(path) = &self.report_path {
            write_atomically(path, report.to_json().as_bytes())?;
        }
        Ok(report)
    }

    fn build(&self, observed: Observed) -> Report {
        build_report(self, observed, self.start.elapsed().as_millis() as u64)
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

fn build_report(session: &Session, mut observed: Observed, elapsed_ms: u64) -> Report {
    let heap = memledger_alloc::heap();
    let own = sampler_live();
    let (vm_rss, vm_hwm) = proc::status_rss_hwm();
    let mimalloc = if memledger_alloc::is_installed() {
        proc::mimalloc_peaks()
    } else {
        None
    };
    let l = ledger();
    let reserved = l.reserved();
    let reserved_by_scope = l.reserved_by_scope();
    let external = l.external();

    // The ledger sees the reserved peak at the instant it happens; the
    // sampler only every interval.
    let rp = l.reserved_peak_instant();
    if rp.reserved > observed.peaks.reserved.reserved_bytes {
        observed.peaks.reserved = crate::report::Instant {
            t_ms: rp.t_ms.min(elapsed_ms),
            rss_bytes: observed.peaks.rss.rss_bytes.min(vm_hwm),
            heap_live_bytes: rp.heap_live,
            reserved_bytes: rp.reserved,
        };
    }

    let scopes = memledger_alloc::scopes()
        .into_iter()
        .filter(|s| s.name != SAMPLER_SCOPE)
        .filter_map(|s| {
            let (now, peak) = reserved_by_scope
                .iter()
                .find(|(scope, _, _)| *scope == s.scope)
                .map_or((0, 0), |(_, now, peak)| (*now, *peak));
            let ext = external
                .iter()
                .find(|(scope, _, _)| *scope == s.scope)
                .map_or(0, |e| e.1);
            let used = s.allocations + s.deallocations + now + peak + ext;
            (used != 0).then(|| ScopeReport {
                name: s.name.to_string(),
                live_requested_bytes: s.live_requested,
                live_usable_bytes: s.live_usable,
                peak_requested_bytes: s.peak_requested,
                peak_usable_bytes: s.peak_usable,
                total_requested_bytes: s.total_requested,
                allocations: s.allocations,
                deallocations: s.deallocations,
                reserved_bytes: now,
                reserved_peak_bytes: peak,
                untracked_bytes: s.live_requested - now as i64,
                untracked_peak_bytes: s.peak_requested - peak as i64,
                external_bytes: ext,
            })
        })
        .collect();

    let live = heap.live_requested - own;
    Report {
        label: session.label.clone(),
        attribution: memledger_alloc::attribution()
            .map_or("none", |a| a.name())
            .to_string(),
        pool: session.pool.clone(),
        memory_limit_bytes: session.memory_limit,
        wall_ms: elapsed_ms,
        error: session.error.clone(),
        process: ProcessReport {
            pid: std::process::id(),
            rss_bytes: vm_rss,
            peak_rss_bytes: vm_hwm,
            vm_hwm_bytes: vm_hwm,
            mimalloc_peak_rss_bytes: mimalloc.map(|m| m.0),
            mimalloc_peak_commit_bytes: mimalloc.map(|m| m.1),
        },
        heap: HeapReport {
            live_requested_bytes: live,
            live_usable_bytes: heap.live_usable - own,
            peak_requested_bytes: heap.peak_requested,
            peak_usable_bytes: heap.peak_usable,
            total_requested_bytes: heap.total_requested,
            total_usable_bytes: heap.total_usable,
            allocations: heap.allocations,
            deallocations: heap.deallocations,
            reallocations: heap.reallocations,
            peak_error_bytes: heap.peak_error_bytes,
        },
        threads: memledger_alloc::threads()
            .into_iter()
            .map(|t| ThreadReport {
                tid: t.tid,
                name: t.name,
                exited: t.exited,
                live_requested_bytes: t.live_requested,
                peak_requested_bytes: t.peak_requested,
                total_requested_bytes: t.total_requested,
                allocations: t.allocations,
                deallocations: t.deallocations,
            })
            .collect(),
        scopes,
        consumers: l
            .consumers()
            .into_iter()
            .map(|c| ConsumerReport {
                name: c.name,
                scope: c.scope.name().to_string(),
                can_spill: c.can_spill,
                reserved_bytes: c.reserved,
                reserved_peak_bytes: c.reserved_peak,
                refusals: c.refusals,
                spills: c.spills,
            })
            .collect(),
        audit: AuditReport {
            reserved_bytes: reserved,
            reserved_peak_bytes: l.reserved_peak(),
            untracked_bytes: live - reserved as i64,
            peaks: observed.peaks,
            drift_peak: observed.drift,
            scopes_at_heap_peak: observed.scopes_at_heap_peak,
        },
        timeline: observed.timeline,
        external: external
            .into_iter()
            .map(|(scope, bytes, peak)| ExternalReport {
                scope: scope.name().to_string(),
                bytes,
                peak_bytes: peak,
            })
            .collect(),
        ..Report::new()
    }
}
