//! `mem_profile __child`: a child that behaves as told, an internal testing
//! aid for the harness's own tests (and for trying the harness by hand).
//!
//! It runs its steps in order, e.g. `__child touch=20M report exit=0`. One
//! argument may hold several steps separated by blanks (`'touch=8M report'`),
//! so that a whole scenario fits in the `{query}` of a `--cmd` template.
//!
//! | step | what it does |
//! |---|---|
//! | `touch=SIZE` | allocates SIZE bytes and writes every page, keeping them until exit |
//! | `sleep=DURATION` | sleeps (`500ms`, `2s`) |
//! | `stderr=TEXT` | writes TEXT and a newline to stderr |
//! | `report` | writes a valid report to `$MEMLEDGER_REPORT` (figures below) |
//! | `report-error=TEXT` | the same report, with `error` set to TEXT |
//! | `bad-report` | writes a truncated report to `$MEMLEDGER_REPORT` |
//! | `abort-oom` | fails an allocation the way Rust does: message, then abort |
//! | `signal=NAME` | kills itself with `segv`, `term`, `abrt`, `kill` or a number |
//! | `exit=CODE` | exits with CODE |
//!
//! The report's figures follow from the steps: heap peak = bytes touched,
//! reserved peak = half of it (so untracked at the heap peak and the
//! untracked peak are the other half), allocations = number of `touch`
//! steps; `memory_limit_bytes` and the timeline interval echo
//! `MEMLEDGER_MEMORY_LIMIT` and `MEMLEDGER_SAMPLE_MS`.

use std::str::FromStr;
use std::time::Duration;

use memledger_profiler::report::{Instant, Report};

use crate::runner::procfs;
use crate::units::{parse_duration, parse_size};

/// One thing the child does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `touch=SIZE`: bytes to allocate and write.
    Touch(u64),
    /// `sleep=DURATION`.
    Sleep(Duration),
    /// `stderr=TEXT`.
    Stderr(String),
    /// `report`.
    Report,
    /// `report-error=TEXT`.
    ReportError(String),
    /// `bad-report`.
    BadReport,
    /// `abort-oom`.
    AbortOom,
    /// `signal=NAME`: the signal number.
    Signal(i32),
    /// `exit=CODE`.
    Exit(i32),
}

impl FromStr for Step {
    type Err = String;

    fn from_str(text: &str) -> Result<Step, String> {
        let (name, value) = match text.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (text, None),
        };
        let need = || value.ok_or_else(|| format!("step `{name}` needs a value: {name}=..."));
        Ok(match name {
            "touch" => Step::Touch(parse_size(need()?)?),
            "sleep" => Step::Sleep(parse_duration(need()?)?),
            "stderr" => Step::Stderr(need()?.to_string()),
            "report" => Step::Report,
            "report-error" => Step::ReportError(need()?.to_string()),
            "bad-report" => Step::BadReport,
            "abort-oom" => Step::AbortOom,
            "signal" => Step::Signal(parse_signal(need()?)?),
            "exit" => Step::Exit(
                need()?
                    .parse()
                    .map_err(|_| format!("`{text}`: exit code must be a number"))?,
            ),
            _ => return Err(format!("unknown step `{text}`")),
        })
    }
}

fn parse_signal(name: &str) -> Result<i32, String> {
    Ok(match name.to_ascii_lowercase().trim_start_matches("sig") {
        "segv" => libc::SIGSEGV,
        "term" => libc::SIGTERM,
        "abrt" => libc::SIGABRT,
        "kill" => libc::SIGKILL,
        "int" => libc::SIGINT,
        number => number
            .parse()
            .map_err(|_| format!("unknown signal `{name}`"))?,
    })
}

/// Parses the steps of every argument (blank-separated within one).
pub fn parse_steps(args: &[String]) -> Result<Vec<Step>, String> {
    args.iter()
        .flat_map(|arg| arg.split_whitespace())
        .map(str::parse)
        .collect()
}

