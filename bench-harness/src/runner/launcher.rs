//! The launcher: `mem_profile __launch`, the small process between the
//! harness and a query.
//!
//! Why it exists: at `exec`, the kernel folds the high-water mark of the
//! address space being replaced into the process's `ru_maxrss`. A query
//! spawned straight from the harness (fork or `posix_spawn`) therefore never
//! reports a peak below the harness's own resident size (or, with
//! `posix_spawn`, its peak). The launcher is freshly exec'd, so its own
//! address space is a few MiB; the query it forks inherits only that, and the
//! `ru_maxrss` that `wait4` returns for the query is the query's own peak.
//!
//! What it does, in order:
//!
//! 1. blocks `SIGCHLD` and [`KILL_REQUEST`] (it waits for them with
//!    `sigtimedwait`, so none is lost between two checks), asks for
//!    [`KILL_REQUEST`] when the harness dies (`PR_SET_PDEATHSIG`), and
//!    ignores terminal signals (the harness decides when a query is killed);
//! 2. becomes a child subreaper (`PR_SET_CHILD_SUBREAPER`): every orphan the
//!    query leaves, `setsid` and double-forked daemons included, is
//!    reparented to the launcher instead of `init`;
//! 3. forks the query into a process group of its own (so a terminal's
//!    Ctrl-C does not reach it), writes `pid N` on the status pipe;
//! 4. waits. When the query's own process ends, every descendant still
//!    running is reported (`left PID NAME`) and killed; on [`KILL_REQUEST`]
//!    (the harness's timeout or interrupt) every descendant is killed. In
//!    both cases it kills and reaps until it has no child left, so no
//!    process outlives its query, whatever process group or session it
//!    moved to;
//! 5. writes `exit STATUS MAXRSS_KIB WALL_US LEFT`: the query's own wait
//!    status, the largest `ru_maxrss` of any process of the tree (from
//!    `RUSAGE_CHILDREN`, which covers every reaped descendant), the wall
//!    time until the query's own process ended, and how many processes it
//!    left running.
//!
//! Descendants are found by [`super::tree`], walking `/proc`; a process
//! forked while the tree is being killed is found by the next walk.
//!
//! The status pipe is a file descriptor the harness leaves open for it; the
//! query never sees it (close-on-exec).

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::Write;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use super::tree;

/// The signal the harness sends the launcher to end the query with all its
/// descendants; also what the launcher receives when the harness dies.
pub const KILL_REQUEST: libc::c_int = libc::SIGUSR1;

/// The most `left` lines sent for one query (the count is always exact).
const LEFT_LINES: usize = 16;

/// How often the tree is walked again while it is being killed.
const KILL_POLL: Duration = Duration::from_millis(10);

/// Exit code of the launcher when it could not do its job (bad arguments,
/// harness already gone, fork failed). Its stderr says why.
pub const LAUNCHER_FAILED: i32 = 125;

/// One line on the status pipe, launcher to harness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// The query's pid (also its process group id).
    Pid(i32),
    /// `execv` failed in the forked child with this `errno`.
    ExecError(i32),
    /// A process the query left running when its own process ended (it is
    /// killed): its pid and command name.
    Left(i32, String),
    /// The query ended and its whole tree is reaped.
    Exit {
        /// The query's own process, as `wait4` returned it.
        wait_status: i32,
        /// The largest `ru_maxrss` over the query's tree (its own process
        /// and every descendant), never the launcher's.
        max_rss_kib: u64,
        /// From just before `fork` to the query's own process ending.
        wall_us: u64,
        /// How many processes it left running (killed by the launcher).
        left: u64,
    },
}

impl Message {
    /// The line for this message, newline included.
    pub fn encode(&self) -> String {
        match self {
            Message::Pid(pid) => format!("pid {pid}\n"),
            Message::ExecError(errno) => format!("exec-error {errno}\n"),
            Message::Left(pid, name) => format!("left {pid} {}\n", one_word(name)),
            Message::Exit {
                wait_status,
                max_rss_kib,
                wall_us,
                left,
            } => format!("exit {wait_status} {max_rss_kib} {wall_us} {left}\n"),
        }
    }

