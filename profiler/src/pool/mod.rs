//! The pool's accounting: consumers, reservations and pools that grant or
//! refuse them, with DataFusion's semantics as the reference.
//!
//! ```text
//!  MemoryConsumer::new("ExternalSorter[0]").with_can_spill(true).register(&pool)
//!        │
//!        ▼
//!  MemoryReservation ── try_grow / grow / shrink / resize / split / free / Drop
//!        │  asks                                   │ records (after the pool answered)
//!        ▼                                         ▼
//!  dyn MemoryPool: UnboundedPool, GreedyPool,   ledger(): reserved now/peak per consumer,
//!  FairSpillPool, ArbiterPool                    tied to the consumer's scope
//! ```
//!
//! A pool decides; the reservation keeps its own size and tells the ledger,
//! so every pool is audited the same way. A refusal is a [`PoolError`] whose
//! message names the top consumers with what they reserved **and** what
//! their scopes really allocated.
//!
//! The semantics follow DataFusion's `memory_pool`:
//!
//! - a [`MemoryConsumer`] has a name and a `can_spill` flag, and registers
//!   with a pool to get an empty [`MemoryReservation`];
//! - `try_grow` asks the pool and may be refused; `grow` is for memory
//!   already in use and is never refused (the pool may go past its limit);
//! - `shrink`, `resize`, `free` and dropping the reservation give bytes
//!   back; `split` moves part of a reservation into a new one of the same
//!   consumer without asking the pool; the consumer unregisters when its
//!   last reservation drops;
//! - releasing or splitting more than a reservation holds is the caller's
//!   bug, never a silent clamp: `shrink` and `split` panic like DataFusion's,
//!   `try_shrink` and `try_split` return a [`ReleaseError`];
//! - every sum is checked: a `try_grow` whose total would not fit in a
//!   `u64` is refused, an infallible `grow` that would overflow panics, and
//!   no figure ever wraps or goes down on a grant;
//! - each consumer is tied to a scope of the tracked allocator (by default
//!   the scope of its own name), which is how the ledger and the audit hold
//!   its reservation against what its code allocated.
//!
//! | pool | grants `try_grow(n)` on a reservation of `size` bytes when |
//! |---|---|
//! | [`UnboundedPool`] | the total fits in a `u64` |
//! | [`GreedyPool`] | reserved + n ≤ limit |
//! | [`FairSpillPool`] | unspillable: n ≤ limit − reserved (0 when negative); spillable: size + n ≤ (limit − unspillable) / spillable consumers (DataFusion 55's rule) |
//! | [`ArbiterPool`] | reserved + n ≤ threshold, or, after asking spillable consumers to spill (largest first), reserved + n ≤ limit |
//!
//! # Spilling never deadlocks
//!
//! [`ArbiterPool`] runs spill callbacks synchronously, on the thread whose
//! request needs the room. Two rules make that safe by design:
//!
//! - **the pool never waits on a busy consumer**: a consumer is busy while
//!   one of its reservations is inside a pool's `try_grow` or while its own
//!   callback runs ([`ConsumerInfo::is_busy`]); no request calls the
//!   callback of a busy consumer ([`ConsumerInfo::ask_to_spill`] refuses).
//!   So two operators that each hold their own lock while asking never call
//!   into each other (each marks itself busy before it looks at the other,
//!   so at least one of them sees the other busy), a callback that asks the
//!   pool in turn is never called again from inside itself, and no pool lock
//!   is held while a callback runs;
//! - **a callback never blocks**: it takes its operator's lock with
//!   `try_lock` and returns 0 when the operator is busy (a busy operator
//!   will spill by itself when its own request is refused).
//!
//! The first rule alone removes the deadlock of two operators asking at
//! once; the second keeps a callback from waiting on an operator that is
//! busy with something else (or on the asking thread itself).

mod arbiter;
mod fair;
mod greedy;
mod unbounded;

pub use arbiter::ArbiterPool;
pub use fair::FairSpillPool;
pub use greedy::GreedyPool;
pub use unbounded::UnboundedPool;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};

use memledger_alloc::Scope;

use crate::ledger::{ConsumerId, ledger};

