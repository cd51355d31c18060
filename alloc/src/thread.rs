//! Per-thread counters: the hot path, its cold path, and the registry that
//! lets any thread read every other thread's figures.
//!
//! ```text
//!   thread A (owner of its Local)             any reader (heap(), threads(), scopes())
//!   ┌────────────────────────────┐  registry  ┌───────────────────────────────┐
//!   │ Local (const thread_local, │◄──(lock)───│ sums live Locals + EXITED row │
//!   │ no Drop): cumulative       │            └───────────────────────────────┘
//!   │ counters, limits, scope    │
//!   └──────────┬─────────────────┘
//!              │ every 64 KiB of net change, on scope switch, at exit (cold)
//!              ▼
//!   scope cell (atomics)  +  global live/peak (atomics)  +  EXITED row (at exit)
//! ```
//!
//! # The hot path's invariants
//!
//! [`on_alloc`], [`on_free`] and [`on_realloc`] run inside every allocation.
//! They take no lock, allocate nothing, and write only to the calling thread's
//! own `Local` (single-writer atomics: a relaxed load and a plain store, never
//! a locked read-modify-write). They cannot panic. All they do is add to
//! cumulative counters and compare the one they moved with a limit that it
//! crosses after at most [`FLUSH_BYTES`] of net change in either direction
//! (see [`Local::rearm`]); only then does the `#[cold]` [`slow`] path run. A
//! thread that has not registered yet, is registering, or has already torn
//! down its counters has its limits at 0, so every operation of such a thread
//! takes the cold path, which sorts out what to do: register, wait, or
//! publish straight to the globals.
//!
//! # Why figures stay exact
//!
//! Cumulative counters only grow, and a `mark` records how much of them has
//! been published to the thread's current scope. A reader adds `counter - mark`
//! of every live thread to that thread's current scope, so live and total
//! figures are exact at the moment of reading. Peaks are raised only when a
//! thread publishes, when at most [`FLUSH_BYTES`] per thread is unpublished:
//! hence [`peak_error_bytes`](crate::peak_error_bytes).

use std::cell::Cell;
use std::ptr;
use std::sync::atomic::{
    AtomicBool, AtomicI64, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, Ordering::Acquire,
    Ordering::Relaxed, Ordering::Release,
};

use crate::scope::{cell, raise};

/// Net bytes a thread may change before it publishes to the shared counters.
pub const FLUSH_BYTES: u64 = 64 * 1024;

const UNINIT: u8 = 0;
const ACTIVE: u8 = 1;
const BUSY: u8 = 2;
const TORN_DOWN: u8 = 3;

/// A thread's counters. Lives in a `const`-initialized thread-local without
/// `Drop`, so reaching it costs one TLS address computation and no lazy check.
#[repr(C, align(128))]
pub(crate) struct Local {
    // Hot: touched by every operation, written only by the owning thread.
    /// An allocation that takes `alloc_requested` past this may have brought
    /// the unpublished net change above `FLUSH_BYTES`: take the cold path.
    /// 0 sends every operation there. Written only by the cold path.
    alloc_limit: Cell<u64>,
    /// Likewise for frees and `free_requested` (net change below `-FLUSH_BYTES`).
    free_limit: Cell<u64>,
    /// Allocations (bits 44..) and their usable bytes (bits 0..44) since the
    /// last fold: one add per allocation for both figures.
    alloc_packed: AtomicU64,
    free_packed: AtomicU64,
    alloc_requested: AtomicU64,
    free_requested: AtomicU64,
    scope: AtomicU32,
    state: Cell<u8>,
    precise: Cell<u8>,
    // Cold.
    reallocations: AtomicU64,
    /// Folded from the packed words by the cold path.
    allocations: AtomicU64,
    deallocations: AtomicU64,
    alloc_usable: AtomicU64,
    free_usable: AtomicU64,
    /// How much of each cumulative counter has been published to a scope.
    mark: [AtomicU64; 6],
    peak_requested: AtomicI64,
    tid: AtomicU64,
    next: AtomicPtr<Local>,
    prev: AtomicPtr<Local>,
}

