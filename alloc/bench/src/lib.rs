//! # memledger-alloc-bench
//!
//! The allocator benchmark, measured the way users run memledger: each
//! allocator is the `#[global_allocator]` of its own small binary, so every
//! allocation goes through the same `__rust_alloc` call that `Box` and `Vec`
//! make. (Calling `GlobalAlloc` directly on a static lets the compiler inline
//! the allocator into the loop, which reads 10–25% cheaper than the real thing.)
//!
//! ```text
//!  cargo bench -p memledger-alloc-bench              (benches/allocators.rs)
//!        │  driver: rounds, order rotated each round
//!        ├─ mimalloc-bare        ─┐
//!        ├─ memledger-counting    │  one process each: `child_main`
//!        ├─ memledger-owner       │  runs the workloads, prints
//!        ├─ cap-mimalloc, ...    ─┘  "ns <workload> <ns/op>" lines
//!        ▼
//!  per-round ratio to mimalloc-bare → median and min–max → Markdown
//! ```
//!
//! - [`workload`]: the timed loops (pairs, churn, all-core churn, realloc,
//!   scope pair), run inside a child.
//! - [`footprint`]: owner mode's memory cost on fixed sets of blocks.
//! - [`child`]: the `main` of every allocator's binary.
//! - [`protocol`]: the arguments and output lines between driver and child.
//! - [`contender`]: the allocators compared and the contract's targets.
//! - [`options`], [`driver`], [`results`], [`report`], [`markdown`]: the
//!   driver's side, from options to the printed tables.

pub mod child;
pub mod contender;
pub mod driver;
pub mod footprint;
pub mod markdown;
pub mod options;
pub mod protocol;
pub mod report;
pub mod results;
pub mod workload;

pub use child::{Installed, child_main};
pub use contender::{Contender, Role, Target};
pub use driver::driver_main;
pub use workload::Workload;
