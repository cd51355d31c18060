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
//! | `window` | marks the start of the measured window: the report's `audit.window_start` is the bytes touched so far and the RSS now (without it: 0 and the RSS at the child's start) |
//! | `report-error=TEXT` | the same report, with `error` set to TEXT |
//! | `bad-report` | writes a truncated report to `$MEMLEDGER_REPORT` |
//! | `abort-oom` | fails an allocation the way Rust does: message, then abort |
//! | `signal=NAME` | kills itself with `segv`, `term`, `abrt`, `kill` or a number |
//! | `exit=CODE` | exits with CODE |
//! | `ready` | writes `ready` and a newline to stdout (see `spawn`) |
//! | `spawn=STEPS` | starts `mem_profile __child` with STEPS (separated by `+`) in a new session (`setsid`), waits until it writes `ready` (or ends), and leaves it running |
//! | `signal-launcher=NAME` | sends a signal to its parent (the launcher): `kill`, `usr1`, a number |
//! | `escape-group` | moves into the process group of the launcher's parent (the harness) |
//! | `hang-from=N:FILE` | counts its runs in FILE; from the Nth run on, sleeps for an hour |
//! | `report-fifo` | makes `$MEMLEDGER_REPORT` a FIFO |
//! | `report-link=PATH` | makes `$MEMLEDGER_REPORT` a symlink to PATH |
//! | `report-pad=SIZE` | writes SIZE bytes of blanks to `$MEMLEDGER_REPORT` |
//! | `fail-below=SIZE` | when `MEMLEDGER_MEMORY_LIMIT` is below SIZE: writes a report whose `error` is a pool's refusal naming the limit, and exits 1 |
//! | `fail-between=A..B` | the same when the limit is at least A and below B (also `A:B`, which a `--queries` list does not take for a range) |
//!
//! `fail-below` and `fail-between` script a known pass/fail curve over the
//! limit (`touch=16M fail-below=2M fail-between=5M:6M report`): without a
//! limit, or at a limit outside the ranges, they do nothing.
//!
//! The report's figures follow from the steps: heap peak = bytes touched,
//! reserved peak = half of it (so untracked at the heap peak and the
//! untracked peak are the other half), allocations = number of `touch`
//! steps; `memory_limit_bytes` and the timeline interval echo
//! `MEMLEDGER_MEMORY_LIMIT` and `MEMLEDGER_SAMPLE_MS`.

use std::str::FromStr;
use std::time::Duration;

