//! [`ArbiterPool`]: when a request would cross the threshold, spillable
//! consumers are asked to shrink first, the one with the most to give first;
//! the request is then granted or refused against the limit.
//!
//! ```text
//!  try_grow(c, n): used + n <= threshold ─yes─► grant
//!                        │ no: need = used + n - threshold
//!                        ▼  (pool lock released before any callback runs)
//!  other spillable consumers with a callback, not busy themselves,
//!  largest reservation first:
//!  spill(need) → each shrinks its own reservation → used drops → need drops
//!                        ▼  until need is 0 or nobody is left to ask
//!  used + n <= limit ? grant : refuse (PoolError names the top consumers)
//! ```
//!
//! With the threshold at the limit (the default, [`ArbiterPool::new`]) the
//! pool spills only what it must; a lower threshold
//! ([`ArbiterPool::with_threshold`]) spills early and keeps headroom for
//! memory the reservations do not cover.
//!
//! Spilling cannot deadlock: see [the rules](super#spilling-never-deadlocks).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use super::{
    ConsumerInfo, MemoryPool, MemoryReservation, PoolError, checked_release, checked_total,
};

/// A pool that makes room by asking spillable consumers to spill (the
/// "memory arbiter" idea). Invariants: `used` is the sum of its
/// reservations and never wraps; `threshold <= limit`; callbacks never run
/// while the pool's locks are held, so a callback may shrink its reservation
/// (which calls back into the pool).
///
/// A consumer is asked only when another consumer's request needs room (it
/// handles its own refusals), only if it registered a callback
/// ([`MemoryConsumer::with_spill`](crate::MemoryConsumer::with_spill)),
/// holds a reservation and is not busy ([`ConsumerInfo::is_busy`]: asking
/// a pool itself, when its operator may be holding its own lock while it
/// waits, or already spilling); each is asked at most once per request, for
/// the bytes still missing. So two operators that hold their own locks
/// while asking never wait on each other. What a callback returns is taken as
/// information; the pool trusts only its own count of what was shrunk.
///
/// Callbacks must not block (use `try_lock` on the operator's state and
/// return 0 when it is busy): the pool waits for each callback to return.
#[derive(Debug)]
pub struct ArbiterPool {
    limit: u64,
    threshold: u64,
    used: Mutex<u64>,
    /// Mirror of `used` for lock-free reads.
    reserved: AtomicU64,
    consumers: Mutex<Vec<Weak<ConsumerInfo>>>,
}

impl ArbiterPool {
    /// A pool of `limit` bytes that spills when a request would cross the limit.
    pub fn new(limit: u64) -> Self {
        Self::with_threshold(limit, limit)
    }