impl Local {
    const fn new() -> Self {
        Local {
            alloc_limit: Cell::new(0),
            free_limit: Cell::new(0),
            alloc_packed: AtomicU64::new(0),
            free_packed: AtomicU64::new(0),
            alloc_requested: AtomicU64::new(0),
            free_requested: AtomicU64::new(0),
            scope: AtomicU32::new(0),
            state: Cell::new(UNINIT),
            precise: Cell::new(0),
            reallocations: AtomicU64::new(0),
            allocations: AtomicU64::new(0),
            deallocations: AtomicU64::new(0),
            alloc_usable: AtomicU64::new(0),
            free_usable: AtomicU64::new(0),
            mark: [const { AtomicU64::new(0) }; 6],
            peak_requested: AtomicI64::new(0),
            tid: AtomicU64::new(0),
            next: AtomicPtr::new(ptr::null_mut()),
            prev: AtomicPtr::new(ptr::null_mut()),
        }
    }

    fn cumulative(&self) -> Delta {
        let ap = self.alloc_packed.load(Relaxed);
        let fp = self.free_packed.load(Relaxed);
        Delta {
            alloc_requested: self.alloc_requested.load(Relaxed),
            free_requested: self.free_requested.load(Relaxed),
            alloc_usable: self.alloc_usable.load(Relaxed) + unpack_bytes(ap),
            free_usable: self.free_usable.load(Relaxed) + unpack_bytes(fp),
            allocations: self.allocations.load(Relaxed) + unpack_count(ap),
            deallocations: self.deallocations.load(Relaxed) + unpack_count(fp),
        }
    }

    fn marked(&self) -> Delta {
        let m = |i: usize| self.mark[i].load(Relaxed);
        Delta {
            alloc_requested: m(0),
            free_requested: m(1),
            alloc_usable: m(2),
            free_usable: m(3),
            allocations: m(4),
            deallocations: m(5),
        }
    }

    fn set_mark(&self, d: &Delta) {
        let values = [
            d.alloc_requested,
            d.free_requested,
            d.alloc_usable,
            d.free_usable,
            d.allocations,
            d.deallocations,
        ];
        for (slot, value) in self.mark.iter().zip(values) {
            slot.store(value, Relaxed);
        }
    }

    /// Not yet published to the current scope.
    fn pending(&self) -> Delta {
        self.cumulative().minus(&self.marked())
    }

    fn live_requested(&self) -> i64 {
        self.alloc_requested
            .load(Relaxed)
            .wrapping_sub(self.free_requested.load(Relaxed)) as i64
    }

    /// Moves the packed counts into the wide counters (cold path only).
    fn fold(&self) {
        let ap = self.alloc_packed.swap(0, Relaxed);
        let fp = self.free_packed.swap(0, Relaxed);
        bump(&self.allocations, unpack_count(ap));
        bump(&self.alloc_usable, unpack_bytes(ap));
        bump(&self.deallocations, unpack_count(fp));
        bump(&self.free_usable, unpack_bytes(fp));
    }

    /// Net requested bytes not yet published (may be negative).
    fn pending_net(&self) -> i64 {
        let net = self.live_requested();
        let published = self.mark[0]
            .load(Relaxed)
            .wrapping_sub(self.mark[1].load(Relaxed));
        net.wrapping_sub(published as i64)
    }

    /// Re-arms the hot path's checks after a publication or a state change.
    ///
    /// With `a`, `f` the cumulative allocated and freed bytes and `p` the net
    /// published so far, the pending net change is `a - f - p`. It exceeds
    /// `FLUSH_BYTES` only if `a > f + p + FLUSH_BYTES`; since `f` only grows,
    /// comparing `a` with that value computed now never misses the moment
    /// (and fires early at worst, once per `FLUSH_BYTES` of allocation, when
    /// the cold path merely re-arms). Frees are symmetric. Each operation
    /// thus compares its own counter with one constant.
    fn rearm(&self) {
        if self.state.get() != ACTIVE || self.precise.get() != 0 {
            self.alloc_limit.set(0);
            self.free_limit.set(0);
            return;
        }
        let published = self.mark[0]
            .load(Relaxed)
            .wrapping_sub(self.mark[1].load(Relaxed));
        let allocated = self.alloc_requested.load(Relaxed);
        let freed = self.free_requested.load(Relaxed);
        self.alloc_limit
            .set(freed.wrapping_add(published).wrapping_add(FLUSH_BYTES));
        self.free_limit
            .set(allocated.wrapping_sub(published).wrapping_add(FLUSH_BYTES));
    }
}

thread_local! {
    static LOCAL: Local = const { Local::new() };
    static EXIT: ExitHook = const { ExitHook };
}

