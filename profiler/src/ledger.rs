//! The ledger: what every consumer has reserved, now and at its peak, and
//! what every scope's consumers have reserved together.
//!
//! One ledger per process ([`ledger`]). Every pool of this crate feeds it
//! through [`MemoryReservation`](crate::MemoryReservation); a foreign pool
//! (a DataFusion `MemoryPool` wrapper, say) feeds it directly with
//! [`Ledger::register`] (or [`Ledger::register_in_pool`]), [`Ledger::grow`]
//! and [`Ledger::shrink`]. Each consumer is tied to a scope, so the audit
//! ([`crate::audit`]) can hold what it reserved against what its code
//! allocated.
//!
//! ```text
//!   grow / shrink (consumer id, bytes)
//!        │  one short lock, no allocation, no thread walk
//!        ▼
//!   live consumers: reserved, reserved_peak, refusals, spills
//!   per scope:      reserved, reserved_peak (the peak of the scope's sum)
//!   process:        reserved, reserved_peak (atomics, read without the lock)
//!                   + the instant of the reserved peak, with the heap then
//!   unregister ──► finished rows: one per (pool, scope, name, can_spill),
//!                  at most MAX_FINISHED_ROWS (+ one `(others)` row per scope)
//! ```
//!
//! Cost: about 30 ns per change. A change that sets a new process-wide
//! reserved peak also reads the heap ([`memledger_alloc::heap`], a walk over
//! live threads) for the time-aligned value, after the ledger's lock is
//! released. The ledger never calls into a pool and never runs a callback.
//!
//! Memory stays bounded in a process that registers consumers forever: a
//! consumer that unregisters leaves the live rows and is folded into a
//! finished row with the others of its pool, scope, name and spill flag
//! (peaks kept as the largest, refusals and spills summed, registrations
//! counted). The rows are allocated in the profiler's internal scope so
//! that user figures leave them out.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use memledger_alloc::Scope;

use crate::internal::internal_scope;

/// The most finished rows kept with their own name; consumers that finish
/// once there are that many, under a name not seen yet, are folded into
/// one [`OTHERS`] row per scope and spill flag.
pub const MAX_FINISHED_ROWS: usize = 4096;

/// The name of the finished row that holds consumers whose own name found
/// no room ([`MAX_FINISHED_ROWS`]).
pub const OTHERS: &str = "(others)";

/// A consumer's handle in the ledger, returned by [`Ledger::register`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConsumerId(u64);

/// One consumer's figures, or those of the finished consumers folded into
/// one row, as [`Ledger::consumers`] returns them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerStats {
    /// Its handle (for a finished row: that of the first consumer folded
    /// into it, which orders the rows).
    pub id: ConsumerId,
    /// Its name (`ExternalSorter[0]`); names need not be unique.
    pub name: String,
    /// The scope its reservation is held against.
    pub scope: Scope,
    /// Whether it can spill to release memory.
    pub can_spill: bool,
    /// Bytes reserved now (0 for a finished row).
    pub reserved: u64,
    /// Highest `reserved` since it registered, in bytes (for a finished
    /// row: the highest of its consumers).
    pub reserved_peak: u64,
    /// Reservation requests the pool refused (summed over a finished row).
    pub refusals: u64,
    /// Times the pool asked it to spill (summed over a finished row).
    pub spills: u64,
    /// False for a finished row: consumers that unregistered.
    pub live: bool,
    /// How many consumers the row stands for: 1 for a live one, at least 1
    /// for a finished row.
    pub registrations: u64,
}

/// The instant of the highest total reserved, as the ledger saw it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReservedPeak {
    /// Milliseconds since the ledger was first used.
    pub t_ms: u64,
    /// The process-wide reserved bytes then (the peak).
    pub reserved: u64,
    /// Global live heap (requested bytes), read right after the peak was
    /// set (outside the ledger's lock); 0 without the tracked allocator.
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
    /// Which pool the consumer belongs to (0: registered without one).
    pool_key: usize,
}

/// What finished consumers are folded by.
#[derive(Clone, PartialEq, Eq, Hash)]
struct FoldKey {
    /// For this crate's pools, the pool's address: a pool created later at
    /// the same address shares the finished rows of one that was dropped
    /// (the report does not name pools, so nothing it shows changes).
    pool_key: usize,
    scope: Scope,
    can_spill: bool,
    name: String,
}

