//! The ledger: what every consumer has reserved, now and at its peak, and
//! what every scope's consumers have reserved together.
//!
//! One ledger per process ([`ledger`]). Every pool of this crate feeds it
//! through [`MemoryReservation`](crate::MemoryReservation); a foreign pool
//! (a DataFusion `MemoryPool` wrapper, say) feeds it directly with
//! [`Ledger::register`], [`Ledger::grow`] and [`Ledger::shrink`]. Each
//! consumer is tied to a scope, so the audit ([`crate::audit`]) can hold what
//! it reserved against what its code allocated.
//!
//! ```text
//!   grow / shrink (consumer id, bytes)
//!        │  one short lock
//!        ▼
//!   per consumer: reserved, reserved_peak, refusals, spills
//!   per scope:    reserved, reserved_peak (the peak of the scope's sum)
//!   process:      reserved, reserved_peak (atomics, read without the lock)
//!                 + the instant of the reserved peak, with the heap then
//! ```
//!
//! Cost: about 30 ns per change, and about 80 ns more when the change sets a
//! new process-wide reserved peak, because the ledger then reads the heap
//! ([`memledger_alloc::heap`]) to record the time-aligned value. The ledger
//! never calls into a pool and never runs a callback.
//!
//! Rows of consumers that unregistered stay (with their peaks) for the
//! report; the ledger grows by one row per registration (about 100 bytes
//! plus the name), allocated in the profiler's internal scope so that user
//! figures leave it out.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use memledger_alloc::Scope;

use crate::internal::internal_scope;

/// A consumer's handle in the ledger, returned by [`Ledger::register`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConsumerId(u64);

/// One consumer's figures, as [`Ledger::consumers`] returns them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerStats {
    /// Its handle.
    pub id: ConsumerId,
    /// Its name (`ExternalSorter[0]`); names need not be unique.
    pub name: String,
    /// The scope its reservation is held against.
    pub scope: Scope,
    /// Whether it can spill to release memory.
    pub can_spill: bool,
    /// Bytes reserved now.
    pub reserved: u64,
    /// Highest `reserved` since it registered, in bytes.
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
    /// The process-wide reserved bytes then (the peak).
    pub reserved: u64,
    /// Global live heap (requested bytes) at that instant; 0 without the
    /// tracked allocator.
    pub heap_live: i64,
}

/// External bytes of one scope: memory outside the global allocator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct External {
    /// The scope that reported them.
    pub scope: Scope,
    /// Bytes now (the last value reported).
    pub bytes: u64,
    /// Highest value reported.
    pub peak_bytes: u64,
}

struct Row {
    stats: ConsumerStats,
    /// Which pool of this crate the consumer belongs to (0: registered
    /// directly, by a foreign pool).
    pool_key: usize,
}

#[derive(Default)]
struct State {
    consumers: Vec<Row>,
    last_changed: Option<usize>,
    /// Scope -> reserved now and peak of its consumers together.
    scopes: HashMap<Scope, (u64, u64)>,
    /// Scope -> (external bytes now, peak).
    external: HashMap<Scope, (u64, u64)>,
    reserved_peak: ReservedPeak,
}

/// The process-wide ledger of reservations. See the module docs.
pub struct Ledger {
    state: Mutex<State>,
    reserved: AtomicU64,
    reserved_peak: AtomicU64,
    start: Instant,
}

/// The process's ledger (created on first use; its clock starts then).
pub fn ledger() -> &'static Ledger {
    static LEDGER: OnceLock<Ledger> = OnceLock::new();
    LEDGER.get_or_init(|| Ledger {
        state: Mutex::new(State::default()),
        reserved: AtomicU64::new(0),
        reserved_peak: AtomicU64::new(0),
        start: Instant::now(),
    })
}

/// Sets the bytes `scope` holds outside the global allocator (mmap'd files,
/// buffers of a foreign allocator), in the process's ledger. Shorthand for
/// [`Ledger::report_external`].
pub fn report_external(scope: Scope, bytes: u64) {
    ledger().report_external(scope, bytes);
}

impl State {
    fn scope_add(&mut self, scope: Scope, bytes: u64) {
        let entry = self.scopes.entry(scope).or_insert((0, 0));
        entry.0 += bytes;
        entry.1 = entry.1.max(entry.0);
    }

    fn scope_sub(&mut self, scope: Scope, bytes: u64) {
        if let Some(entry) = self.scopes.get_mut(&scope) {
            entry.0 = entry.0.saturating_sub(bytes);
        }
    }
}

