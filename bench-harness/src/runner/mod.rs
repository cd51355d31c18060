//! Runs one child and measures it: wall time, the kernel's peak RSS for that
//! child alone, an RSS timeline and the tail of its stderr.
//!
//! ```text
//!  harness ──spawn──▶ mem_profile __launch ──fork+exec──▶ query (own process group)
//!     │ ▲                  │ subreaper: reaps and kills       │ └▶ its descendants
//!     │ └─ status pipe ◀───┘ "pid N", "left PID NAME",        │
//!     │                      "exit STATUS KIB US LEFT"        │
//!     └──── /proc/N/statm every sample interval ◀─────────────┘
//! ```
//!
//! The peak comes from `wait4`'s `ru_maxrss`, taken by the [launcher]
//! because a child exec'd straight from the harness inherits the harness's
//! own high-water mark (see the launcher's docs). The harness polls the
//! status pipe with a timeout equal to the sample interval, so it wakes for
//! each sample, for the deadline, for Ctrl-C and at once when the query ends.
//!
//! Containment is the launcher's job (see its docs): it is the query's
//! subreaper, so every descendant is waited for, counted in the peak and
//! killed when the query's own process ends. On timeout (or interrupt) the
//! harness sends the launcher [`launcher::KILL_REQUEST`]; the launcher kills
//! the whole tree, whatever process group or session its members moved to,
//! and still reports the peak. Only if the launcher does not answer within
//! [`KILL_GRACE`] (someone stopped or killed it) does the harness kill the
//! launcher and the query's process group itself. A process that can name
//! no other parent than the harness (`mem_profile run` is a subreaper too,
//! see [`adopt_orphans`]) is killed when the launcher is lost.
//!
//! This module knows nothing of reports or statuses: [`crate::classify`]
//! turns a [`Measurement`] into a status.

pub mod interrupt;
pub mod launcher;
pub mod procfs;
pub mod stderr_tail;
pub mod tree;

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use launcher::Message;
use procfs::Timeline;
use stderr_tail::StderrTail;

/// The hidden subcommand that serves as launcher.
pub const LAUNCH_SUBCOMMAND: &str = "__launch";

/// How long to wait for a child's stderr to reach end of file after it ended.
const STDERR_GRACE: Duration = Duration::from_millis(500);

/// How long the launcher has to end the query's tree after a kill request
/// before the harness kills the launcher and the query's group itself.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

/// Set once this process is a subreaper for what its launchers leave.
static ADOPTS_ORPHANS: AtomicBool = AtomicBool::new(false);

/// Held from the moment a status pipe's write end is made inheritable until
/// the launcher that needs it is spawned and the harness's copy is closed.
static SPAWN: Mutex<()> = Mutex::new(());

/// Makes this process a child subreaper, so that what a query leaves
/// behind when its launcher is killed (by the query itself) is reparented
/// here rather than to `init`, and can be killed by [`measure`].
///
/// Only for a process whose every child is a launcher (the `mem_profile`
/// binary) and that measures one query at a time: [`measure`] then kills
/// and reaps every descendant it has once a launcher is lost.
pub fn adopt_orphans() -> io::Result<()> {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) only sets a flag on this process.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) } != 0 {
        return Err(io::Error::last_os_error());
    }
    ADOPTS_ORPHANS.store(true, Ordering::SeqCst);
    Ok(())
}

