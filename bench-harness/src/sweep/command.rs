//! `mem_profile sweep`: each query once without a limit, then the search
//! (see [`super::search`]) through one run per limit, `--jobs` queries at
//! a time, every finished run written at once.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::options::SweepArgs;
use super::output::{SweepWriter, plot_name};
use super::probe::{Probed, Prober};
use super::results::{QuerySweep, SweepContext, SweepStatus, TopSource};
use super::search::{Phase, Plan, search};
use super::summary;
use crate::app::{emit, note, select_suite, timeout_millis};
use crate::export::one_line;
use crate::output::{SUMMARY_FILE, lock_dir};
use crate::runner::{self, Launcher, MeasureOptions, interrupt};
use crate::suite::Query;
use crate::units::{format_size, format_wall_ms};
use crate::{EXIT_INTERRUPTED, EXIT_OK, EXIT_QUERY_FAILED, context};

/// What the workers share: the writer, and the first error that stops them.
struct Shared {
    writer: SweepWriter,
    error: Option<String>,
}

/// Everything a worker reads.
struct Sweeper<'a> {
    prober: Prober,
    args: &'a SweepArgs,
    order: Vec<String>,
    started: Instant,
    shared: Mutex<Shared>,
}

/// How one query's sweep ended.
enum Ended {
    /// Searched (whatever it found).
    Finished,
    /// Interrupted before its sweep ended.
    Interrupted,
}