/// Its destructor folds the thread's counters into the `exited` row.
struct ExitHook;

impl Drop for ExitHook {
    fn drop(&mut self) {
        LOCAL.with(thread_exit);
    }
}

/// Counters (or a difference of counters) in the order the hot path keeps them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Delta {
    pub(crate) alloc_requested: u64,
    pub(crate) free_requested: u64,
    pub(crate) alloc_usable: u64,
    pub(crate) free_usable: u64,
    pub(crate) allocations: u64,
    pub(crate) deallocations: u64,
}

impl Delta {
    fn minus(&self, o: &Delta) -> Delta {
        Delta {
            alloc_requested: self.alloc_requested.wrapping_sub(o.alloc_requested),
            free_requested: self.free_requested.wrapping_sub(o.free_requested),
            alloc_usable: self.alloc_usable.wrapping_sub(o.alloc_usable),
            free_usable: self.free_usable.wrapping_sub(o.free_usable),
            allocations: self.allocations.wrapping_sub(o.allocations),
            deallocations: self.deallocations.wrapping_sub(o.deallocations),
        }
    }

    pub(crate) fn net_requested(&self) -> i64 {
        self.alloc_requested.wrapping_sub(self.free_requested) as i64
    }

    pub(crate) fn net_usable(&self) -> i64 {
        self.alloc_usable.wrapping_sub(self.free_usable) as i64
    }

    fn is_empty(&self) -> bool {
        *self == Delta::default()
    }
}

// ---------------------------------------------------------------------------
// The hot path.
// ---------------------------------------------------------------------------

/// Packed words: one operation counted in the top 20 bits, usable bytes below.
/// The cold path folds them into the wide counters at least once per
/// `FLUSH_BYTES` of requested bytes, so neither field can overflow: at most
/// 65 536 operations (of at least one byte) and a few MiB of usable bytes per fold.
const COUNT_SHIFT: u32 = 44;
const BYTES_MASK: u64 = (1 << COUNT_SHIFT) - 1;

#[inline(always)]
fn pack(usable: usize) -> u64 {
    (1 << COUNT_SHIFT) + usable as u64
}

fn unpack_count(word: u64) -> u64 {
    word >> COUNT_SHIFT
}

fn unpack_bytes(word: u64) -> u64 {
    word & BYTES_MASK
}

/// Adds `value` to a counter only this thread writes: a load and a store, no lock prefix.
#[inline(always)]
fn bump(counter: &AtomicU64, value: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(value), Relaxed);
}

/// Counts a successful allocation.
#[inline(always)]
pub(crate) fn on_alloc(requested: usize, usable: usize, mode: u8) {
    LOCAL.with(|l| count_alloc(l, requested, usable, mode))
}

/// Counts a successful allocation; returns the scope it is charged to.
#[inline(always)]
pub(crate) fn on_alloc_scoped(requested: usize, usable: usize, mode: u8) -> u32 {
    LOCAL.with(|l| {
        count_alloc(l, requested, usable, mode);
        l.scope.load(Relaxed)
    })
}

#[inline(always)]
fn count_alloc(l: &Local, requested: usize, usable: usize, mode: u8) {
    bump(&l.alloc_packed, pack(usable));
    let allocated = l
        .alloc_requested
        .load(Relaxed)
        .wrapping_add(requested as u64);
    l.alloc_requested.store(allocated, Relaxed);
    if allocated > l.alloc_limit.get() {
        slow(l, mode);
    }
}

/// Counts a free charged to the current scope.
#[inline(always)]
pub(crate) fn on_free(requested: usize, usable: usize, mode: u8) {
    LOCAL.with(|l| {
        bump(&l.free_packed, pack(usable));
        let freed = l
            .free_requested
            .load(Relaxed)
            .wrapping_add(requested as u64);
        l.free_requested.store(freed, Relaxed);
        if freed > l.free_limit.get() {
            slow(l, mode);
        }
    })
}