    /// Parses one line (without its newline); `None` for anything else.
    pub fn parse(line: &str) -> Option<Message> {
        let mut words = line.split_ascii_whitespace();
        let message = match words.next()? {
            "pid" => Message::Pid(words.next()?.parse().ok()?),
            "exec-error" => Message::ExecError(words.next()?.parse().ok()?),
            "left" => Message::Left(words.next()?.parse().ok()?, words.next()?.to_string()),
            "exit" => Message::Exit {
                wait_status: words.next()?.parse().ok()?,
                max_rss_kib: words.next()?.parse().ok()?,
                wall_us: words.next()?.parse().ok()?,
                left: words.next()?.parse().ok()?,
            },
            _ => return None,
        };
        words.next().is_none().then_some(message)
    }
}

/// A command name as one printable word (`comm` may hold blanks).
fn one_word(name: &str) -> String {
    let word: String = name
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect();
    if word.is_empty() {
        "_".to_string()
    } else {
        word
    }
}

/// Runs the launcher: fork `program` with `argv`, report on `status_fd`.
/// Returns the launcher's exit code.
///
/// `parent` is the harness's pid: if the launcher's parent is already
/// someone else, the harness is gone and nothing is run.
pub fn serve(status_fd: RawFd, parent: u32, program: &OsStr, argv: &[OsString]) -> i32 {
    // SAFETY: sigset_t is plain old data, filled by sigemptyset/sigaddset;
    // sigprocmask and prctl only change this process's signal state.
    let waited = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        libc::sigaddset(&mut set, KILL_REQUEST);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        libc::prctl(libc::PR_SET_PDEATHSIG, KILL_REQUEST);
        set
    };
    if std::os::unix::process::parent_id() != parent {
        return LAUNCHER_FAILED;
    }
    // SAFETY: F_GETFD only reads the descriptor's flags; it fails on a closed fd.
    if status_fd < 3 || unsafe { libc::fcntl(status_fd, libc::F_GETFD) } < 0 {
        eprintln!("mem_profile __launch: status fd {status_fd} is not open");
        return LAUNCHER_FAILED;
    }
    // SAFETY: the harness opened this descriptor for us and nothing else in
    // this process uses it; from here `status` owns it.
    let mut status = unsafe { File::from_raw_fd(status_fd) };
    // The query must not inherit the pipe: the harness reads EOF as "launcher gone".
    // SAFETY: F_SETFD on a descriptor we own.
    unsafe { libc::fcntl(status_fd, libc::F_SETFD, libc::FD_CLOEXEC) };

    let (Ok(path), Ok(args)) = (
        CString::new(program.as_bytes()),
        argv.iter()
            .map(|a| CString::new(a.as_bytes()))
            .collect::<Result<Vec<_>, _>>(),
    ) else {
        eprintln!("mem_profile __launch: an argument contains a NUL byte");
        return LAUNCHER_FAILED;
    };
    let mut arg_ptrs: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    arg_ptrs.push(std::ptr::null());

    for signal in [libc::SIGINT, libc::SIGQUIT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: setting a disposition to SIG_IGN installs no handler code.
        unsafe { libc::signal(signal, libc::SIG_IGN) };
    }
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) only sets a flag on this process.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) } != 0 {
        eprintln!(
            "mem_profile __launch: cannot become a subreaper: {}",
            std::io::Error::last_os_error()
        );
        return LAUNCHER_FAILED;
    }

    // SAFETY: getpid has no preconditions.
    let launcher_pid = unsafe { libc::getpid() };
    let start = Instant::now();
    // SAFETY: this process is single-threaded (the launcher starts no
    // threads), so the child may run any code; it still calls only
    // async-signal-safe functions before `execv` (see `exec_query`).
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        exec_query(&path, &arg_ptrs, launcher_pid, status_fd);
    }
    if pid < 0 {
        eprintln!(
            "mem_profile __launch: fork failed: {}",
            std::io::Error::last_os_error()
        );
        return LAUNCHER_FAILED;
    }
    // Also set here, so the group exists before the harness hears of it,
    // whichever of parent and child runs first. EACCES once the child has
    // exec'd is harmless: it had already done it.
    // SAFETY: setpgid on our own child.
    unsafe { libc::setpgid(pid, pid) };
    // A harness that stopped reading is handled by PR_SET_PDEATHSIG; write errors are moot.
    let _ = status.write_all(Message::Pid(pid).encode().as_bytes());

    let ended = contain(pid, launcher_pid, parent, &waited, start);
    for (pid, name) in ended.left.iter().take(LEFT_LINES) {
        let _ = status.write_all(Message::Left(*pid, name.clone()).encode().as_bytes());
    }
    // SAFETY: rusage is plain old data; all-zero is a valid value, and
    // getrusage writes it.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let exit = Message::Exit {
        wait_status: ended.wait_status,
        // ru_maxrss is in KiB on Linux and never negative.
        max_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
        wall_us: u64::try_from(ended.wall.as_micros()).unwrap_or(u64::MAX),
        left: ended.left.len() as u64,
    };
    let _ = status.write_all(exit.encode().as_bytes());
    0
}

