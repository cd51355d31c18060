//! `memledger-tpch`: runs one TPC-H query on DataFusion under memledger and
//! writes the `memledger.report/1` report, as `mem_profile` expects.
//!
//! ```text
//! memledger-tpch 3 --scale 0.1 --partitions 4 --pool fair
//! MEMLEDGER_MEMORY_LIMIT=268435456 MEMLEDGER_REPORT=q3.json memledger-tpch q3
//! memledger-tpch view mem_profile_out/run.json     # per-operator view of a run
//! ```
//!
//! Exit codes: 0 the query ran; 1 it failed (a pool refusal included: its
//! text is the report's `error`); 2 bad usage or unreadable input.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use datafusion::execution::memory_pool::{
    FairSpillPool, GreedyMemoryPool, MemoryPool, TrackConsumersPool, UnboundedMemoryPool,
};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::physical_plan::collect;
use datafusion::prelude::{SessionConfig, SessionContext};
use memledger_alloc::{MiMalloc, Scope, Tracked};
use memledger_datafusion::{AuditedPool, instrument_plan, operator_view, render, tpch};
use memledger_profiler::Session;
use memledger_profiler::report::Report;

/// Owner mode by default: the per-operator view then shows which operator
/// created the bytes still live at the peak. Feature `counting` switches.
#[cfg(not(feature = "counting"))]
#[global_allocator]
static GLOBAL: Tracked<MiMalloc, memledger_alloc::Owner> = Tracked::new(MiMalloc);
#[cfg(feature = "counting")]
#[global_allocator]
static GLOBAL: Tracked<MiMalloc> = Tracked::new(MiMalloc);

#[derive(Parser, Debug)]
#[command(
    name = "memledger-tpch",
    version,
    about = "Run a TPC-H query on DataFusion under memledger",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The query: 1..22 (or q1..q22).
    query: Option<String>,
    /// TPC-H scale factor (1.0 is about 1 GB of raw data).
    #[arg(long, default_value_t = 0.1)]
    scale: f64,
    /// DataFusion partitions (and tokio worker threads).
    #[arg(long, default_value_t = 4)]
    partitions: usize,
    /// DataFusion pool under the limit from MEMLEDGER_MEMORY_LIMIT: fair, greedy, track (TrackConsumersPool over fair) or unbounded.
    #[arg(long, default_value = "fair")]
    pool: String,
    /// Rows per batch.
    #[arg(long, default_value_t = 8192)]
    batch_size: usize,
    /// Operators shown in the per-operator view.
    #[arg(long, default_value_t = 10)]
    top: usize,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the per-operator view of a report or of every query in a mem_profile run.json.
    View {
        /// A memledger.report/1 file or a memledger.run/1 file.
        file: std::path::PathBuf,
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
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
    if let Some(Command::View { file, top }) = &cli.command {
        return view(file, *top);
    }
    let Some(query) = cli.query.as_deref() else {
        eprintln!("memledger-tpch: error: a query (1..22) is required");
        return ExitCode::from(2);
    };
    let Some(n) = tpch::parse_query(query) else {
        eprintln!("memledger-tpch: error: unknown query `{query}` (expected 1..22 or q1..q22)");
        return ExitCode::from(2);
    };
    if cli.scale.is_nan() || cli.scale <= 0.0 || cli.partitions == 0 || cli.batch_size == 0 {
        eprintln!("memledger-tpch: error: --scale, --partitions and --batch-size must be positive");
        return ExitCode::from(2);
    }
    let Some(pool) = inner_pool(&cli.pool, std::env::var("MEMLEDGER_MEMORY_LIMIT").ok()) else {
        eprintln!(
            "memledger-tpch: error: unknown pool `{}` (fair, greedy, track, unbounded) or bad MEMLEDGER_MEMORY_LIMIT",
            cli.pool
        );
        return ExitCode::from(2);
    };

    let prepared = match prepare(&cli, pool) {
        Ok(prepared) => prepared,
        Err(e) => {
            eprintln!("memledger-tpch: error: could not generate the TPC-H tables: {e}");
            return ExitCode::from(1);
        }
    };
    // The tables stay in memory for the query, but generating them is not
    // the query: the measured window starts here.
    memledger_alloc::reset_peak();
    reset_peak_rss();
    let mut session = Session::from_env();
    session.set_label(&format!("q{n}"));
    session.set_pool_kind(&cli.pool);
    let outcome = run(&prepared, n);
    let failed = match &outcome {
        Ok(rows) => {
            println!("q{n}: {rows} rows");
            false
        }
        Err(e) => {
            eprintln!("memledger-tpch: q{n} failed: {e}");
            session.set_error(&e.to_string());
            true
        }
    };
    match session.finish() {
        Ok(report) => {
            println!("{}", memledger_profiler::summary(&report));
            println!("{}", render(&operator_view(&report), cli.top));
        }
        Err(e) => {
            eprintln!("memledger-tpch: error: could not write the report: {e}");
            return ExitCode::from(1);
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// The DataFusion pool named `kind`, limited by `limit` bytes when given.
fn inner_pool(kind: &str, limit: Option<String>) -> Option<Arc<dyn MemoryPool>> {
    let limit: Option<usize> = match limit {
        Some(text) => Some(text.trim().parse().ok()?),
        None => None,
    };
    let top = std::num::NonZeroUsize::new(5)?;
    let fair = |l: Option<usize>| -> Arc<dyn MemoryPool> {
        match l {
            Some(l) => Arc::new(FairSpillPool::new(l)),
            None => Arc::new(UnboundedMemoryPool::default()),
        }
    };
    Some(match kind {
        "unbounded" => Arc::new(UnboundedMemoryPool::default()),
        "fair" => fair(limit),
        "greedy" => match limit {
            Some(l) => Arc::new(GreedyMemoryPool::new(l)),
            None => Arc::new(UnboundedMemoryPool::default()),
        },
        "track" => match limit {
            Some(l) => Arc::new(TrackConsumersPool::new(FairSpillPool::new(l), top)),
            None => Arc::new(TrackConsumersPool::new(UnboundedMemoryPool::default(), top)),
        },
        _ => return None,
    })
}

/// The runtime and the session context with every table generated.
struct Prepared {
    runtime: tokio::runtime::Runtime,
    ctx: SessionContext,
}

fn prepare(cli: &Cli, pool: Arc<dyn MemoryPool>) -> datafusion::common::Result<Prepared> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.partitions)
        .enable_all()
        .build()?;
    let config = SessionConfig::new()
        .with_target_partitions(cli.partitions)
        .with_batch_size(cli.batch_size);
    let env = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(AuditedPool::new(pool)))
        .build_arc()?;
    let ctx = SessionContext::new_with_config_rt(config, env);
    Scope::new("tpch-data")
        .in_scope(|| tpch::register_tables(&ctx, cli.scale, cli.partitions, cli.batch_size))?;
    Ok(Prepared { runtime, ctx })
}

