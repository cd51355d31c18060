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
//! 1. dies with the harness (`PR_SET_PDEATHSIG`), ignores terminal signals
//!    (the harness decides when a query is killed and tells it by `SIGKILL`);
//! 2. forks the query into a process group of its own, so that the harness
//!    can kill it with every process it started;
//! 3. writes `pid N` on the status pipe, waits with `wait4`, and writes
//!    `exit STATUS MAXRSS_KIB WALL_US`.
//!
//! The status pipe is a file descriptor the harness leaves open for it; the
//! query never sees it (close-on-exec).

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::Write;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::time::Instant;

/// Exit code of the launcher when it could not do its job (bad arguments,
/// harness already gone, fork failed). Its stderr says why.
pub const LAUNCHER_FAILED: i32 = 125;

/// One line on the status pipe, launcher to harness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// The query's pid (also its process group id).
    Pid(i32),
    /// `execv` failed in the forked child with this `errno`.
    ExecError(i32),
    /// The query ended: raw `wait` status, `ru_maxrss` in KiB, wall time in µs.
    Exit {
        /// As `wait4` returned it.
        wait_status: i32,
        /// `ru_maxrss` of the query alone.
        max_rss_kib: u64,
        /// From just before `fork` to `wait4`'s return.
        wall_us: u64,
    },
}

impl Message {
    /// The line for this message, newline included.
    pub fn encode(&self) -> String {
        match self {
            Message::Pid(pid) => format!("pid {pid}\n"),
            Message::ExecError(errno) => format!("exec-error {errno}\n"),
            Message::Exit {
                wait_status,
                max_rss_kib,
                wall_us,
            } => format!("exit {wait_status} {max_rss_kib} {wall_us}\n"),
        }
    }

    /// Parses one line (without its newline); `None` for anything else.
    pub fn parse(line: &str) -> Option<Message> {
        let mut words = line.split_ascii_whitespace();
        let message = match words.next()? {
            "pid" => Message::Pid(words.next()?.parse().ok()?),
            "exec-error" => Message::ExecError(words.next()?.parse().ok()?),
            "exit" => Message::Exit {
                wait_status: words.next()?.parse().ok()?,
                max_rss_kib: words.next()?.parse().ok()?,
                wall_us: words.next()?.parse().ok()?,
            },
            _ => return None,
        };
        words.next().is_none().then_some(message)
    }
}

/// Runs the launcher: fork `program` with `argv`, report on `status_fd`.
/// Returns the launcher's exit code.
///
/// `parent` is the harness's pid: if the launcher's parent is already
/// someone else, the harness is gone and nothing is run.
pub fn serve(status_fd: RawFd, parent: u32, program: &OsStr, argv: &[OsString]) -> i32 {
    // SAFETY: prctl(PR_SET_PDEATHSIG) only sets a flag on this process.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
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

    let mut wait_status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both out-pointers are valid for writes for the call.
        let reaped = unsafe { libc::wait4(pid, &mut wait_status, 0, &mut usage) };
        if reaped == pid {
            break;
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            eprintln!(
                "mem_profile __launch: wait4 failed: {}",
                std::io::Error::last_os_error()
            );
            return LAUNCHER_FAILED;
        }
    }
    let exit = Message::Exit {
        wait_status,
        // ru_maxrss is in KiB on Linux and never negative.
        max_rss_kib: usage.ru_maxrss.max(0) as u64,
        wall_us: start.elapsed().as_micros() as u64,
    };
    let _ = status.write_all(exit.encode().as_bytes());
    0
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
            },
        ] {
            let line = message.encode();
            assert!(line.ends_with('\n'));
            assert_eq!(Message::parse(line.trim_end()), Some(message));
        }
        assert_eq!(Message::parse("pid"), None);
        assert_eq!(Message::parse("pid 12 13"), None);
        assert_eq!(Message::parse("exit 0 1"), None);
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
