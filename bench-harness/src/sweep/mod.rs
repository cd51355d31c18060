//! `mem_profile sweep`: the smallest memory limit each query passes at, and
//! the limits above it where it fails anyway.
//!
//! ```text
//!  command ──▶ probe (one run at one limit: the runner of `run`, with
//!    │           MEMLEDGER_MEMORY_LIMIT set)                    ▲
//!    ├─ per query: unlimited run ─▶ top = its reserved peak     │
//!    │             search (grid, bisection) ─── probe(limit) ───┘
//!    ├─ output   sweep.json (results), summary.md (summary), NN-id.svg (svg)
//!    └─ compare  two sweeps: exit 3 when a minimum grew
//! ```
//!
//! For each query: one run without a limit gives its reserved peak, the
//! top of the search (or `--max-limit`, or, without a report, its peak
//! RSS). The [`search`] then runs the query at a grid of limits up to the
//! top and bisects below the lowest one that passed, to the resolution;
//! a limit is passed when the run's status is `ok`. The limits above the
//! minimum at which it failed are its non-monotonic points.
//!
//! `--jobs N` sweeps N queries at once, each by its own sequence of runs.
//! Peak RSS stays per process tree (the launcher's `ru_maxrss`), so memory
//! figures do not mix; wall times do grow when the runs share cores and
//! disk. With more than one job the harness is no subreaper: a query that
//! kills its own launcher leaves what it started to the system's reaper.
//!
//! Every finished run rewrites `sweep.json`, `summary.md` and its query's
//! plot; Ctrl-C stops the running ones and keeps everything finished.

pub mod command;
pub mod compare;
pub mod options;
pub mod output;
pub mod probe;
pub mod results;
pub mod search;
pub mod summary;
pub mod svg;
