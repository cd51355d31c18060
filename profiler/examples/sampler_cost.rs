//! Measures the sampler's own CPU time at the default interval.
//!
//! ```text
//! cargo run --release -p memledger-profiler --example sampler_cost [SCOPES] [SECONDS]
//! ```
//!
//! Runs an idle session for SECONDS (default 5) with SCOPES live scopes
//! (default 200, as a query plan with many partitions would have) and 4
//! idle threads, then prints the sampler thread's CPU time as a share of one
//! core. The CPU time comes from `/proc/self/task/<tid>/schedstat`
//! (nanoseconds), or from `stat` (clock ticks) where schedstat is missing.
//! `MEMLEDGER_SAMPLE_MS` changes the interval.
//!
//! Alongside, a thread that only wakes up at the same interval and does
//! nothing measures what waking costs on this machine: the sampler cannot
//! cost less than that.

use std::time::{Duration, Instant};

use memledger_alloc::{MiMalloc, Scope, Tracked};
use memledger_profiler::Session;

#[global_allocator]
static GLOBAL: Tracked<MiMalloc> = Tracked::new(MiMalloc);

/// The task folder of the thread whose name starts with `name` (comm keeps 15 bytes).
fn task(name: &str) -> Option<std::path::PathBuf> {
    std::fs::read_dir("/proc/self/task")
        .ok()?
        .flatten()
        .map(|entry| entry.path())
        .find(|dir| {
            std::fs::read_to_string(dir.join("comm"))
                .is_ok_and(|comm| comm.trim_end().starts_with(name))
        })
}

/// CPU seconds the thread in `task` has run.
fn cpu_seconds(task: &std::path::Path) -> Option<f64> {
    if let Ok(schedstat) = std::fs::read_to_string(task.join("schedstat")) {
        let ns: u64 = schedstat.split_whitespace().next()?.parse().ok()?;
        return Some(ns as f64 / 1e9);
    }
    let stat = std::fs::read_to_string(task.join("stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some(ticks as f64 / hz)
}

/// The interval the session samples at, as `Session::from_env` reads it.
fn session_interval_ms() -> u64 {
    std::env::var("MEMLEDGER_SAMPLE_MS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&ms| ms > 0)
        .unwrap_or(memledger_profiler::session::DEFAULT_SAMPLE_MS)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let scopes: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let _kept: Vec<Vec<u8>> = (0..scopes)
        .map(|i| Scope::new(&format!("Operator[{i}]")).in_scope(|| vec![0u8; 4096]))
        .collect();
    let idle: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(move || std::thread::sleep(Duration::from_secs(seconds + 1))))
        .collect();
    let session = Session::from_env();
    let interval = Duration::from_millis(session_interval_ms());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let baseline = {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::Builder::new()
            .name("wake-baseline".into())
            .spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::park_timeout(interval);
                }
            })
            .ok()
    };
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let cpu = task("memledger-sampl").and_then(|t| cpu_seconds(&t));
    let wake = task("wake-baseline").and_then(|t| cpu_seconds(&t));
    let wall = start.elapsed().as_secs_f64();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(b) = baseline {
        let _ = b.join();
    }
    let report = match session.finish() {
        Ok(report) => report,
        Err(e) => {
            eprintln!("sampler_cost: could not write the report: {e}");
            std::process::exit(1);
        }
    };
    match cpu {
        Some(cpu) => println!(
            "sampler: {:.1} ms of CPU over {wall:.1} s at {} ms ({} samples, {scopes} scopes): {:.3}% of one core",
            cpu * 1e3,
            report.timeline.interval_ms,
            report.timeline.samples.len(),
            100.0 * cpu / wall
        ),
        None => println!("sampler: its thread's CPU time could not be read"),
    }
    if let Some(wake) = wake {
        println!(
            "baseline: a thread that only wakes every {} ms: {:.3}% of one core",
            interval.as_millis(),
            100.0 * wake / wall
        );
    }
    for t in idle {
        let _ = t.join();
    }
}
