//! Process-wide and per-thread figures, read from any thread.

use std::sync::atomic::Ordering::Relaxed;

use crate::mode::Attribution;
use crate::scope;
use crate::thread::{self, EXITED, FLUSH_BYTES};

/// The whole process's heap as the tracked allocator saw it.
///
/// Live and total figures are exact at the moment of reading. Peaks are
/// raised when threads publish their deltas and may be off by
/// [`peak_error_bytes`](HeapStats::peak_error_bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeapStats {
    /// Requested bytes allocated and not yet freed.
    pub live_requested: i64,
    /// Usable bytes (size classes) allocated and not yet freed.
    pub live_usable: i64,
    /// Highest `live_requested` since start or the last [`reset_peak`].
    pub peak_requested: i64,
    /// Highest `live_usable` since start or the last [`reset_peak`].
    pub peak_usable: i64,
    /// Cumulative requested bytes allocated (a reallocation adds its new size).
    pub total_requested: u64,
    /// Cumulative usable bytes allocated.
    pub total_usable: u64,
    /// Allocations (`alloc` and `alloc_zeroed`).
    pub allocations: u64,
    /// Deallocations.
    pub deallocations: u64,
    /// Successful reallocations.
    pub reallocations: u64,
    /// Threads registered now.
    pub threads: u64,
    /// Bound on the error of any peak figure, in bytes: the most threads ever
    /// live at once times [`FLUSH_BYTES`](crate::FLUSH_BYTES).
    pub peak_error_bytes: u64,
}

/// The process's heap now. Does not allocate; takes the thread registry's
/// lock for a walk over live threads.
pub fn heap() -> HeapStats {
    let (sum, reallocations) = thread::sum_live();
    let alloc_requested = sum.alloc_requested + EXITED.alloc_requested.load(Relaxed);
    let free_requested = sum.free_requested + EXITED.free_requested.load(Relaxed);
    let alloc_usable = sum.alloc_usable + EXITED.alloc_usable.load(Relaxed);
    let free_usable = sum.free_usable + EXITED.free_usable.load(Relaxed);
    let live_requested = alloc_requested.wrapping_sub(free_requested) as i64;
    let live_usable = alloc_usable.wrapping_sub(free_usable) as i64;
    HeapStats {
        live_requested,
        live_usable,
        peak_requested: thread::PEAK_REQUESTED.load(Relaxed).max(live_requested),
        peak_usable: thread::PEAK_USABLE.load(Relaxed).max(live_usable),
        total_requested: alloc_requested,
        total_usable: alloc_usable,
        allocations: sum.allocations + EXITED.allocations.load(Relaxed),
        deallocations: sum.deallocations + EXITED.deallocations.load(Relaxed),
        reallocations: reallocations + EXITED.reallocations.load(Relaxed),
        threads: thread::THREADS_LIVE.load(Relaxed),
        peak_error_bytes: peak_error_bytes(),
    }
}

/// Bound on the error of every peak figure (global and per scope), in bytes.
///
/// Each thread publishes its deltas once they reach
/// [`FLUSH_BYTES`](crate::FLUSH_BYTES) of net change, so at any instant the
/// published live value differs from the true one by less than that per live
/// thread. Threads inside [`precise`](crate::precise) publish every operation
/// and add no error.
pub fn peak_error_bytes() -> u64 {
    thread::THREADS_MAX.load(Relaxed) * FLUSH_BYTES
}

/// Sets the global peak and every scope's peak to the live value now.
pub fn reset_peak() {
    thread::flush_current();
    let live = heap();
    thread::PEAK_REQUESTED.store(live.live_requested, Relaxed);
    thread::PEAK_USABLE.store(live.live_usable, Relaxed);
    scope::reset_all_peaks();
}

/// Whether a [`Tracked`](crate::Tracked) allocator has counted anything in
/// this process (false when it is not installed as the global allocator).
pub fn is_installed() -> bool {
    thread::ATTRIBUTION.load(Relaxed) != 0
}

