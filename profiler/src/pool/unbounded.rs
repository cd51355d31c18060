//! [`UnboundedPool`]: grants everything, counts what is reserved.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::{MemoryPool, MemoryReservation, PoolError, checked_release, checked_total};

/// A pool without a limit. Invariant: `reserved` is the sum of its
/// reservations; it never wraps: a `try_grow` whose total would not fit in a
/// `u64` is refused, a `grow` that would overflow panics.
#[derive(Debug, Default)]
pub struct UnboundedPool {
    reserved: AtomicU64,
}

impl UnboundedPool {
    /// An empty pool.
    pub fn new() -> Self {
        Self::default()
    }
}

impl MemoryPool for UnboundedPool {
    fn name(&self) -> &str {
        "unbounded"
    }
    fn limit(&self) -> Option<u64> {
        None
    }
    fn reserved(&self) -> u64 {
        self.reserved.load(Relaxed)
    }
    fn grow(&self, _reservation: &MemoryReservation, additional: u64) {
        let _ = self.reserved.fetch_update(Relaxed, Relaxed, |used| {
            Some(checked_total(used, additional, "unbounded pool"))
        });
    }
    fn shrink(&self, _reservation: &MemoryReservation, shrink: u64) {
        let _ = self.reserved.fetch_update(Relaxed, Relaxed, |used| {
            Some(checked_release(used, shrink, "unbounded pool"))
        });
    }
    fn try_grow(&self, reservation: &MemoryReservation, additional: u64) -> Result<(), PoolError> {
        self.reserved
            .fetch_update(Relaxed, Relaxed, |used| used.checked_add(additional))
            .map(|_| ())
            .map_err(|_| PoolError::new(self, reservation.consumer(), additional))
    }
}