#[derive(Default)]
struct State {
    /// Registered consumers, by id.
    live: HashMap<u64, Row>,
    /// Consumers that unregistered, folded (see the module docs).
    finished: HashMap<FoldKey, ConsumerStats>,
    next_id: u64,
    last_changed: Option<ConsumerId>,
    /// The name of `last_changed` once it unregistered.
    last_changed_name: Option<String>,
    /// Scope -> reserved now and peak of its consumers together.
    scopes: HashMap<Scope, (u64, u64)>,
    /// Scope -> (external bytes now, peak).
    external: HashMap<Scope, (u64, u64)>,
    reserved_peak: ReservedPeak,
    /// When `reserved_peak` was set (its `t_ms` is this, truncated).
    reserved_peak_at: Option<Instant>,
    /// Bumped at each new reserved peak, so that the heap read after the
    /// lock is dropped lands on the peak it was read for.
    peak_generation: u64,
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

/// `a + b` or a panic naming the figure: the ledger's sums hold what pools
/// granted, which pools keep within `u64` (a broken caller otherwise).
fn sum(a: u64, b: u64, what: &str) -> u64 {
    crate::pool::checked_total(a, b, what)
}

fn release(a: u64, b: u64, what: &str) -> u64 {
    crate::pool::checked_release(a, b, what)
}

impl State {
    /// Folds a consumer that unregistered into its finished row.
    fn fold(&mut self, row: Row) {
        let c = row.stats;
        let mut key = FoldKey {
            pool_key: row.pool_key,
            scope: c.scope,
            can_spill: c.can_spill,
            name: c.name,
        };
        if self.finished.len() >= MAX_FINISHED_ROWS && !self.finished.contains_key(&key) {
            key = FoldKey {
                pool_key: 0,
                name: OTHERS.to_string(),
                ..key
            };
        }
        match self.finished.get_mut(&key) {
            Some(f) => {
                f.reserved_peak = f.reserved_peak.max(c.reserved_peak);
                f.refusals = f.refusals.saturating_add(c.refusals);
                f.spills = f.spills.saturating_add(c.spills);
                f.registrations = f.registrations.saturating_add(1);
            }
            None => {
                let stats = ConsumerStats {
                    id: c.id,
                    name: key.name.clone(),
                    scope: c.scope,
                    can_spill: c.can_spill,
                    reserved: 0,
                    reserved_peak: c.reserved_peak,
                    refusals: c.refusals,
                    spills: c.spills,
                    live: false,
                    registrations: 1,
                };
                self.finished.insert(key, stats);
            }
        }
    }

    /// Every row (live and finished) that `keep` accepts, by id.
    fn rows(&self, keep: impl Fn(usize) -> bool) -> Vec<ConsumerStats> {
        let mut rows: Vec<ConsumerStats> = self
            .live
            .values()
            .filter(|r| keep(r.pool_key))
            .map(|r| r.stats.clone())
            .chain(
                self.finished
                    .iter()
                    .filter(|(k, _)| keep(k.pool_key))
                    .map(|(_, c)| c.clone()),
            )
            .collect();
        rows.sort_by_key(|c| c.id);
        rows
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

    /// [`register`](Self::register), remembering the pool (a nonzero key
    /// that identifies it, from [`new_pool_key`](Self::new_pool_key) for a
    /// foreign pool) so that a refusal names only that pool's consumers and
    /// [`consumers_in_pool`](Self::consumers_in_pool) finds them.
    pub fn register_in_pool(
        &self,
        name: &str,
        can_spill: bool,
        scope: Scope,
        pool_key: usize,
    ) -> ConsumerId {
        // The row is the profiler's bookkeeping.
        let _own = internal_scope().enter();
        let mut state = self.lock();
        let id = ConsumerId(state.next_id);
        state.next_id += 1;
        state.live.insert(
            id.0,
            Row {
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
                    registrations: 1,
                },
                pool_key,
            },
        );
        state.scopes.entry(scope).or_insert((0, 0));
        id
    }

    /// A key for a pool outside this crate, for
    /// [`register_in_pool`](Self::register_in_pool): unique in the process
    /// and never the address of a pool of this crate (whose keys are their
    /// addresses).
    pub fn new_pool_key() -> usize {
        static NEXT: AtomicUsize = AtomicUsize::new(1);
        // User-space addresses never have the top bit set.
        NEXT.fetch_add(1, Relaxed) | (1 << (usize::BITS - 1))
    }

