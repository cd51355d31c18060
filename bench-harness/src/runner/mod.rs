//! Runs one child and measures it: wall time, the kernel's peak RSS for that
//! child alone, an RSS timeline and the tail of its stderr.
//!
//! ```text
//!  harness ──spawn──▶ mem_profile __launch ──fork+exec──▶ query (own process group)
//!     ▲                    │ wait4: status, ru_maxrss           │
//!     └── status pipe ◀────┘ "pid N", "exit STATUS KIB US"      │
//!     └── /proc/N/statm every sample interval ◀─────────────────┘
//! ```
//!
//! The peak comes from `wait4`'s `ru_maxrss`, taken by the [launcher]
//! because a child exec'd straight from the harness inherits the harness's
//! own high-water mark (see the launcher's docs). The harness polls the
//! status pipe with a timeout equal to the sample interval, so it wakes for
//! each sample, for the deadline, for Ctrl-C and at once when the query ends.
//!
//! On timeout (or interrupt) the harness sends `SIGKILL` to the query's
//! process group; the launcher still reaps it and reports its peak. After a
//! query ends, whatever is left in its group is killed too, so no stray
//! process outlives its query.
//!
//! This module knows nothing of reports or statuses: [`crate::classify`]
//! turns a [`Measurement`] into a status.

pub mod interrupt;
pub mod launcher;
pub mod procfs;
pub mod stderr_tail;

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use launcher::Message;
use procfs::Timeline;
use stderr_tail::StderrTail;

/// The hidden subcommand that serves as launcher.
pub const LAUNCH_SUBCOMMAND: &str = "__launch";

/// How long to wait for a child's stderr to reach end of file after it ended.
const STDERR_GRACE: Duration = Duration::from_millis(500);

/// The `mem_profile` executable that serves `__launch`.
#[derive(Debug, Clone)]
pub struct Launcher {
    exe: PathBuf,
}

impl Launcher {
    /// The running executable (the normal case: `mem_profile` launches itself).
    pub fn current_exe() -> io::Result<Launcher> {
        Ok(Launcher {
            exe: std::env::current_exe()?,
        })
    }

    /// A given `mem_profile` executable (for callers that are not `mem_profile`).
    pub fn new(exe: impl Into<PathBuf>) -> Launcher {
        Launcher { exe: exe.into() }
    }
}

/// What to run: an executable, its full argument vector and its environment changes.
#[derive(Debug, Clone, Default)]
pub struct ChildSpec {
    /// The executable's path (already resolved; no `PATH` search happens).
    pub program: PathBuf,
    /// `argv`, `argv[0]` included.
    pub argv: Vec<OsString>,
    /// Variables set for the child.
    pub env: Vec<(OsString, OsString)>,
    /// Variables removed from the child's environment.
    pub env_remove: Vec<OsString>,
}

/// How to measure.
#[derive(Debug, Clone, Copy)]
pub struct MeasureOptions {
    /// Kill the query after this long.
    pub timeout: Option<Duration>,
    /// Interval between two RSS samples (at least 1 ms).
    pub sample_interval: Duration,
}

/// How the query ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// It exited with this code.
    Exited(i32),
    /// A signal with this number killed it.
    Signaled(i32),
    /// `execv` failed; the text says why.
    ExecFailed(String),
    /// The launcher ended without reporting; the text says how.
    Lost(String),
}

/// What the harness measured of one query run.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// How it ended.
    pub ending: Ending,
    /// The harness killed it because it ran past the timeout.
    pub timed_out: bool,
    /// The harness killed it because the harness was interrupted.
    pub interrupted: bool,
    /// Wall time from fork to reaping (from the launcher when it reported).
    pub wall: Duration,
    /// Peak RSS of the query alone: `ru_maxrss`, else `VmHWM` read before a
    /// kill, else the largest sample; `None` when nothing could be read.
    pub peak_rss_bytes: Option<u64>,
    /// `[t_ms, rss_bytes]` samples, `t_ms` from the query's start.
    pub timeline: Vec<(u64, u64)>,
    /// The last bytes of its stderr.
    pub stderr_tail: String,
    /// The line of its stderr that reported an allocation failure, if any
    /// (Rust's `memory allocation of N bytes failed`).
    pub alloc_failure: Option<String>,
}

impl Measurement {
    /// True when the harness itself sent the `SIGKILL` that ended the query.
    pub fn killed_by_harness(&self) -> bool {
        self.timed_out || self.interrupted
    }
}

