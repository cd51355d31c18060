//! One run of one query at one limit: the runner of `mem_profile run`
//! (launcher, peak RSS of the query's tree, statuses, the child's report),
//! with `MEMLEDGER_MEMORY_LIMIT` set for that run alone.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use memledger_profiler::report::Report;

use super::results::{Point, ratio};
use super::search::Phase;
use crate::app::{ENV_MEMORY_LIMIT, ENV_REPORT, ENV_SAMPLE_MS};
use crate::classify::{ReportState, classify};
use crate::run::Status;
use crate::runner::{self, ChildSpec, Launcher, MeasureOptions};
use crate::suite::{Query, Suite};

/// Everything a run needs besides its query and limit.
pub struct Prober {
    /// The `mem_profile` that serves as launcher.
    pub launcher: Launcher,
    /// The suite the queries come from.
    pub suite: Suite,
    /// Timeout and sampling interval.
    pub options: MeasureOptions,
    /// The sampling interval in ms, passed as `MEMLEDGER_SAMPLE_MS`.
    pub sample_ms: u64,
    /// The largest report read.
    pub max_report_size: u64,
    /// Where the children write their reports (one file per run, removed after).
    pub reports: PathBuf,
}

/// A run's result: the point, or that the sweep was interrupted meanwhile.
pub enum Probed {
    /// The run finished.
    Point(Box<Point>),
    /// Ctrl-C or `SIGTERM` stopped it: it says nothing about its limit.
    Interrupted,
}

impl Prober {
    /// Runs `query` at `limit` (`None`: unlimited). Errors only when the
    /// launcher cannot be started.
    pub fn run(&self, query: &Query, limit: Option<u64>, phase: Phase) -> Result<Probed, String> {
        static RUNS: AtomicU64 = AtomicU64::new(0);
        let n = RUNS.fetch_add(1, Ordering::Relaxed);
        let report_path = self.reports.join(format!("{n}.json"));
        let spec = self.spec(query, limit, &report_path);
        let measurement = runner::measure(&self.launcher, &spec, &self.options)
            .map_err(|e| format!("{}: {e}", query.id))?;
        let report = ReportState::load(&report_path, self.max_report_size);
        crate::app::remove_report(&report_path);
        if measurement.interrupted {
            return Ok(Probed::Interrupted);
        }
        let verdict = classify(&measurement, &report);
        let report = report.report();
        let wall_ms = u64::try_from(measurement.wall.as_millis()).unwrap_or(u64::MAX);
        Ok(Probed::Point(Box::new(Point {
            limit_bytes: limit,
            phase,
            status: verdict.status,
            exit_code: verdict.exit_code,
            signal: verdict.signal,
            wall_ms,
            peak_rss_bytes: measurement.peak_rss_bytes,
            heap_peak_bytes: report.map(|r| r.heap.peak_requested_bytes),
            reserved_peak_bytes: report.map(|r| r.audit.reserved_peak_bytes),
            spills: report.and_then(|r| consumer_sum(r, |c| c.spills)),
            refusals: report.and_then(|r| consumer_sum(r, |c| c.refusals)),
            rss_over_limit: ratio(measurement.peak_rss_bytes, limit),
            error: match verdict.status {
                Status::Ok => None,
                _ => verdict.error,
            },
        })))
    }

    /// The program, arguments and protocol variables for one run.
    fn spec(&self, query: &Query, limit: Option<u64>, report: &Path) -> ChildSpec {
        let mut env = vec![
            (OsString::from(ENV_REPORT), report.as_os_str().to_owned()),
            (
                OsString::from(ENV_SAMPLE_MS),
                OsString::from(self.sample_ms.to_string()),
            ),
        ];
        let mut env_remove = Vec::new();
        match limit {
            Some(limit) => env.push((
                OsString::from(ENV_MEMORY_LIMIT),
                OsString::from(limit.to_string()),
            )),
            // Unlimited means unlimited, whatever the caller's environment says.
            None => env_remove.push(OsString::from(ENV_MEMORY_LIMIT)),
        }
        ChildSpec {
            program: self.suite.program.clone(),
            argv: self.suite.argv(query),
            env,
            env_remove,
        }
    }
}

/// A per-consumer count summed over the report's consumers; `None` when
/// the sum does not fit (a figure that cannot be trusted).
fn consumer_sum(
    report: &Report,
    count: impl Fn(&memledger_profiler::report::ConsumerReport) -> u64,
) -> Option<u64> {
    report
        .consumers
        .iter()
        .try_fold(0u64, |sum, c| sum.checked_add(count(c)))
}