    /// Records `bytes` more reserved by `id`. An unknown (or unregistered)
    /// id is ignored.
    ///
    /// # Panics
    ///
    /// If a total would pass `u64::MAX` bytes (a pool that let it through).
    pub fn grow(&self, id: ConsumerId, bytes: usize) {
        let bytes = bytes as u64;
        let new_peak = {
            let mut state = self.lock();
            let Some(row) = state.live.get(&id.0) else {
                return;
            };
            let scope = row.stats.scope;
            // Check every sum before changing anything.
            let reserved = sum(row.stats.reserved, bytes, "consumer");
            let scope_now = state.scopes.get(&scope).map_or(0, |e| e.0);
            let scope_now = sum(scope_now, bytes, "scope");
            // Every total change happens under the lock, so load-then-store is exact.
            let total = sum(self.reserved.load(Relaxed), bytes, "ledger");
            if let Some(row) = state.live.get_mut(&id.0) {
                let c = &mut row.stats;
                c.reserved = reserved;
                c.reserved_peak = c.reserved_peak.max(reserved);
            }
            let entry = state.scopes.entry(scope).or_insert((0, 0));
            entry.0 = scope_now;
            entry.1 = entry.1.max(scope_now);
            state.last_changed = Some(id);
            self.reserved.store(total, Relaxed);
            if total > self.reserved_peak.load(Relaxed) {
                self.reserved_peak.store(total, Relaxed);
                // The heap of the previous peak stays until the read below.
                let now = Instant::now();
                state.reserved_peak_at = Some(now);
                state.reserved_peak.t_ms =
                    now.saturating_duration_since(self.start).as_millis() as u64;
                state.reserved_peak.reserved = total;
                state.peak_generation += 1;
                Some(state.peak_generation)
            } else {
                None
            }
        };
        if let Some(generation) = new_peak {
            // A walk over live threads: never under the ledger's lock.
            let heap_live = memledger_alloc::heap().live_requested;
            let mut state = self.lock();
            if state.peak_generation == generation {
                state.reserved_peak.heap_live = heap_live;
            }
        }
    }

    /// Records `bytes` less reserved by `id`. An unknown (or unregistered)
    /// id is ignored.
    ///
    /// # Panics
    ///
    /// If `id` holds less than `bytes` (its pool let it release more than
    /// it reserved); nothing is changed then.
    pub fn shrink(&self, id: ConsumerId, bytes: usize) {
        let bytes = bytes as u64;
        let checked = {
            let mut state = self.lock();
            let Some(row) = state.live.get(&id.0) else {
                return;
            };
            let (scope, held) = (row.stats.scope, row.stats.reserved);
            if held < bytes {
                Err((row.stats.name.clone(), held))
            } else {
                if let Some(row) = state.live.get_mut(&id.0) {
                    row.stats.reserved = held - bytes;
                }
                if let Some(entry) = state.scopes.get_mut(&scope) {
                    entry.0 = release(entry.0, bytes, "scope");
                }
                state.last_changed = Some(id);
                let total = release(self.reserved.load(Relaxed), bytes, "ledger");
                self.reserved.store(total, Relaxed);
                Ok(())
            }
        };
        if let Err((name, held)) = checked {
            panic!("ledger: {name} cannot release {bytes} bytes out of {held} reserved");
        }
    }

    /// Records a request the pool refused.
    pub fn refused(&self, id: ConsumerId) {
        if let Some(row) = self.lock().live.get_mut(&id.0) {
            row.stats.refusals = row.stats.refusals.saturating_add(1);
        }
    }

    /// Records that the pool asked `id` to spill.
    pub fn spilled(&self, id: ConsumerId) {
        if let Some(row) = self.lock().live.get_mut(&id.0) {
            row.stats.spills = row.stats.spills.saturating_add(1);
        }
    }