/// Runs `spec` under `launcher` and measures it.
///
/// Errors only when the launcher cannot be started (or the status pipe
/// cannot be made); everything that goes wrong with the query itself is in
/// the [`Measurement`].
pub fn measure(
    launcher: &Launcher,
    spec: &ChildSpec,
    options: &MeasureOptions,
) -> io::Result<Measurement> {
    let (status_read, status_write) = status_pipe()?;
    // The launcher inherits the write end by number; the harness spawns from
    // one thread at a time, so no other child sees it before it is closed.
    set_cloexec(&status_write, false)?;

    let mut command = Command::new(&launcher.exe);
    command
        .arg(LAUNCH_SUBCOMMAND)
        .arg("--status-fd")
        .arg(status_write.as_raw_fd().to_string())
        .arg("--parent")
        .arg(std::process::id().to_string())
        .arg("--")
        .arg(&spec.program)
        .args(&spec.argv)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (key, value) in &spec.env {
        command.env(key, value);
    }
    for key in &spec.env_remove {
        command.env_remove(key);
    }
    let start = Instant::now();
    let spawned = command.spawn();
    // Only the launcher may hold the write end: EOF then means it is gone.
    drop(status_write);
    let mut child = spawned.map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot start {}: {e}", launcher.exe.display()),
        )
    })?;
    let stderr = child.stderr.take().map(StderrTail::start);

    let mut watch = Watch::new(start, options);
    let outcome = watch.run(File::from(status_read), &mut child);
    if outcome.is_err() && !watch.killed {
        // The harness can no longer watch it: do not leave it running.
        watch.kill(&mut child);
    }
    let launcher_status = child.wait();
    if let Some(pid) = watch.query_pid {
        // Leftovers of the query (background grandchildren) go with it.
        // SAFETY: kill has no memory effects; -pid names the query's group.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
    outcome?;

    let stderr = stderr.map(|s| s.finish(STDERR_GRACE)).unwrap_or_default();
    let timeline_max = watch.timeline.max_rss();
    let (ending, wall, max_rss) = match (watch.exit, watch.exec_error) {
        (Some((wait_status, max_rss_kib, wall_us)), exec_error) => {
            let ending = match exec_error {
                Some(errno) => Ending::ExecFailed(io::Error::from_raw_os_error(errno).to_string()),
                None => decode_wait_status(wait_status),
            };
            (
                ending,
                Duration::from_micros(wall_us),
                Some(max_rss_kib * 1024),
            )
        }
        (None, _) => {
            let how = match launcher_status {
                Ok(status) => format!("the launcher ended without a result ({status})"),
                Err(e) => format!("the launcher ended without a result ({e})"),
            };
            let ending = if watch.killed {
                Ending::Signaled(libc::SIGKILL)
            } else {
                Ending::Lost(how)
            };
            (ending, start.elapsed(), None)
        }
    };
    let peak_rss_bytes = max_rss.or(watch.hwm_at_kill).or(timeline_max);
    Ok(Measurement {
        ending,
        timed_out: watch.timed_out,
        interrupted: watch.interrupted,
        wall,
        peak_rss_bytes,
        timeline: watch.timeline.finish(),
        stderr_tail: stderr.tail,
        alloc_failure: stderr.alloc_failure,
    })
}

/// The harness's side of one query while it runs.
struct Watch {
    deadline: Option<Instant>,
    interval: Duration,
    query_pid: Option<i32>,
    query_start: Option<Instant>,
    timeline: Timeline,
    next_sample: Instant,
    killed: bool,
    timed_out: bool,
    interrupted: bool,
    hwm_at_kill: Option<u64>,
    exec_error: Option<i32>,
    /// `(wait status, ru_maxrss KiB, wall µs)` from the launcher.
    exit: Option<(i32, u64, u64)>,
    pending: Vec<u8>,
}

impl Watch {
    fn new(start: Instant, options: &MeasureOptions) -> Watch {
        Watch {
            deadline: options.timeout.map(|t| start + t),
            interval: options.sample_interval.max(Duration::from_millis(1)),
            query_pid: None,
            query_start: None,
            timeline: Timeline::new(),
            next_sample: start,
            killed: false,
            timed_out: false,
            interrupted: false,
            hwm_at_kill: None,
            exec_error: None,
            exit: None,
            pending: Vec::new(),
        }
    }