/// Counts a successful reallocation charged to the current scope; returns that scope.
#[inline(always)]
pub(crate) fn on_realloc(
    old: usize,
    old_usable: usize,
    new: usize,
    new_usable: usize,
    mode: u8,
) -> u32 {
    LOCAL.with(|l| {
        bump(&l.reallocations, 1);
        let allocated = l.alloc_requested.load(Relaxed).wrapping_add(new as u64);
        l.alloc_requested.store(allocated, Relaxed);
        let freed = l.free_requested.load(Relaxed).wrapping_add(old as u64);
        l.free_requested.store(freed, Relaxed);
        bump(&l.alloc_usable, new_usable as u64);
        bump(&l.free_usable, old_usable as u64);
        if allocated > l.alloc_limit.get() || freed > l.free_limit.get() {
            slow(l, mode);
        }
        l.scope.load(Relaxed)
    })
}

/// Owner mode: counts a free of a block that `owner` allocated.
#[inline(always)]
pub(crate) fn on_free_owned(requested: usize, usable: usize, owner: u32, mode: u8) {
    let same = LOCAL.with(|l| l.scope.load(Relaxed) == owner);
    if same {
        on_free(requested, usable, mode);
    } else {
        free_foreign(requested, usable, owner, mode);
    }
}

/// Owner mode: counts a reallocation of a block that `owner` allocated; the
/// new block belongs to the current scope, which is returned.
#[inline(always)]
pub(crate) fn on_realloc_owned(
    old: usize,
    old_usable: usize,
    owner: u32,
    new: usize,
    new_usable: usize,
    mode: u8,
) -> u32 {
    let same = LOCAL.with(|l| l.scope.load(Relaxed) == owner);
    if same {
        on_realloc(old, old_usable, new, new_usable, mode)
    } else {
        realloc_foreign(old, old_usable, owner, new, new_usable, mode)
    }
}

// ---------------------------------------------------------------------------
// The cold path.
// ---------------------------------------------------------------------------

/// Owner mode, a block of another scope: the thread counts the free as usual,
/// the owner's cell is charged directly, and the mark moves with the counter
/// so the current scope is not charged.
#[cold]
#[inline(never)]
fn free_foreign(requested: usize, usable: usize, owner: u32, mode: u8) {
    LOCAL.with(|l| {
        bump(&l.deallocations, 1);
        bump(&l.free_requested, requested as u64);
        bump(&l.free_usable, usable as u64);
        bump(&l.mark[5], 1);
        bump(&l.mark[1], requested as u64);
        bump(&l.mark[3], usable as u64);
        charge_owner(owner, requested, usable, 1);
        if l.state.get() == ACTIVE {
            l.rearm();
        } else {
            slow(l, mode);
        }
    })
}

#[cold]
#[inline(never)]
fn realloc_foreign(
    old: usize,
    old_usable: usize,
    owner: u32,
    new: usize,
    new_usable: usize,
    mode: u8,
) -> u32 {
    LOCAL.with(|l| {
        bump(&l.free_requested, old as u64);
        bump(&l.free_usable, old_usable as u64);
        bump(&l.mark[1], old as u64);
        bump(&l.mark[3], old_usable as u64);
        charge_owner(owner, old, old_usable, 0);
        l.rearm();
    });
    // The new block is an ordinary growth of the current scope.
    on_realloc(0, 0, new, new_usable, mode)
}

fn charge_owner(owner: u32, requested: usize, usable: usize, deallocations: u64) {
    let c = cell(owner);
    c.live_requested.fetch_sub(requested as i64, Relaxed);
    c.live_usable.fetch_sub(usable as i64, Relaxed);
    c.deallocations.fetch_add(deallocations, Relaxed);
    LIVE_REQUESTED.fetch_sub(requested as i64, Relaxed);
    LIVE_USABLE.fetch_sub(usable as i64, Relaxed);
}

/// Everything that is not a plain count: publishing, registering, teardown.
#[cold]
#[inline(never)]
fn slow(l: &Local, mode: u8) {
    l.fold();
    match l.state.get() {
        UNINIT => register(l, mode),
        // Fired early: the pending change is still within bounds.
        ACTIVE if l.precise.get() == 0 && l.pending_net().unsigned_abs() <= FLUSH_BYTES => {}
        _ => settle(l),
    }
    l.rearm();
}

/// Publishes what is pending, according to the thread's state.
fn settle(l: &Local) {
    match l.state.get() {
        ACTIVE => publish(l),
        TORN_DOWN => {
            // After teardown: publish and fold straight into the exited row.
            publish(l);
            fold_into_exited(l);
        }
        // Not registered, or registering: the counts wait in the thread-local.
        _ => {}
    }
}