/// How the query's tree ended.
struct Ended {
    /// The query's own wait status.
    wait_status: i32,
    /// Until the query's own process ended.
    wall: Duration,
    /// Processes still running when the query's own process ended.
    left: Vec<(i32, String)>,
}

/// Waits for the query (`pid`) and every descendant of the launcher, kills
/// the whole tree at the query's end or on [`KILL_REQUEST`], and returns
/// once the launcher has no child left. `waited` holds `SIGCHLD` and
/// [`KILL_REQUEST`], both blocked. A kill request counts only when it comes
/// from the harness (`parent`) or the kernel (the harness died): a query
/// cannot end itself as if it had timed out.
fn contain(
    pid: i32,
    launcher_pid: i32,
    parent: u32,
    waited: &libc::sigset_t,
    start: Instant,
) -> Ended {
    let mut query: Option<(i32, Duration)> = None;
    let mut left = Vec::new();
    let mut killing = false;
    loop {
        let mut no_child = false;
        loop {
            let mut wait_status = 0;
            // SAFETY: the out-pointer is valid for writes for the call.
            let reaped = unsafe { libc::waitpid(-1, &mut wait_status, libc::WNOHANG) };
            if reaped == pid {
                query = Some((wait_status, start.elapsed()));
            } else if reaped == 0 {
                break;
            } else if reaped < 0 {
                match std::io::Error::last_os_error().raw_os_error() {
                    Some(libc::EINTR) => continue,
                    _ => {
                        no_child = true;
                        break;
                    }
                }
            }
        }
        if no_child {
            // The query is reaped once there is no child left at all.
            let (wait_status, wall) = query.unwrap_or((0, start.elapsed()));
            return Ended {
                wait_status,
                wall,
                left,
            };
        }
        if query.is_some() && !killing {
            // The query's end: whatever it left goes with it.
            left = tree::kill_descendants(launcher_pid)
                .into_iter()
                .map(|p| (p.pid, p.name))
                .collect();
            killing = true;
            continue;
        }
        if killing {
            // Catches what was forked while the tree was being killed.
            tree::kill_descendants(launcher_pid);
        }
        let timeout = libc::timespec {
            tv_sec: 0,
            tv_nsec: KILL_POLL.as_nanos() as libc::c_long,
        };
        let timeout_ptr = if killing {
            &timeout as *const libc::timespec
        } else {
            std::ptr::null()
        };
        // SAFETY: siginfo_t is plain old data, written by sigtimedwait;
        // `waited` and `timeout` outlive the call; si_pid is read only after
        // a signal was taken, when the kernel has filled it.
        let (signal, sender) = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let signal = libc::sigtimedwait(waited, &mut info, timeout_ptr);
            (signal, if signal > 0 { info.si_pid() } else { 0 })
        };
        let from_harness = sender == 0
            || u32::try_from(sender) == Ok(parent)
            || std::os::unix::process::parent_id() != parent;
        if signal == KILL_REQUEST && from_harness && !killing {
            killing = true;
            if query.is_none() {
                // The query is not reaped, so its pid and group id are still
                // its own: this reaches its group even without `/proc`.
                // SAFETY: kill has no memory effects.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
            }
            tree::kill_descendants(launcher_pid);
        }
    }
}