    /// Samples, enforces the deadline and reads the status pipe until the
    /// launcher reports the end (or closes the pipe).
    fn run(&mut self, mut pipe: File, launcher: &mut Child) -> io::Result<()> {
        loop {
            let now = Instant::now();
            if now >= self.next_sample {
                self.sample(now);
                self.next_sample += self.interval;
                if self.next_sample <= now {
                    self.next_sample = now + self.interval;
                }
            }
            if !self.killed {
                if self.deadline.is_some_and(|d| now >= d) {
                    self.timed_out = true;
                    self.kill(launcher);
                } else if interrupt::requested() {
                    self.interrupted = true;
                    self.kill(launcher);
                }
            }
            let mut wake = self.next_sample;
            if let (false, Some(deadline)) = (self.killed, self.deadline) {
                wake = wake.min(deadline);
            }
            let wait_ms = wake
                .saturating_duration_since(Instant::now())
                .as_micros()
                .div_ceil(1000)
                .min(i32::MAX as u128) as i32;
            if poll_readable(&pipe, wait_ms)? && !self.read_messages(&mut pipe)? {
                return Ok(());
            }
            if self.exit.is_some() {
                return Ok(());
            }
        }
    }

    /// Reads what the pipe holds; false at end of file.
    fn read_messages(&mut self, pipe: &mut File) -> io::Result<bool> {
        let mut chunk = [0u8; 256];
        let n = match pipe.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(true),
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(false);
        }
        self.pending.extend_from_slice(&chunk[..n]);
        while let Some(newline) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=newline).collect();
            let text = String::from_utf8_lossy(&line);
            match Message::parse(text.trim_end()) {
                Some(Message::Pid(pid)) => {
                    self.query_pid = Some(pid);
                    self.query_start = Some(Instant::now());
                    self.sample(Instant::now());
                }
                Some(Message::ExecError(errno)) => self.exec_error = Some(errno),
                Some(Message::Exit {
                    wait_status,
                    max_rss_kib,
                    wall_us,
                }) => self.exit = Some((wait_status, max_rss_kib, wall_us)),
                None => {}
            }
        }
        Ok(true)
    }

    /// One timeline sample, when the query is known and still readable.
    fn sample(&mut self, now: Instant) {
        let (Some(pid), Some(start)) = (self.query_pid, self.query_start) else {
            return;
        };
        if let Some(rss) = procfs::resident_bytes(pid) {
            let t_ms = now.saturating_duration_since(start).as_millis() as u64;
            self.timeline.push(t_ms, rss);
        }
    }

    /// Kills the query's process group (or the launcher, before the query's
    /// pid is known), keeping the query's `VmHWM` as a fallback peak.
    fn kill(&mut self, launcher: &mut Child) {
        self.killed = true;
        match self.query_pid {
            Some(pid) => {
                self.hwm_at_kill = procfs::vm_hwm_bytes(pid);
                // SAFETY: kill has no memory effects; -pid names the query's group.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
            }
            None => {
                let _ = launcher.kill();
            }
        }
    }
}

/// Waits up to `timeout_ms` for `pipe` to be readable (or closed). An
/// interrupting signal counts as "not readable yet".
fn poll_readable(pipe: &File, timeout_ms: i32) -> io::Result<bool> {
    let mut fds = libc::pollfd {
        fd: pipe.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `fds` is one valid pollfd for the duration of the call.
    let rc = unsafe { libc::poll(&mut fds, 1, timeout_ms) };
    if rc < 0 {
        let error = io::Error::last_os_error();
        return if error.kind() == io::ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(error)
        };
    }
    Ok(rc > 0)
}

/// A close-on-exec pipe: `(read end, write end)`.
fn status_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two descriptors into the array on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and belong to nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Sets or clears `FD_CLOEXEC`.
fn set_cloexec(fd: &OwnedFd, on: bool) -> io::Result<()> {
    let flags = if on { libc::FD_CLOEXEC } else { 0 };
    // SAFETY: F_SETFD on a descriptor we own.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, flags) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Decodes a raw `wait` status.
pub fn decode_wait_status(status: i32) -> Ending {
    if libc::WIFEXITED(status) {
        Ending::Exited(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        Ending::Signaled(libc::WTERMSIG(status))
    } else {
        Ending::Lost(format!("unexpected wait status {status:#x}"))
    }
}

/// The conventional name of a signal number (`SIGSEGV`), or `signal N`.
pub fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGSYS => "SIGSYS",
        _ => return format!("signal {signal}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_statuses_decode() {
        assert_eq!(decode_wait_status(0), Ending::Exited(0));
        assert_eq!(decode_wait_status(3 << 8), Ending::Exited(3));
        assert_eq!(decode_wait_status(libc::SIGSEGV), Ending::Signaled(11));
        assert_eq!(
            decode_wait_status(libc::SIGABRT | 0x80),
            Ending::Signaled(libc::SIGABRT),
            "core dumped"
        );
    }

    #[test]
    fn signal_names() {
        assert_eq!(signal_name(9), "SIGKILL");
        assert_eq!(signal_name(11), "SIGSEGV");
        assert_eq!(signal_name(64), "signal 64");
    }
}