/// Kills and reaps every descendant of this process (see [`adopt_orphans`]).
fn kill_orphans() {
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    loop {
        let found = tree::descendants(me);
        if found.is_empty() {
            return;
        }
        tree::kill_descendants(me);
        let mut reaped_any = false;
        loop {
            let mut status = 0;
            // SAFETY: the out-pointer is valid for writes for the call.
            if unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) } > 0 {
                reaped_any = true;
            } else {
                break;
            }
        }
        if !reaped_any {
            // Killed processes take a moment to become zombies.
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

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

impl Default for MeasureOptions {
    fn default() -> MeasureOptions {
        MeasureOptions {
            timeout: None,
            sample_interval: Duration::from_millis(20),
        }
    }
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
    /// Peak RSS of the query: the largest `ru_maxrss` of its process tree
    /// (the query's own process and every descendant, taken one by one), else
    /// `VmHWM` read before a kill, else the largest sample; `None` when
    /// nothing was measured (no figure is ever a made-up 0).
    pub peak_rss_bytes: Option<u64>,
    /// `[t_ms, rss_bytes]` samples, `t_ms` from the query's start.
    pub timeline: Vec<(u64, u64)>,
    /// The last bytes of its stderr.
    pub stderr_tail: String,
    /// The line of its stderr that reported an allocation failure, if any
    /// (Rust's `memory allocation of N bytes failed`).
    pub alloc_failure: Option<String>,
    /// Processes the query left running when its own process ended (the
    /// launcher killed them): pid and command name, at most 16 listed.
    pub leftovers: Vec<(i32, String)>,
    /// How many processes it left running (all of them, listed or not).
    pub leftover_count: u64,
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
    // The launcher inherits the write end by number. Spawns are serialized
    // (`sweep --jobs` measures from several threads), so no other child
    // sees it before it is closed here.
    let spawning = SPAWN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
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
    drop(spawning);
    let mut child = spawned.map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot start {}: {e}", launcher.exe.display()),
        )
    })?;
    let stderr = child.stderr.take().map(StderrTail::start);

    let mut watch = Watch::new(start, options);
    let outcome = watch.run(File::from(status_read), &mut child);
    if outcome.is_err() {
        // The harness can no longer watch it: do not leave it running.
        if !watch.killed {
            watch.kill(&mut child);
        }
        watch.force_kill(&mut child);
    }
    let launcher_status = child.wait();
    if watch.exit.is_none() {
        // The launcher ended without reporting (killed, or never started
        // the query): its query's group, and whatever was reparented here,
        // is all that can still be named.
        watch.force_kill(&mut child);
        if ADOPTS_ORPHANS.load(Ordering::SeqCst) {
            kill_orphans();
        }
    }
    outcome?;

    let stderr = stderr.map(|s| s.finish(STDERR_GRACE)).unwrap_or_default();
    let timeline_max = watch.timeline.max_rss();
    let (ending, wall, max_rss) = match (watch.exit, watch.exec_error) {
        (Some(exit), exec_error) => {
            let (ending, max_rss) = match exec_error {
                // The query never ran: the figure would be the launcher's copy.
                Some(errno) => (
                    Ending::ExecFailed(io::Error::from_raw_os_error(errno).to_string()),
                    None,
                ),
                None => (
                    decode_wait_status(exit.wait_status),
                    // 0 KiB means the kernel measured nothing, not an empty process.
                    exit.max_rss_kib
                        .checked_mul(1024)
                        .filter(|&bytes| bytes > 0),
                ),
            };
            (ending, Duration::from_micros(exit.wall_us), max_rss)
        }
        (None, _) => {
            let how = match launcher_status {
                Ok(status) => format!("the launcher ended without a result ({status})"),
                Err(e) => format!("the launcher ended without a result ({e})"),
            };
            let ending = if watch.timed_out || watch.interrupted {
                Ending::Signaled(libc::SIGKILL)
            } else {
                Ending::Lost(how)
            };
            (ending, start.elapsed(), None)
        }
    };
    // A query that could not be executed never ran: what was sampled is
    // the launcher's forked copy, not the query.
    let never_ran = matches!(ending, Ending::ExecFailed(_));
    let peak_rss_bytes = match never_ran {
        true => None,
        false => max_rss.or(watch.hwm_at_kill).or(timeline_max),
    };
    let timeline = match never_ran {
        true => Vec::new(),
        false => watch.timeline.finish(),
    };
    Ok(Measurement {
        ending,
        timed_out: watch.timed_out,
        interrupted: watch.interrupted,
        wall,
        peak_rss_bytes,
        timeline,
        stderr_tail: stderr.tail,
        alloc_failure: stderr.alloc_failure,
        leftover_count: watch.exit.map_or(0, |e| e.left),
        leftovers: watch.leftovers,
    })
}

