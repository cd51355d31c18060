//! The profiler's own memory: one internal scope, left out of the user's figures.
//!
//! The sampler thread runs inside [`INTERNAL_SCOPE`], and the ledger and the
//! session enter it whenever they allocate for their own bookkeeping
//! (ledger rows, the timeline, scope walks). Reports subtract its live bytes
//! from the process's live heap, list them apart
//! ([`HeapReport::internal_live_bytes`](crate::report::HeapReport::internal_live_bytes))
//! and leave the scope out of the scope list. Peaks and totals still
//! include it: it is small, the timeline being bounded.
//!
//! In counting mode a free is charged to the scope that frees it, so the
//! profiler frees what it allocated inside the same scope; what it hands to
//! the user (a [`Report`](crate::report::Report), a
//! [`PoolError`](crate::PoolError)) is allocated in the user's scope.

use std::sync::OnceLock;

use memledger_alloc::Scope;

/// The name of the scope the profiler's own allocations are charged to.
pub const INTERNAL_SCOPE: &str = "memledger.internal";

/// The scope of [`INTERNAL_SCOPE`].
pub fn internal_scope() -> Scope {
    static SCOPE: OnceLock<Scope> = OnceLock::new();
    *SCOPE.get_or_init(|| Scope::new(INTERNAL_SCOPE))
}

/// Live bytes charged to the internal scope (left out of the user's heap),
/// at least 0.
pub fn internal_live() -> i64 {
    internal_scope().stats().live_requested.max(0)
}