/// Publishes the thread's pending delta to its current scope and the globals.
fn publish(l: &Local) {
    let now = l.cumulative();
    let d = now.minus(&l.marked());
    if d.is_empty() {
        return;
    }
    l.set_mark(&now);
    cell(l.scope.load(Relaxed)).publish(&d);
    let live = LIVE_REQUESTED.fetch_add(d.net_requested(), Relaxed) + d.net_requested();
    raise(&PEAK_REQUESTED, live);
    let live_u = LIVE_USABLE.fetch_add(d.net_usable(), Relaxed) + d.net_usable();
    raise(&PEAK_USABLE, live_u);
    raise(&l.peak_requested, l.live_requested());
}

fn register(l: &Local, mode: u8) {
    l.state.set(BUSY);
    ATTRIBUTION.store(mode, Relaxed);
    // SAFETY: gettid has no preconditions.
    l.tid.store(unsafe { libc::gettid() } as u64, Relaxed);
    install_fork_handlers();
    {
        let _lock = RegistryLock::acquire();
        link(l);
    }
    // Registering the exit hook may allocate; those allocations see BUSY.
    if EXIT.try_with(|_| ()).is_err() {
        // The thread is already tearing down: no hook will run, so do not
        // stay linked.
        l.state.set(ACTIVE);
        thread_exit(l);
        return;
    }
    l.state.set(ACTIVE);
    publish(l);
}

/// Folds the thread's counters into the exited row and unlinks it.
fn thread_exit(l: &Local) {
    if l.state.get() != ACTIVE {
        return;
    }
    publish(l);
    {
        let _lock = RegistryLock::acquire();
        unlink(l);
        fold_into_exited(l);
    }
    l.state.set(TORN_DOWN);
    l.rearm();
}

/// Adds the thread's cumulative counters to the exited row and zeroes them.
/// The thread's pending delta must have been published first.
fn fold_into_exited(l: &Local) {
    let c = l.cumulative();
    EXITED.allocations.fetch_add(c.allocations, Relaxed);
    EXITED.deallocations.fetch_add(c.deallocations, Relaxed);
    EXITED
        .reallocations
        .fetch_add(l.reallocations.load(Relaxed), Relaxed);
    EXITED.alloc_requested.fetch_add(c.alloc_requested, Relaxed);
    EXITED.free_requested.fetch_add(c.free_requested, Relaxed);
    EXITED.alloc_usable.fetch_add(c.alloc_usable, Relaxed);
    EXITED.free_usable.fetch_add(c.free_usable, Relaxed);
    raise(&EXITED.peak_requested, l.peak_requested.load(Relaxed));
    for counter in [
        &l.alloc_packed,
        &l.free_packed,
        &l.allocations,
        &l.deallocations,
        &l.reallocations,
        &l.alloc_requested,
        &l.free_requested,
        &l.alloc_usable,
        &l.free_usable,
    ] {
        counter.store(0, Relaxed);
    }
    l.set_mark(&Delta::default());
}

// ---------------------------------------------------------------------------
// Globals.
// ---------------------------------------------------------------------------

/// Global live bytes as published (excludes each live thread's pending delta).
pub(crate) static LIVE_REQUESTED: AtomicI64 = AtomicI64::new(0);
pub(crate) static LIVE_USABLE: AtomicI64 = AtomicI64::new(0);
pub(crate) static PEAK_REQUESTED: AtomicI64 = AtomicI64::new(0);
pub(crate) static PEAK_USABLE: AtomicI64 = AtomicI64::new(0);
/// 0: nothing counted yet; otherwise `Attribution as u8 + 1`.
pub(crate) static ATTRIBUTION: AtomicU8 = AtomicU8::new(0);
pub(crate) static THREADS_LIVE: AtomicU64 = AtomicU64::new(0);
pub(crate) static THREADS_MAX: AtomicU64 = AtomicU64::new(0);
/// Threads that ended (and a forked child's vanished threads).
pub(crate) static EXITED: Exited = Exited::new();

pub(crate) struct Exited {
    pub(crate) threads: AtomicU64,
    pub(crate) allocations: AtomicU64,
    pub(crate) deallocations: AtomicU64,
    pub(crate) reallocations: AtomicU64,
    pub(crate) alloc_requested: AtomicU64,
    pub(crate) free_requested: AtomicU64,
    pub(crate) alloc_usable: AtomicU64,
    pub(crate) free_usable: AtomicU64,
    pub(crate) peak_requested: AtomicI64,
}