/// What the launcher reported when the query's tree ended.
#[derive(Debug, Clone, Copy)]
struct Exit {
    wait_status: i32,
    max_rss_kib: u64,
    wall_us: u64,
    left: u64,
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
    /// When the kill request was sent (the launcher has [`KILL_GRACE`]).
    kill_sent: Option<Instant>,
    /// The harness killed the launcher and the query's group itself.
    forced: bool,
    hwm_at_kill: Option<u64>,
    exec_error: Option<i32>,
    leftovers: Vec<(i32, String)>,
    /// What the launcher reported at the end.
    exit: Option<Exit>,
    pending: Vec<u8>,
}

impl Watch {
    fn new(start: Instant, options: &MeasureOptions) -> Watch {
        Watch {
            // A deadline past what `Instant` can hold is no deadline.
            deadline: options.timeout.and_then(|t| start.checked_add(t)),
            interval: options.sample_interval.max(Duration::from_millis(1)),
            query_pid: None,
            query_start: None,
            timeline: Timeline::new(),
            next_sample: start,
            killed: false,
            timed_out: false,
            interrupted: false,
            kill_sent: None,
            forced: false,
            hwm_at_kill: None,
            exec_error: None,
            leftovers: Vec::new(),
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
            let grace_end = self.kill_sent.and_then(|sent| sent.checked_add(KILL_GRACE));
            if !self.forced && grace_end.is_some_and(|end| now >= end) {
                self.force_kill(launcher);
            }
            let mut wake = self.next_sample;
            if let (false, Some(deadline)) = (self.killed, self.deadline) {
                wake = wake.min(deadline);
            }
            if let (false, Some(end)) = (self.forced, grace_end) {
                wake = wake.min(end);
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
                Some(Message::Left(pid, name)) => self.leftovers.push((pid, name)),
                Some(Message::Exit {
                    wait_status,
                    max_rss_kib,
                    wall_us,
                    left,
                }) => {
                    self.exit = Some(Exit {
                        wait_status,
                        max_rss_kib,
                        wall_us,
                        left,
                    })
                }
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
        // A process between exit and reaping reads as 0 pages: no sample.
        if let Some(rss) = procfs::resident_bytes(pid).filter(|&rss| rss > 0) {
            let t_ms =
                u64::try_from(now.saturating_duration_since(start).as_millis()).unwrap_or(u64::MAX);
            self.timeline.push(t_ms, rss);
        }
    }

    /// Asks the launcher to kill the query's whole tree, keeping the
    /// query's `VmHWM` as a fallback peak.
    fn kill(&mut self, launcher: &mut Child) {
        self.killed = true;
        self.kill_sent = Some(Instant::now());
        if let Some(pid) = self.query_pid {
            self.hwm_at_kill = procfs::vm_hwm_bytes(pid).filter(|&hwm| hwm > 0);
        }
        let launcher_pid = launcher.id() as libc::pid_t;
        // SAFETY: kill has no memory effects; the launcher is our child and
        // not yet reaped. SIGCONT wakes it if the query stopped it.
        unsafe {
            libc::kill(launcher_pid, launcher::KILL_REQUEST);
            libc::kill(launcher_pid, libc::SIGCONT);
        }
    }

    /// The last resort when the launcher cannot do its job: kills the
    /// launcher and the query's process group.
    fn force_kill(&mut self, launcher: &mut Child) {
        self.forced = true;
        self.killed = true;
        let _ = launcher.kill();
        if let Some(pid) = self.query_pid {
            // SAFETY: kill has no memory effects; -pid names the query's group.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
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