/// A spill callback: asked to release about `wanted` bytes, it spills and
/// shrinks its own reservation, and returns how many bytes it released (for
/// its own records: the pool counts what the reservation really shrank).
/// Called from the thread whose request needs the room, with no pool lock
/// held, and never while its own consumer is busy (asking a pool, or in
/// this callback already). It must not block: it takes the operator's lock
/// with `try_lock` and returns 0 when it is held (see [the module
/// docs](self#spilling-never-deadlocks)).
pub type SpillFn = Arc<dyn Fn(usize) -> usize + Send + Sync>;

/// What a pool knows about a registered consumer. Shared by the
/// reservations split from one registration.
pub struct ConsumerInfo {
    name: String,
    can_spill: bool,
    scope: Scope,
    id: ConsumerId,
    spill: Option<SpillFn>,
    /// Bytes reserved by all reservations of this consumer.
    reserved: AtomicU64,
    /// Requests of this consumer inside a pool's `try_grow`, plus runs of
    /// its callback, now.
    busy: AtomicU32,
    /// Identifies the pool it registered with (the pool's address, unique
    /// among live pools since a live consumer keeps its pool alive).
    pool_key: usize,
}

impl ConsumerInfo {
    /// The consumer's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Whether it can spill to free memory.
    pub fn can_spill(&self) -> bool {
        self.can_spill
    }
    /// The scope its reservation is held against.
    pub fn scope(&self) -> Scope {
        self.scope
    }
    /// Its id in the ledger.
    pub fn id(&self) -> ConsumerId {
        self.id
    }
    /// Bytes it has reserved now.
    pub fn reserved(&self) -> u64 {
        self.reserved.load(Relaxed)
    }
    /// Its spill callback, if it registered one.
    pub fn spill(&self) -> Option<&SpillFn> {
        self.spill.as_ref()
    }
    /// Whether one of its reservations is inside a pool's `try_grow`, or
    /// its spill callback is running, now. A pool never calls the callback
    /// of a busy consumer: its operator may hold its own lock while it
    /// waits for the answer.
    pub fn is_busy(&self) -> bool {
        self.busy.load(SeqCst) != 0
    }

    /// Asks it to spill about `wanted` bytes: counts the request in the
    /// ledger, runs its callback, marked busy meanwhile, and returns the
    /// bytes its reservations really shrank by (0 if they grew meanwhile).
    /// `None`, and nothing runs, when it has no callback or is busy. Call it
    /// with no lock held.
    pub fn ask_to_spill(&self, wanted: usize) -> Option<u64> {
        let spill = self.spill.as_ref()?;
        // Marked and checked in one step: a request that starts later sees
        // the mark, and this one sees any request already under way.
        let busy = Busy::start(self);
        if busy.already {
            return None;
        }
        // Counted before the callback, which may drop its last reservation.
        ledger().spilled(self.id);
        let before = self.reserved();
        // The callback's own answer is advisory: count what really left.
        spill(wanted);
        Some(before.saturating_sub(self.reserved()))
    }
}

impl fmt::Debug for ConsumerInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsumerInfo")
            .field("name", &self.name)
            .field("can_spill", &self.can_spill)
            .field("reserved", &self.reserved())
            .field("busy", &self.is_busy())
            .finish()
    }
}

/// Marks a consumer busy for as long as it lives.
struct Busy<'a> {
    consumer: &'a ConsumerInfo,
    /// Whether it was busy already when marked.
    already: bool,
}

impl<'a> Busy<'a> {
    fn start(consumer: &'a ConsumerInfo) -> Self {
        // SeqCst: the mark is set before this thread looks at any other
        // consumer's mark (see the module docs).
        let already = consumer.busy.fetch_add(1, SeqCst) != 0;
        Busy { consumer, already }
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.consumer.busy.fetch_sub(1, SeqCst);
    }
}

