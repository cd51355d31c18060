//! # memledger-alloc
//!
//! A `#[global_allocator]` wrapper that counts every byte per thread and per
//! tagged scope, at a cost close to nothing, so it can stay on in CI.
//!
//! ```
//! # #[cfg(feature = "mimalloc")] {
//! use memledger_alloc::{MiMalloc, Scope, Tracked};
//!
//! #[global_allocator]
//! static GLOBAL: Tracked<MiMalloc> = Tracked::new(MiMalloc);
//!
//! let sort = Scope::new("sort");
//! let v: Vec<u64> = sort.in_scope(|| (0..1000).rev().collect());
//! assert_eq!(sort.stats().live_requested, 8000);
//! drop(v); // counting mode: the free is charged to `unscoped`, where it happens
//! # }
//! ```
//!
//! ## Words
//!
//! - **requested** bytes: what `Layout::size()` asked for; **usable** bytes:
//!   what the inner allocator really hands out for it (see [`Inner`]).
//! - **live**: allocated and not freed; **peak**: highest live since start or
//!   [`reset_peak`]; **total**: cumulative allocated.
//! - **scope**: a named tag ([`Scope`]) a thread enters; its allocations are
//!   charged to the innermost entered scope, or to `unscoped`.
//!
//! ## Attribution modes (compile time: [`Tracked`]'s second parameter)
//!
//! - [`Counting`] (default): a free is charged to the scope and thread that
//!   free it. No per-block bytes; the cheapest mode, for CI.
//! - [`Owner`]: a free is charged back to the scope that allocated the block,
//!   from any thread, through a tag per block kept in its size class's slack
//!   or, for large blocks ([`OWNER_SIDE_TABLE_ALWAYS`]) and blocks without
//!   slack of about [`OWNER_SIDE_TABLE_MIN`] bytes and more, in a side
//!   table; for per-operator diagnosis. Tagging never asks the
//!   inner allocator for more bytes, so no block changes size class. Small
//!   blocks without slack (8, 16, 32, 64, 128 bytes and the like, and sizes
//!   within a word of them) carry no tag: their frees are charged as in
//!   counting mode. Threads are always
//!   charged where the free happens. [`Scope::adopt`] (or [`recharge`])
//!   moves a block of [`OWNER_SIDE_TABLE_ALWAYS`] bytes or more to another
//!   scope, found by its address alone: data handed from one component to
//!   another is then charged to the one that holds it.
//!
//! ## Cost
//!
//! The hot path adds to counters in a `const` thread-local without `Drop`:
//! no lock, no allocation, no write to memory another thread writes, one
//! compare. Entering or leaving a scope switches which of the thread's own
//! per-scope slots is counted into, writing no shared memory unless the
//! scope left holds unpublished bytes.
//!
//! ## Sampled stacks
//!
//! [`stacks::start_sampling`] turns on sampled allocation stacks: which
//! code allocated the bytes (and, in owner mode, which still holds them).
//! Off, it costs nothing on the hot path. See [`stacks`].
//!
//! ## What is exact, and when
//!
//! | figure | while threads run | when quiet |
//! |---|---|---|
//! | live, total, allocation counts: [`heap`], [`threads`], [`this_thread`], [`Scope::stats`], [`scopes`] | exact at the instant of reading; cumulative figures never go down between two reads | exact |
//! | usable bytes | what the inner allocator really handed out (mimalloc: equal to `mi_usable_size`) | same |
//! | peaks (global, per scope, per thread) | at most [`peak_error_bytes`] below the truth (live threads × [`FLUSH_BYTES`], requested and usable alike); exact for a thread inside [`precise`] | same |
//!
//! Readers take the thread registry's lock for a walk over live threads, and
//! read each thread's counters with a sequence check, so a thread that exits
//! meanwhile is counted once, and counts that move from a thread to a scope's
//! shared cell are seen in exactly one place.
//!
//! ## Guarantees
//!
//! - Nothing in the allocator path panics or aborts; a null from the inner
//!   allocator is returned as null and leaves live figures unchanged. The
//!   hot path takes no lock; a thread takes the registry's lock once to
//!   register and once to exit.
//! - In counting mode over mimalloc, a block of up to 8 KiB (aligned to at
//!   most 8) is counted *before* mimalloc is asked for it, so that `alloc`
//!   ends in a tail call with no stack frame of its own. memledger installs
//!   mimalloc's error handler (`mi_register_error`), which mimalloc calls on
//!   the refusing thread before it returns null; the handler counts such a
//!   block as freed, so live figures stay exact and no cumulative figure
//!   goes down, and the refused request shows in `allocations` and
//!   `deallocations` alike. Every other refused request counts nothing.
//!   The handler ignores every other error, as mimalloc's default build
//!   does (a mimalloc built with its `secure` or `debug` feature no longer
//!   aborts on corrupted heap metadata). A program that installs its own
//!   mimalloc error handler replaces memledger's: then a refused small
//!   block stays counted as live. A program that also calls mimalloc
//!   directly, beside the global allocator, and is refused there may have
//!   that refusal taken for its thread's last small block, which then
//!   counts as freed.
//! - `alloc`, `alloc_zeroed` and `realloc` use the inner allocator's own
//!   functions (for mimalloc, see [`Inner`] for the entry points).
//! - Allocations before `main`, in thread-local destructors, after a thread's
//!   counters were folded into the `exited` row, and in a child after `fork`
//!   are all counted.
//! - Linux only (a compile error elsewhere).

mod cell;
mod counts;
mod global;
mod inner;
mod mode;
mod registry;
mod scope;
pub mod stacks;
mod stats;
mod sys;
mod tag;
mod thread;
mod tracked;

pub use cell::MAX_SCOPES;
#[cfg(feature = "mimalloc")]
pub use inner::mimalloc_good_size;
pub use inner::{Inner, Plain};
pub use mode::{Attribution, Counting, Mode, Owner};
pub use scope::{
    Instrumented, Scope, ScopeGuard, ScopeStats, overflowed_scope_names, recharge, scopes,
};
pub use stats::{
    HeapStats, PreciseGuard, ThreadStats, attribution, exited_threads, flush_thread, heap,
    is_installed, peak_error_bytes, precise, reset_peak, this_thread, threads,
};
pub use tag::{
    OWNER_SIDE_TABLE_ALWAYS, OWNER_SIDE_TABLE_MIN, OWNER_TAG_BYTES, side_table_overflows,
};
pub use thread::FLUSH_BYTES;
pub use tracked::Tracked;

/// mimalloc, re-exported so that one line installs `Tracked<MiMalloc>`.
#[cfg(feature = "mimalloc")]
pub use mimalloc::MiMalloc;
