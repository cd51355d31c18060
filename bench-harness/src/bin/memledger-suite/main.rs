//! `memledger-suite`: the built-in benchmark suite of `mem_profile`.
//!
//! ```text
//! memledger-suite <sort|aggregate|join|topk|arbiter|merge> [--scale F] [--pool fair|greedy|arbiter|unbounded] [--ballast-mib N]
//! ```
//!
//! Each query is an operator of the kind query engines run under a memory
//! pool, working in its own memledger scope and reserving with the
//! estimates real engines make (and their classic mistakes), so that the
//! report has something true to reveal. The input rows are generated,
//! deterministically, batch by batch. At `--scale 1` each query handles a
//! few hundred MB of rows in a few seconds.
//!
//! | query | operators (consumers) |
//! |---|---|
//! | `sort` | `ExternalSorter[0]` (spills sorted runs), `SortMerge[0]` |
//! | `aggregate` | `GroupedHashAggregate[0]` (spills sorted groups) |
//! | `join` | `HashJoinBuild[0]` (cannot spill), probe in `HashJoinProbe[0]` |
//! | `topk` | `TopK[0]` |
//! | `arbiter` | a sort, an aggregation and a join on three threads, one `ArbiterPool` |
//! | `merge` | `MergeSorter[0]` (spills sorted runs), `SpillMerge[0]` (one pass): fails at some limits above ones where it passes |
//!
//! The protocol of `mem_profile`: the pool's limit comes from
//! `MEMLEDGER_MEMORY_LIMIT` (unset: unbounded; for `arbiter`, 64 MiB times
//! the scale), the report goes to `MEMLEDGER_REPORT`, the sampler ticks
//! every `MEMLEDGER_SAMPLE_MS`. The query prints its checksum (equal for
//! every limit and pool) and the report's summary on stdout.
//!
//! Exit codes: 0 done, 1 the query failed (a refused reservation it could
//! not spill its way out of: the report's `error` holds the pool's text
//! verbatim), 2 bad usage.

mod aggregate;
mod arbiter;
mod data;
mod join;
mod merge;
mod retry;
mod sort;
mod spill;
mod topk;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use memledger_alloc::{MiMalloc, Tracked};
use memledger_profiler::session::DEFAULT_SAMPLE_MS;
use memledger_profiler::{
    ArbiterPool, MemoryPool, PoolError, PoolKind, Session, limit_from_env, pool_from_env, summary,
};

#[global_allocator]
static GLOBAL: Tracked<MiMalloc> = Tracked::new(MiMalloc);

/// Rows per batch.
pub const BATCH: usize = 4096;

/// The `arbiter` query's limit at scale 1 when `MEMLEDGER_MEMORY_LIMIT` is unset.
const ARBITER_LIMIT: f64 = 64.0 * 1024.0 * 1024.0;

/// What a query produced.
pub struct Outcome {
    /// Depends on every output row (and on their order where order matters).
    pub checksum: u64,
    /// Runs written to disk because memory ran short.
    pub spills: u64,
}

/// Why a query failed.
#[derive(Debug)]
pub enum QueryError {
    /// The pool refused a reservation that could not be spilled away.
    Pool(PoolError),
    /// A spill file could not be written or read.
    Io(std::io::Error),
    /// Anything else (a panicked operator thread).
    Other(String),
}

impl From<PoolError> for QueryError {
    fn from(e: PoolError) -> Self {
        QueryError::Pool(e)
    }
}

impl From<std::io::Error> for QueryError {
    fn from(e: std::io::Error) -> Self {
        QueryError::Io(e)
    }
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryError::Pool(e) => write!(f, "{e}"),
            QueryError::Io(e) => write!(f, "spill file: {e}"),
            QueryError::Other(e) => write!(f, "{e}"),
        }
    }
}

/// The queries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Query {
    /// External sort of 2M rows (`ExternalSorter[0]`, `SortMerge[0]`).
    Sort,
    /// Hash aggregation of 1M rows into about 400k string groups.
    Aggregate,
    /// Hash join: 500k build rows, 2M probe rows.
    Join,
    /// Top 10 000 of 3M rows.
    Topk,
    /// Sort, aggregation and join at once on one arbiter pool.
    Arbiter,
    /// External sort of 2M rows with a single-pass merge: pass/fail is not
    /// monotonic in the limit (`MergeSorter[0]`, `SpillMerge[0]`).
    Merge,
}