/// A memory pool: grants or refuses reservations against a limit.
///
/// Implementations only decide and keep their own totals; sizes per
/// reservation, per consumer ([`ConsumerInfo::reserved`], updated after the
/// pool answered) and the ledger are kept by [`MemoryReservation`], which
/// guarantees: `register` once per consumer before any other call for it,
/// `unregister` once after its last reservation dropped, and never a
/// `shrink` of more than the reservation holds. Each call gets the
/// reservation as it was before the change.
///
/// Contract for implementations: totals use checked arithmetic; a
/// `try_grow` whose total would overflow is refused; `grow` past `u64::MAX`
/// and `shrink` below zero (a broken caller) panic with a message, never
/// wrap or clamp. A refusal should be built with [`PoolError::new`], so that
/// it names the top consumers. A pool that calls spill callbacks follows
/// [the rules in the module docs](self#spilling-never-deadlocks): no lock
/// held while a callback runs, and callbacks run only through
/// [`ConsumerInfo::ask_to_spill`], which skips busy consumers.
pub trait MemoryPool: Send + Sync + fmt::Debug {
    /// Short name used in errors and reports (`greedy`, `fair`, ...).
    fn name(&self) -> &str;
    /// The limit in bytes, `None` for unbounded.
    fn limit(&self) -> Option<u64>;
    /// Bytes reserved in this pool now.
    fn reserved(&self) -> u64;
    /// A consumer registered.
    fn register(&self, _consumer: &Arc<ConsumerInfo>) {}
    /// A consumer's last reservation was dropped.
    fn unregister(&self, _consumer: &Arc<ConsumerInfo>) {}
    /// Grants `additional` bytes unconditionally.
    fn grow(&self, reservation: &MemoryReservation, additional: u64);
    /// Releases `shrink` bytes (at most what `reservation` holds).
    fn shrink(&self, reservation: &MemoryReservation, shrink: u64);
    /// Grants `additional` bytes if the limit allows, or refuses.
    fn try_grow(&self, reservation: &MemoryReservation, additional: u64) -> Result<(), PoolError>;
}

/// `total + bytes`; panics with a message naming `what` when the sum does
/// not fit in a `u64` (more bytes reserved than any machine has: a caller's
/// bug, never a figure to report).
pub(crate) fn checked_total(total: u64, bytes: u64, what: &str) -> u64 {
    match total.checked_add(bytes) {
        Some(sum) => sum,
        None => panic!("{what}: {total} bytes reserved plus {bytes} overflows u64"),
    }
}

/// `total - bytes`; panics with a message naming `what` when `bytes` is
/// more than `total` (releasing what was never reserved: a caller's bug).
pub(crate) fn checked_release(total: u64, bytes: u64, what: &str) -> u64 {
    match total.checked_sub(bytes) {
        Some(rest) => rest,
        None => panic!("{what}: cannot release {bytes} bytes out of {total} reserved"),
    }
}

/// Releasing or splitting more than a reservation holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseError {
    /// The consumer whose reservation it was.
    pub consumer: String,
    /// Bytes asked to be released (or split off).
    pub requested: u64,
    /// Bytes the reservation held.
    pub size: u64,
}

impl fmt::Display for ReleaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Cannot free the capacity {} out of allocated size {} of {}",
            self.requested, self.size, self.consumer
        )
    }
}

impl std::error::Error for ReleaseError {}

/// How many consumers a [`PoolError`] names.
pub const TOP_CONSUMERS: usize = 5;

/// A refused reservation. Its `Display` is one line: who asked for how
/// much, the pool's limit and reserved total, and the top consumers with
/// what they reserved and what their scopes allocated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolError {
    /// The consumer that asked.
    pub consumer: String,
    /// Bytes it asked for.
    pub requested: u64,
    /// The pool's name.
    pub pool: String,
    /// The pool's limit.
    pub limit: Option<u64>,
    /// Bytes reserved in the pool when it refused.
    pub reserved: u64,
    /// The largest consumers: name, reserved bytes, bytes their scope really
    /// allocated (live, requested).
    pub top: Vec<(String, u64, i64)>,
}

