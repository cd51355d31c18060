//! `mem_profile`: runs each benchmark query as a subprocess, reports its
//! peak RSS against the memory its pool reserved, and compares runs in CI.
//!
//! ```text
//!  cli ──▶ app ──▶ suite      which queries, how to launch each
//!                 ├▶ runner     one child: wall time, peak RSS, timeline, stderr
//!                 │    └▶ launcher (mem_profile __launch) ─▶ query and all it starts
//!                 ├▶ classify   status from how it ended and its report
//!                 ├▶ output     run.json + summary.md + timelines, rewritten after every repeat
//!                 │    └▶ files   unique temp files, capped reads, the out-dir lock
//!                 ├▶ compare    verdicts between two runs
//!                 ├▶ merge      runs (shards) into one run
//!                 ├▶ sweep      the smallest limit each query passes at
//!                 ├▶ github     the GitHub job summary
//!                 └▶ export     table, Markdown, JSON, PR comment; Bencher JSON, CSV;
//!                               SVG timelines; the HTML report
//! ```
//!
//! The protocol with a benchmark binary is three environment variables:
//! `MEMLEDGER_REPORT` (where the child writes its
//! [`Report`](memledger_profiler::report::Report)), `MEMLEDGER_MEMORY_LIMIT`
//! (pool limit in bytes; unset: unbounded) and `MEMLEDGER_SAMPLE_MS`. Any
//! program can be run; one that writes no report still gets its status, wall
//! time, peak RSS and RSS timeline.
//!
//! Exit codes: [`EXIT_OK`], [`EXIT_QUERY_FAILED`], [`EXIT_USAGE`],
//! [`EXIT_REGRESSION`], [`EXIT_INTERRUPTED`]. Errors are one line on stderr,
//! `mem_profile: error: ...`.
//!
//! The library exists so that the binary's parts can be tested in-process;
//! its API follows the binary's needs and is not a stable interface.

#![warn(missing_docs)]

pub mod app;
pub mod child;
pub mod classify;
pub mod cli;
pub mod compare;
pub mod context;
pub mod export;
pub mod files;
pub mod github;
pub mod merge;
pub mod output;
pub mod progress;
pub mod run;
pub mod runner;
pub mod stacks;
pub mod suite;
pub mod sweep;
pub mod units;

/// Everything went well.
pub const EXIT_OK: u8 = 0;
/// At least one query was not `ok` (and `--allow-failures` was not given).
pub const EXIT_QUERY_FAILED: u8 = 1;
/// Bad usage, or input that cannot be read or used.
pub const EXIT_USAGE: u8 = 2;
/// `compare` found a regression.
pub const EXIT_REGRESSION: u8 = 3;
/// The run was interrupted (Ctrl-C or `SIGTERM`); finished queries are on disk.
pub const EXIT_INTERRUPTED: u8 = 130;