use memledger_profiler::report::{Instant, Report, WindowStart};

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
    /// `window`.
    Window,
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
    /// `ready`.
    Ready,
    /// `spawn=STEPS`: the grandchild's steps.
    Spawn(Vec<String>),
    /// `escape-group`.
    EscapeGroup,
    /// `signal-launcher=NAME`: the signal number.
    SignalLauncher(i32),
    /// `hang-from=N:FILE`.
    HangFrom(u64, String),
    /// `report-fifo`.
    ReportFifo,
    /// `report-link=PATH`.
    ReportLink(String),
    /// `report-pad=SIZE`.
    ReportPad(u64),
    /// `fail-below=SIZE` and `fail-between=A..B`: fails when the limit is
    /// in `[from, to)`; the text is the step as written.
    FailWithin {
        /// The lowest limit that fails.
        from: u64,
        /// The lowest limit above `from` that passes.
        to: u64,
        /// The step as written, for the error text.
        text: String,
    },
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
            "window" => Step::Window,
            "report-error" => Step::ReportError(need()?.to_string()),
            "bad-report" => Step::BadReport,
            "abort-oom" => Step::AbortOom,
            "signal" => Step::Signal(parse_signal(need()?)?),
            "exit" => Step::Exit(
                need()?
                    .parse()
                    .map_err(|_| format!("`{text}`: exit code must be a number"))?,
            ),
            "ready" => Step::Ready,
            "spawn" => {
                let steps: Vec<String> = need()?.split('+').map(str::to_string).collect();
                parse_steps(&steps)?;
                Step::Spawn(steps)
            }
            "escape-group" => Step::EscapeGroup,
            "signal-launcher" => Step::SignalLauncher(parse_signal(need()?)?),
            "hang-from" => {
                let (n, file) = need()?
                    .split_once(':')
                    .ok_or_else(|| format!("`{text}` is not hang-from=N:FILE"))?;
                let n = n
                    .parse()
                    .map_err(|_| format!("`{text}`: N must be a number"))?;
                Step::HangFrom(n, file.to_string())
            }
            "report-fifo" => Step::ReportFifo,
            "report-link" => Step::ReportLink(need()?.to_string()),
            "report-pad" => Step::ReportPad(parse_size(need()?)?),
            "fail-below" => Step::FailWithin {
                from: 0,
                to: parse_size(need()?)?,
                text: text.to_string(),
            },
            "fail-between" => {
                let value = need()?;
                let (from, to) = value
                    .split_once("..")
                    .or_else(|| value.split_once(':'))
                    .ok_or_else(|| format!("`{text}` is not fail-between=A..B"))?;
                let (from, to) = (parse_size(from)?, parse_size(to)?);
                if from >= to {
                    return Err(format!("`{text}`: A must be below B"));
                }
                Step::FailWithin {
                    from,
                    to,
                    text: text.to_string(),
                }
            }
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
        "usr1" => libc::SIGUSR1,
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
    let mut window = Window {
        touched: 0,
        rss_bytes: procfs::resident_bytes(std::process::id() as i32),
    };
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
            Step::Window => {
                window = Window {
                    touched,
                    rss_bytes: procfs::resident_bytes(std::process::id() as i32),
                }
            }
            Step::Sleep(duration) => std::thread::sleep(*duration),
            Step::Stderr(text) => eprintln!("{text}"),
            Step::Report => {
                if let Err(code) = write_report(touched, held.len() as u64, &window, None) {
                    return code;
                }
            }
            Step::ReportError(text) => {
                if let Err(code) = write_report(touched, held.len() as u64, &window, Some(text)) {
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
            Step::Ready => {
                use std::io::Write;
                let mut stdout = std::io::stdout().lock();
                let _ = writeln!(stdout, "ready").and_then(|_| stdout.flush());
            }
            Step::Spawn(steps) => {
                if let Err(e) = spawn_detached(steps) {
                    eprintln!("mem_profile __child: cannot spawn: {e}");
                    return 2;
                }
            }
            Step::EscapeGroup => {
                let Some(harness) = parent_of(std::os::unix::process::parent_id()) else {
                    eprintln!("mem_profile __child: cannot find the launcher's parent");
                    return 2;
                };
                // SAFETY: getpgid and setpgid only read and change process
                // group ids; they touch no memory.
                let rc = unsafe { libc::setpgid(0, libc::getpgid(harness as libc::pid_t)) };
                if rc != 0 {
                    eprintln!(
                        "mem_profile __child: cannot join the harness's group: {}",
                        std::io::Error::last_os_error()
                    );
                    return 2;
                }
            }
            Step::SignalLauncher(signal) => {
                // SAFETY: kill and getppid have no memory effects.
                unsafe { libc::kill(libc::getppid(), *signal) };
            }
            Step::HangFrom(n, file) => {
                let count: u64 = std::fs::read_to_string(file)
                    .ok()
                    .and_then(|t| t.trim().parse().ok())
                    .unwrap_or(0)
                    + 1;
                if std::fs::write(file, count.to_string()).is_err() {
                    return 2;
                }
                if count >= *n {
                    std::thread::sleep(Duration::from_secs(3600));
                }
            }
            Step::ReportFifo => {
                let Some(path) = report_path() else { return 2 };
                let Ok(path) = std::ffi::CString::new(path.into_encoded_bytes()) else {
                    return 2;
                };
                // SAFETY: mkfifo on a NUL-terminated path.
                if unsafe { libc::mkfifo(path.as_ptr(), 0o600) } != 0 {
                    return 2;
                }
            }
            Step::ReportLink(target) => {
                let Some(path) = report_path() else { return 2 };
                if std::os::unix::fs::symlink(target, path).is_err() {
                    return 2;
                }
            }
            Step::FailWithin { from, to, text } => {
                let limit = std::env::var("MEMLEDGER_MEMORY_LIMIT")
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok());
                if let Some(limit) = limit.filter(|l| (*from..*to).contains(l)) {
                    let error = format!(
                        "Resources exhausted: Failed to allocate additional bytes for \
                         __child with a pool limit of {limit} bytes ({text})"
                    );
                    eprintln!("{error}");
                    return match write_report(touched, held.len() as u64, &window, Some(&error)) {
                        Ok(()) => 1,
                        Err(code) => code,
                    };
                }
            }
            Step::ReportPad(size) => {
                let Some(path) = report_path() else { return 2 };
                let Ok(file) = std::fs::File::create(path) else {
                    return 2;
                };
                let mut writer = std::io::BufWriter::new(file);
                let chunk = [b' '; 8192];
                let mut left = *size;
                while left > 0 {
                    let n = left.min(chunk.len() as u64) as usize;
                    if std::io::Write::write_all(&mut writer, &chunk[..n]).is_err() {
                        return 2;
                    }
                    left -= n as u64;
                }
                if std::io::Write::flush(&mut writer).is_err() {
                    return 2;
                }
            }
        }
    }
    0
}