impl Exited {
    const fn new() -> Self {
        Exited {
            threads: AtomicU64::new(0),
            allocations: AtomicU64::new(0),
            deallocations: AtomicU64::new(0),
            reallocations: AtomicU64::new(0),
            alloc_requested: AtomicU64::new(0),
            free_requested: AtomicU64::new(0),
            alloc_usable: AtomicU64::new(0),
            free_usable: AtomicU64::new(0),
            peak_requested: AtomicI64::new(0),
        }
    }
}

// ---------------------------------------------------------------------------
// The registry: an intrusive list of live threads' Locals under a spin lock.
// Only registration, thread exit, fork and readers take the lock; none of them
// allocates while holding it.
// ---------------------------------------------------------------------------

static HEAD: AtomicPtr<Local> = AtomicPtr::new(ptr::null_mut());
static LOCK: AtomicBool = AtomicBool::new(false);

struct RegistryLock;

impl RegistryLock {
    fn acquire() -> RegistryLock {
        raw_lock();
        RegistryLock
    }
}

impl Drop for RegistryLock {
    fn drop(&mut self) {
        raw_unlock();
    }
}

fn raw_lock() {
    while LOCK
        .compare_exchange_weak(false, true, Acquire, Relaxed)
        .is_err()
    {
        std::thread::yield_now();
    }
}

fn raw_unlock() {
    LOCK.store(false, Release);
}

/// Links `l` at the head. Caller holds the lock.
fn link(l: &Local) {
    let me = l as *const Local as *mut Local;
    let head = HEAD.load(Relaxed);
    l.prev.store(ptr::null_mut(), Relaxed);
    l.next.store(head, Relaxed);
    if !head.is_null() {
        // SAFETY: linked Locals are live (a thread unlinks itself, under the
        // lock we hold, before its thread-local storage goes away).
        unsafe { (*head).prev.store(me, Relaxed) };
    }
    HEAD.store(me, Relaxed);
    let live = THREADS_LIVE.fetch_add(1, Relaxed) + 1;
    THREADS_MAX.fetch_max(live, Relaxed);
}

/// Unlinks `l`. Caller holds the lock.
fn unlink(l: &Local) {
    let next = l.next.load(Relaxed);
    let prev = l.prev.load(Relaxed);
    // SAFETY: neighbours are linked, hence live (see `link`).
    unsafe {
        if !next.is_null() {
            (*next).prev.store(prev, Relaxed);
        }
        if prev.is_null() {
            HEAD.store(next, Relaxed);
        } else {
            (*prev).next.store(next, Relaxed);
        }
    }
    l.next.store(ptr::null_mut(), Relaxed);
    l.prev.store(ptr::null_mut(), Relaxed);
    THREADS_LIVE.fetch_sub(1, Relaxed);
    EXITED.threads.fetch_add(1, Relaxed);
}

/// Calls `f` on every live thread's Local, under the lock. `f` must not allocate
/// unless the calling thread is already registered.
fn for_each_live(mut f: impl FnMut(&Local)) {
    let _lock = RegistryLock::acquire();
    let mut p = HEAD.load(Relaxed);
    while !p.is_null() {
        // SAFETY: linked Locals are live while we hold the lock.
        let l = unsafe { &*p };
        f(l);
        p = l.next.load(Relaxed);
    }
}

/// Registers the calling thread if it is not yet, so that it can allocate
/// while holding the registry lock without needing the lock itself.
fn ensure_registered() {
    if ATTRIBUTION.load(Relaxed) == 0 {
        // No tracked allocator: allocations never reach this module.
        return;
    }
    LOCAL.with(|l| {
        if l.state.get() == UNINIT {
            slow(l, ATTRIBUTION.load(Relaxed));
        }
    });
}

// Fork: the child has one thread; the registry lock must not be held by a
// thread that no longer exists, and the other threads' Locals (copied into the
// child, never to exit) are folded into the exited row so their bytes stay counted.

static FORK_HANDLERS: AtomicBool = AtomicBool::new(false);

fn install_fork_handlers() {
    if FORK_HANDLERS.swap(true, Relaxed) {
        return;
    }
    // SAFETY: the handlers are plain functions that only touch statics and the
    // registry; pthread_atfork copies the pointers.
    unsafe {
        libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child));
    }
}

extern "C" fn fork_prepare() {
    raw_lock();
}