/// Human bytes for messages: `4.0 MiB`.
pub(crate) fn human(bytes: i64) -> String {
    let b = bytes as f64;
    let abs = b.abs();
    if abs >= (1u64 << 30) as f64 {
        format!("{:.1} GiB", b / (1u64 << 30) as f64)
    } else if abs >= (1 << 20) as f64 {
        format!("{:.1} MiB", b / (1 << 20) as f64)
    } else if abs >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Resources exhausted: failed to reserve {} for {} in {} pool",
            human(self.requested as i64),
            self.consumer,
            self.pool
        )?;
        if let Some(limit) = self.limit {
            write!(
                f,
                " (limit {}, {} reserved)",
                human(limit as i64),
                human(self.reserved as i64)
            )?;
        }
        write!(f, ".")?;
        if !self.top.is_empty() {
            write!(f, " Top consumers:")?;
            for (i, (name, reserved, allocated)) in self.top.iter().enumerate() {
                let sep = if i == 0 { " " } else { "; " };
                write!(
                    f,
                    "{sep}{name} reserved {}, allocated {}",
                    human(*reserved as i64),
                    human(*allocated)
                )?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for PoolError {}

impl PoolError {
    /// Builds the error for `consumer` asking `requested` bytes of `pool`,
    /// naming the [`TOP_CONSUMERS`] largest live consumers of the same pool
    /// (largest reservation first, ties by name), each with the live
    /// requested bytes of its scope (0 without the tracked allocator;
    /// consumers sharing a scope show the same figure).
    pub fn new(pool: &dyn MemoryPool, consumer: &ConsumerInfo, requested: u64) -> PoolError {
        let top = ledger()
            .top_consumers(consumer.pool_key, TOP_CONSUMERS)
            .into_iter()
            .map(|c| (c.name, c.reserved, c.scope.stats().live_requested))
            .collect();
        PoolError {
            consumer: consumer.name.clone(),
            requested,
            pool: pool.name().to_string(),
            limit: pool.limit(),
            reserved: pool.reserved(),
            top,
        }
    }
}

/// A named holder of reservations, before it registers with a pool.
pub struct MemoryConsumer {
    name: String,
    can_spill: bool,
    scope: Option<Scope>,
    spill: Option<SpillFn>,
}

impl MemoryConsumer {
    /// A consumer named `name` (e.g. `ExternalSorter[0]`), not spillable,
    /// tied to the scope of the same name (inside [`measure`](crate::measure()),
    /// to the measurement's scope).
    pub fn new(name: impl Into<String>) -> MemoryConsumer {
        MemoryConsumer {
            name: name.into(),
            can_spill: false,
            scope: None,
            spill: None,
        }
    }

    /// Whether it can spill.
    pub fn with_can_spill(mut self, can_spill: bool) -> Self {
        self.can_spill = can_spill;
        self
    }

    /// Ties its reservations to `scope` instead of the scope of its name.
    pub fn with_scope(mut self, scope: Scope) -> Self {
        self.scope = Some(scope);
        self
    }

    /// Registers a spill callback (used by [`ArbiterPool`]); implies
    /// `can_spill`. The callback runs on the thread of the request that
    /// needs room, never while this consumer is busy, and must not block:
    /// see [the rules](self#spilling-never-deadlocks).
    pub fn with_spill(mut self, spill: SpillFn) -> Self {
        self.spill = Some(spill);
        self.can_spill = true;
        self
    }

    /// Registers with `pool`; the returned reservation starts empty.
    pub fn register(self, pool: &Arc<dyn MemoryPool>) -> MemoryReservation {
        let scope = self
            .scope
            .or_else(crate::measure::measuring_scope)
            .unwrap_or_else(|| Scope::new(&self.name));
        let pool_key = Arc::as_ptr(pool) as *const () as usize;
        let id = ledger().register_in_pool(&self.name, self.can_spill, scope, pool_key);
        let info = Arc::new(ConsumerInfo {
            name: self.name,
            can_spill: self.can_spill,
            scope,
            id,
            spill: self.spill,
            reserved: AtomicU64::new(0),
            busy: AtomicU32::new(0),
            pool_key,
        });
        pool.register(&info);
        MemoryReservation {
            registration: Arc::new(Registration {
                pool: Arc::clone(pool),
                info,
            }),
            size: 0,
        }
    }
}

struct Registration {
    pool: Arc<dyn MemoryPool>,
    info: Arc<ConsumerInfo>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.pool.unregister(&self.info);
        ledger().unregister(self.info.id);
    }
}

/// Bytes reserved for one consumer. Freed when dropped.
///
/// Invariant: `size` is what this reservation holds in its pool and in the
/// ledger; every change goes through the pool first and the ledger after.
/// Releasing more than `size` is refused ([`try_shrink`](Self::try_shrink),
/// [`try_split`](Self::try_split)) or panics ([`shrink`](Self::shrink),
/// [`split`](Self::split)), as in DataFusion; it is never clamped.
pub struct MemoryReservation {
    registration: Arc<Registration>,
    size: u64,
}

impl fmt::Debug for MemoryReservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryReservation")
            .field("consumer", &self.registration.info.name)
            .field("size", &self.size)
            .finish()
    }
}