    /// A pool of `limit` bytes that asks consumers to spill as soon as a
    /// request would take the reserved total past `threshold` bytes (clamped
    /// to `limit`), and refuses only past `limit`.
    pub fn with_threshold(limit: u64, threshold: u64) -> Self {
        ArbiterPool {
            limit,
            threshold: threshold.min(limit),
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

    /// The spill threshold in bytes (at most the limit).
    pub fn threshold(&self) -> u64 {
        self.threshold
    }

    /// Grants `additional` if the total stays within `bound`; otherwise
    /// returns by how many bytes it would exceed it (`None`: the total does
    /// not even fit in a `u64`, no spill can help).
    fn grant(&self, additional: u64, bound: u64) -> Result<(), Option<u64>> {
        let mut used = self.used();
        let Some(total) = used.checked_add(additional) else {
            return Err(None);
        };
        if total <= bound {
            *used = total;
            self.reserved.store(total, Relaxed);
            Ok(())
        } else {
            Err(Some(total - bound))
        }
    }

    /// Spillable consumers other than `asking` that are not busy, largest
    /// reservation first.
    fn candidates(&self, asking: &ConsumerInfo) -> Vec<Arc<ConsumerInfo>> {
        let mut list: Vec<Arc<ConsumerInfo>> = self
            .consumers()
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|c| {
                !std::ptr::eq(Arc::as_ptr(c), asking)
                    && c.spill().is_some()
                    && c.reserved() > 0
                    && !c.is_busy()
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
    fn unregister(&self, consumer: &Arc<ConsumerInfo>) {
        let gone = Arc::as_ptr(consumer);
        self.consumers()
            .retain(|w| w.strong_count() > 0 && !std::ptr::eq(w.as_ptr(), gone));
    }
    fn grow(&self, _reservation: &MemoryReservation, additional: u64) {
        let mut used = self.used();
        *used = checked_total(*used, additional, "arbiter pool");
        self.reserved.store(*used, Relaxed);
    }
    fn shrink(&self, _reservation: &MemoryReservation, shrink: u64) {
        let mut used = self.used();
        *used = checked_release(*used, shrink, "arbiter pool");
        self.reserved.store(*used, Relaxed);
    }
    fn try_grow(&self, reservation: &MemoryReservation, additional: u64) -> Result<(), PoolError> {
        let consumer = reservation.consumer();
        let refused = || PoolError::new(self, consumer, additional);
        let mut need = match self.grant(additional, self.threshold) {
            Ok(()) => return Ok(()),
            Err(None) => return Err(refused()),
            Err(Some(need)) => need,
        };
        for candidate in self.candidates(consumer) {
            // `None`: it became busy since the list was made; not asked.
            let Some(released) = candidate.ask_to_spill(need as usize) else {
                continue;
            };
            need = need.saturating_sub(released);
            if need == 0 {
                break;
            }
        }
        self.grant(additional, self.limit).map_err(|_| refused())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::{MemoryConsumer, MemoryPool, MemoryReservation};

    type Slot = Arc<Mutex<Option<MemoryReservation>>>;

    /// A consumer whose callback frees its whole reservation.
    fn spiller(pool: &Arc<dyn MemoryPool>, name: &str, bytes: usize) -> Slot {
        let slot: Slot = Arc::new(Mutex::new(None));
        let weak = Arc::downgrade(&slot);
        let mut r = MemoryConsumer::new(name)
            .with_spill(Arc::new(move |_wanted| {
                weak.upgrade()
                    .and_then(|s| s.try_lock().ok()?.as_mut().map(MemoryReservation::free))
                    .unwrap_or(0)
            }))
            .register(pool);
        r.try_grow(bytes).unwrap();
        *slot.lock().unwrap() = Some(r);
        slot
    }

    fn size(slot: &Slot) -> usize {
        slot.lock()
            .unwrap()
            .as_ref()
            .map_or(0, MemoryReservation::size)
    }

    #[test]
    fn a_threshold_below_the_limit_spills_early_and_still_grants_up_to_the_limit() {
        let pool: Arc<dyn MemoryPool> = Arc::new(ArbiterPool::with_threshold(1000, 800));
        let sorter = spiller(&pool, "threshold-sorter", 500);
        let mut join = MemoryConsumer::new("threshold-join").register(&pool);
        join.try_grow(200).unwrap();
        assert_eq!(size(&sorter), 500, "700 <= 800: nobody asked");
        // 900 > 800: the sorter is asked and spills its 500.
        join.try_grow(200).unwrap();
        assert_eq!((size(&sorter), pool.reserved()), (0, 400));
        // Nobody left to ask: granted up to the limit, refused past it.
        join.try_grow(600).unwrap();
        assert_eq!(pool.reserved(), 1000);
        assert!(join.try_grow(1).is_err());
    }

    #[test]
    fn a_callback_that_claims_more_than_it_released_does_not_fool_the_pool() {
        let pool: Arc<dyn MemoryPool> = Arc::new(ArbiterPool::new(1000));
        let mut liar = MemoryConsumer::new("threshold-liar")
            .with_spill(Arc::new(|wanted| wanted))
            .register(&pool);
        liar.try_grow(600).unwrap();
        let honest = spiller(&pool, "threshold-honest", 300);
        let mut join = MemoryConsumer::new("threshold-join2").register(&pool);
        // Needs 400 back: the liar (largest) frees nothing, the honest one 300: refused.
        assert!(join.try_grow(500).is_err());
        assert_eq!((size(&honest), liar.size(), pool.reserved()), (0, 600, 600));
        let threshold = ArbiterPool::with_threshold(100, 5000).threshold();
        assert_eq!(threshold, 100, "clamped to the limit");
    }
}
