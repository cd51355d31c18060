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
//!   stream is polled inside a scope named after the operator and partition;
//!   [`instrument_plan_with`] picks the [`View`]: bytes charged to the
//!   operator that allocated them, or to the one that last received them in
//!   a batch ([`adopt_batch`]).
//! - [`install_scope_tracer`] makes every task DataFusion spawns
//!   (RepartitionExec's input drivers, spill writers) run in the scope of the
//!   operator that spawned it.
//! - [`tpch`] generates TPC-H tables in memory and holds the 22 queries;
//!   [`parquet_data`] writes them once as Parquet files and registers them
//!   as listing tables. The `memledger-tpch` binary runs one query under a
//!   pool limit and writes the report, for `mem_profile run --suite tpch`.
//! - [`ops`] holds one query per operator, each isolating it, for
//!   `mem_profile run --suite datafusion-ops`.
//! - [`operator_view`] ranks operators by untracked bytes at the heap peak;
//!   with sampled stacks, [`operator_stacks`] names the code behind each.

pub mod operators;
pub mod ops;
pub mod parquet_data;
pub mod pool;
pub mod scoped;
pub mod spawn;
pub mod tpch;

pub use operators::{OperatorRow, operator_stacks, operator_view, render};
pub use pool::AuditedPool;
pub use scoped::{ScopedExec, View, adopt_batch, instrument_plan, instrument_plan_with};
pub use spawn::{ScopeTracer, install_scope_tracer};
