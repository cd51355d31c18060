//! The ledger: what every consumer has reserved, now and at its peak.
//!
//! One ledger per process ([`ledger`]). Every pool of this crate feeds it
//! through [`MemoryReservation`](crate::MemoryReservation); a foreign pool
//! (a DataFusion `MemoryPool` wrapper, say) feeds it directly with
//! [`Ledger::register`], [`Ledger::grow`] and [`Ledger::shrink`]. Each
//! consumer is tied to a scope, so the audit can hold what it reserved
//! against what its code allocated.
//!
//! Updates take one short lock; the process-wide reserved total and its peak
//! are atomics, readable without it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use memledger_alloc::Scope;

/// A consumer's handle in the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConsumerId(u64);

/// One consumer's figures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerStats {
    pub id: ConsumerId,
    pub name: String,
    /// The scope its reservation is held against.
    pub scope: Scope,
    pub can_spill: bool,
    /// Bytes reserved now.
    pub reserved: u64,
    /// Highest `reserved` since it registered.
    pub reserved_peak: u64,
    /// Reservation requests the pool refused.
    pub refusals: u64,
    /// Times the pool asked it to spill.
    pub spills: u64,
    /// False once it unregistered (its figures stay).
    pub live: bool,
}

/// The instant of the highest total reserved, as the ledger saw it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReservedPeak {
    /// Milliseconds since the ledger was first used.
    pub t_ms: u64,
    pub reserved: u64,
    /// Global live heap (requested) at that instant.
    pub heap_live: i64,
}

#[derive(Default)]
struct State {
    consumers: Vec<ConsumerStats>,
    last_changed: Option<usize>,
    /// Scope id -> (external bytes now, peak).
    external: HashMap<u32, (u64, u64)>,
    reserved_peak: ReservedPeak,
}

/// The process-wide ledger of reservations. See the module docs.
pub struct Ledger {
    state: Mutex<State>,
    reserved: AtomicU64,
    reserved_peak: AtomicU64,
    start: Instant,
}

/// The process's ledger.
pub fn ledger() -> &'static Ledger {
    static LEDGER: OnceLock<Ledger> = OnceLock::new();
    LEDGER.get_or_init(|| Ledger {
        state: Mutex::new(State::default()),
        reserved: AtomicU64::new(0),
        reserved_peak: AtomicU64::new(0),
        start: Instant::now(),
    })
}

