//! The operating-system calls the crate makes, in one place.
//!
//! memledger-alloc runs on Linux (glibc or musl): it names threads by their
//! kernel id (`gettid`), reads their names from `/proc`, keeps its counters
//! right across `fork` (`pthread_atfork`) and asks the system allocator for
//! usable sizes (`malloc_usable_size`). Other systems get a compile error
//! rather than figures that would be silently wrong.

#[cfg(not(target_os = "linux"))]
compile_error!(
    "memledger-alloc supports Linux only (it needs gettid, pthread_atfork, /proc and malloc_usable_size)"
);

/// The calling thread's kernel id.
pub(crate) fn thread_id() -> u64 {
    // SAFETY: gettid has no preconditions and cannot fail.
    unsafe { libc::gettid() as u64 }
}

/// The name (`comm`) of thread `tid` of this process, if it still exists.
pub(crate) fn thread_name(tid: u64) -> Option<String> {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/comm"))
        .ok()
        .map(|s| s.trim_end().to_string())
}

/// Registers fork handlers (see `pthread_atfork(3)`).
pub(crate) fn at_fork(prepare: extern "C" fn(), parent: extern "C" fn(), child: extern "C" fn()) {
    // SAFETY: the handlers are plain functions with no arguments;
    // pthread_atfork only stores the pointers.
    unsafe {
        libc::pthread_atfork(Some(prepare), Some(parent), Some(child));
    }
}

/// The usable size of a live block of the system allocator.
///
/// # Safety
///
/// `ptr` is a live block returned by the system allocator.
#[inline(always)]
pub(crate) unsafe fn malloc_usable_size(ptr: *mut u8) -> usize {
    // SAFETY: the caller's contract.
    unsafe { libc::malloc_usable_size(ptr.cast()) }
}