/// Runs the steps; returns the exit code (0 unless `exit=` says otherwise).
pub fn run(steps: &[Step]) -> i32 {
    let mut held: Vec<Vec<u8>> = Vec::new();
    let mut touched: u64 = 0;
    for step in steps {
        match step {
            Step::Touch(bytes) => {
                let len = *bytes as usize;
                let mut block = vec![0u8; len];
                // Zeroed memory may not be resident yet: write every page.
                for i in (0..len).step_by(4096) {
                    block[i] = 1;
                }
                held.push(std::hint::black_box(block));
                touched += bytes;
            }
            Step::Sleep(duration) => std::thread::sleep(*duration),
            Step::Stderr(text) => eprintln!("{text}"),
            Step::Report => {
                if let Err(code) = write_report(touched, held.len() as u64, None) {
                    return code;
                }
            }
            Step::ReportError(text) => {
                if let Err(code) = write_report(touched, held.len() as u64, Some(text)) {
                    return code;
                }
            }
            Step::BadReport => {
                if let Err(code) =
                    write_report_text("{\"schema\": \"memledger.report/1\", \"heap\": {")
                {
                    return code;
                }
            }
            Step::AbortOom => match std::alloc::Layout::from_size_align(1 << 40, 8) {
                Ok(layout) => std::alloc::handle_alloc_error(layout),
                Err(_) => std::process::abort(),
            },
            Step::Signal(signal) => {
                // SAFETY: restoring the default action (Rust handles SIGSEGV
                // itself) and signalling this process touch no memory.
                unsafe {
                    libc::signal(*signal, libc::SIG_DFL);
                    libc::raise(*signal);
                }
            }
            Step::Exit(code) => return *code,
        }
    }
    0
}

/// A report whose figures follow from the steps (see the module docs).
fn write_report(touched: u64, touches: u64, error: Option<&str>) -> Result<(), i32> {
    let env_number = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let mut report = Report::new();
    report.label = Some("mem_profile __child".to_string());
    report.attribution = "none".to_string();
    report.memory_limit_bytes = env_number("MEMLEDGER_MEMORY_LIMIT");
    report.error = error.map(str::to_string);
    let me = std::process::id();
    report.process.pid = me;
    report.process.peak_rss_bytes = procfs::vm_hwm_bytes(me as i32).unwrap_or(0);
    report.process.vm_hwm_bytes = report.process.peak_rss_bytes;
    report.heap.peak_requested_bytes = touched as i64;
    report.heap.live_requested_bytes = touched as i64;
    report.heap.total_requested_bytes = touched;
    report.heap.allocations = touches;
    let reserved = touched / 2;
    report.audit.reserved_bytes = reserved;
    report.audit.reserved_peak_bytes = reserved;
    report.audit.untracked_bytes = (touched - reserved) as i64;
    report.audit.peaks.heap = Instant {
        t_ms: 0,
        rss_bytes: report.process.peak_rss_bytes,
        heap_live_bytes: touched as i64,
        reserved_bytes: reserved,
    };
    report.audit.drift_peak.untracked_bytes = (touched - reserved) as i64;
    report.audit.drift_peak.heap_live_bytes = touched as i64;
    report.audit.drift_peak.reserved_bytes = reserved;
    report.timeline.interval_ms = env_number("MEMLEDGER_SAMPLE_MS").unwrap_or(0);
    write_report_text(&report.to_json())
}

fn write_report_text(text: &str) -> Result<(), i32> {
    let Some(path) = std::env::var_os("MEMLEDGER_REPORT") else {
        eprintln!("mem_profile __child: MEMLEDGER_REPORT is not set");
        return Err(2);
    };
    std::fs::write(&path, text).map_err(|e| {
        eprintln!("mem_profile __child: cannot write the report: {e}");
        2
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_parse() {
        assert_eq!("touch=20M".parse(), Ok(Step::Touch(20 << 20)));
        assert_eq!(
            "sleep=10ms".parse(),
            Ok(Step::Sleep(Duration::from_millis(10)))
        );
        assert_eq!("exit=3".parse(), Ok(Step::Exit(3)));
        assert_eq!("signal=SIGSEGV".parse(), Ok(Step::Signal(libc::SIGSEGV)));
        assert_eq!("signal=15".parse(), Ok(Step::Signal(15)));
        assert_eq!("report".parse(), Ok(Step::Report));
        assert!(
            "touch"
                .parse::<Step>()
                .unwrap_err()
                .contains("needs a value")
        );
        assert!(
            "dance"
                .parse::<Step>()
                .unwrap_err()
                .contains("unknown step")
        );
        assert!("signal=boom".parse::<Step>().is_err());
        let steps = parse_steps(&["touch=1K report".to_string(), "exit=4".to_string()]);
        assert_eq!(
            steps,
            Ok(vec![Step::Touch(1024), Step::Report, Step::Exit(4)])
        );
    }
}