impl Ledger {
    fn lock(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Adds a consumer named `name` tied to `scope`, reserving nothing yet.
    /// Used by pools outside this crate; this crate's pools register through
    /// [`MemoryConsumer::register`](crate::MemoryConsumer::register).
    pub fn register(&self, name: &str, can_spill: bool, scope: Scope) -> ConsumerId {
        self.register_in_pool(name, can_spill, scope, 0)
    }

    /// [`register`](Self::register), remembering the pool (any nonzero key
    /// that identifies it) so a refusal names only that pool's consumers.
    pub(crate) fn register_in_pool(
        &self,
        name: &str,
        can_spill: bool,
        scope: Scope,
        pool_key: usize,
    ) -> ConsumerId {
        // The row is the profiler's bookkeeping, kept for the report.
        let _own = internal_scope().enter();
        let mut state = self.lock();
        let id = ConsumerId(state.consumers.len() as u64);
        state.consumers.push(Row {
            stats: ConsumerStats {
                id,
                name: name.to_string(),
                scope,
                can_spill,
                reserved: 0,
                reserved_peak: 0,
                refusals: 0,
                spills: 0,
                live: true,
            },
            pool_key,
        });
        state.scopes.entry(scope).or_insert((0, 0));
        id
    }

    /// Records `bytes` more reserved by `id`. An unknown id is ignored.
    pub fn grow(&self, id: ConsumerId, bytes: usize) {
        let bytes = bytes as u64;
        let mut state = self.lock();
        let Some(row) = state.consumers.get_mut(id.0 as usize) else {
            return;
        };
        let c = &mut row.stats;
        c.reserved += bytes;
        c.reserved_peak = c.reserved_peak.max(c.reserved);
        let scope = c.scope;
        state.scope_add(scope, bytes);
        state.last_changed = Some(id.0 as usize);
        // Every total change happens under the lock, so load-then-store is exact.
        let total = self.reserved.fetch_add(bytes, Relaxed) + bytes;
        if total > self.reserved_peak.load(Relaxed) {
            self.reserved_peak.store(total, Relaxed);
            state.reserved_peak = ReservedPeak {
                t_ms: self.elapsed_ms(),
                reserved: total,
                heap_live: memledger_alloc::heap().live_requested,
            };
        }
    }

    /// Records `bytes` less reserved by `id` (never below zero). An unknown
    /// id is ignored.
    pub fn shrink(&self, id: ConsumerId, bytes: usize) {
        let mut state = self.lock();
        let Some(row) = state.consumers.get_mut(id.0 as usize) else {
            return;
        };
        let c = &mut row.stats;
        let bytes = (bytes as u64).min(c.reserved);
        c.reserved -= bytes;
        let scope = c.scope;
        state.scope_sub(scope, bytes);
        state.last_changed = Some(id.0 as usize);
        self.reserved.fetch_sub(bytes, Relaxed);
    }

    /// Records a request the pool refused.
    pub fn refused(&self, id: ConsumerId) {
        if let Some(row) = self.lock().consumers.get_mut(id.0 as usize) {
            row.stats.refusals += 1;
        }
    }

    /// Records that the pool asked `id` to spill.
    pub fn spilled(&self, id: ConsumerId) {
        if let Some(row) = self.lock().consumers.get_mut(id.0 as usize) {
            row.stats.spills += 1;
        }
    }

    /// Marks `id` gone; whatever it still had reserved is released. Its row
    /// stays, with its peak.
    pub fn unregister(&self, id: ConsumerId) {
        let mut state = self.lock();
        let Some(row) = state.consumers.get_mut(id.0 as usize) else {
            return;
        };
        let c = &mut row.stats;
        let (scope, left) = (c.scope, c.reserved);
        c.reserved = 0;
        c.live = false;
        state.scope_sub(scope, left);
        self.reserved.fetch_sub(left, Relaxed);
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
        self.lock()
            .consumers
            .iter()
            .map(|r| r.stats.clone())
            .collect()
    }

    /// The `n` live consumers with the largest reservations, largest first
    /// (ties by name): those of the pool `pool_key` if it has any, else all.
    pub(crate) fn top_consumers(&self, pool_key: usize, n: usize) -> Vec<ConsumerStats> {
        let state = self.lock();
        let live = state.consumers.iter().filter(|r| r.stats.live);
        let mut top: Vec<ConsumerStats> = live
            .clone()
            .filter(|r| pool_key != 0 && r.pool_key == pool_key)
            .map(|r| r.stats.clone())
            .collect();
        if top.is_empty() {
            top = live.map(|r| r.stats.clone()).collect();
        }
        drop(state);
        top.sort_by(|a, b| b.reserved.cmp(&a.reserved).then(a.name.cmp(&b.name)));
        top.truncate(n);
        top
    }

    /// The name of the consumer whose reservation changed last.
    pub fn last_changed(&self) -> Option<String> {
        let state = self.lock();
        state
            .last_changed
            .and_then(|i| state.consumers.get(i))
            .map(|r| r.stats.name.clone())
    }

    /// Per scope that has had consumers: `(scope, reserved now, reserved
    /// peak)` in bytes, by scope id. The peak is that of the scope's sum, not
    /// the sum of its consumers' peaks. Scopes with external bytes only are
    /// not listed (see [`external`](Self::external)).
    pub fn reserved_by_scope(&self) -> Vec<(Scope, u64, u64)> {
        let state = self.lock();
        let mut by: Vec<(Scope, u64, u64)> = state
            .scopes
            .iter()
            .map(|(&scope, &(reserved, reserved_peak))| (scope, reserved, reserved_peak))
            .collect();
        by.sort_by_key(|s| s.0.id());
        by
    }

    /// Restarts the reserved peak of `scope` from its reserved value now,
    /// which it returns (for a measurement that reuses a scope).
    pub(crate) fn restart_scope_peak(&self, scope: Scope) -> u64 {
        let mut state = self.lock();
        match state.scopes.get_mut(&scope) {
            Some(entry) => {
                entry.1 = entry.0;
                entry.0
            }
            None => 0,
        }
    }

    /// Reserved now and its peak, by the consumers of `scope` together.
    pub fn reserved_in(&self, scope: Scope) -> (u64, u64) {
        self.lock().scopes.get(&scope).copied().unwrap_or((0, 0))
    }

    /// Sets the bytes `scope` holds outside the global allocator (mmap,
    /// foreign buffers) to `bytes`, replacing the last value. Shown
    /// separately in reports, never mixed into heap figures.
    pub fn report_external(&self, scope: Scope, bytes: u64) {
        let _own = internal_scope().enter();
        let mut state = self.lock();
        let entry = state.external.entry(scope).or_insert((0, 0));
        entry.0 = bytes;
        entry.1 = entry.1.max(bytes);
    }

    /// External bytes per scope that reported any, by scope id.
    pub fn external(&self) -> Vec<External> {
        let state = self.lock();
        let mut out: Vec<External> = state
            .external
            .iter()
            .map(|(&scope, &(bytes, peak_bytes))| External {
                scope,
                bytes,
                peak_bytes,
            })
            .collect();
        out.sort_by_key(|e| e.scope.id());
        out
    }

    /// When the ledger was first used: the origin of its `t_ms` values.
    pub fn started_at(&self) -> Instant {
        self.start
    }

    /// Milliseconds since the ledger was first used.
    pub fn elapsed_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_peak_is_the_peak_of_its_sum_not_the_sum_of_peaks() {
        let l = ledger();
        let scope = Scope::new("ledger-test-shared");
        let a = l.register("ledger-test-a", false, scope);
        let b = l.register("ledger-test-b", false, scope);
        l.grow(a, 300);
        l.shrink(a, 300);
        l.grow(b, 200);
        assert_eq!(l.reserved_in(scope), (200, 300), "not 500");
        l.grow(a, 150);
        assert_eq!(l.reserved_in(scope), (350, 350));
        l.unregister(a);
        assert_eq!(l.reserved_in(scope), (200, 350));
        let rows = l.consumers();
        let row_a = rows.iter().find(|c| c.id == a).unwrap();
        assert_eq!(
            (row_a.reserved, row_a.reserved_peak, row_a.live),
            (0, 300, false)
        );
        let by = l.reserved_by_scope();
        let &(_, now, peak) = by.iter().find(|s| s.0 == scope).unwrap();
        assert_eq!((now, peak), (200, 350));
        l.unregister(b);
        assert_eq!(l.reserved_in(scope), (0, 350));
    }

    #[test]
    fn shrinking_more_than_reserved_stops_at_zero_and_unknown_ids_are_ignored() {
        let l = ledger();
        let scope = Scope::new("ledger-test-clamp");
        let a = l.register("ledger-test-clamp", false, scope);
        l.grow(a, 10);
        l.shrink(a, 1_000);
        l.grow(ConsumerId(u64::MAX), 1_000);
        assert_eq!(l.reserved_in(scope), (0, 10));
        let row = l.consumers().into_iter().find(|c| c.id == a).unwrap();
        assert_eq!((row.reserved, row.reserved_peak), (0, 10));
        l.unregister(a);
    }

    #[test]
    fn external_bytes_keep_the_last_value_and_the_peak() {
        let scope = Scope::new("ledger-test-mmap");
        report_external(scope, 4096);
        report_external(scope, 1 << 20);
        report_external(scope, 512);
        let e = ledger()
            .external()
            .into_iter()
            .find(|e| e.scope == scope)
            .unwrap();
        assert_eq!((e.bytes, e.peak_bytes), (512, 1 << 20));
    }
}
