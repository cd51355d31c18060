//! [`Counts`]: the six cumulative figures kept for every thread, scope and
//! slot, and the arithmetic on them.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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

/// [`Counts`] that one thread writes (load and store, no locked
/// read-modify-write) and others read.
pub(crate) struct OwnedCounts {
    alloc_requested: AtomicU64,
    free_requested: AtomicU64,
    alloc_usable: AtomicU64,
    free_usable: AtomicU64,
    allocations: AtomicU64,
    deallocations: AtomicU64,
}

impl OwnedCounts {
    pub(crate) const fn new() -> Self {
        OwnedCounts {
            alloc_requested: AtomicU64::new(0),
            free_requested: AtomicU64::new(0),
            alloc_usable: AtomicU64::new(0),
            free_usable: AtomicU64::new(0),
            allocations: AtomicU64::new(0),
            deallocations: AtomicU64::new(0),
        }
    }

    fn fields(&self) -> [&AtomicU64; 6] {
        [
            &self.alloc_requested,
            &self.free_requested,
            &self.alloc_usable,
            &self.free_usable,
            &self.allocations,
            &self.deallocations,
        ]
    }

    pub(crate) fn load(&self) -> Counts {
        let [a, b, c, d, e, f] = self.fields().map(|x| x.load(Relaxed));
        Counts {
            alloc_requested: a,
            free_requested: b,
            alloc_usable: c,
            free_usable: d,
            allocations: e,
            deallocations: f,
        }
    }

    /// Adds `c`. Only the owning thread may call it.
    pub(crate) fn add(&self, c: &Counts) {
        let values = [
            c.alloc_requested,
            c.free_requested,
            c.alloc_usable,
            c.free_usable,
            c.allocations,
            c.deallocations,
        ];
        for (field, value) in self.fields().into_iter().zip(values) {
            field.store(field.load(Relaxed).wrapping_add(value), Relaxed);
        }
    }

    /// Sets every field to 0. Only the owning thread may call it.
    pub(crate) fn clear(&self) {
        for field in self.fields() {
            field.store(0, Relaxed);
        }
    }
}
