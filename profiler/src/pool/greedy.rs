//! [`GreedyPool`]: first come, first served, up to a limit.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::{MemoryPool, MemoryReservation, PoolError, checked_release, checked_total};

/// Grants any request that fits under the limit. Invariant: `reserved <=
/// limit`, except for infallible `grow`s, which may exceed it; `reserved`
/// never wraps (a `grow` past `u64::MAX` panics).
#[derive(Debug)]
pub struct GreedyPool {
    limit: u64,
    reserved: AtomicU64,
}

impl GreedyPool {
    /// A pool of `limit` bytes.
    pub fn new(limit: u64) -> Self {
        GreedyPool {
            limit,
            reserved: AtomicU64::new(0),
        }
    }
}

impl MemoryPool for GreedyPool {
    fn name(&self) -> &str {
        "greedy"
    }
    fn limit(&self) -> Option<u64> {
        Some(self.limit)
    }
    fn reserved(&self) -> u64 {
        self.reserved.load(Relaxed)
    }
    fn grow(&self, _reservation: &MemoryReservation, additional: u64) {
        let _ = self.reserved.fetch_update(Relaxed, Relaxed, |used| {
            Some(checked_total(used, additional, "greedy pool"))
        });
    }
    fn shrink(&self, _reservation: &MemoryReservation, shrink: u64) {
        let _ = self.reserved.fetch_update(Relaxed, Relaxed, |used| {
            Some(checked_release(used, shrink, "greedy pool"))
        });
    }
    fn try_grow(&self, reservation: &MemoryReservation, additional: u64) -> Result<(), PoolError> {
        self.reserved
            .fetch_update(Relaxed, Relaxed, |used| {
                used.checked_add(additional).filter(|&n| n <= self.limit)
            })
            .map(|_| ())
            .map_err(|_| PoolError::new(self, reservation.consumer(), additional))
    }
}