/// Resets the kernel's peak RSS (`VmHWM`) to the current RSS, so the
/// report's peak covers the query alone. Best effort: without it the peak
/// includes table generation.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn run(p: &Prepared, n: usize) -> datafusion::common::Result<usize> {
    let sql = tpch::query(n).unwrap_or_default();
    p.runtime.block_on(async {
        let plan = p.ctx.sql(sql).await?.create_physical_plan().await?;
        let plan = instrument_plan(plan)?;
        let batches = collect(plan, p.ctx.task_ctx()).await?;
        Ok(batches.iter().map(|b| b.num_rows()).sum())
    })
}

fn view(file: &std::path::Path, top: usize) -> ExitCode {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("memledger-tpch: error: cannot read {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    // A single report, or a mem_profile run holding one report per query.
    if let Ok(report) = Report::from_json(&text) {
        println!("{}", render(&operator_view(&report), top));
        return ExitCode::SUCCESS;
    }
    let run: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("memledger-tpch: error: {} is not JSON: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let Some(queries) = run.get("queries").and_then(|q| q.as_array()) else {
        eprintln!(
            "memledger-tpch: error: {} is neither a memledger report nor a mem_profile run",
            file.display()
        );
        return ExitCode::from(2);
    };
    for q in queries {
        let id = q.get("id").and_then(|v| v.as_str()).unwrap_or("?");
        let Some(report) = q.get("report").filter(|r| !r.is_null()) else {
            println!("### {id}\n\n(no report)\n");
            continue;
        };
        match Report::from_json(&report.to_string()) {
            Ok(report) => println!("### {id}\n\n{}", render(&operator_view(&report), top)),
            Err(e) => println!("### {id}\n\n({e})\n"),
        }
    }
    ExitCode::SUCCESS
}