impl MemoryReservation {
    /// Bytes this reservation holds.
    pub fn size(&self) -> usize {
        self.size as usize
    }

    /// The consumer's name.
    pub fn consumer_name(&self) -> &str {
        &self.registration.info.name
    }

    /// The consumer as its pool sees it.
    pub fn consumer(&self) -> &Arc<ConsumerInfo> {
        &self.registration.info
    }

    /// Records `bytes` the pool granted. The pool's own total holds this
    /// reservation and the consumer's, so neither sum can overflow once the
    /// pool's did not; they are checked all the same.
    fn added(&mut self, bytes: u64) {
        self.size = checked_total(self.size, bytes, "reservation");
        let info = &self.registration.info;
        // Reservations split from one registration may change it at once.
        let _ = info.reserved.fetch_update(Relaxed, Relaxed, |held| {
            Some(checked_total(held, bytes, "consumer"))
        });
        ledger().grow(info.id, bytes as usize);
    }

    /// Reserves `bytes` more if the pool grants them. A request whose total
    /// would not fit in a `u64` is refused.
    pub fn try_grow(&mut self, bytes: usize) -> Result<(), PoolError> {
        let reg = Arc::clone(&self.registration);
        let result = {
            let _busy = Busy::start(&reg.info);
            reg.pool.try_grow(self, bytes as u64)
        };
        match result {
            Ok(()) => {
                self.added(bytes as u64);
                Ok(())
            }
            Err(e) => {
                ledger().refused(reg.info.id);
                Err(e)
            }
        }
    }

    /// Reserves `bytes` more, whatever the limit (for memory already in
    /// use).
    ///
    /// # Panics
    ///
    /// If the pool's total would exceed `u64::MAX` bytes.
    pub fn grow(&mut self, bytes: usize) {
        let reg = Arc::clone(&self.registration);
        reg.pool.grow(self, bytes as u64);
        self.added(bytes as u64);
    }

    /// Releases `bytes`; returns the new size, or an error (and releases
    /// nothing) when the reservation holds less.
    pub fn try_shrink(&mut self, bytes: usize) -> Result<usize, ReleaseError> {
        let bytes = bytes as u64;
        if bytes > self.size {
            return Err(self.release_error(bytes));
        }
        if bytes != 0 {
            let reg = Arc::clone(&self.registration);
            reg.pool.shrink(self, bytes);
            self.size -= bytes;
            let info = &reg.info;
            let _ = info.reserved.fetch_update(Relaxed, Relaxed, |held| {
                Some(checked_release(held, bytes, "consumer"))
            });
            ledger().shrink(info.id, bytes as usize);
        }
        Ok(self.size as usize)
    }

    /// Releases `bytes`.
    ///
    /// # Panics
    ///
    /// If the reservation holds less than `bytes` (like DataFusion's
    /// `MemoryReservation::shrink`); [`try_shrink`](Self::try_shrink) returns
    /// the error instead.
    #[track_caller]
    pub fn shrink(&mut self, bytes: usize) {
        if let Err(e) = self.try_shrink(bytes) {
            panic!("{e}");
        }
    }

    fn release_error(&self, requested: u64) -> ReleaseError {
        ReleaseError {
            consumer: self.registration.info.name.clone(),
            requested,
            size: self.size,
        }
    }

    /// Sets the size to `bytes`, asking the pool for any growth.
    pub fn try_resize(&mut self, bytes: usize) -> Result<(), PoolError> {
        let bytes = bytes as u64;
        if bytes > self.size {
            self.try_grow((bytes - self.size) as usize)
        } else {
            self.shrink((self.size - bytes) as usize);
            Ok(())
        }
    }

    /// Sets the size to `bytes`, whatever the limit.
    pub fn resize(&mut self, bytes: usize) {
        let bytes = bytes as u64;
        if bytes > self.size {
            self.grow((bytes - self.size) as usize);
        } else {
            self.shrink((self.size - bytes) as usize);
        }
    }

    /// Releases everything; returns how much that was.
    pub fn free(&mut self) -> usize {
        let size = self.size as usize;
        self.shrink(size);
        size
    }