    /// Marks `id` gone: whatever it still had reserved is released, and its
    /// row is folded into a finished row (see the module docs).
    pub fn unregister(&self, id: ConsumerId) {
        // Folding frees and allocates the profiler's own rows.
        let _own = internal_scope().enter();
        let mut state = self.lock();
        let Some(row) = state.live.remove(&id.0) else {
            return;
        };
        let (scope, left) = (row.stats.scope, row.stats.reserved);
        // The scope's and the process's sums include what the row held.
        if let Some(entry) = state.scopes.get_mut(&scope) {
            entry.0 = release(entry.0, left, "scope");
        }
        let total = release(self.reserved.load(Relaxed), left, "ledger");
        self.reserved.store(total, Relaxed);
        if state.last_changed == Some(id) {
            state.last_changed_name = Some(row.stats.name.clone());
        }
        state.fold(row);
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

    /// [`reserved_peak_instant`](Self::reserved_peak_instant) with its time
    /// as milliseconds since `origin` (a session's start), if the peak came
    /// at or after `origin`. Measured from `origin` itself, so that it
    /// orders exactly with other times measured from there.
    pub fn reserved_peak_since(&self, origin: Instant) -> Option<ReservedPeak> {
        let state = self.lock();
        let at = state.reserved_peak_at?;
        let since = at.checked_duration_since(origin)?;
        Some(ReservedPeak {
            t_ms: since.as_millis() as u64,
            ..state.reserved_peak
        })
    }

    /// Every consumer: the live ones and the finished rows, by id (that
    /// is, in registration order; a finished row sits where its first
    /// consumer registered).
    pub fn consumers(&self) -> Vec<ConsumerStats> {
        self.lock().rows(|_| true)
    }

    /// [`consumers`](Self::consumers) of the pool `pool_key` only.
    pub fn consumers_in_pool(&self, pool_key: usize) -> Vec<ConsumerStats> {
        self.lock().rows(|key| key == pool_key)
    }

    /// How many rows the ledger holds: live consumers plus finished rows.
    /// Bounded by the live consumers, [`MAX_FINISHED_ROWS`] and two
    /// [`OTHERS`] rows per scope, however many consumers came and went.
    pub fn rows(&self) -> usize {
        let state = self.lock();
        state.live.len() + state.finished.len()
    }

    /// The `n` live consumers with the largest reservations, largest first
    /// (ties by name): those of the pool `pool_key` if it has any, else all.
    pub(crate) fn top_consumers(&self, pool_key: usize, n: usize) -> Vec<ConsumerStats> {
        let state = self.lock();
        let mut top: Vec<ConsumerStats> = state
            .live
            .values()
            .filter(|r| pool_key != 0 && r.pool_key == pool_key)
            .map(|r| r.stats.clone())
            .collect();
        if top.is_empty() {
            top = state.live.values().map(|r| r.stats.clone()).collect();
        }
        drop(state);
        top.sort_by(|a, b| b.reserved.cmp(&a.reserved).then(a.name.cmp(&b.name)));
        top.truncate(n);
        top
    }

    /// The name of the consumer whose reservation changed last.
    pub fn last_changed(&self) -> Option<String> {
        let state = self.lock();
        let id = state.last_changed?;
        match state.live.get(&id.0) {
            Some(row) => Some(row.stats.name.clone()),
            None => state.last_changed_name.clone(),
        }
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
    fn shrinking_more_than_reserved_panics_and_changes_nothing() {
        let l = ledger();
        let scope = Scope::new("ledger-test-over-release");
        let a = l.register("ledger-test-over-release", false, scope);
        l.grow(a, 10);
        let caught = std::panic::catch_unwind(|| l.shrink(a, 1_000)).unwrap_err();
        assert_eq!(
            caught.downcast_ref::<String>().map(String::as_str),
            Some("ledger: ledger-test-over-release cannot release 1000 bytes out of 10 reserved")
        );
        l.grow(ConsumerId(u64::MAX), 1_000);
        assert_eq!(l.reserved_in(scope), (10, 10), "nothing changed");
        let row = l.consumers().into_iter().find(|c| c.id == a).unwrap();
        assert_eq!((row.reserved, row.reserved_peak), (10, 10));
        l.unregister(a);
        assert_eq!(l.reserved_in(scope), (0, 10));
    }

    #[test]
    fn finished_consumers_fold_into_one_row_per_name() {
        let l = ledger();
        let scope = Scope::new("ledger-test-fold");
        let key = Ledger::new_pool_key();
        for peak in [300, 700, 200] {
            let id = l.register_in_pool("ledger-test-fold", true, scope, key);
            l.grow(id, peak);
            l.refused(id);
            l.shrink(id, peak / 2);
            l.unregister(id);
        }
        let live = l.register_in_pool("ledger-test-fold", true, scope, key);
        l.grow(live, 5);
        let rows = l.consumers_in_pool(key);
        let summary: Vec<_> = rows
            .iter()
            .map(|c| {
                (
                    c.live,
                    c.reserved,
                    c.reserved_peak,
                    c.refusals,
                    c.registrations,
                )
            })
            .collect();
        assert_eq!(summary, vec![(false, 0, 700, 3, 3), (true, 5, 5, 0, 1)]);
        assert!(rows[0].id < rows[1].id, "the finished row sits first");
        l.unregister(live);
        assert_eq!(l.consumers_in_pool(key).len(), 1);
        assert_eq!(l.reserved_in(scope), (0, 700));
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