impl Query {
    fn name(self) -> &'static str {
        match self {
            Query::Sort => "sort",
            Query::Aggregate => "aggregate",
            Query::Join => "join",
            Query::Topk => "topk",
            Query::Arbiter => "arbiter",
            Query::Merge => "merge",
        }
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "memledger-suite",
    version,
    about = "The built-in memory benchmark suite of mem_profile"
)]
struct Cli {
    /// The query to run.
    #[arg(value_enum)]
    query: Query,
    /// Data scale: 1.0 is a few hundred MB of rows per query.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// The pool, limited by MEMLEDGER_MEMORY_LIMIT (the arbiter query always
    /// uses an arbiter pool).
    #[arg(long, default_value = "fair")]
    pool: PoolKind,
    /// MiB of heap to allocate, write and hold from before the measured
    /// window to the end: what a process loads before its query runs. The
    /// report's growth figures leave it out; its peaks do not.
    #[arg(long, value_name = "MIB", default_value_t = 0)]
    ballast_mib: usize,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    if !(cli.scale > 0.0 && cli.scale.is_finite()) {
        eprintln!("memledger-suite: error: --scale must be a positive number");
        return ExitCode::from(2);
    }
    let rows = |n: f64| ((n * cli.scale) as u64).max(1);
    let (pool, limit): (Arc<dyn MemoryPool>, Option<u64>) = match cli.query {
        Query::Arbiter => {
            let limit = limit_from_env().unwrap_or((ARBITER_LIMIT * cli.scale) as u64);
            (Arc::new(ArbiterPool::new(limit)), Some(limit))
        }
        _ => (pool_from_env(cli.pool), limit_from_env()),
    };
    let ballast = std::hint::black_box(vec![1u8; cli.ballast_mib << 20]);
    let mut session = start_session(limit);
    session.set_label(cli.query.name());
    session.set_pool_kind(pool.name());

    let result = match cli.query {
        Query::Sort => sort::run(&pool, rows(2_000_000.0)),
        Query::Aggregate => aggregate::run(&pool, rows(1_000_000.0), rows(400_000.0)),
        Query::Join => join::run(&pool, rows(500_000.0), rows(2_000_000.0)),
        Query::Topk => topk::run(&pool, rows(3_000_000.0)),
        Query::Merge => merge::run(&pool, rows(2_000_000.0)),
        Query::Arbiter => arbiter::run(
            &pool,
            &arbiter::Sizes {
                sort: rows(2_000_000.0),
                aggregate: rows(1_000_000.0),
                distinct: rows(400_000.0),
                build: rows(500_000.0),
                probe: rows(2_000_000.0),
            },
        ),
    };
    let code = match &result {
        Ok(out) => {
            println!(
                "{}: checksum {:016x}, {} spills",
                cli.query.name(),
                out.checksum,
                out.spills
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("memledger-suite: {} failed: {e}", cli.query.name());
            session.set_error(&e.to_string());
            ExitCode::from(1)
        }
    };
    drop(result);
    drop(pool);
    let finished = session.finish();
    drop(ballast);
    match finished {
        Ok(report) => print!("{}", summary(&report)),
        Err(e) => {
            eprintln!("memledger-suite: error: could not write the report: {e}");
            return ExitCode::from(1);
        }
    }
    code
}

/// The session of `mem_profile`'s protocol ([`Session::from_env`]), with
/// `limit` as the run's pool limit (the arbiter's default, when the
/// environment sets none).
fn start_session(limit: Option<u64>) -> Session {
    if limit == limit_from_env() {
        return Session::from_env();
    }
    let sample_ms = std::env::var("MEMLEDGER_SAMPLE_MS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&ms| ms > 0)
        .unwrap_or(DEFAULT_SAMPLE_MS);
    Session::new(
        std::env::var_os("MEMLEDGER_REPORT").map(PathBuf::from),
        limit,
        Duration::from_millis(sample_ms),
    )
}
