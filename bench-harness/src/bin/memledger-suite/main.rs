//! `memledger-suite`: the built-in benchmark suite of `mem_profile`.
//!
//! ```text
//! memledger-suite <sort|aggregate|join|topk|arbiter> [--scale F] [--pool fair|greedy|arbiter|unbounded]
//! ```
//!
//! Each query is an operator of the kind query engines run under a memory
//! pool, reserving with the estimates real engines make (and their classic
//! mistakes), so the report has something true to reveal. The pool's limit
//! comes from `MEMLEDGER_MEMORY_LIMIT`; the report goes to
//! `MEMLEDGER_REPORT`. At `--scale 1` each query handles a few hundred MB.
//!
//! Exit codes: 0 done, 1 the query failed (a refused reservation it could
//! not spill its way out of: the report's `error` holds the pool's text),
//! 2 bad usage.

mod aggregate;
mod arbiter;
mod data;
mod join;
mod sort;
mod spill;
mod topk;

use std::process::ExitCode;

use clap::Parser;
use memledger_alloc::{MiMalloc, Tracked};
use memledger_profiler::{PoolError, PoolKind, Session, limit_from_env, summary};

#[global_allocator]
static GLOBAL: Tracked<MiMalloc> = Tracked::new(MiMalloc);

/// Rows per batch.
pub const BATCH: usize = 4096;

/// What a query produced.
pub struct Outcome {
    /// Depends on every output row (and their order where order matters).
    pub checksum: u64,
    /// Runs written to disk.
    pub spills: u64,
}

/// Why a query failed.
#[derive(Debug)]
pub enum QueryError {
    Pool(PoolError),
    Io(std::io::Error),
    Panic,
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
            QueryError::Panic => write!(f, "an operator thread panicked"),
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
    /// sort, aggregate, join, topk or arbiter.
    query: String,
    /// Data scale: 1.0 is a few hundred MB per query.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// The pool (the arbiter query always uses an arbiter pool).
    #[arg(long, default_value = "fair")]
    pool: PoolKind,
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
    let (kind, limit) = match cli.query.as_str() {
        "arbiter" => (
            PoolKind::Arbiter,
            Some(limit_from_env().unwrap_or((32.0 * 1048576.0 * cli.scale) as u64)),
        ),
        _ => (cli.pool, limit_from_env()),
    };
    if !["sort", "aggregate", "join", "topk", "arbiter"].contains(&cli.query.as_str()) {
        eprintln!(
            "memledger-suite: error: unknown query `{}` (sort, aggregate, join, topk, arbiter)",
            cli.query
        );
        return ExitCode::from(2);
    }
    let mut session = Session::from_env();
    session.set_label(&cli.query);
    session.set_pool_kind(kind.name());
    let pool = kind.build(limit);
    let result = match cli.query.as_str() {
        "sort" => sort::run(&pool, rows(2_000_000.0)),
        "aggregate" => aggregate::run(&pool, rows(1_000_000.0), rows(400_000.0)),
        "join" => join::run(&pool, rows(500_000.0), rows(2_000_000.0)),
        "topk" => topk::run(&pool, rows(3_000_000.0)),
        _ => arbiter::run(&pool, rows(1_000_000.0)),
    };
    let code = match &result {
        Ok(out) => {
            println!(
                "{}: checksum {:016x}, {} spills",
                cli.query, out.checksum, out.spills
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("memledger-suite: {} failed: {e}", cli.query);
            session.set_error(&e.to_string());
            ExitCode::from(1)
        }
    };
    drop(pool);
    match session.finish() {
        Ok(report) => print!("{}", summary(&report)),
        Err(e) => {
            eprintln!("memledger-suite: error: could not write the report: {e}");
            return ExitCode::from(1);
        }
    }
    code
}
