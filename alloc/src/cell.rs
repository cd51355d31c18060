//! The shared per-scope counters: one [`ScopeCell`] per scope id.
//!
//! A cell holds two things:
//!
//! - **folded** counts: what left the threads for good — a thread's slot for
//!   the scope when the slot was reused or the thread exited, frees of the
//!   scope's blocks charged from another scope (owner mode), and whatever a
//!   thread counted after its own counters were torn down. A scope's exact
//!   figures are its folded counts plus the slots live threads hold for it.
//! - **published** live bytes and the peaks raised from them: threads add
//!   their net change every [`FLUSH_BYTES`](crate::FLUSH_BYTES) and when they
//!   leave the scope, so peaks lag the truth by at most that much per thread.
//!
//! Writes to a cell are atomic adds made on cold paths only.

use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering::Relaxed};

use crate::counts::Counts;

/// How many scopes can exist; past this, [`Scope::new`](crate::Scope::new)
/// returns [`Scope::OVERFLOW`](crate::Scope::OVERFLOW).
pub const MAX_SCOPES: usize = 16384;

/// The id of the `overflow` scope.
pub(crate) const OVERFLOW_ID: u32 = 1;

/// Number of ids handed out (0 and 1 are built in).
static COUNT: AtomicU32 = AtomicU32::new(2);

/// How many scope ids exist (ids below this name a scope).
pub(crate) fn count() -> u32 {
    COUNT.load(Relaxed)
}

/// Records that ids below `count` are handed out (by the scope interner,
/// under its lock).
pub(crate) fn set_count(count: u32) {
    COUNT.store(count, Relaxed);
}

#[repr(C, align(128))]
pub(crate) struct ScopeCell {
    alloc_requested: AtomicU64,
    free_requested: AtomicU64,
    alloc_usable: AtomicU64,
    free_usable: AtomicU64,
    allocations: AtomicU64,
    deallocations: AtomicU64,
    published_requested: AtomicI64,
    published_usable: AtomicI64,
    pub(crate) peak_requested: AtomicI64,
    pub(crate) peak_usable: AtomicI64,
}

impl ScopeCell {
    const fn new() -> Self {
        ScopeCell {
            alloc_requested: AtomicU64::new(0),
            free_requested: AtomicU64::new(0),
            alloc_usable: AtomicU64::new(0),
            free_usable: AtomicU64::new(0),
            allocations: AtomicU64::new(0),
            deallocations: AtomicU64::new(0),
            published_requested: AtomicI64::new(0),
            published_usable: AtomicI64::new(0),
            peak_requested: AtomicI64::new(0),
            peak_usable: AtomicI64::new(0),
        }
    }

    /// Adds counts that leave a thread for good.
    pub(crate) fn fold(&self, c: &Counts) {
        for (counter, value) in [
            (&self.alloc_requested, c.alloc_requested),
            (&self.free_requested, c.free_requested),
            (&self.alloc_usable, c.alloc_usable),
            (&self.free_usable, c.free_usable),
            (&self.allocations, c.allocations),
            (&self.deallocations, c.deallocations),
        ] {
            if value != 0 {
                counter.fetch_add(value, Relaxed);
            }
        }
    }

    /// The folded counts.
    pub(crate) fn folded(&self) -> Counts {
        Counts {
            alloc_requested: self.alloc_requested.load(Relaxed),
            free_requested: self.free_requested.load(Relaxed),
            alloc_usable: self.alloc_usable.load(Relaxed),
            free_usable: self.free_usable.load(Relaxed),
            allocations: self.allocations.load(Relaxed),
            deallocations: self.deallocations.load(Relaxed),
        }
    }

    /// Adds a net change of live bytes and raises the peaks with it.
    pub(crate) fn publish(&self, requested: i64, usable: i64) {
        if requested != 0 {
            let live = self.published_requested.fetch_add(requested, Relaxed) + requested;
            raise(&self.peak_requested, live);
        }
        if usable != 0 {
            let live = self.published_usable.fetch_add(usable, Relaxed) + usable;
            raise(&self.peak_usable, live);
        }
    }
}

/// Raises `peak` to `value` if it is higher; reads first so that the common
/// case writes nothing.
#[inline]
pub(crate) fn raise(peak: &AtomicI64, value: i64) {
    if value > peak.load(Relaxed) {
        peak.fetch_max(value, Relaxed);
    }
}

static CELLS: [ScopeCell; MAX_SCOPES] = [const { ScopeCell::new() }; MAX_SCOPES];

/// The cell of scope `id`. Ids come from `Scope` values, always below
/// [`MAX_SCOPES`].
#[inline]
pub(crate) fn cell(id: u32) -> &'static ScopeCell {
    &CELLS[id as usize % MAX_SCOPES]
}

/// The cell that an owner tag read back from a block is charged to: a tag
/// that names no scope handed out so far (a corrupt tag) goes to `overflow`,
/// never to a real scope.
#[inline]
pub(crate) fn cell_of_owner(id: u32) -> (u32, &'static ScopeCell) {
    let id = if id < count() { id } else { OVERFLOW_ID };
    (id, cell(id))
}
