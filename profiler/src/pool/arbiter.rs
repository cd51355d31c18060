//! [`ArbiterPool`]: when a request would cross the limit, spillable
//! consumers are asked to shrink first, the one with the most to give first;
//! the request is then granted or refused.
//!
//! ```text
//!  try_grow(c, n): used + n <= limit ─yes─► grant
//!                        │ no
//!                        ▼  (pool lock released before any callback runs)
//!  other spillable consumers with a callback, largest reservation first:
//!  spill(need) → each shrinks its own reservation → used drops
//!                        ▼
//!  used + n <= limit ? grant : refuse (PoolError names the top consumers)
//! ```

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use super::{ConsumerInfo, MemoryPool, PoolError};
use crate::ledger::ledger;

/// A pool that makes room by asking spillable consumers to spill (the
/// "memory arbiter" idea). Invariant: `used` is the sum of its reservations;
/// callbacks never run while the pool's lock is held.
#[derive(Debug)]
pub struct ArbiterPool {
    limit: u64,
    used: Mutex<u64>,
    /// Mirror of `used` for lock-free reads.
    reserved: AtomicU64,
    consumers: Mutex<Vec<Weak<ConsumerInfo>>>,
}

impl ArbiterPool {
    /// A pool of `limit` bytes.
    pub fn new(limit: u64) -> Self {
        ArbiterPool {
            limit,
            used: Mutex::new(0),
            reserved: AtomicU64::new(0),
            consumers: Mutex::new(Vec::new()),
        }
    }

    fn used(&self) -> MutexGuard<'_, u64> {
        match self.used.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn consumers(&self) -> MutexGuard<'_, Vec<Weak<ConsumerInfo>>> {
        match self.consumers.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Grants `additional` if it fits now.
    fn grant(&self, additional: u64) -> Result<(), u64> {
        let mut used = self.used();
        if *used + additional <= self.limit {
            *used += additional;
            self.reserved.store(*used, Relaxed);
            Ok(())
        } else {
            Err(*used + additional - self.limit)
        }
    }

    /// Spillable consumers other than `asking`, largest reservation first.
    fn candidates(&self, asking: &ConsumerInfo) -> Vec<Arc<ConsumerInfo>> {
        let mut list: Vec<Arc<ConsumerInfo>> = self
            .consumers()
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|c| {
                !std::ptr::eq(Arc::as_ptr(c), asking) && c.spill().is_some() && c.reserved() > 0
            })
            .collect();
        list.sort_by(|a, b| b.reserved().cmp(&a.reserved()).then(a.name().cmp(b.name())));
        list
    }
}

impl MemoryPool for ArbiterPool {
    fn name(&self) -> &str {
        "arbiter"
    }
    fn limit(&self) -> Option<u64> {
        Some(self.limit)
    }
    fn reserved(&self) -> u64 {
        self.reserved.load(Relaxed)
    }
    fn register(&self, consumer: &Arc<ConsumerInfo>) {
        let mut list = self.consumers();
        list.retain(|w| w.strong_count() > 0);
        list.push(Arc::downgrade(consumer));
    }
    fn grow(&self, _consumer: &ConsumerInfo, additional: u64) {
        let mut used = self.used();
        *used += additional;
        self.reserved.store(*used, Relaxed);
    }
    fn shrink(&self, _consumer: &ConsumerInfo, shrink: u64) {
        let mut used = self.used();
        *used = used.saturating_sub(shrink);
        self.reserved.store(*used, Relaxed);
    }
    fn try_grow(&self, consumer: &ConsumerInfo, additional: u64) -> Result<(), PoolError> {
        let Err(mut need) = self.grant(additional) else {
            return Ok(());
        };
        for candidate in self.candidates(consumer) {
            let Some(spill) = candidate.spill() else {
                continue;
            };
            ledger().spilled(candidate.id());
            let released = spill(need as usize) as u64;
            need = need.saturating_sub(released);
            if need == 0 {
                break;
            }
        }
        self.grant(additional)
            .map_err(|_| PoolError::new(self, consumer, additional))
    }
}
