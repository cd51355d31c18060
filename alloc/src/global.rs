//! Process-wide counters: the published live bytes and their peaks, the
//! `exited` row, the attribution mode, the thread counts.
//!
//! Written on cold paths only (a thread publishing, exiting, or counting
//! after its own counters were torn down).

use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, Ordering::Relaxed};

use crate::counts::{AtomicCounts, Counts, PublishedLive, raise};

/// Live bytes as published by the threads (each thread holds back less than
/// [`FLUSH_BYTES`](crate::FLUSH_BYTES) of net change), and the global peaks.
pub(crate) static LIVE: PublishedLive = PublishedLive::new();

/// 0: nothing counted yet; otherwise `Attribution as u8 + 1`.
pub(crate) static ATTRIBUTION: AtomicU8 = AtomicU8::new(0);
pub(crate) static THREADS_LIVE: AtomicU64 = AtomicU64::new(0);
pub(crate) static THREADS_MAX: AtomicU64 = AtomicU64::new(0);

/// The row of every thread that ended (and, in a forked child, of the
/// threads that did not survive the fork).
pub(crate) static EXITED: Exited = Exited::new();

pub(crate) struct Exited {
    pub(crate) threads: AtomicU64,
    counts: AtomicCounts,
    reallocations: AtomicU64,
    peak_requested: AtomicI64,
}

impl Exited {
    const fn new() -> Self {
        Exited {
            threads: AtomicU64::new(0),
            counts: AtomicCounts::new(),
            reallocations: AtomicU64::new(0),
            peak_requested: AtomicI64::new(0),
        }
    }

    /// Adds a thread's counts (at its exit, or one operation after it).
    pub(crate) fn add(&self, c: &Counts, reallocations: u64, peak_requested: i64) {
        self.counts.add_shared(c);
        if reallocations != 0 {
            self.reallocations.fetch_add(reallocations, Relaxed);
        }
        raise(&self.peak_requested, peak_requested);
    }

    /// The row's counts, reallocations and highest thread peak.
    pub(crate) fn read(&self) -> (Counts, u64, i64) {
        (
            self.counts.load(),
            self.reallocations.load(Relaxed),
            self.peak_requested.load(Relaxed),
        )
    }
}
