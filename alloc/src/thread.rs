//! Per-thread counters: the hot path, its cold path, and the consistent
//! reads other threads make of them.
//!
//! ```text
//!   thread A: Local (const thread-local, no Drop)            readers (any thread)
//!   ┌───────────────────────────────────────────┐  registry ┌─────────────────────────┐
//!   │ current ─► slots[64]: one per scope in use │◄──(lock)──│ per thread: seq-checked │
//!   │   hot: one packed word per direction       │           │ sum of its slots        │
//!   │        (usable | count | requested), limit │           │ per scope: cell + slots │
//!   │   wide: folded words, larger blocks        │           └─────────────────────────┘
//!   │ retired: counts of reused slots, frees     │
//!   │          charged to another scope's cell   │
//!   └───────────────┬───────────────────────────┘
//!                   │ cold: every FLUSH_BYTES of net change, on leaving a scope
//!                   ▼
//!   scope cell: published live + peaks  ·  globals: published live + peaks
//! ```
//!
//! # The hot path's invariants
//!
//! [`on_alloc_packed`], [`on_alloc_packed_scoped`], [`on_alloc_ahead`],
//! [`on_free_packed`] (blocks whose usable size the layout decides: up to
//! 8 KiB for mimalloc), [`on_alloc`], [`on_free`] and [`on_realloc`] run
//! inside every allocation. They take no lock, allocate nothing, cannot
//! panic, and write only to the calling thread's own current slot (and
//! its `ahead` word): single-writer atomics, a relaxed load and a plain
//! store, never a locked read-modify-write. A block of at most
//! [`PACKED_MAX`] usable bytes adds one increment — usable bytes, one
//! operation and requested bytes, in fields of one word — to its
//! direction's packed word, and compares the word with one precomputed
//! limit ([`arm`]); larger blocks and reallocations add to the wide
//! counters and take their usable bytes off the same limit. Only past the
//! limit does the `#[cold]` [`slow`] path run, which folds the packed words
//! into the wide counters before any field can overflow. A thread that is
//! not registered yet, is registering, has torn down its counters or is in
//! [`precise`](crate::precise) mode has its limits at 0, so each of its
//! operations takes the cold path, which knows what to do.
//!
//! # Why reads are exact and consistent
//!
//! A scope's figures are its cell's folded counts plus the slot every live
//! thread holds for it; a thread's figures are its slots plus its retired
//! counts. Switching scopes moves nothing: it only changes which slot is
//! current. Counts move between places on cold paths only — packed words
//! folded into wide counters, a slot reused for another scope — and each
//! move is bracketed by the thread's sequence counter (`seq`, odd while it
//! runs) and, when a slot's counts go to a cell, by the global move counters;
//! readers retry when one moved under them. So cumulative figures never go
//! down between two reads, and live figures are exact at the moment of
//! reading.
//!
//! # Peaks
//!
//! Peaks are raised from the *published* live bytes (cell and global), to
//! which a thread adds its slot's net change once it passes half of
//! [`FLUSH_BYTES`] (requested or usable), and when it leaves the scope. At
//! any instant each thread holds back less than [`FLUSH_BYTES`] of either
//! figure, all of it in its current slot: hence
//! [`peak_error_bytes`](crate::peak_error_bytes).

use std::cell::Cell;
use std::ptr;
use std::sync::atomic::{
    AtomicI64, AtomicU32, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release, fence,
};

use crate::cell::{ScopeCell, cell, cell_of_owner};
use crate::counts::{AtomicCounts, Counts, raise};
use crate::global::{ATTRIBUTION, EXITED, LIVE, THREADS_LIVE, THREADS_MAX};
use crate::registry::{Linked, Links, Registry};
use crate::stacks::{SAMPLED, Sampler, Taken};
use crate::sys;

/// Net bytes (requested or usable) a thread may hold back before it
/// publishes to the shared counters.
pub const FLUSH_BYTES: u64 = 64 * 1024;

/// Slots per thread: a scope with id `i` always uses slot `i % SLOTS`.
const SLOTS: usize = 64;

const UNINIT: u8 = 0;
const ACTIVE: u8 = 1;
const BUSY: u8 = 2;
const TORN_DOWN: u8 = 3;

/// The mode byte of owner mode (see `Tracked::MODE`).
const OWNER_MODE: u8 = 2;

/// Set in `Tracked::MODE` when the inner allocator reports refusals (see
/// [`on_alloc_ahead`]): the thread's registration installs the report.
pub(crate) const REPORTS_REFUSALS: u8 = 0x80;

/// Packed words: usable bytes in the top 24 bits, operations in the next
/// 20, requested bytes in the low 20. Only operations of at most
/// [`PACKED_MAX`] usable bytes (never fewer requested) go into them, and
/// the cold path folds them into the wide counters before their usable
/// field passes [`ROOM_MAX`] + [`PACKED_MAX`]; every operation adds at
/// least one usable byte, so no field overflows into the next.
pub(crate) const USABLE_SHIFT: u32 = 40;
const COUNT_SHIFT: u32 = 20;
const FIELD_MASK: u64 = (1 << COUNT_SHIFT) - 1;
/// The low 40 bits of a packed word (operations and requested bytes).
const LOW_MASK: u64 = (1 << USABLE_SHIFT) - 1;

/// Operations of at most this many usable bytes are added to the packed
/// word; larger ones to the wide counters.
pub(crate) const PACKED_MAX: usize = 0xFFFF;