extern "C" fn fork_parent() {
    raw_unlock();
}

extern "C" fn fork_child() {
    let me = LOCAL.with(|l| l as *const Local);
    let mut p = HEAD.load(Relaxed);
    while !p.is_null() {
        // SAFETY: we hold the lock taken in `fork_prepare`; the other Locals'
        // memory was copied into the child with the rest of the address space.
        let l = unsafe { &*p };
        p = l.next.load(Relaxed);
        if !ptr::eq(l, me) {
            let d = l.pending();
            l.set_mark(&l.cumulative());
            if !d.is_empty() {
                cell(l.scope.load(Relaxed)).publish(&d);
                LIVE_REQUESTED.fetch_add(d.net_requested(), Relaxed);
                LIVE_USABLE.fetch_add(d.net_usable(), Relaxed);
            }
            unlink(l);
            fold_into_exited(l);
        }
    }
    LOCAL.with(|l| {
        // SAFETY: gettid has no preconditions.
        l.tid.store(unsafe { libc::gettid() } as u64, Relaxed)
    });
    raw_unlock();
}

// ---------------------------------------------------------------------------
// What the rest of the crate reads and sets.
// ---------------------------------------------------------------------------

pub(crate) fn current_scope() -> u32 {
    LOCAL.with(|l| l.scope.load(Relaxed))
}

/// Publishes the pending delta to the old scope and makes `scope` current.
pub(crate) fn switch_scope(scope: u32) -> u32 {
    LOCAL.with(|l| {
        settle(l);
        let previous = l.scope.swap(scope, Relaxed);
        l.rearm();
        previous
    })
}

/// Publishes the calling thread's pending delta now.
pub(crate) fn flush_current() {
    LOCAL.with(|l| {
        settle(l);
        l.rearm();
    })
}

/// Makes the calling thread publish on every operation (`on == true`, nests)
/// or go back to batching once every such request is withdrawn.
pub(crate) fn set_precise(on: bool) {
    LOCAL.with(|l| {
        let depth = l.precise.get();
        l.precise.set(if on {
            depth.saturating_add(1)
        } else {
            depth.saturating_sub(1)
        });
        settle(l);
        l.rearm();
    })
}

/// Calls `f(scope, pending)` for every live thread with something pending.
pub(crate) fn add_pending(mut f: impl FnMut(u32, &Delta)) {
    ensure_registered();
    for_each_live(|l| {
        let d = l.pending();
        if !d.is_empty() {
            f(l.scope.load(Relaxed), &d);
        }
    });
}

/// One live thread's raw figures.
pub(crate) struct ThreadRaw {
    pub(crate) tid: u64,
    pub(crate) totals: Delta,
    pub(crate) reallocations: u64,
    pub(crate) peak_requested: i64,
}

/// Sums of every live thread's counters, without allocating.
pub(crate) fn sum_live() -> (Delta, u64) {
    let mut sum = Delta::default();
    let mut reallocations = 0;
    for_each_live(|l| {
        let c = l.cumulative();
        sum.alloc_requested += c.alloc_requested;
        sum.free_requested += c.free_requested;
        sum.alloc_usable += c.alloc_usable;
        sum.free_usable += c.free_usable;
        sum.allocations += c.allocations;
        sum.deallocations += c.deallocations;
        reallocations += l.reallocations.load(Relaxed);
    });
    (sum, reallocations)
}

/// Every live thread's figures.
pub(crate) fn live_threads() -> Vec<ThreadRaw> {
    ensure_registered();
    let mut out = Vec::with_capacity(THREADS_LIVE.load(Relaxed) as usize + 8);
    for_each_live(|l| {
        out.push(ThreadRaw {
            tid: l.tid.load(Relaxed),
            totals: l.cumulative(),
            reallocations: l.reallocations.load(Relaxed),
            peak_requested: l.peak_requested.load(Relaxed).max(l.live_requested()),
        })
    });
    out
}

/// The calling thread's own figures, read without a lock or an allocation.
pub(crate) fn own() -> (ThreadRaw, bool) {
    LOCAL.with(|l| {
        (
            ThreadRaw {
                tid: l.tid.load(Relaxed),
                totals: l.cumulative(),
                reallocations: l.reallocations.load(Relaxed),
                peak_requested: l.peak_requested.load(Relaxed).max(l.live_requested()),
            },
            l.state.get() == TORN_DOWN,
        )
    })
}