/// The forked child: own process group, default signals, then `execv`.
/// Only async-signal-safe calls; never returns.
fn exec_query(
    path: &CString,
    argv: &[*const libc::c_char],
    launcher_pid: libc::pid_t,
    status_fd: RawFd,
) -> ! {
    // SAFETY: every call below is async-signal-safe and gets valid
    // arguments: `path` and `argv` are NUL-terminated strings and a
    // NULL-terminated array built before the fork, `buf` is a local array.
    unsafe {
        libc::setpgid(0, 0);
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::getppid() != launcher_pid {
            libc::_exit(LAUNCHER_FAILED + 1);
        }
        // Rust ignores SIGPIPE and the launcher ignores the terminal signals;
        // neither may leak into the query.
        for signal in [
            libc::SIGINT,
            libc::SIGQUIT,
            libc::SIGTERM,
            libc::SIGHUP,
            libc::SIGPIPE,
        ] {
            libc::signal(signal, libc::SIG_DFL);
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());

        libc::execv(path.as_ptr(), argv.as_ptr());

        let errno = *libc::__errno_location();
        let mut buf = [0u8; 32];
        let len = encode_exec_error(errno, &mut buf);
        libc::write(status_fd, buf.as_ptr().cast(), len);
        libc::_exit(127);
    }
}

/// Writes `exec-error N\n` into `buf` without allocating; returns its length.
fn encode_exec_error(errno: i32, buf: &mut [u8; 32]) -> usize {
    let prefix = b"exec-error ";
    buf[..prefix.len()].copy_from_slice(prefix);
    let mut len = prefix.len();
    let mut digits = [0u8; 10];
    let mut n = errno.unsigned_abs();
    let mut count = 0;
    loop {
        digits[count] = b'0' + (n % 10) as u8;
        count += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in (0..count).rev() {
        buf[len] = digits[i];
        len += 1;
    }
    buf[len] = b'\n';
    len + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        for message in [
            Message::Pid(4242),
            Message::ExecError(13),
            Message::Exit {
                wait_status: 0x0100,
                max_rss_kib: 20_480,
                wall_us: 1_234_567,
                left: 2,
            },
            Message::Left(77, "sleep".to_string()),
        ] {
            let line = message.encode();
            assert!(line.ends_with('\n'));
            assert_eq!(Message::parse(line.trim_end()), Some(message));
        }
        assert_eq!(Message::parse("pid"), None);
        assert_eq!(Message::parse("pid 12 13"), None);
        assert_eq!(Message::parse("exit 0 1 2"), None);
        assert_eq!(
            Message::Left(5, "my prog\n".to_string()).encode(),
            "left 5 my_prog_\n"
        );
        assert_eq!(Message::parse("hello 1"), None);
    }

    #[test]
    fn exec_error_encoding_matches_the_parser() {
        let mut buf = [0u8; 32];
        for errno in [0, 2, 13, 2_000_000_000] {
            let len = encode_exec_error(errno, &mut buf);
            let line = std::str::from_utf8(&buf[..len]).unwrap();
            assert_eq!(line, Message::ExecError(errno).encode());
        }
    }
}
