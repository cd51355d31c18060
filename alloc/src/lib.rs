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
//!   what the inner allocator's size class really hands out (see [`Inner`]).
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
//!   from any thread, via a tag per block (an 8-byte header for blocks of
//!   256 bytes and more, a 4-byte trailer below); for per-operator diagnosis.
//!   Threads are always charged where the free happens.
//!
//! ## Cost and accuracy
//!
//! The hot path adds to counters in a `const` thread-local without `Drop`: no
//! lock, no allocation, no write to memory another thread writes. Threads
//! publish to the shared scope and global counters every [`FLUSH_BYTES`] of
//! net change and when they switch scope or exit. Live and total figures are
//! exact when read (readers add what threads have not published yet); peaks
//! are within [`peak_error_bytes`] (threads × 64 KiB), or exact for a thread
//! inside [`precise`].
//!
//! ## Guarantees
//!
//! - Nothing in the allocator path panics, locks or aborts; a null from the
//!   inner allocator is returned as null and counts nothing.
//! - `realloc` and `alloc_zeroed` use the inner allocator's own functions.
//! - Allocations before `main`, in thread-local destructors, after a thread's
//!   counters were folded into the `exited` row, and in a child after `fork`
//!   are all counted.

mod inner;
mod mode;
mod scope;
mod stats;
mod thread;
mod tracked;

#[cfg(feature = "mimalloc")]
pub use inner::mimalloc_good_size;
pub use inner::{Inner, Plain};
pub use mode::{Attribution, Counting, Mode, Owner};
pub use scope::{
    Instrumented, MAX_SCOPES, Scope, ScopeGuard, ScopeStats, overflowed_scope_names, scopes,
};
pub use stats::{
    HeapStats, PreciseGuard, ThreadStats, attribution, exited_threads, flush_thread, heap,
    is_installed, peak_error_bytes, precise, reset_peak, this_thread, threads,
};
pub use thread::FLUSH_BYTES;
pub use tracked::{OWNER_HEADER_BYTES, OWNER_HEADER_MIN, OWNER_TRAILER_BYTES, Tracked};

/// mimalloc, re-exported so that one line installs `Tracked<MiMalloc>`.
#[cfg(feature = "mimalloc")]
pub use mimalloc::MiMalloc;
