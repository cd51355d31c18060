//! [`FairSpillPool`]: spillable consumers share what unspillable ones leave.

use std::sync::{Arc, Mutex, MutexGuard};

use super::{
    ConsumerInfo, MemoryPool, MemoryReservation, PoolError, checked_release, checked_total,
};

/// DataFusion's fair policy, rule for rule as in DataFusion 55
/// (`FairSpillPool` in `datafusion-execution`):
///
/// - an unspillable consumer gets `n` more bytes when `n <= limit -
///   (unspillable + spillable)` (0 when that is negative): first come,
///   first served;
/// - a spillable one gets them when `size + n <= (limit - unspillable) /
///   spillers` (0 when negative; no division with no spiller registered),
///   where `size` is what the asking *reservation* holds (a split-off
///   reservation counts apart) and `spillers` the spillable consumers
///   registered now. Nothing else is checked: as in DataFusion, the total
///   can pass the limit (a spiller granted its share before unspillable
///   consumers grew or other spillers registered keeps it).
///
/// Where DataFusion would overflow (a sum past `u64::MAX`), this pool
/// refuses the request instead.
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

impl FairState {
    /// The total the request of `additional` bytes on a reservation of
    /// `size` bytes may take (spillable or unspillable), if granted.
    fn grant(&self, limit: u64, can_spill: bool, size: u64, additional: u64) -> Option<u64> {
        if can_spill {
            let spill_room = limit.saturating_sub(self.unspillable);
            let share = spill_room.checked_div(self.spillers).unwrap_or(spill_room);
            let wanted = size.checked_add(additional)?;
            if wanted > share {
                return None;
            }
            let spillable = self.spillable.checked_add(additional)?;
            spillable.checked_add(self.unspillable)?;
            Some(spillable)
        } else {
            let available = self
                .unspillable
                .checked_add(self.spillable)
                .map_or(0, |used| limit.saturating_sub(used));
            if available < additional {
                return None;
            }
            let unspillable = self.unspillable.checked_add(additional)?;
            unspillable.checked_add(self.spillable)?;
            Some(unspillable)
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
        // Both parts are sums of reservations that were checked on the way in.
        checked_total(s.spillable, s.unspillable, "fair pool")
    }
    fn register(&self, consumer: &Arc<ConsumerInfo>) {
        if consumer.can_spill() {
            let mut s = self.lock();
            s.spillers = checked_total(s.spillers, 1, "fair pool spillers");
        }
    }
    fn unregister(&self, consumer: &Arc<ConsumerInfo>) {
        if consumer.can_spill() {
            let mut s = self.lock();
            s.spillers = checked_release(s.spillers, 1, "fair pool spillers");
        }
    }
    fn grow(&self, reservation: &MemoryReservation, additional: u64) {
        let mut s = self.lock();
        let total = checked_total(s.spillable, s.unspillable, "fair pool");
        checked_total(total, additional, "fair pool");
        if reservation.consumer().can_spill() {
            s.spillable = checked_total(s.spillable, additional, "fair pool");
        } else {
            s.unspillable = checked_total(s.unspillable, additional, "fair pool");
        }
    }
    fn shrink(&self, reservation: &MemoryReservation, shrink: u64) {
        let mut s = self.lock();
        if reservation.consumer().can_spill() {
            s.spillable = checked_release(s.spillable, shrink, "fair pool");
        } else {
            s.unspillable = checked_release(s.unspillable, shrink, "fair pool");
        }
    }
    fn try_grow(&self, reservation: &MemoryReservation, additional: u64) -> Result<(), PoolError> {
        let consumer = reservation.consumer();
        let can_spill = consumer.can_spill();
        let granted = {
            let mut s = self.lock();
            let size = reservation.size() as u64;
            match s.grant(self.limit, can_spill, size, additional) {
                Some(total) if can_spill => {
                    s.spillable = total;
                    true
                }
                Some(total) => {
                    s.unspillable = total;
                    true
                }
                None => false,
            }
        };
        if granted {
            Ok(())
        } else {
            Err(PoolError::new(self, consumer, additional))
        }
    }
}
