//! [`AuditedPool`]: DataFusion's `MemoryPool` trait around any DataFusion
//! pool, feeding memledger's ledger.
//!
//! ```text
//!   operator (inside its scope, see `scoped`)
//!        │ MemoryConsumer::register / try_grow / grow / shrink
//!        ▼
//!   AuditedPool ──forwards every call unchanged──► inner pool (FairSpillPool, GreedyMemoryPool, TrackConsumersPool, …)
//!        │ after the inner pool answered
//!        ▼
//!   memledger_profiler::ledger(): reserved now/peak per consumer, tied to the scope
//!   that was current when the consumer registered (the operator's scope)
//! ```
//!
//! The wrapper never changes a decision: grants, refusals and error values
//! are the inner pool's own (a refusal is recorded, then returned as is).
//! Downcasting the runtime's pool finds this wrapper; [`AuditedPool::inner`]
//! gives the wrapped one.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use datafusion::common::Result;
use datafusion_execution::memory_pool::{
    MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
};
use memledger_alloc::Scope;
use memledger_profiler::{ConsumerId, ConsumerStats, Ledger, ledger};

/// A DataFusion [`MemoryPool`] that forwards to `inner` and records every
/// reservation in memledger's ledger.
pub struct AuditedPool {
    inner: Arc<dyn MemoryPool>,
    /// DataFusion consumer id -> ledger id, for registered consumers.
    live: Mutex<HashMap<usize, ConsumerId>>,
    /// This pool's key in the ledger, which keeps its consumers' rows
    /// (folded once they unregister, so a long-lived pool stays bounded).
    key: usize,
}

impl AuditedPool {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn MemoryPool>) -> Self {
        AuditedPool {
            inner,
            live: Mutex::new(HashMap::new()),
            key: Ledger::new_pool_key(),
        }
    }

    /// The wrapped pool.
    pub fn inner(&self) -> &Arc<dyn MemoryPool> {
        &self.inner
    }

    /// The ledger's figures for every consumer this pool has seen, in
    /// registration order: live ones, and one row per name (and scope) for
    /// those that unregistered, with their largest peak
    /// ([`ConsumerStats::registrations`] says how many it stands for).
    pub fn consumers(&self) -> Vec<ConsumerStats> {
        ledger().consumers_in_pool(self.key)
    }

    fn id_of(&self, reservation: &MemoryReservation) -> Option<ConsumerId> {
        lock(&self.live).get(&reservation.consumer().id()).copied()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl fmt::Debug for AuditedPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditedPool")
            .field("inner", &self.inner)
            .finish()
    }
}

impl fmt::Display for AuditedPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "audited({})", self.inner)
    }
}

impl MemoryPool for AuditedPool {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.inner.register(consumer);
        // The operator registers from inside its own scope; outside any
        // scope, the consumer gets the scope of its own name.
        let scope = match Scope::current() {
            Scope::UNSCOPED => Scope::new(consumer.name()),
            scope => scope,
        };
        let id = ledger().register_in_pool(consumer.name(), consumer.can_spill(), scope, self.key);
        lock(&self.live).insert(consumer.id(), id);
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.inner.unregister(consumer);
        if let Some(id) = lock(&self.live).remove(&consumer.id()) {
            ledger().unregister(id);
        }
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.inner.grow(reservation, additional);
        if let Some(id) = self.id_of(reservation) {
            ledger().grow(id, additional);
        }
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.inner.shrink(reservation, shrink);
        if let Some(id) = self.id_of(reservation) {
            ledger().shrink(id, shrink);
        }
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        let result = self.inner.try_grow(reservation, additional);
        if let Some(id) = self.id_of(reservation) {
            match &result {
                Ok(()) => ledger().grow(id, additional),
                Err(_) => ledger().refused(id),
            }
        }
        result
    }

    fn reserved(&self) -> usize {
        self.inner.reserved()
    }

    fn memory_limit(&self) -> MemoryLimit {
        self.inner.memory_limit()
    }
}