/// The most usable bytes a packed word may take before the cold path runs.
const ROOM_MAX: u64 = 1 << 18;

/// The packed word's increment for one operation of `requested` bytes
/// (`usable`, at most [`PACKED_MAX`]).
#[inline(always)]
pub(crate) const fn pack(requested: usize, usable: usize) -> u64 {
    ((usable as u64) << USABLE_SHIFT) + (1 << COUNT_SHIFT) + requested as u64
}

/// The packed word's limit for `room` more usable bytes: an operation that
/// takes its usable field past `room` takes the cold path.
#[inline(always)]
fn limit_for(room: u64) -> u64 {
    (room.min(ROOM_MAX) << USABLE_SHIFT) | LOW_MASK
}

/// Adds `value` to a counter only this thread writes: a load and a store,
/// no lock prefix.
#[inline(always)]
fn bump(counter: &AtomicU64, value: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(value), Relaxed);
}

/// One direction (allocations or frees) of a slot's counters.
struct Side {
    /// Hot: usable bytes, operations and requested bytes since the last
    /// fold (see [`pack`]).
    packed: AtomicU64,
    /// A packed word above this may have taken the unpublished net change
    /// past its bound: take the cold path (see [`limit_for`]; 0 sends
    /// every operation there).
    limit: Cell<u64>,
    /// Folded from the packed word, plus the operations too large for it.
    usable: AtomicU64,
    requested: AtomicU64,
    operations: AtomicU64,
}

impl Side {
    const fn new() -> Self {
        Side {
            packed: AtomicU64::new(0),
            limit: Cell::new(0),
            usable: AtomicU64::new(0),
            requested: AtomicU64::new(0),
            operations: AtomicU64::new(0),
        }
    }

    /// Cumulative (requested, operations, usable). Another thread must read
    /// them inside [`Local::read`].
    fn load(&self) -> (u64, u64, u64) {
        let p = self.packed.load(Relaxed);
        (
            self.requested.load(Relaxed) + (p & FIELD_MASK),
            self.operations.load(Relaxed) + ((p >> COUNT_SHIFT) & FIELD_MASK),
            self.usable.load(Relaxed) + (p >> USABLE_SHIFT),
        )
    }

    /// Cumulative usable bytes (the owner thread's own view).
    fn usable_total(&self) -> u64 {
        self.usable.load(Relaxed) + (self.packed.load(Relaxed) >> USABLE_SHIFT)
    }

    /// Moves the packed word into the wide counters (inside [`Local::write`]).
    fn fold(&self) {
        let p = self.packed.load(Relaxed);
        if p == 0 {
            return;
        }
        self.packed.store(0, Relaxed);
        bump(&self.requested, p & FIELD_MASK);
        bump(&self.operations, (p >> COUNT_SHIFT) & FIELD_MASK);
        bump(&self.usable, p >> USABLE_SHIFT);
    }

    /// Adds an operation to the wide counters, which only this thread
    /// writes: every field only grows, so no reader needs to retry.
    /// Returns whether its usable bytes fit in the room the limit leaves
    /// (and takes them off it); if not, the caller takes the cold path.
    fn add_wide(&self, requested: usize, usable: usize, operations: u64) -> bool {
        bump(&self.requested, requested as u64);
        bump(&self.operations, operations);
        bump(&self.usable, usable as u64);
        let limit = self.limit.get();
        let used = (self.packed.load(Relaxed) >> USABLE_SHIFT).saturating_add(usable as u64);
        if used > limit >> USABLE_SHIFT {
            return false;
        }
        self.limit.set(limit - ((usable as u64) << USABLE_SHIFT));
        true
    }

    fn reset(&self) {
        for counter in [
            &self.packed,
            &self.usable,
            &self.requested,
            &self.operations,
        ] {
            counter.store(0, Relaxed);
        }
    }
}

/// One scope's counters on one thread.
#[repr(C, align(64))]
struct Slot {
    // Hot: every operation while the slot is current.
    alloc: Side,
    free: Side,
    // Cold.
    scope: AtomicU32,
    /// Net bytes published to the scope's cell and the globals.
    published_requested: Cell<i64>,
    published_usable: Cell<i64>,
    /// 1 when the wide counters took an operation since the slot last
    /// published (any other operation leaves a packed word above 0).
    touched: Cell<u64>,
}

impl Slot {
    const fn new() -> Self {
        Slot {
            alloc: Side::new(),
            free: Side::new(),
            scope: AtomicU32::new(0),
            published_requested: Cell::new(0),
            published_usable: Cell::new(0),
            touched: Cell::new(0),
        }
    }

    /// The slot's cumulative counts. Another thread must read them inside
    /// [`Local::read`].
    fn counts(&self) -> Counts {
        let (alloc_requested, allocations, alloc_usable) = self.alloc.load();
        let (free_requested, deallocations, free_usable) = self.free.load();
        Counts {
            alloc_requested,
            free_requested,
            alloc_usable,
            free_usable,
            allocations,
            deallocations,
        }
    }

    /// Moves the packed words into the wide counters (inside [`Local::write`]).
    fn fold(&self) {
        self.alloc.fold();
        self.free.fold();
    }

    /// Zeroes the counts and gives the slot to `scope` (inside [`Local::write`]).
    fn reset(&self, scope: u32) {
        self.alloc.reset();
        self.free.reset();
        self.scope.store(scope, Relaxed);
        self.published_requested.set(0);
        self.published_usable.set(0);
        self.touched.set(0);
    }

