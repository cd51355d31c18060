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

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use crate::counts::{AtomicCounts, PublishedLive};

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
    /// Counts that left the threads for good.
    pub(crate) folded: AtomicCounts,
    /// Live bytes as published, and the peaks raised from them.
    pub(crate) live: PublishedLive,
}

impl ScopeCell {
    const fn new() -> Self {
        ScopeCell {
            folded: AtomicCounts::new(),
            live: PublishedLive::new(),
        }
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