    /// Moves `bytes` of this reservation into a new one of the same
    /// consumer (nothing is asked of the pool); an error (and nothing
    /// moved) when the reservation holds less.
    pub fn try_split(&mut self, bytes: usize) -> Result<MemoryReservation, ReleaseError> {
        let bytes = bytes as u64;
        if bytes > self.size {
            return Err(self.release_error(bytes));
        }
        self.size -= bytes;
        Ok(MemoryReservation {
            registration: Arc::clone(&self.registration),
            size: bytes,
        })
    }

    /// Moves `bytes` of this reservation into a new one of the same
    /// consumer (nothing is asked of the pool).
    ///
    /// # Panics
    ///
    /// If the reservation holds less than `bytes` (like DataFusion's
    /// `MemoryReservation::split`); [`try_split`](Self::try_split) returns
    /// the error instead.
    #[track_caller]
    pub fn split(&mut self, bytes: usize) -> MemoryReservation {
        match self.try_split(bytes) {
            Ok(part) => part,
            Err(e) => panic!("{e}"),
        }
    }

    /// Moves everything `other` holds into this reservation, if both belong
    /// to the same consumer (as after [`split`](Self::split) or
    /// [`new_empty`](Self::new_empty)); otherwise `other` is simply dropped,
    /// which frees it. Nothing is asked of the pool.
    pub fn merge(&mut self, mut other: MemoryReservation) {
        if Arc::ptr_eq(&self.registration, &other.registration) {
            // Both sizes are part of the consumer's total: the sum fits.
            self.size = checked_total(self.size, other.size, "reservation");
            other.size = 0;
        }
    }

    /// A new, empty reservation of the same consumer.
    pub fn new_empty(&self) -> MemoryReservation {
        MemoryReservation {
            registration: Arc::clone(&self.registration),
            size: 0,
        }
    }
}

impl Drop for MemoryReservation {
    fn drop(&mut self) {
        self.free();
    }
}

/// The kinds of pool, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    /// [`UnboundedPool`]: grants everything.
    Unbounded,
    /// [`GreedyPool`]: first come, first served, up to the limit.
    Greedy,
    /// [`FairSpillPool`]: spillable consumers share what unspillable ones leave.
    Fair,
    /// [`ArbiterPool`]: asks spillable consumers to spill before refusing.
    Arbiter,
}

impl PoolKind {
    /// `unbounded`, `greedy`, `fair` or `arbiter`.
    pub fn name(self) -> &'static str {
        match self {
            PoolKind::Unbounded => "unbounded",
            PoolKind::Greedy => "greedy",
            PoolKind::Fair => "fair",
            PoolKind::Arbiter => "arbiter",
        }
    }

    /// A pool of this kind limited to `limit` bytes; `None` as limit gives
    /// an [`UnboundedPool`] whatever the kind.
    pub fn build(self, limit: Option<u64>) -> Arc<dyn MemoryPool> {
        match (self, limit) {
            (_, None) | (PoolKind::Unbounded, _) => Arc::new(UnboundedPool::new()),
            (PoolKind::Greedy, Some(l)) => Arc::new(GreedyPool::new(l)),
            (PoolKind::Fair, Some(l)) => Arc::new(FairSpillPool::new(l)),
            (PoolKind::Arbiter, Some(l)) => Arc::new(ArbiterPool::new(l)),
        }
    }
}

impl FromStr for PoolKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "unbounded" => Ok(PoolKind::Unbounded),
            "greedy" => Ok(PoolKind::Greedy),
            "fair" => Ok(PoolKind::Fair),
            "arbiter" => Ok(PoolKind::Arbiter),
            other => Err(format!(
                "unknown pool `{other}` (expected unbounded, greedy, fair or arbiter)"
            )),
        }
    }
}

/// The limit in `MEMLEDGER_MEMORY_LIMIT` (a whole number of bytes, spaces
/// around it allowed), if set and valid; an unset, empty or malformed value
/// gives `None` (unbounded).
pub fn limit_from_env() -> Option<u64> {
    std::env::var("MEMLEDGER_MEMORY_LIMIT")
        .ok()
        .and_then(|v| v.trim().parse().ok())
}

/// A pool of `kind` limited by `MEMLEDGER_MEMORY_LIMIT` (unset: an
/// [`UnboundedPool`]).
pub fn pool_from_env(kind: PoolKind) -> Arc<dyn MemoryPool> {
    kind.build(limit_from_env())
}
