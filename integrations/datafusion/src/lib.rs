//! # memledger-datafusion
//!
//! Audits Apache DataFusion's own memory accounting per operator.
//!
//! ```text
//!   physical plan ──instrument_plan──► every node polled in scope "Operator[partition]"
//!   RuntimeEnv pool ──AuditedPool────► every reservation recorded, tied to that scope
//!   memledger-alloc (global allocator) counts what each scope really allocated
//!   memledger-profiler Session ───────► memledger.report/1, with the heap-peak snapshot
//!   operator_view(report) ────────────► operators ranked by heap beyond their reservations
//! ```
//!
//! - [`AuditedPool`] implements DataFusion's `MemoryPool` around any inner
//!   DataFusion pool, forwarding every call unchanged.
//! - [`instrument_plan`] wraps each node of a physical plan so its output
//!   stream is polled inside a scope named after the operator and partition.
//! - [`tpch`] generates TPC-H tables in memory and holds the 22 queries; the
//!   `memledger-tpch` binary runs one under a pool limit and writes the report,
//!   for `mem_profile run --suite tpch`.
//! - [`operator_view`] ranks operators by untracked bytes at the heap peak.

pub mod operators;
pub mod pool;
pub mod scoped;
pub mod tpch;

pub use operators::{OperatorRow, operator_view, render};
pub use pool::AuditedPool;
pub use scoped::{ScopedExec, instrument_plan};
