//! [`FairSpillPool`]: spillable consumers share what unspillable ones leave.

use std::sync::{Arc, Mutex, MutexGuard};

use super::{ConsumerInfo, MemoryPool, PoolError};

/// DataFusion's fair policy: unspillable consumers take what they need,
/// first come first served; the rest is split evenly between the spillable
/// consumers registered now, each refused once it would exceed its share.
///
/// Invariant: `spillable + unspillable` is the sum of all reservations.
#[derive(Debug)]
pub struct FairSpillPool {
    limit: u64,
    state: Mutex<FairState>,
}

#[derive(Debug, Default)]
struct FairState {
    /// Spillable consumers registered now.
    spillers: u64,
    spillable: u64,
    unspillable: u64,
}

impl FairSpillPool {
    /// A pool of `limit` bytes.
    pub fn new(limit: u64) -> Self {
        FairSpillPool {
            limit,
            state: Mutex::new(FairState::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, FairState> {
        match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

impl MemoryPool for FairSpillPool {
    fn name(&self) -> &str {
        "fair"
    }
    fn limit(&self) -> Option<u64> {
        Some(self.limit)
    }
    fn reserved(&self) -> u64 {
        let s = self.lock();
        s.spillable + s.unspillable
    }
    fn register(&self, consumer: &Arc<ConsumerInfo>) {
        if consumer.can_spill() {
            self.lock().spillers += 1;
        }
    }
    fn unregister(&self, consumer: &Arc<ConsumerInfo>) {
        if consumer.can_spill() {
            let mut s = self.lock();
            s.spillers = s.spillers.saturating_sub(1);
        }
    }
    fn grow(&self, consumer: &ConsumerInfo, additional: u64) {
        let mut s = self.lock();
        if consumer.can_spill() {
            s.spillable += additional;
        } else {
            s.unspillable += additional;
        }
    }
    fn shrink(&self, consumer: &ConsumerInfo, shrink: u64) {
        let mut s = self.lock();
        if consumer.can_spill() {
            s.spillable = s.spillable.saturating_sub(shrink);
        } else {
            s.unspillable = s.unspillable.saturating_sub(shrink);
        }
    }
    fn try_grow(&self, consumer: &ConsumerInfo, additional: u64) -> Result<(), PoolError> {
        let granted = {
            let mut s = self.lock();
            if consumer.can_spill() {
                // Each spiller's share of what unspillable consumers leave.
                let spill_room = self.limit.saturating_sub(s.unspillable);
                let share = spill_room / s.spillers.max(1);
                let available = spill_room.saturating_sub(s.spillable);
                let wanted = consumer.reserved() + additional;
                let ok = wanted <= share && additional <= available;
                if ok {
                    s.spillable += additional;
                }
                ok
            } else {
                let available = self.limit.saturating_sub(s.unspillable + s.spillable);
                let ok = additional <= available;
                if ok {
                    s.unspillable += additional;
                }
                ok
            }
        };
        if granted {
            Ok(())
        } else {
            Err(PoolError::new(self, consumer, additional))
        }
    }
}