    /// Whether an operation happened since the slot last published (or
    /// the slot holds packed counts: publishing folds them).
    #[inline(always)]
    fn dirty(&self) -> bool {
        self.alloc.packed.load(Relaxed) | self.free.packed.load(Relaxed) | self.touched.get() != 0
    }

    /// Net change not yet published, requested and usable.
    fn pending(&self) -> (i64, i64) {
        let c = self.counts();
        (
            c.net_requested()
                .wrapping_sub(self.published_requested.get()),
            c.net_usable().wrapping_sub(self.published_usable.get()),
        )
    }
}

/// A thread's counters. Lives in a `const`-initialized thread-local without
/// `Drop`, so reaching it costs one TLS address computation and no lazy check.
#[repr(C)]
pub(crate) struct Local {
    /// Byte offset of the current slot in `slots`.
    current: Cell<usize>,
    state: Cell<u8>,
    precise: Cell<u8>,
    /// The increment [`on_alloc_ahead`] last counted ahead; 0 from the
    /// moment a call counted after its return is made ([`counting_after`]).
    /// A refusal reported while it is not 0 is that block's (see
    /// [`refused`]).
    ahead: Cell<u64>,
    /// Right after the hot fields above, so that the hot path reaches the
    /// current slot's packed words and limits with one-byte displacements.
    slots: [Slot; SLOTS],
    /// Odd while the owner moves counts that readers add up.
    seq: AtomicU64,
    reallocations: AtomicU64,
    /// The thread's counts held in no slot: slots given to another scope,
    /// frees charged to another scope's cell.
    retired: AtomicCounts,
    /// The thread's net requested bytes as published.
    published_requested: Cell<i64>,
    peak_requested: AtomicI64,
    tid: AtomicU64,
    sampler: Sampler,
    links: Links<Local>,
}

impl Linked for Local {
    fn links(&self) -> &Links<Self> {
        &self.links
    }
}

impl Local {
    const fn new() -> Self {
        Local {
            current: Cell::new(0),
            state: Cell::new(UNINIT),
            precise: Cell::new(0),
            ahead: Cell::new(0),
            slots: [const { Slot::new() }; SLOTS],
            seq: AtomicU64::new(0),
            reallocations: AtomicU64::new(0),
            retired: AtomicCounts::new(),
            published_requested: Cell::new(0),
            peak_requested: AtomicI64::new(0),
            tid: AtomicU64::new(0),
            sampler: Sampler::new(),
            links: Links::new(),
        }
    }

    #[inline(always)]
    fn slot(&self) -> &Slot {
        // SAFETY: `current` is only ever set to `index * size_of::<Slot>()`
        // with `index < SLOTS` (see `set_current`), so it points at a slot.
        unsafe { &*self.slots.as_ptr().byte_add(self.current.get()) }
    }

    /// Makes slot `index` (below `SLOTS`) the current one.
    #[inline(always)]
    fn set_current(&self, index: usize) {
        self.current
            .set((index % SLOTS) * std::mem::size_of::<Slot>());
    }

    /// Runs `f`, which moves counts, so that readers never see it half done.
    fn write(&self, f: impl FnOnce()) {
        let s = self.seq.load(Relaxed);
        self.seq.store(s.wrapping_add(1), Relaxed);
        fence(Release);
        f();
        self.seq.store(s.wrapping_add(2), Release);
    }

    /// Runs `f`, which reads counts another thread owns, until no move
    /// happened while it ran.
    fn read<R>(&self, f: impl Fn() -> R) -> R {
        loop {
            let before = self.seq.load(Acquire);
            if before & 1 == 0 {
                let r = f();
                fence(Acquire);
                if self.seq.load(Relaxed) == before {
                    return r;
                }
            }
            std::hint::spin_loop();
        }
    }

    /// The thread's totals (the caller makes the read consistent).
    fn totals(&self) -> Counts {
        self.slots
            .iter()
            .fold(self.retired.load(), |sum, s| sum.plus(&s.counts()))
    }

