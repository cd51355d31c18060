//! # memledger-profiler
//!
//! Does the memory pool's accounting tell the truth? This crate keeps the
//! pool's side (reservations per consumer), holds it against what the
//! tracked allocator saw ([`memledger_alloc`]) and what the kernel says is
//! resident, over time, and writes the `memledger.report/1` JSON report.
//!
//! ```text
//!   operator code ──allocates (inside its scope)──► memledger-alloc: live/peak per scope, per thread
//!        │                                                   │
//!        └─reserves─► MemoryReservation ─► MemoryPool        │
//!                            │   (unbounded, greedy, fair, arbiter: grant / refuse with PoolError)
//!                            ▼                               │
//!                  ledger(): reserved now/peak per consumer  │
//!                  and per scope, external bytes             │
//!                            │                               │
//!                            └──────► audit ◄────────────────┘  untracked = live − reserved
//!                                       │
//!   Session ── sampler thread (every MEMLEDGER_SAMPLE_MS): RSS, heap, reserved:
//!        │      bounded timeline, time-aligned peaks, drift peak, scopes at the heap peak
//!        └─ finish / Drop ─► report::Report (JSON to MEMLEDGER_REPORT), summary()
//! ```
//!
//! - [`pool`]: the [`MemoryPool`] trait, consumers and RAII reservations, four pools.
//! - [`mod@ledger`]: reserved figures per consumer and scope, external bytes.
//! - [`audit`]: reserved held against allocated, per scope and for the process.
//! - [`sampler`], [`session`], [`report`], [`summary`](summary()): the audit over time.
//! - [`mod@measure`]: one region of code, isolated, for tests.
//!
//! **untracked** = live heap − reserved: heap the pool does not know about
//! (negative: over-reservation). The heap figures need the tracked
//! allocator installed as the `#[global_allocator]`; without it, the pools,
//! the ledger and the report still work and every heap figure is 0.

#![warn(missing_docs)]

pub mod audit;
pub mod internal;
pub mod ledger;
pub mod measure;
pub mod pool;
mod proc;
pub mod report;
pub mod sampler;
pub mod session;
pub mod stacks;
mod summary;

pub use audit::{ProcessAudit, ScopeAudit, process_audit, scope_audit};
pub use ledger::{ConsumerId, ConsumerStats, Ledger, ledger, report_external};
pub use measure::{MeasuredFuture, Measurement, measure, measure_future};
pub use pool::{
    ArbiterPool, ConsumerInfo, FairSpillPool, GreedyPool, MemoryConsumer, MemoryPool,
    MemoryReservation, PoolError, PoolKind, ReleaseError, SpillFn, UnboundedPool, limit_from_env,
    pool_from_env,
};
pub use session::Session;
pub use summary::summary;
