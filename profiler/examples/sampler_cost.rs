//! Measures the sampler's own CPU time at the default interval.
//!
//! ```text
//! cargo run --release -p memledger-profiler --example sampler_cost
//! ```
//!
//! Runs an idle session for a few seconds with 200 live scopes and prints the
//! sampler thread's CPU time (from `/proc/self/task/<tid>/stat`) as a share
//! of one core.

use std::time::{Duration, Instant};

use memledger_alloc::{MiMalloc, Scope, Tracked};
use memledger_profiler::Session;

#[global_allocator]
static GLOBAL: Tracked<MiMalloc> = Tracked::new(MiMalloc);

/// CPU ticks (user + system) of the thread named `memledger-sampl` (comm is 15 bytes).
fn sampler_ticks() -> Option<u64> {
    for entry in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let dir = entry.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim_end().starts_with("memledger-sampl") {
            let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
            let after = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = after.split_whitespace().collect();
            let utime: u64 = fields.get(11)?.parse().ok()?;
            let stime: u64 = fields.get(12)?.parse().ok()?;
            return Some(utime + stime);
        }
    }
    None
}

fn main() {
    let seconds = 5;
    // 200 operator scopes with live bytes, as a query plan would have.
    let _kept: Vec<Vec<u8>> = (0..200)
        .map(|i| Scope::new(&format!("Operator[{i}]")).in_scope(|| vec![0u8; 4096]))
        .collect();
    let session = Session::from_env();
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let ticks = sampler_ticks().unwrap_or(0);
    let wall = start.elapsed().as_secs_f64();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let cpu = ticks as f64 / hz;
    let report = session.finish().expect("report");
    println!(
        "sampler: {:.3} s of CPU over {wall:.1} s at {} ms ({} samples): {:.2}% of one core",
        cpu,
        report.timeline.interval_ms,
        report.timeline.samples.len(),
        100.0 * cpu / wall
    );
}
