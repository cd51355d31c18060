//! [`GreedyPool`]: first come, first served, up to a limit.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::{ConsumerInfo, MemoryPool, PoolError};

/// Grants any request that fits under the limit. Invariant: `reserved <=
/// limit`, except for infallible `grow`s, which may exceed it.
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
    fn grow(&self, _consumer: &ConsumerInfo, additional: u64) {
        self.reserved.fetch_add(additional, Relaxed);
    }
    fn shrink(&self, _consumer: &ConsumerInfo, shrink: u64) {
        self.reserved.fetch_sub(shrink, Relaxed);
    }
    fn try_grow(&self, consumer: &ConsumerInfo, additional: u64) -> Result<(), PoolError> {
        self.reserved
            .fetch_update(Relaxed, Relaxed, |used| {
                used.checked_add(additional).filter(|&n| n <= self.limit)
            })
            .map(|_| ())
            .map_err(|_| PoolError::new(self, consumer, additional))
    }
}