/// `$MEMLEDGER_REPORT`, or a message and `None`.
fn report_path() -> Option<std::ffi::OsString> {
    let path = std::env::var_os("MEMLEDGER_REPORT");
    if path.is_none() {
        eprintln!("mem_profile __child: MEMLEDGER_REPORT is not set");
    }
    path
}

/// The parent pid of `pid`, from `/proc/<pid>/stat`.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = stat.get(stat.rfind(')')? + 1..)?;
    after_name.split_ascii_whitespace().nth(1)?.parse().ok()
}

/// Starts `mem_profile __child STEPS` in a session of its own and waits
/// for its `ready` line (or its end); it is left running.
fn spawn_detached(steps: &[String]) -> std::io::Result<()> {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    let mut command = std::process::Command::new(std::env::current_exe()?);
    command
        .arg("__child")
        .args(steps)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped());
    // SAFETY: setsid is async-signal-safe and touches no memory.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn()?;
    if let Some(stdout) = child.stdout.take() {
        for line in std::io::BufReader::new(stdout).lines() {
            if line?.trim() == "ready" {
                break;
            }
        }
    }
    Ok(())
}

/// Where the measured window began: bytes touched then, and the RSS.
struct Window {
    touched: u64,
    rss_bytes: Option<u64>,
}

/// A report whose figures follow from the steps (see the module docs).
fn write_report(
    touched: u64,
    touches: u64,
    window: &Window,
    error: Option<&str>,
) -> Result<(), i32> {
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
    report.process.peak_rss_bytes = procfs::vm_hwm_bytes(me as i32);
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
    report.audit.window_start = Some(WindowStart {
        heap_live_bytes: Some(window.touched as i64),
        rss_bytes: window.rss_bytes,
    });
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
        assert_eq!(
            "spawn=touch=1M+ready+sleep=1s".parse(),
            Ok(Step::Spawn(vec![
                "touch=1M".to_string(),
                "ready".to_string(),
                "sleep=1s".to_string()
            ]))
        );
        assert!("spawn=dance".parse::<Step>().is_err());
        assert_eq!(
            "fail-between=5M..6M".parse(),
            Ok(Step::FailWithin {
                from: 5 << 20,
                to: 6 << 20,
                text: "fail-between=5M..6M".to_string()
            })
        );
        assert!(matches!(
            "fail-below=2M".parse(),
            Ok(Step::FailWithin {
                from: 0,
                to: 0x20_0000,
                ..
            })
        ));
        assert!("fail-between=6M..5M".parse::<Step>().is_err());
        assert!("fail-between=6M".parse::<Step>().is_err());
        assert!(matches!(
            "fail-between=1K:2K".parse(),
            Ok(Step::FailWithin {
                from: 1024,
                to: 2048,
                ..
            })
        ));
        assert_eq!(
            "hang-from=3:/x/y".parse(),
            Ok(Step::HangFrom(3, "/x/y".to_string()))
        );
        let steps = parse_steps(&["touch=1K report".to_string(), "exit=4".to_string()]);
        assert_eq!(
            steps,
            Ok(vec![Step::Touch(1024), Step::Report, Step::Exit(4)])
        );
    }
}