/// The attribution mode of the installed [`Tracked`](crate::Tracked)
/// allocator, or `None` when none has counted anything yet.
pub fn attribution() -> Option<Attribution> {
    match thread::ATTRIBUTION.load(Relaxed) {
        1 => Some(Attribution::Counting),
        2 => Some(Attribution::Owner),
        _ => None,
    }
}

/// Publishes the calling thread's pending deltas now, so peaks include them.
pub fn flush_thread() {
    thread::flush_current();
}

/// Makes the calling thread publish every allocation until the guard drops:
/// its contribution to peaks becomes exact, at the cost of a few atomic
/// operations per allocation. Nests. Use it around a measured region.
pub fn precise() -> PreciseGuard {
    thread::set_precise(true);
    PreciseGuard {
        _not_send: std::marker::PhantomData,
    }
}

/// Returns the calling thread to batched publishing when dropped.
#[must_use = "precise publishing ends when the guard drops"]
pub struct PreciseGuard {
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for PreciseGuard {
    fn drop(&mut self) {
        thread::set_precise(false);
    }
}

/// One thread's figures. In counting mode `live` is what the thread allocated
/// minus what it freed, so it can be negative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadStats {
    /// Kernel thread id; 0 for the `exited` row.
    pub tid: u64,
    /// The thread's name (`comm`), `exited` for the row of ended threads.
    pub name: String,
    /// True for the row that folds every thread that ended.
    pub exited: bool,
    pub live_requested: i64,
    pub live_usable: i64,
    /// Highest `live_requested` seen when the thread published (exact to
    /// within [`FLUSH_BYTES`](crate::FLUSH_BYTES)); for `exited`, the highest
    /// of any ended thread.
    pub peak_requested: i64,
    pub total_requested: u64,
    pub total_usable: u64,
    pub allocations: u64,
    pub deallocations: u64,
    pub reallocations: u64,
}

/// The calling thread's figures, read without a lock or an allocation (the
/// name is left empty). `exited` is true once the thread's counters have been
/// folded into the `exited` row during its teardown; from then on the figures
/// count only what the thread did since.
pub fn this_thread() -> ThreadStats {
    let (t, torn_down) = thread::own();
    let mut stats = ThreadStats::from_raw(t, String::new());
    stats.exited = torn_down;
    stats
}

impl ThreadStats {
    fn from_raw(t: thread::ThreadRaw, name: String) -> ThreadStats {
        ThreadStats {
            tid: t.tid,
            name,
            exited: false,
            live_requested: t.totals.net_requested(),
            live_usable: t.totals.net_usable(),
            peak_requested: t.peak_requested,
            total_requested: t.totals.alloc_requested,
            total_usable: t.totals.alloc_usable,
            allocations: t.totals.allocations,
            deallocations: t.totals.deallocations,
            reallocations: t.reallocations,
        }
    }
}

/// Every live thread (newest first), then the `exited` row.
pub fn threads() -> Vec<ThreadStats> {
    let raw = thread::live_threads();
    let mut out = Vec::with_capacity(raw.len() + 1);
    for t in raw {
        let name = std::fs::read_to_string(format!("/proc/self/task/{}/comm", t.tid))
            .map(|s| s.trim_end().to_string())
            .unwrap_or_else(|_| "?".to_string());
        out.push(ThreadStats::from_raw(t, name));
    }
    let e = &EXITED;
    let alloc_requested = e.alloc_requested.load(Relaxed);
    let alloc_usable = e.alloc_usable.load(Relaxed);
    out.push(ThreadStats {
        tid: 0,
        name: "exited".to_string(),
        exited: true,
        live_requested: alloc_requested.wrapping_sub(e.free_requested.load(Relaxed)) as i64,
        live_usable: alloc_usable.wrapping_sub(e.free_usable.load(Relaxed)) as i64,
        peak_requested: e.peak_requested.load(Relaxed),
        total_requested: alloc_requested,
        total_usable: alloc_usable,
        allocations: e.allocations.load(Relaxed),
        deallocations: e.deallocations.load(Relaxed),
        reallocations: e.reallocations.load(Relaxed),
    });
    out
}

/// How many threads have ended (their figures are in the `exited` row).
pub fn exited_threads() -> u64 {
    EXITED.threads.load(Relaxed)
}
