//! [`UnboundedPool`]: grants everything, counts what is reserved.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::{ConsumerInfo, MemoryPool, PoolError};

/// A pool without a limit. Invariant: `reserved` is the sum of its reservations.
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
    fn grow(&self, _consumer: &ConsumerInfo, additional: u64) {
        self.reserved.fetch_add(additional, Relaxed);
    }
    fn shrink(&self, _consumer: &ConsumerInfo, shrink: u64) {
        self.reserved.fetch_sub(shrink, Relaxed);
    }
    fn try_grow(&self, consumer: &ConsumerInfo, additional: u64) -> Result<(), PoolError> {
        self.grow(consumer, additional);
        Ok(())
    }
}