/// `mem_profile sweep`.
pub fn sweep(args: SweepArgs) -> Result<u8, String> {
    let suite = select_suite(
        args.cmd.as_deref(),
        args.queries.as_deref(),
        args.suite,
        args.scale.as_deref(),
        None,
        &args.query,
    )?;
    let launcher =
        Launcher::current_exe().map_err(|e| format!("cannot find mem_profile itself: {e}"))?;
    let timeout_ms = timeout_millis(args.timeout)?;
    let context = SweepContext {
        tool: format!("mem_profile {}", env!("CARGO_PKG_VERSION")),
        suite: suite.kind.to_string(),
        command: suite.command.clone(),
        git_revision: context::git_revision(),
        machine: context::machine(),
        date: context::now(),
        resolution: args.resolution.describe(),
        grid: args.grid,
        max_limit_bytes: args.max_limit,
        jobs: args.jobs,
        timeout_ms,
        sample_ms: args.sample_ms,
        wall_ms: 0,
    };
    let holder = format!(
        "pid {}, started {}, sweep {}",
        std::process::id(),
        context.date,
        one_line(&suite.command)
    );
    let lock = lock_dir(&args.out, &holder)?;
    let writer = SweepWriter::create(&args.out, lock, context)
        .map_err(|e| format!("cannot write to {}: {e}", args.out.display()))?;
    let reports = tempfile::Builder::new()
        .prefix("mem_profile-")
        .tempdir()
        .map_err(|e| format!("cannot create a directory for reports: {e}"))?;
    interrupt::install().map_err(|e| format!("cannot install the signal handler: {e}"))?;
    // A subreaper kills every descendant it has when one launcher is lost:
    // right for one query at a time, wrong for queries running side by side.
    if args.jobs == 1 {
        runner::adopt_orphans().map_err(|e| format!("cannot become a subreaper: {e}"))?;
    }

    let queries = suite.queries.clone();
    let sweeper = Sweeper {
        prober: Prober {
            launcher,
            suite,
            options: MeasureOptions {
                timeout: args.timeout,
                sample_interval: Duration::from_millis(args.sample_ms),
            },
            sample_ms: args.sample_ms,
            max_report_size: args.max_report_size,
            reports: reports.path().to_path_buf(),
        },
        args: &args,
        order: queries.iter().map(|q| q.id.clone()).collect(),
        started: Instant::now(),
        shared: Mutex::new(Shared {
            writer,
            error: None,
        }),
    };
    let next = AtomicUsize::new(0);
    let interrupted = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..(args.jobs as usize).min(queries.len()).max(1))
            .map(|_| scope.spawn(|| sweeper.work(&queries, &next)))
            .collect();
        // Every worker is joined; a panic is an error, not an interrupt.
        let cut: Vec<bool> = workers
            .into_iter()
            .map(|w| {
                w.join().unwrap_or_else(|_| {
                    sweeper.fail("internal error: a sweep worker panicked".to_string());
                    false
                })
            })
            .collect();
        cut.contains(&true)
    });
    let Sweeper {
        shared, started, ..
    } = sweeper;
    let Shared { mut writer, error } = shared.into_inner().unwrap_or_else(|p| p.into_inner());
    if let Some(error) = error {
        return Err(error);
    }
    let sweep_path = writer.sweep_path();
    let wall_ms = elapsed_ms(started);
    let interrupted = interrupted || interrupt::requested();
    if interrupted {
        writer
            .mark_interrupted(wall_ms)
            .map_err(|e| format!("cannot write {}: {e}", sweep_path.display()))?;
    }
    emit(&summary::text(writer.sweep()));
    if interrupted {
        let finished = writer
            .sweep()
            .queries
            .iter()
            .filter(|q| q.status != SweepStatus::Interrupted)
            .count();
        note(&format!(
            "mem_profile: interrupted; {finished} finished queries and every finished run are in {}",
            sweep_path.display()
        ));
        return Ok(EXIT_INTERRUPTED);
    }
    note(&format!(
        "mem_profile: wrote {}, {} and the plots in {}",
        sweep_path.display(),
        writer.dir().join(SUMMARY_FILE).display(),
        writer.dir().display()
    ));
    let unanswered = writer
        .sweep()
        .queries
        .iter()
        .filter(|q| q.status != SweepStatus::Done)
        .count();
    Ok(if unanswered > 0 && !args.allow_failures {
        EXIT_QUERY_FAILED
    } else {
        EXIT_OK
    })
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl Sweeper<'_> {
    /// One worker: takes the next query not yet taken until none is left,
    /// the sweep is interrupted (returns true) or another worker failed.
    fn work(&self, queries: &[Query], next: &AtomicUsize) -> bool {
        loop {
            let index = next.fetch_add(1, Ordering::SeqCst);
            let Some(query) = queries.get(index) else {
                return false;
            };
            if interrupt::requested() {
                return true;
            }
            if self.stopped() {
                return false;
            }
            match self.query(index, query) {
                Ok(Ended::Finished) => {}
                Ok(Ended::Interrupted) => return true,
                Err(e) => {
                    self.fail(e);
                    return false;
                }
            }
        }
    }

    /// True once a worker failed: the others stop at their next query.
    fn stopped(&self) -> bool {
        self.lock().error.is_some()
    }

    fn fail(&self, error: String) {
        self.lock().error.get_or_insert(error);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the query's state as it is now.
    fn record(&self, query: &QuerySweep) -> Result<(), String> {
        let mut shared = self.lock();
        let path = shared.writer.sweep_path();
        shared
            .writer
            .record(query.clone(), &self.order, elapsed_ms(self.started))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// One run, announced on stderr.
    fn probe(&self, query: &Query, limit: Option<u64>, phase: Phase) -> Result<Probed, String> {
        let probed = self.prober.run(query, limit, phase)?;
        if let Probed::Point(point) = &probed {
            let mut line = format!(
                "{} at {} ({}): {}, {}, peak RSS {}",
                query.id,
                limit.map_or_else(|| "no limit".to_string(), format_size),
                format!("{phase:?}").to_lowercase(),
                point.status,
                format_wall_ms(point.wall_ms),
                point
                    .peak_rss_bytes
                    .map_or_else(|| "-".to_string(), format_size)
            );
            if let Some(error) = &point.error {
                line.push_str(": ");
                line.push_str(&one_line(error));
            }
            note(&line);
        }
        Ok(probed)
    }

    /// Sweeps one query, writing its state after every run.
    fn query(&self, index: usize, query: &Query) -> Result<Ended, String> {
        let mut result = QuerySweep {
            id: query.id.clone(),
            status: SweepStatus::Running,
            unlimited: None,
            top_bytes: None,
            top_source: None,
            resolution_bytes: None,
            minimum_limit_bytes: None,
            failing_below_minimum_bytes: None,
            non_monotonic: Vec::new(),
            worst_rss_over_limit: None,
            runs: 0,
            wall_ms: 0,
            plot: Some(plot_name(index, &query.id)),
            error: None,
            points: Vec::new(),
        };
        let unlimited = match self.probe(query, None, Phase::Unlimited)? {
            // A query with no finished run is no row.
            Probed::Interrupted => return Ok(Ended::Interrupted),
            Probed::Point(point) => *point,
        };
        result.runs = 1;
        result.wall_ms = unlimited.wall_ms;
        let unlimited_ok = unlimited.passed();
        let unlimited_error = unlimited.error.clone();
        let (top, source) = match (
            self.args.max_limit,
            unlimited.reserved_peak_bytes,
            unlimited.peak_rss_bytes,
        ) {
            (Some(max), _, _) => (Some(max), Some(TopSource::MaxLimit)),
            (None, Some(reserved), _) => (Some(reserved), Some(TopSource::ReservedPeak)),
            (None, None, Some(rss)) => (Some(rss), Some(TopSource::PeakRss)),
            (None, None, None) => (None, None),
        };
        result.unlimited = Some(unlimited);
        if !unlimited_ok {
            result.status = SweepStatus::FailedUnlimited;
            result.error = Some(format!(
                "fails without a limit: {}",
                unlimited_error.unwrap_or_else(|| "no reason given".to_string())
            ));
            self.finish(&result);
            return self.record(&result).map(|_| Ended::Finished);
        }
        let Some(top) = top else {
            result.status = SweepStatus::NoPassingLimit;
            result.error = Some(
                "nothing to search up to: no report and no peak RSS; give --max-limit".to_string(),
            );
            self.finish(&result);
            return self.record(&result).map(|_| Ended::Finished);
        };
        let step = self.args.resolution.step(top);
        result.top_bytes = Some(top);
        result.top_source = source;
        result.resolution_bytes = Some(step);
        self.record(&result)?;

        let plan = Plan {
            top,
            step,
            grid: self.args.grid,
        };
        let mut failure: Option<String> = None;
        let found = search(&plan, |limit, phase| {
            let point = match self.probe(query, Some(limit), phase) {
                Ok(Probed::Point(point)) => *point,
                Ok(Probed::Interrupted) => return None,
                Err(e) => {
                    failure = Some(e);
                    return None;
                }
            };
            let passed = point.passed();
            result.runs += 1;
            result.wall_ms = result.wall_ms.saturating_add(point.wall_ms);
            result.points.push(point);
            result.derive();
            if let Err(e) = self.record(&result) {
                failure = Some(e);
                return None;
            }
            Some(passed)
        });
        if let Some(e) = failure {
            return Err(e);
        }
        result.minimum_limit_bytes = found.minimum;
        result.failing_below_minimum_bytes = found.failing_below;
        result.status = match (found.complete, found.minimum) {
            (false, _) => SweepStatus::Interrupted,
            (true, Some(_)) => SweepStatus::Done,
            (true, None) => SweepStatus::NoPassingLimit,
        };
        if result.status == SweepStatus::NoPassingLimit {
            let highest = found.tried.iter().map(|t| t.0).max().unwrap_or(0);
            result.error = Some(format!(
                "fails at every limit tried, up to {}",
                format_size(highest)
            ));
        }
        result.derive();
        self.finish(&result);
        self.record(&result)?;
        Ok(match result.status {
            SweepStatus::Interrupted => Ended::Interrupted,
            _ => Ended::Finished,
        })
    }

    /// Announces what a query's sweep found.
    fn finish(&self, result: &QuerySweep) {
        let line = match (result.status, result.minimum_limit_bytes) {
            (SweepStatus::Done, Some(minimum)) => {
                let failing: Vec<String> = result
                    .non_monotonic
                    .iter()
                    .map(|f| format_size(f.limit_bytes))
                    .collect();
                format!(
                    "{}: minimum {}{}; {} runs, {}",
                    result.id,
                    format_size(minimum),
                    if failing.is_empty() {
                        String::new()
                    } else {
                        format!("; fails above it at {}", failing.join(", "))
                    },
                    result.runs,
                    format_wall_ms(result.wall_ms)
                )
            }
            _ => format!(
                "{}: {}: {}",
                result.id,
                result.status.name(),
                result.error.as_deref().map_or_else(String::new, one_line)
            ),
        };
        note(&line);
    }
}
