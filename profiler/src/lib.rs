//! # memledger-profiler
//!
//! Does the memory pool's accounting tell the truth? This crate keeps the
//! pool's side (reservations per consumer), holds it against what the
//! tracked allocator saw ([`memledger_alloc`]) and what the kernel says is
//! resident, over time, and writes the `memledger.report/1` JSON report.
//!
//! ```text
//!   operator code ──allocates──► memledger-alloc: live/peak per scope, per thread
//!        │
//!        └─reserves─► MemoryReservation ─► MemoryPool (unbounded, greedy, fair, arbiter)
//!                            │                     decides: grant / refuse (PoolError)
//!                            ▼
//!                         ledger(): reserved now/peak per consumer, tied to a scope
//!                            │
//!   Session ── sampler thread (every MEMLEDGER_SAMPLE_MS): RSS, heap, reserved
//!        │      timeline, time-aligned peaks, drift peak, scopes at the heap peak
//!        └─ finish / Drop ─► report::Report (JSON to MEMLEDGER_REPORT), summary()
//! ```
//!
//! - [`pool`]: the `MemoryPool` trait, consumers and RAII reservations, four pools.
//! - [`mod@ledger`]: reserved figures per consumer and scope, external bytes.
//! - [`sampler`], [`session`], [`report`], [`summary`](summary()): the audit over time.
//! - [`measure`](measure()): one region of code, isolated, for tests.
//!
//! **untracked** = live heap − reserved: heap the pool does not know about
//! (negative: over-reservation).

pub mod ledger;
pub mod measure;
pub mod pool;
mod proc;
pub mod report;
pub mod sampler;
pub mod session;
mod summary;

pub use ledger::{ConsumerId, ConsumerStats, Ledger, ledger};
pub use measure::{Measurement, measure};
pub use pool::{
    ArbiterPool, ConsumerInfo, FairSpillPool, GreedyPool, MemoryConsumer, MemoryPool,
    MemoryReservation, PoolError, PoolKind, SpillFn, UnboundedPool, limit_from_env, pool_from_env,
};
pub use session::Session;
pub use summary::summary;
