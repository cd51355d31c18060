//! Process-wide and per-thread figures, read from any thread.

use std::sync::atomic::Ordering::Relaxed;

use crate::global::{self, EXITED};
use crate::mode::Attribution;
use crate::scope;
use crate::sys;
use crate::thread::{self, FLUSH_BYTES};

/// The whole process's heap as the tracked allocator saw it.
///
/// Live, total and count figures are exact at the moment of reading: every
/// live thread and the `exited` row are read together, each thread's
/// counters consistently, so cumulative figures never go down between two
/// reads while threads run, allocate, switch scopes and exit. Peaks are
/// raised when threads publish and are at most
/// [`peak_error_bytes`](HeapStats::peak_error_bytes) below the truth.
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
    let (c, reallocations) = thread::process_totals();
    let live_requested = c.net_requested();
    let live_usable = c.net_usable();
    HeapStats {
        live_requested,
        live_usable,
        peak_requested: global::LIVE
            .peak_requested
            .load(Relaxed)
            .max(live_requested),
        peak_usable: global::LIVE.peak_usable.load(Relaxed).max(live_usable),
        total_requested: c.alloc_requested,
        total_usable: c.alloc_usable,
        allocations: c.allocations,
        deallocations: c.deallocations,
        reallocations,
        threads: global::THREADS_LIVE.load(Relaxed),
        peak_error_bytes: peak_error_bytes(),
    }
}

/// Bound on the error of every peak figure (global and per scope), in bytes.
///
/// Each thread publishes its net change (requested and usable bytes alike)
/// before it reaches [`FLUSH_BYTES`](crate::FLUSH_BYTES), and when it leaves
/// a scope, so at any instant the published live value of the process, and
/// of each scope, is within that much per live thread of the true one, and
/// peaks are raised from it. Threads inside [`precise`](crate::precise)
/// publish every operation and add no error.
pub fn peak_error_bytes() -> u64 {
    global::THREADS_MAX.load(Relaxed) * FLUSH_BYTES
}

/// Sets the global peak and every scope's peak to the live value now.
pub fn reset_peak() {
    thread::flush_current();
    let live = heap();
    global::LIVE.reset_peaks(live.live_requested, live.live_usable);
    scope::reset_all_peaks();
}

/// Whether a [`Tracked`](crate::Tracked) allocator has counted anything in
/// this process (false when it is not installed as the global allocator).
pub fn is_installed() -> bool {
    global::ATTRIBUTION.load(Relaxed) != 0
}

/// The attribution mode of the installed [`Tracked`](crate::Tracked)
/// allocator, or `None` when none has counted anything yet.
pub fn attribution() -> Option<Attribution> {
    match global::ATTRIBUTION.load(Relaxed) {
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
    let mut stats = ThreadStats::from_snapshot(t, String::new());
    stats.exited = torn_down;
    stats
}

impl ThreadStats {
    fn from_snapshot(t: thread::ThreadSnapshot, name: String) -> ThreadStats {
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

/// Every live thread (newest first), then the `exited` row, read together:
/// a thread that exits meanwhile is in exactly one of them.
pub fn threads() -> Vec<ThreadStats> {
    let (live, (exited, reallocations, peak)) = thread::thread_snapshots();
    let mut out = Vec::with_capacity(live.len() + 1);
    for t in live {
        let name = sys::thread_name(t.tid).unwrap_or_else(|| "?".to_string());
        out.push(ThreadStats::from_snapshot(t, name));
    }
    out.push(ThreadStats::from_snapshot(
        thread::ThreadSnapshot {
            tid: 0,
            totals: exited,
            reallocations,
            peak_requested: peak,
        },
        "exited".to_string(),
    ));
    if let Some(row) = out.last_mut() {
        row.exited = true;
    }
    out
}

/// How many threads have ended (their figures are in the `exited` row).
pub fn exited_threads() -> u64 {
    EXITED.threads.load(Relaxed)
}
