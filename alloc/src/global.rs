//! Process-wide counters: the published live bytes and their peaks, the
//! `exited` row, the attribution mode, the thread counts.
//!
//! Written on cold paths only (a thread publishing, exiting, or counting
//! after its own counters were torn down).

use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, Ordering::Relaxed};

use crate::cell::raise;
use crate::counts::Counts;

/// Live bytes as published by the threads (each thread holds back less than
/// [`FLUSH_BYTES`](crate::FLUSH_BYTES) of net change); only peaks use them.
static PUBLISHED_REQUESTED: AtomicI64 = AtomicI64::new(0);
static PUBLISHED_USABLE: AtomicI64 = AtomicI64::new(0);
pub(crate) static PEAK_REQUESTED: AtomicI64 = AtomicI64::new(0);
pub(crate) static PEAK_USABLE: AtomicI64 = AtomicI64::new(0);

/// 0: nothing counted yet; otherwise `Attribution as u8 + 1`.
pub(crate) static ATTRIBUTION: AtomicU8 = AtomicU8::new(0);
pub(crate) static THREADS_LIVE: AtomicU64 = AtomicU64::new(0);
pub(crate) static THREADS_MAX: AtomicU64 = AtomicU64::new(0);

/// Adds a net change of live bytes and raises the global peaks with it.
pub(crate) fn publish(requested: i64, usable: i64) {
    if requested != 0 {
        let live = PUBLISHED_REQUESTED.fetch_add(requested, Relaxed) + requested;
        raise(&PEAK_REQUESTED, live);
    }
    if usable != 0 {
        let live = PUBLISHED_USABLE.fetch_add(usable, Relaxed) + usable;
        raise(&PEAK_USABLE, live);
    }
}

/// The row of every thread that ended (and, in a forked child, of the
/// threads that did not survive the fork).
pub(crate) static EXITED: Exited = Exited::new();

pub(crate) struct Exited {
    pub(crate) threads: AtomicU64,
    alloc_requested: AtomicU64,
    free_requested: AtomicU64,
    alloc_usable: AtomicU64,
    free_usable: AtomicU64,
    allocations: AtomicU64,
    deallocations: AtomicU64,
    reallocations: AtomicU64,
    peak_requested: AtomicI64,
}

impl Exited {
    const fn new() -> Self {
        Exited {
            threads: AtomicU64::new(0),
            alloc_requested: AtomicU64::new(0),
            free_requested: AtomicU64::new(0),
            alloc_usable: AtomicU64::new(0),
            free_usable: AtomicU64::new(0),
            allocations: AtomicU64::new(0),
            deallocations: AtomicU64::new(0),
            reallocations: AtomicU64::new(0),
            peak_requested: AtomicI64::new(0),
        }
    }

    /// Adds a thread's counts (at its exit, or one operation after it).
    pub(crate) fn add(&self, c: &Counts, reallocations: u64, peak_requested: i64) {
        for (counter, value) in [
            (&self.alloc_requested, c.alloc_requested),
            (&self.free_requested, c.free_requested),
            (&self.alloc_usable, c.alloc_usable),
            (&self.free_usable, c.free_usable),
            (&self.allocations, c.allocations),
            (&self.deallocations, c.deallocations),
            (&self.reallocations, reallocations),
        ] {
            if value != 0 {
                counter.fetch_add(value, Relaxed);
            }
        }
        raise(&self.peak_requested, peak_requested);
    }

    /// The row's counts, reallocations and highest thread peak.
    pub(crate) fn read(&self) -> (Counts, u64, i64) {
        (
            Counts {
                alloc_requested: self.alloc_requested.load(Relaxed),
                free_requested: self.free_requested.load(Relaxed),
                alloc_usable: self.alloc_usable.load(Relaxed),
                free_usable: self.free_usable.load(Relaxed),
                allocations: self.allocations.load(Relaxed),
                deallocations: self.deallocations.load(Relaxed),
            },
            self.reallocations.load(Relaxed),
            self.peak_requested.load(Relaxed),
        )
    }
}