impl Ledger {
    fn lock(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Adds a consumer tied to `scope`.
    pub fn register(&self, name: &str, can_spill: bool, scope: Scope) -> ConsumerId {
        let mut state = self.lock();
        let id = ConsumerId(state.consumers.len() as u64);
        state.consumers.push(ConsumerStats {
            id,
            name: name.to_string(),
            scope,
            can_spill,
            reserved: 0,
            reserved_peak: 0,
            refusals: 0,
            spills: 0,
            live: true,
        });
        id
    }

    /// Records `bytes` more reserved by `id`.
    pub fn grow(&self, id: ConsumerId, bytes: usize) {
        let bytes = bytes as u64;
        let mut state = self.lock();
        let Some(c) = state.consumers.get_mut(id.0 as usize) else {
            return;
        };
        c.reserved += bytes;
        c.reserved_peak = c.reserved_peak.max(c.reserved);
        state.last_changed = Some(id.0 as usize);
        let total = self.reserved.fetch_add(bytes, Relaxed) + bytes;
        if total > self.reserved_peak.load(Relaxed) {
            self.reserved_peak.store(total, Relaxed);
            state.reserved_peak = ReservedPeak {
                t_ms: self.start.elapsed().as_millis() as u64,
                reserved: total,
                heap_live: memledger_alloc::heap().live_requested,
            };
        }
    }

    /// Records `bytes` less reserved by `id` (never below zero).
    pub fn shrink(&self, id: ConsumerId, bytes: usize) {
        let mut state = self.lock();
        let Some(c) = state.consumers.get_mut(id.0 as usize) else {
            return;
        };
        let bytes = (bytes as u64).min(c.reserved);
        c.reserved -= bytes;
        state.last_changed = Some(id.0 as usize);
        self.reserved.fetch_sub(bytes, Relaxed);
    }

    /// Records a request the pool refused.
    pub fn refused(&self, id: ConsumerId) {
        if let Some(c) = self.lock().consumers.get_mut(id.0 as usize) {
            c.refusals += 1;
        }
    }

    /// Records that the pool asked `id` to spill.
    pub fn spilled(&self, id: ConsumerId) {
        if let Some(c) = self.lock().consumers.get_mut(id.0 as usize) {
            c.spills += 1;
        }
    }

    /// Marks `id` gone; whatever it still had reserved is released.
    pub fn unregister(&self, id: ConsumerId) {
        let mut state = self.lock();
        if let Some(c) = state.consumers.get_mut(id.0 as usize) {
            self.reserved.fetch_sub(c.reserved, Relaxed);
            c.reserved = 0;
            c.live = false;
        }
    }

    /// Bytes reserved by all consumers now.
    pub fn reserved(&self) -> u64 {
        self.reserved.load(Relaxed)
    }

    /// Highest [`reserved`](Ledger::reserved) so far.
    pub fn reserved_peak(&self) -> u64 {
        self.reserved_peak.load(Relaxed)
    }

    /// When the reserved total peaked, with the heap at that instant.
    pub fn reserved_peak_instant(&self) -> ReservedPeak {
        self.lock().reserved_peak
    }

    /// Every consumer so far, in registration order.
    pub fn consumers(&self) -> Vec<ConsumerStats> {
        self.lock().consumers.clone()
    }

    /// The name of the consumer whose reservation changed last.
    pub fn last_changed(&self) -> Option<String> {
        let state = self.lock();
        state
            .last_changed
            .and_then(|i| state.consumers.get(i))
            .map(|c| c.name.clone())
    }

    /// Per scope: reserved now and the sum of its consumers' peaks.
    pub fn reserved_by_scope(&self) -> Vec<(Scope, u64, u64)> {
        let state = self.lock();
        let mut by: Vec<(Scope, u64, u64)> = Vec::new();
        for c in &state.consumers {
            match by.iter_mut().find(|(s, _, _)| *s == c.scope) {
                Some(entry) => {
                    entry.1 += c.reserved;
                    entry.2 += c.reserved_peak;
                }
                None => by.push((c.scope, c.reserved, c.reserved_peak)),
            }
        }
        by
    }

    /// Reserved now by the consumers of one scope.
    pub fn reserved_in(&self, scope: Scope) -> (u64, u64) {
        let state = self.lock();
        state
            .consumers
            .iter()
            .filter(|c| c.scope == scope)
            .fold((0, 0), |(now, peak), c| {
                (now + c.reserved, peak + c.reserved_peak)
            })
    }

    /// Sets the bytes `scope` holds outside the global allocator (mmap,
    /// foreign buffers). Shown separately, never mixed into heap figures.
    pub fn report_external(&self, scope: Scope, bytes: u64) {
        let mut state = self.lock();
        let entry = state.external.entry(scope.id()).or_insert((0, 0));
        entry.0 = bytes;
        entry.1 = entry.1.max(bytes);
    }

    /// External bytes per scope: (scope, now, peak).
    pub fn external(&self) -> Vec<(Scope, u64, u64)> {
        let state = self.lock();
        let scopes = memledger_alloc::scopes();
        let mut out: Vec<(Scope, u64, u64)> = state
            .external
            .iter()
            .filter_map(|(id, (now, peak))| {
                scopes.get(*id as usize).map(|s| (s.scope, *now, *peak))
            })
            .collect();
        out.sort_by_key(|(s, _, _)| s.id());
        out
    }

    /// Milliseconds since the ledger was first used.
    pub fn elapsed_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
}
