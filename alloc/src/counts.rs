//! [`Counts`]: the six cumulative figures kept for every thread, scope and
//! slot, and the arithmetic on them.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

/// Cumulative counters (or the difference of two readings of them).
/// Every field only grows; live figures are differences.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) alloc_requested: u64,
    pub(crate) free_requested: u64,
    pub(crate) alloc_usable: u64,
    pub(crate) free_usable: u64,
    pub(crate) allocations: u64,
    pub(crate) deallocations: u64,
}

impl Counts {
    /// One free of `requested` (`usable`) bytes.
    pub(crate) const fn free(requested: usize, usable: usize, deallocations: u64) -> Counts {
        Counts {
            alloc_requested: 0,
            free_requested: requested as u64,
            alloc_usable: 0,
            free_usable: usable as u64,
            allocations: 0,
            deallocations,
        }
    }

    /// One allocation of `requested` (`usable`) bytes.
    pub(crate) const fn alloc(requested: usize, usable: usize, allocations: u64) -> Counts {
        Counts {
            alloc_requested: requested as u64,
            free_requested: 0,
            alloc_usable: usable as u64,
            free_usable: 0,
            allocations,
            deallocations: 0,
        }
    }

    /// Field-wise sum (wrapping: counters are cumulative and never near 2^64).
    pub(crate) fn plus(&self, o: &Counts) -> Counts {
        Counts {
            alloc_requested: self.alloc_requested.wrapping_add(o.alloc_requested),
            free_requested: self.free_requested.wrapping_add(o.free_requested),
            alloc_usable: self.alloc_usable.wrapping_add(o.alloc_usable),
            free_usable: self.free_usable.wrapping_add(o.free_usable),
            allocations: self.allocations.wrapping_add(o.allocations),
            deallocations: self.deallocations.wrapping_add(o.deallocations),
        }
    }

    /// Live requested bytes (negative when more was freed than allocated).
    pub(crate) fn net_requested(&self) -> i64 {
        self.alloc_requested.wrapping_sub(self.free_requested) as i64
    }

    /// Live usable bytes.
    pub(crate) fn net_usable(&self) -> i64 {
        self.alloc_usable.wrapping_sub(self.free_usable) as i64
    }

    pub(crate) fn is_empty(&self) -> bool {
        *self == Counts::default()
    }
}

impl Counts {
    fn to_array(self) -> [u64; 6] {
        [
            self.alloc_requested,
            self.free_requested,
            self.alloc_usable,
            self.free_usable,
            self.allocations,
            self.deallocations,
        ]
    }

    fn from_array([a, b, c, d, e, f]: [u64; 6]) -> Counts {
        Counts {
            alloc_requested: a,
            free_requested: b,
            alloc_usable: c,
            free_usable: d,
            allocations: e,
            deallocations: f,
        }
    }
}

/// [`Counts`] in atomics, read by any thread.
pub(crate) struct AtomicCounts {
    fields: [AtomicU64; 6],
}

impl AtomicCounts {
    pub(crate) const fn new() -> Self {
        AtomicCounts {
            fields: [const { AtomicU64::new(0) }; 6],
        }
    }

    pub(crate) fn load(&self) -> Counts {
        Counts::from_array(self.fields.each_ref().map(|f| f.load(Relaxed)))
    }

    /// Adds `c` from any thread (atomic adds, skipping zeros).
    pub(crate) fn add_shared(&self, c: &Counts) {
        for (field, value) in self.fields.iter().zip(c.to_array()) {
            if value != 0 {
                field.fetch_add(value, Relaxed);
            }
        }
    }

    /// Adds `c` with a load and a store per field: only one thread may write.
    pub(crate) fn add_owned(&self, c: &Counts) {
        for (field, value) in self.fields.iter().zip(c.to_array()) {
            field.store(field.load(Relaxed).wrapping_add(value), Relaxed);
        }
    }

    /// Sets every field to 0: only one thread may write.
    pub(crate) fn clear(&self) {
        for field in &self.fields {
            field.store(0, Relaxed);
        }
    }
}

/// Live bytes (requested and usable) as published, and their peaks.
pub(crate) struct PublishedLive {
    requested: AtomicI64,
    usable: AtomicI64,
    pub(crate) peak_requested: AtomicI64,
    pub(crate) peak_usable: AtomicI64,
}

impl PublishedLive {
    pub(crate) const fn new() -> Self {
        PublishedLive {
            requested: AtomicI64::new(0),
            usable: AtomicI64::new(0),
            peak_requested: AtomicI64::new(0),
            peak_usable: AtomicI64::new(0),
        }
    }

    /// Adds a net change of live bytes and raises the peaks with it.
    pub(crate) fn publish(&self, requested: i64, usable: i64) {
        if requested != 0 {
            let live = self.requested.fetch_add(requested, Relaxed) + requested;
            raise(&self.peak_requested, live);
        }
        if usable != 0 {
            let live = self.usable.fetch_add(usable, Relaxed) + usable;
            raise(&self.peak_usable, live);
        }
    }

    /// Sets both peaks.
    pub(crate) fn reset_peaks(&self, requested: i64, usable: i64) {
        self.peak_requested.store(requested, Relaxed);
        self.peak_usable.store(usable, Relaxed);
    }
}

/// Raises `peak` to `value` if it is higher; reads first so that the common
/// case writes nothing.
#[inline]
pub(crate) fn raise(peak: &AtomicI64, value: i64) {
    if value > peak.load(Relaxed) {
        peak.fetch_max(value, Relaxed);
    }
}