    fn snapshot(&self) -> ThreadSnapshot {
        let (totals, reallocations) =
            self.read(|| (self.totals(), self.reallocations.load(Relaxed)));
        ThreadSnapshot {
            tid: self.tid.load(Relaxed),
            totals,
            reallocations,
            peak_requested: self
                .peak_requested
                .load(Relaxed)
                .max(totals.net_requested()),
        }
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

static REGISTRY: Registry<Local> = Registry::new();

/// Slots whose counts started / finished moving to their scope's cell.
static MOVES_STARTED: AtomicU64 = AtomicU64::new(0);
static MOVES_DONE: AtomicU64 = AtomicU64::new(0);

// ---------------------------------------------------------------------------
// The hot path.
// ---------------------------------------------------------------------------

/// Counts a successful allocation.
#[inline(always)]
pub(crate) fn on_alloc(requested: usize, usable: usize, mode: u8) {
    LOCAL.with(|l| {
        count_alloc(l, requested, usable, mode);
    })
}

/// Counts a successful allocation; returns the scope it is charged to,
/// with [`SAMPLED`] set when its stack was sampled (owner mode).
#[inline(always)]
pub(crate) fn on_alloc_scoped(requested: usize, usable: usize, mode: u8) -> u32 {
    LOCAL.with(|l| {
        let s = l.slot();
        let sampled = count(l, &s.alloc, requested, usable, mode);
        s.scope.load(Relaxed) | sampled
    })
}

#[inline(always)]
fn count_alloc(l: &Local, requested: usize, usable: usize, mode: u8) {
    count(l, &l.slot().alloc, requested, usable, mode);
}

/// Adds one operation to one side of the current slot; past the side's
/// limit, takes the cold path. Returns [`SAMPLED`] when owner mode sampled
/// the operation's block, else 0.
#[inline(always)]
fn count(l: &Local, side: &Side, requested: usize, usable: usize, mode: u8) -> u32 {
    if usable > PACKED_MAX {
        return count_wide(l, side, requested, usable, mode);
    }
    if add_packed(side, pack(requested, usable)) {
        return 0;
    }
    slow(l, mode, requested, usable)
}

/// Adds one operation's [`pack`]ed increment to a packed word; returns
/// `false` when the cold path must run next.
#[inline(always)]
fn add_packed(side: &Side, increment: u64) -> bool {
    let word = side.packed.load(Relaxed).wrapping_add(increment);
    side.packed.store(word, Relaxed);
    word <= side.limit.get()
}

/// The shortest path, for an allocation of at most [`PACKED_MAX`] usable
/// bytes (and no more requested) in counting mode, given as its [`pack`]ed
/// increment: one add to the current slot's packed word and one
/// comparison. Returns `false` when [`after_packed`] must run next.
#[inline(always)]
pub(crate) fn on_alloc_packed(increment: u64) -> bool {
    LOCAL.with(|l| add_packed(&l.slot().alloc, increment))
}

/// [`on_alloc_packed`] in owner mode: also returns the scope the block is
/// charged to.
#[inline(always)]
pub(crate) fn on_alloc_packed_scoped(increment: u64) -> (u32, bool) {
    LOCAL.with(|l| {
        let s = l.slot();
        (s.scope.load(Relaxed), add_packed(&s.alloc, increment))
    })
}

/// [`on_alloc_packed`] before the allocation, for an inner allocator that
/// reports refusals through [`refused`] (`Inner::REPORTS_REFUSALS`): counts
/// the block ahead and returns `true` if the increment stays within the
/// limit; then the caller's last act is the inner allocator's call.
/// Otherwise counts nothing and returns `false`: the caller allocates first
/// and counts after, as for any inner allocator.
#[inline(always)]
pub(crate) fn on_alloc_ahead(increment: u64) -> bool {
    LOCAL.with(|l| {
        let side = &l.slot().alloc;
        let word = side.packed.load(Relaxed).wrapping_add(increment);
        if word > side.limit.get() {
            return false;
        }
        side.packed.store(word, Relaxed);
        l.ahead.set(increment);
        true
    })
}

/// Says that the inner allocator is about to be called for a block counted
/// after it returns: a refusal it reports now is not one [`on_alloc_ahead`]
/// counted.
#[inline(always)]
pub(crate) fn counting_after() {
    LOCAL.with(|l| l.ahead.set(0));
}

/// The inner allocator refused the calling thread's allocation in flight.
/// If [`on_alloc_ahead`] counted it, the block is counted as freed too, on
/// the same slot: live figures are back where they were, and no cumulative
/// figure goes down. Nothing runs between the two on this thread, so the
/// slot is still current; the free's packed word may pass its limit, and
/// the thread's next free takes the cold path.
#[cfg(feature = "mimalloc")]
pub(crate) fn refused() {
    LOCAL.with(|l| {
        let increment = l.ahead.replace(0);
        if increment != 0 {
            // Past the limit or not, the next free's comparison sees it.
            add_packed(&l.slot().free, increment);
        }
    })
}

/// The requested and usable bytes of a [`pack`]ed increment.
#[inline(always)]
pub(crate) fn unpack(increment: u64) -> (usize, usize) {
    (
        (increment & FIELD_MASK) as usize,
        (increment >> USABLE_SHIFT) as usize,
    )
}

/// [`on_alloc_packed`] for a free.
#[inline(always)]
pub(crate) fn on_free_packed(increment: u64) -> bool {
    LOCAL.with(|l| add_packed(&l.slot().free, increment))
}

/// The cold path after [`on_alloc_packed`], [`on_alloc_packed_scoped`] or
/// [`on_free_packed`] returned `false` for the operation [`pack`]ed as
/// `increment`. Returns [`SAMPLED`] when owner mode sampled the block.
#[cold]
#[inline(never)]
pub(crate) fn after_packed(mode: u8, increment: u64) -> u32 {
    let (requested, usable) = unpack(increment);
    LOCAL.with(|l| slow(l, mode, requested, usable))
}

/// [`count`] for an operation too large for the packed word.
#[inline(never)]
fn count_wide(l: &Local, side: &Side, requested: usize, usable: usize, mode: u8) -> u32 {
    l.slot().touched.set(1);
    if side.add_wide(requested, usable, 1) {
        return 0;
    }
    slow(l, mode, requested, usable)
}

/// Counts a free charged to the current scope.
#[inline(always)]
pub(crate) fn on_free(requested: usize, usable: usize, mode: u8) {
    LOCAL.with(|l| count_free(l, requested, usable, mode))
}

#[inline(always)]
fn count_free(l: &Local, requested: usize, usable: usize, mode: u8) {
    count(l, &l.slot().free, requested, usable, mode);
}

/// Owner mode: the last sample this thread took, for its block.
pub(crate) fn pending_sample() -> Taken {
    LOCAL.with(|l| Taken(l.sampler.pending.get()))
}

/// Counts a successful reallocation charged to the current scope; returns
/// that scope, with [`SAMPLED`] set when owner mode sampled the new block.
#[inline(always)]
pub(crate) fn on_realloc(
    old: usize,
    old_usable: usize,
    new: usize,
    new_usable: usize,
    mode: u8,
) -> u32 {
    LOCAL.with(|l| count_realloc(l, old, old_usable, new, new_usable, mode))
}

#[inline(always)]
fn count_realloc(
    l: &Local,
    old: usize,
    old_usable: usize,
    new: usize,
    new_usable: usize,
    mode: u8,
) -> u32 {
    bump(&l.reallocations, 1);
    let s = l.slot();
    // Bytes without an operation: the wide counters take them.
    s.touched.set(1);
    let allocated = s.alloc.add_wide(new, new_usable, 0);
    let freed = s.free.add_wide(old, old_usable, 0);
    if !(allocated && freed) {
        return s.scope.load(Relaxed) | slow(l, mode, new, new_usable);
    }
    s.scope.load(Relaxed)
}

/// Owner mode: counts a free of block `ptr`, which scope `owner` allocated
/// (with [`SAMPLED`] set if its stack was sampled).
#[inline(always)]
pub(crate) fn on_free_owned(ptr: *mut u8, requested: usize, usable: usize, owner: u32, mode: u8) {
    LOCAL.with(|l| {
        if l.slot().scope.load(Relaxed) == owner {
            count_free(l, requested, usable, mode);
        } else {
            free_foreign(l, ptr, requested, usable, owner, mode);
        }
    })
}

/// Owner mode: counts a reallocation of a block that scope `owner`
/// allocated; the new block belongs to the current scope, which is returned.
#[inline(always)]
pub(crate) fn on_realloc_owned(
    old: usize,
    old_usable: usize,
    owner: u32,
    new: usize,
    new_usable: usize,
    mode: u8,
) -> u32 {
    LOCAL.with(|l| {
        if l.slot().scope.load(Relaxed) == owner {
            count_realloc(l, old, old_usable, new, new_usable, mode)
        } else {
            realloc_foreign(l, old, old_usable, owner, new, new_usable, mode)
        }
    })
}

// ---------------------------------------------------------------------------
// The cold path.
// ---------------------------------------------------------------------------

/// Owner mode, a block of another scope: its cell is charged directly, the
/// thread's retired counts take the free. A sampled block leaves the live
/// samples first.
#[cold]
#[inline(never)]
fn free_foreign(l: &Local, ptr: *mut u8, requested: usize, usable: usize, owner: u32, mode: u8) {
    let owner = if owner & SAMPLED != 0 {
        crate::stacks::leave_live(ptr);
        let owner = owner & !SAMPLED;
        if l.slot().scope.load(Relaxed) == owner {
            count_free(l, requested, usable, mode);
            return;
        }
        owner
    } else {
        owner
    };
    retire_foreign(l, &Counts::free(requested, usable, 1), owner);
    if l.state.get() == UNINIT {
        slow(l, mode, 0, 0);
    }
}

#[cold]
#[inline(never)]
fn realloc_foreign(
    l: &Local,
    old: usize,
    old_usable: usize,
    owner: u32,
    new: usize,
    new_usable: usize,
    mode: u8,
) -> u32 {
    retire_foreign(l, &Counts::free(old, old_usable, 0), owner);
    // The new block is an ordinary growth of the current scope.
    count_realloc(l, 0, 0, new, new_usable, mode)
}

fn retire_foreign(l: &Local, freed: &Counts, owner: u32) {
    let (_, c) = cell_of_owner(owner);
    c.folded.add_shared(freed);
    let (r, u) = (freed.net_requested(), freed.net_usable());
    publish_to(c, r, u);
    if l.state.get() == TORN_DOWN {
        EXITED.add(freed, 0, 0);
    } else {
        l.write(|| l.retired.add_owned(freed));
        l.published_requested
            .set(l.published_requested.get().wrapping_add(r));
    }
}

/// Everything that is not a plain count: folding, publishing, sampling,
/// registering, counting after teardown. `requested` and `usable` are the
/// sizes the operation allocated (0 for a free). Returns [`SAMPLED`] when
/// owner mode sampled the operation's block, else 0.
#[cold]
#[inline(never)]
fn slow(l: &Local, mode: u8, requested: usize, usable: usize) -> u32 {
    match l.state.get() {
        UNINIT => register(l, mode),
        ACTIVE => {
            let s = l.slot();
            let taken = if l.sampler.mean.get() != 0 {
                sample_due(l, s, requested, usable)
            } else {
                None
            };
            arm(l, s);
            if let Some(taken) = taken
                && mode & !REPORTS_REFUSALS == OWNER_MODE
            {
                l.sampler.pending.set(taken.0);
                return SAMPLED;
            }
        }
        TORN_DOWN => retire_torn_down(l),
        // Registering: the counts wait in the slot's wide counters.
        _ => {
            let s = l.slot();
            l.write(|| s.fold());
        }
    }
    0
}

/// Samples the operation's block if its bytes took the thread past its
/// countdown (see `arm`).
fn sample_due(l: &Local, s: &Slot, requested: usize, usable: usize) -> Option<Taken> {
    let sampler = &l.sampler;
    let now = s.alloc.usable_total();
    let consumed = now.wrapping_sub(sampler.armed.get());
    if consumed <= sampler.left.get() {
        return None;
    }
    sampler.armed.set(now);
    sampler.take(s.scope.load(Relaxed), requested, usable)
}

/// Adds a net change of live bytes to a scope's cell and to the process's
/// figures, raising their peaks.
fn publish_to(scope: &ScopeCell, requested: i64, usable: i64) {
    scope.live.publish(requested, usable);
    LIVE.publish(requested, usable);
}

/// Publishes the slot's net change since its last publication.
fn publish(l: &Local, s: &Slot) {
    let c = s.counts();
    let (requested, usable) = (c.net_requested(), c.net_usable());
    let dr = requested.wrapping_sub(s.published_requested.get());
    let du = usable.wrapping_sub(s.published_usable.get());
    s.published_requested.set(requested);
    s.published_usable.set(usable);
    s.touched.set(0);
    if dr != 0 || du != 0 {
        publish_to(cell(s.scope.load(Relaxed)), dr, du);
        let thread = l.published_requested.get().wrapping_add(dr);
        l.published_requested.set(thread);
        raise(&l.peak_requested, thread);
    }
}

/// Publishes the slot if it holds back more than half the bound (or the
/// thread is precise), then sets its limits.
///
/// With `a`, `f` the cumulative allocated and freed usable bytes, `ar`, `fr`
/// the requested ones, and `p`, `pr` the net published so far, an
/// allocation adds at least as many usable bytes as requested ones. So while
/// `a <= min(f + p, fr + pr + (a - ar)) + FLUSH_BYTES` (all taken now), both
/// pending net changes stay within `FLUSH_BYTES`; frees are symmetric. Each
/// operation thus compares its own usable counter with one constant; after
/// a publication each has at least `FLUSH_BYTES / 2` of room.
///
/// While sampling, the current slot's allocation limit is also at most the
/// thread's countdown to its next sample, counted from the slot's
/// allocated usable bytes now.
fn arm(l: &Local, s: &Slot) {
    l.write(|| s.fold());
    let current = ptr::eq(s, l.slot());
    if current {
        follow_sampling(l, s);
    }
    let (pr, pu) = s.pending();
    if l.precise.get() != 0
        || pr.unsigned_abs() > FLUSH_BYTES / 2
        || pu.unsigned_abs() > FLUSH_BYTES / 2
    {
        publish(l, s);
    }
    if l.state.get() != ACTIVE || l.precise.get() != 0 {
        s.alloc.limit.set(0);
        s.free.limit.set(0);
        return;
    }
    let c = s.counts();
    let pr = s.published_requested.get() as u64;
    let pu = s.published_usable.get() as u64;
    let slack_allocated = c.alloc_usable.wrapping_sub(c.alloc_requested);
    let slack_freed = c.free_usable.wrapping_sub(c.free_requested);
    let alloc_limit = (c.free_usable.wrapping_add(pu)).min(
        c.free_requested
            .wrapping_add(pr)
            .wrapping_add(slack_allocated),
    );
    let free_limit = (c.alloc_usable.wrapping_sub(pu))
        .min(c.alloc_requested.wrapping_sub(pr).wrapping_add(slack_freed));
    let mut alloc_limit = alloc_limit.wrapping_add(FLUSH_BYTES);
    if current && l.sampler.mean.get() != 0 {
        alloc_limit = alloc_limit.min(c.alloc_usable.saturating_add(l.sampler.left.get()));
    }
    // The packed words are empty (folded above): the room is what is left
    // below each limit.
    s.alloc
        .limit
        .set(limit_for(alloc_limit.saturating_sub(c.alloc_usable)));
    s.free.limit.set(limit_for(
        free_limit
            .wrapping_add(FLUSH_BYTES)
            .saturating_sub(c.free_usable),
    ));
}

/// Takes the bytes the current slot `s` allocated since the countdown was
/// last set off the countdown, and follows the process's sampling mean.
fn follow_sampling(l: &Local, s: &Slot) {
    let sampler = &l.sampler;
    let was = sampler.mean.get();
    sampler.follow();
    if sampler.mean.get() != 0 {
        let now = s.alloc.usable_total();
        if was != 0 {
            let consumed = now.wrapping_sub(sampler.armed.get());
            sampler
                .left
                .set(sampler.left.get().saturating_sub(consumed));
        }
        sampler.armed.set(now);
    }
}

fn register(l: &Local, mode: u8) {
    l.state.set(BUSY);
    if mode & REPORTS_REFUSALS != 0 {
        // Before this thread's limits let `on_alloc_ahead` count anything.
        crate::inner::report_refusals();
    }
    ATTRIBUTION.store(mode & !REPORTS_REFUSALS, Relaxed);
    l.tid.store(sys::thread_id(), Relaxed);
    install_fork_handlers();
    REGISTRY.lock().link(l);
    let live = THREADS_LIVE.fetch_add(1, Relaxed) + 1;
    THREADS_MAX.fetch_max(live, Relaxed);
    // Registering the exit hook may allocate; those allocations see BUSY.
    if EXIT.try_with(|_| ()).is_err() {
        // The thread is already tearing down: no hook will run, so do not
        // stay linked.
        l.state.set(ACTIVE);
        thread_exit(l);
        return;
    }
    l.state.set(ACTIVE);
    arm(l, l.slot());
}

/// Folds every slot of `l` into its scope's cell and the whole thread into
/// the `exited` row, and unlinks it. The caller holds the registry lock.
fn retire_thread(l: &Local, registry: &crate::registry::Locked<'_, Local>) {
    let mut total = l.retired.load();
    for s in &l.slots {
        let c = s.counts();
        if c.is_empty() {
            continue;
        }
        publish(l, s);
        cell(s.scope.load(Relaxed)).folded.add_shared(&c);
        total = total.plus(&c);
    }
    let peak = l.peak_requested.load(Relaxed).max(total.net_requested());
    EXITED.add(&total, l.reallocations.load(Relaxed), peak);
    registry.unlink(l);
    THREADS_LIVE.fetch_sub(1, Relaxed);
    EXITED.threads.fetch_add(1, Relaxed);
    l.write(|| {
        for s in &l.slots {
            let scope = s.scope.load(Relaxed);
            s.reset(scope);
        }
        l.retired.clear();
        l.reallocations.store(0, Relaxed);
    });
    l.published_requested.set(0);
}

/// The exit hook: the thread's counters go to the `exited` row.
fn thread_exit(l: &Local) {
    if l.state.get() != ACTIVE {
        return;
    }
    {
        let registry = REGISTRY.lock();
        retire_thread(l, &registry);
    }
    l.state.set(TORN_DOWN);
    for s in &l.slots {
        arm(l, s);
    }
}

/// After teardown every operation lands here: it goes straight to the
/// scope's cell, the globals and the `exited` row.
fn retire_torn_down(l: &Local) {
    let s = l.slot();
    let c = s.counts();
    s.reset(s.scope.load(Relaxed));
    let (r, u) = (c.net_requested(), c.net_usable());
    let target = cell(s.scope.load(Relaxed));
    target.folded.add_shared(&c);
    publish_to(target, r, u);
    EXITED.add(&c, l.reallocations.swap(0, Relaxed), 0);
}

/// Gives slot `index` to `scope`, moving what it held for another scope to
/// that scope's cell.
#[cold]
#[inline(never)]
fn claim(l: &Local, index: usize, scope: u32) {
    let s = &l.slots[index];
    let c = s.counts();
    if c.is_empty() {
        l.write(|| s.reset(scope));
    } else {
        publish(l, s);
        let old = s.scope.load(Relaxed);
        MOVES_STARTED.fetch_add(1, Relaxed);
        fence(Release);
        l.write(|| {
            l.retired.add_owned(&c);
            s.reset(scope);
        });
        cell(old).folded.add_shared(&c);
        MOVES_DONE.fetch_add(1, Release);
    }
    arm(l, s);
}

#[cold]
#[inline(never)]
fn leave(l: &Local, s: &Slot) {
    publish(l, s);
    arm(l, s);
}

// ---------------------------------------------------------------------------
// Fork: the child has one thread. The registry lock must not be held by a
// thread that no longer exists, and the other threads' counters (copied into
// the child, never to exit) are folded into the `exited` row.
// ---------------------------------------------------------------------------

fn install_fork_handlers() {
    static INSTALLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !INSTALLED.swap(true, Relaxed) {
        sys::at_fork(fork_prepare, fork_parent, fork_child);
    }
}

extern "C" fn fork_prepare() {
    REGISTRY.raw_lock();
}

extern "C" fn fork_parent() {
    REGISTRY.raw_unlock();
}

extern "C" fn fork_child() {
    let me = LOCAL.with(|l| l as *const Local);
    let registry = REGISTRY.adopt_lock();
    registry.for_each(|l| {
        if !ptr::eq(l, me) {
            // Single-threaded now: the vanished thread's cells are ours to read.
            retire_thread(l, &registry);
        }
    });
    // A thread that vanished in the middle of a move never finishes it.
    MOVES_DONE.store(MOVES_STARTED.load(Relaxed), Relaxed);
    LOCAL.with(|l| l.tid.store(sys::thread_id(), Relaxed));
}

// ---------------------------------------------------------------------------
// What the rest of the crate calls.
// ---------------------------------------------------------------------------

/// Moves a block's live bytes from scope `from` (an owner tag, which may be
/// corrupt) to scope `to`: counted as freed in one cell and allocated in the
/// other, with no operation counted and no thread or process figure touched.
pub(crate) fn move_live(from: u32, to: u32, requested: usize, usable: usize) {
    let (_, old) = cell_of_owner(from);
    old.folded.add_shared(&Counts::free(requested, usable, 0));
    old.live.publish(-(requested as i64), -(usable as i64));
    let new = cell(to);
    new.folded.add_shared(&Counts::alloc(requested, usable, 0));
    new.live.publish(requested as i64, usable as i64);
}

/// The scope the calling thread is in.
#[inline(always)]
pub(crate) fn current_scope() -> u32 {
    LOCAL.with(|l| l.slot().scope.load(Relaxed))
}

/// Makes `scope` current; returns the scope that was. Writes no shared
/// memory unless the scope it leaves holds unpublished bytes or the slot of
/// `scope` belongs to another scope.
#[inline(always)]
pub(crate) fn switch_scope(scope: u32) -> u32 {
    // A trivial closure, so that `with` is inlined into every caller (the
    // thread-local's address is then one instruction away).
    let l: *const Local = LOCAL.with(ptr::from_ref);
    // SAFETY: the calling thread's own counters, in a thread-local without
    // a destructor: valid for as long as the thread, used within this call.
    let l = unsafe { &*l };
    let s = l.slot();
    let previous = s.scope.load(Relaxed);
    if s.dirty() {
        leave(l, s);
    }
    let index = scope as usize % SLOTS;
    if l.slots[index].scope.load(Relaxed) != scope {
        claim(l, index, scope);
    }
    if l.sampler.mean.get() != 0 {
        switch_sampling(l, index);
    } else {
        l.set_current(index);
    }
    previous
}

/// While sampling: the countdown goes on from the slot it left, in the
/// slot it enters, whose allocation limit comes down to the next sample
/// (a limit that is lower than it needs to be only sends one operation to
/// the cold path, which sets it right).
#[cold]
#[inline(never)]
fn switch_sampling(l: &Local, index: usize) {
    let sampler = &l.sampler;
    let consumed = l
        .slot()
        .alloc
        .usable_total()
        .wrapping_sub(sampler.armed.get());
    sampler
        .left
        .set(sampler.left.get().saturating_sub(consumed));
    l.set_current(index);
    let s = l.slot();
    sampler.armed.set(s.alloc.usable_total());
    // Counted from the usable bytes the packed word holds now.
    let held = s.alloc.packed.load(Relaxed) >> USABLE_SHIFT;
    let limit = s.alloc.limit.get();
    if held.saturating_add(sampler.left.get()) < limit >> USABLE_SHIFT {
        s.alloc
            .limit
            .set(limit_for(held.saturating_add(sampler.left.get())));
    }
}

/// Publishes every slot of the calling thread that holds unpublished bytes.
pub(crate) fn flush_current() {
    LOCAL.with(|l| {
        for s in &l.slots {
            if s.dirty() {
                leave(l, s);
            }
        }
    })
}

/// Makes the calling thread publish on every operation (`on`, nests) or go
/// back to batching once every such request is withdrawn.
pub(crate) fn set_precise(on: bool) {
    LOCAL.with(|l| {
        let depth = l.precise.get();
        l.precise.set(if on {
            depth.saturating_add(1)
        } else {
            depth.saturating_sub(1)
        });
        for s in &l.slots {
            arm(l, s);
        }
    })
}

/// Registers the calling thread if it is not yet, so that it can allocate
/// while holding the registry lock without needing the lock itself.
fn ensure_registered() {
    let mode = ATTRIBUTION.load(Relaxed);
    if mode == 0 {
        // No tracked allocator: allocations never reach this module.
        return;
    }
    LOCAL.with(|l| {
        if l.state.get() == UNINIT {
            slow(l, mode, 0, 0);
        }
    });
}

/// One live thread's figures, read consistently.
pub(crate) struct ThreadSnapshot {
    pub(crate) tid: u64,
    pub(crate) totals: Counts,
    pub(crate) reallocations: u64,
    pub(crate) peak_requested: i64,
}

/// The whole process: every live thread plus the `exited` row, read under
/// the registry lock (so no thread is counted twice or not at all while it
/// exits). Returns the totals and the reallocations.
pub(crate) fn process_totals() -> (Counts, u64) {
    ensure_registered();
    let registry = REGISTRY.lock();
    let (mut sum, mut reallocations, _) = EXITED.read();
    registry.for_each(|l| {
        let t = l.snapshot();
        sum = sum.plus(&t.totals);
        reallocations = reallocations.wrapping_add(t.reallocations);
    });
    (sum, reallocations)
}

/// Every live thread's figures and the `exited` row (counts, reallocations,
/// highest peak), read together under the registry lock.
pub(crate) fn thread_snapshots() -> (Vec<ThreadSnapshot>, (Counts, u64, i64)) {
    ensure_registered();
    loop {
        let capacity = THREADS_LIVE.load(Relaxed) as usize + 8;
        let mut out = Vec::with_capacity(capacity);
        let registry = REGISTRY.lock();
        let mut complete = true;
        registry.for_each(|l| {
            // Never grow the vector (allocate) while holding the lock.
            if out.len() < capacity {
                out.push(l.snapshot());
            } else {
                complete = false;
            }
        });
        let exited = EXITED.read();
        drop(registry);
        if complete {
            return (out, exited);
        }
    }
}

/// The calling thread's own figures, read without a lock or an allocation,
/// and whether its counters were torn down.
pub(crate) fn own() -> (ThreadSnapshot, bool) {
    LOCAL.with(|l| (l.snapshot(), l.state.get() == TORN_DOWN))
}

/// Adds to `out[id]` the counts of scope `id` for every `id < out.len()`:
/// each scope's cell plus the slots live threads hold for it, read so that
/// no count is seen twice or missed while it moves.
pub(crate) fn scope_counts(out: &mut [Counts], first: u32) {
    ensure_registered();
    loop {
        let done = MOVES_DONE.load(Acquire);
        let started = MOVES_STARTED.load(Acquire);
        if started == done {
            let registry = REGISTRY.lock();
            for (i, slot) in out.iter_mut().enumerate() {
                *slot = cell(first + i as u32).folded.load();
            }
            registry.for_each(|l| {
                let slots: [(u32, Counts); SLOTS] = l.read(|| {
                    std::array::from_fn(|i| (l.slots[i].scope.load(Relaxed), l.slots[i].counts()))
                });
                for (scope, c) in slots {
                    if let Some(i) = scope.checked_sub(first)
                        && let Some(target) = out.get_mut(i as usize)
                    {
                        *target = target.plus(&c);
                    }
                }
            });
            drop(registry);
            fence(Acquire);
            if MOVES_STARTED.load(Relaxed) == started {
                return;
            }
        }
        std::thread::yield_now();
    }
}
