//! Ctrl-C and `SIGTERM` during a run.
//!
//! The queries run in process groups of their own, so a terminal's Ctrl-C
//! reaches only the harness (and the launcher, which ignores it). The handler
//! here only raises a flag; the runner sees it, kills the running query's
//! group, and the run ends with every finished query already on disk. A
//! second signal gets the default action and ends the harness at once.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(signal: libc::c_int) {
    REQUESTED.store(true, Ordering::SeqCst);
    // SAFETY: signal() is async-signal-safe; SIG_DFL installs no code.
    unsafe { libc::signal(signal, libc::SIG_DFL) };
}

/// Installs the handler for `SIGINT` and `SIGTERM`. Without `SA_RESTART`, so
/// that a blocking `poll` returns at once.
pub fn install() -> io::Result<()> {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: sigaction is plain old data; all-zero is a valid value.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
        // SAFETY: `action` is fully initialized, its handler only touches an
        // atomic and calls an async-signal-safe function.
        let rc = unsafe {
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// True once `SIGINT` or `SIGTERM` arrived after [`install`].
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}
