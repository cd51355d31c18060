//! `memledger-tpch`: runs one TPC-H query on DataFusion under memledger and
//! writes the `memledger.report/1` report, as `mem_profile` expects.
//!
//! ```text
//! memledger-tpch gen --scale 1 --dir tpch-sf1          # Parquet, once
//! memledger-tpch 3 --data tpch-sf1 --partitions 4 --pool fair
//! memledger-tpch 3 --scale 0.1                         # tables generated in memory
//! MEMLEDGER_MEMORY_LIMIT=268435456 MEMLEDGER_REPORT=q3.json memledger-tpch q3 --data tpch-sf1
//! memledger-tpch ops sort --scale 0.1                  # one operator, isolated
//! memledger-tpch view mem_profile_out/run.json         # per-operator view of a run
//! ```
//!
//! Every query line on stdout reads `q3: 11620 rows in 812 ms` (the time of
//! planning and running the query, nothing else).
//!
//! Built with feature `bare-mimalloc`, the binary runs DataFusion on bare
//! mimalloc: no memledger allocator, no operator scopes, no audited pool and
//! no report (so `mem_profile` shows its heap and reserved figures as null).
//! It is the baseline of `scripts/overhead.sh`.
//!
//! Exit codes: 0 the query ran; 1 it failed (a pool refusal included: its
//! text is the report's `error`); 2 bad usage or unreadable input.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use datafusion::execution::memory_pool::{
    FairSpillPool, GreedyMemoryPool, MemoryPool, TrackConsumersPool, UnboundedMemoryPool,
};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::physical_plan::{ExecutionPlan, collect, execute_stream};
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::StreamExt;
use memledger_alloc::{MiMalloc, Scope};
use memledger_datafusion::ops::{self, OpFigures};
use memledger_datafusion::{
    AuditedPool, View, install_scope_tracer, instrument_plan_with, operator_stacks, operator_view,
    parquet_data, render, tpch,
};
use memledger_profiler::Session;
use memledger_profiler::report::Report;

/// Owner mode by default: the per-operator view then shows which operator
/// created the bytes live at the peak. Feature `counting` switches to
/// counting mode; feature `bare-mimalloc` leaves memledger out.
#[cfg(not(any(feature = "counting", feature = "bare-mimalloc")))]
#[global_allocator]
static GLOBAL: memledger_alloc::Tracked<MiMalloc, memledger_alloc::Owner> =
    memledger_alloc::Tracked::new(MiMalloc);
#[cfg(all(feature = "counting", not(feature = "bare-mimalloc")))]
#[global_allocator]
static GLOBAL: memledger_alloc::Tracked<MiMalloc> = memledger_alloc::Tracked::new(MiMalloc);
#[cfg(feature = "bare-mimalloc")]
#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

/// Whether this build leaves memledger out (feature `bare-mimalloc`).
const BARE: bool = cfg!(feature = "bare-mimalloc");

/// Whether this build tags blocks with their owner (needed by the held view).
const OWNER: bool = !cfg!(any(feature = "counting", feature = "bare-mimalloc"));

/// The scale of in-memory tables when neither `--scale` nor `--data` is given.
const DEFAULT_SCALE: f64 = 0.1;

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
    #[command(flatten)]
    options: RunOptions,
    /// Operators shown in the per-operator view.
    #[arg(long, default_value_t = 10)]
    top: usize,
}

/// How a query (or an op) runs.
#[derive(Args, Debug, Clone)]
struct RunOptions {
    /// Read the tables from this Parquet data folder (written by `gen`)
    /// instead of generating them in memory.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// TPC-H scale factor of the in-memory tables (1.0 is about 1 GB of raw
    /// data; default 0.1). With --data it must match the folder's, if given.
    #[arg(long)]
    scale: Option<f64>,
    /// DataFusion partitions (and tokio worker threads).
    #[arg(long, default_value_t = 4)]
    partitions: usize,
    /// DataFusion pool under the limit from MEMLEDGER_MEMORY_LIMIT: fair, greedy, track (TrackConsumersPool over fair) or unbounded.
    #[arg(long, default_value = "fair")]
    pool: String,
    /// Rows per batch.
    #[arg(long, default_value_t = 8192)]
    batch_size: usize,
    /// Sample allocation stacks, one per BYTES allocated on average
    /// (default 524288), and name the top stacks of each operator; also
    /// turned on by MEMLEDGER_SAMPLE_BYTES (as `mem_profile run --stacks` sets).
    #[arg(long, value_name = "BYTES", num_args = 0..=1, require_equals = true, default_missing_value = "524288")]
    stacks: Option<u64>,
    /// Which operator bytes are charged to in the per-operator view:
    /// `allocated` (the one whose code allocated them), `held` (the one that
    /// last received them in a batch: is a buffering operator's reservation
    /// covering what it holds?), or `both` (allocated, then held in a fresh
    /// process; the report is the allocated run's).
    #[arg(long, value_enum, default_value_t = Views::Allocated)]
    view: Views,
}

/// The views a run shows.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Views {
    Allocated,
    Held,
    Both,
}

impl Views {
    /// The view this process runs (`both` runs the held one in a child).
    fn first(self) -> View {
        match self {
            Views::Allocated | Views::Both => View::Allocated,
            Views::Held => View::Held,
        }
    }

    /// The view this process runs, when output names it (whenever the
    /// held view is asked for).
    fn named(self) -> Option<View> {
        (self != Views::Allocated).then(|| self.first())
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the per-operator view of a report or of every query in a mem_profile run.json.
    View {
        /// A memledger.report/1 file or a memledger.run/1 file.
        file: PathBuf,
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
    /// Write the eight TPC-H tables as Parquet files into a new folder.
    Gen {
        /// TPC-H scale factor.
        #[arg(long)]
        scale: f64,
        /// The folder to create (it must not exist; it appears only once complete).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Files per scaled table.
        #[arg(long, default_value_t = 4)]
        partitions: usize,
    },
    /// Run one operator in isolation (sort, aggregate, repartition, hash-join,
    /// sort-merge-join, window, parquet-sort, string-aggregate).
    Ops {
        /// The op's name.
        name: String,
        #[command(flatten)]
        options: RunOptions,
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
    match &cli.command {
        Some(Command::View { file, top }) => view(file, *top),
        Some(Command::Gen {
            scale,
            dir,
            partitions,
        }) => generate(*scale, dir, *partitions),
        Some(Command::Ops { name, options }) => run_op(name, options),
        None => run_query(&cli),
    }
}

fn usage(text: &str) -> ExitCode {
    eprintln!("memledger-tpch: error: {text}");
    ExitCode::from(2)
}

fn generate(scale: f64, dir: &Path, partitions: usize) -> ExitCode {
    if !(scale.is_finite() && scale > 0.0) || partitions == 0 {
        return usage("--scale and --partitions must be positive");
    }
    if dir.exists() {
        return usage(&format!(
            "{} already exists; remove it to generate again",
            dir.display()
        ));
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let start = Instant::now();
    match parquet_data::write_tables(dir, scale, partitions, threads) {
        Ok(parquet_data::Generated::Written { files }) => {
            println!(
                "wrote TPC-H scale {scale} to {} ({files} Parquet files) in {:.1} s",
                dir.display(),
                start.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Ok(parquet_data::Generated::AlreadyThere) => {
            println!("{} was completed by another generation", dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("memledger-tpch: error: generating {}: {e}", dir.display());
            ExitCode::from(1)
        }
    }
}

/// The checked options, or the usage error's exit code.
fn check(options: &RunOptions) -> Result<(Arc<dyn MemoryPool>, Tables), ExitCode> {
    if options.partitions == 0 || options.batch_size == 0 {
        return Err(usage("--partitions and --batch-size must be positive"));
    }
    if options.view != Views::Allocated && !OWNER {
        return Err(usage(
            "--view held needs owner mode (the default build, without `counting` or `bare-mimalloc`)",
        ));
    }
    match options.stacks {
        Some(0) => return Err(usage("--stacks must be a number of bytes above 0")),
        Some(_) if BARE => return Err(usage("--stacks needs memledger, not bare mimalloc")),
        Some(bytes) => memledger_alloc::stacks::start_sampling(bytes),
        None => {}
    }
    if let Some(scale) = options.scale
        && !(scale.is_finite() && scale > 0.0)
    {
        return Err(usage("--scale must be positive"));
    }
    let tables = match &options.data {
        Some(dir) => {
            let scale = parquet_data::scale_of(dir).map_err(|e| usage(&e.to_string()))?;
            if options.scale.is_some_and(|s| s != scale) {
                return Err(usage(&format!(
                    "{} holds scale {scale}, not the --scale given",
                    dir.display()
                )));
            }
            Tables::Parquet(dir.clone())
        }
        None => Tables::InMemory(options.scale.unwrap_or(DEFAULT_SCALE)),
    };
    let Some(pool) = inner_pool(&options.pool, std::env::var("MEMLEDGER_MEMORY_LIMIT").ok()) else {
        return Err(usage(&format!(
            "unknown pool `{}` (fair, greedy, track, unbounded) or bad MEMLEDGER_MEMORY_LIMIT",
            options.pool
        )));
    };
    Ok((pool, tables))
}

fn run_query(cli: &Cli) -> ExitCode {
    let Some(query) = cli.query.as_deref() else {
        return usage("a query (1..22) is required");
    };
    let Some(n) = tpch::parse_query(query) else {
        return usage(&format!(
            "unknown query `{query}` (expected 1..22 or q1..q22)"
        ));
    };
    let (pool, tables) = match check(&cli.options) {
        Ok(checked) => checked,
        Err(code) => return code,
    };
    let prepared = match prepare(&cli.options, pool, &tables, &tpch::TABLES) {
        Ok(prepared) => prepared,
        Err(e) => {
            eprintln!("memledger-tpch: error: could not load the TPC-H tables: {e}");
            return ExitCode::from(1);
        }
    };
    let label = format!("q{n}");
    let sql = tpch::query(n).unwrap_or_default();
    let view = cli.options.view.first();
    // In-memory tables stay resident for the query, but generating them is
    // not the query: the measured window starts here.
    let session = open_window(&label, &cli.options.pool);
    let start = Instant::now();
    let outcome = prepared.runtime.block_on(async {
        let plan = plan_sql(&prepared.ctx, sql, view).await?;
        let batches = collect(plan, prepared.ctx.task_ctx()).await?;
        Ok(batches.iter().map(|b| b.num_rows()).sum::<usize>())
    });
    let mut failed = match ended(&label, session, outcome, start) {
        Ok((report, failed)) => {
            if let Some(report) = report {
                println!("{}", memledger_profiler::summary(&report));
                print_operators(report, cli.top, cli.options.view.named());
            }
            failed
        }
        Err(code) => return code,
    };
    if cli.options.view == Views::Both {
        failed |= !held_in_child();
    }
    exit_code(failed)
}

fn run_op(name: &str, options: &RunOptions) -> ExitCode {
    let Some(op) = ops::op(name) else {
        return usage(&format!("unknown op `{name}` (one of {})", ops::names()));
    };
    let (pool, tables) = match check(options) {
        Ok(checked) => checked,
        Err(code) => return code,
    };
    // Only the scan op reads Parquet; the others isolate their operator
    // from any scan with tables in memory, at the folder's scale if given.
    let tables = match (op.parquet, tables) {
        (true, Tables::InMemory(_)) => {
            return usage(&format!("op `{name}` scans Parquet: give --data DIR"));
        }
        (false, Tables::Parquet(dir)) => match parquet_data::scale_of(&dir) {
            Ok(scale) => Tables::InMemory(scale),
            Err(e) => return usage(&e.to_string()),
        },
        (_, tables) => tables,
    };
    let prepared = match prepare(options, pool, &tables, op.tables) {
        Ok(prepared) => prepared,
        Err(e) => {
            eprintln!("memledger-tpch: error: could not load the TPC-H tables: {e}");
            return ExitCode::from(1);
        }
    };
    let view = options.view.first();
    // The plan is made before the window too: only execution is measured.
    let plan = prepared.runtime.block_on(async {
        let plan = op.plan(&prepared.ctx).await?;
        instrument(plan, view)
    });
    let plan = match plan {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("memledger-tpch: error: could not plan op `{name}`: {e}");
            return ExitCode::from(1);
        }
    };
    let base_live = memledger_alloc::heap().live_requested;
    let session = open_window(name, &options.pool);
    let start = Instant::now();
    let outcome = prepared.runtime.block_on(drain(plan, &prepared.ctx));
    let mut failed = match ended(name, session, outcome, start) {
        Ok((report, failed)) => {
            if let Some(report) = report {
                let label = match options.view.named() {
                    Some(view) => format!("{} ({} view)", op.name, view.name()),
                    None => op.name.to_string(),
                };
                match OpFigures::new(op, &report, base_live) {
                    Ok(figures) => println!("{}", figures.line(&label)),
                    Err(e) => eprintln!("memledger-tpch: {e}"),
                }
                print_operators(report, 10, options.view.named());
            }
            failed
        }
        Err(code) => return code,
    };
    if options.view == Views::Both {
        failed |= !held_in_child();
    }
    exit_code(failed)
}

/// `--view both`, after the allocated view: the held view runs in a fresh
/// process (the same arguments with `--view held`, no report written), so
/// that nothing the first run left behind (caches, peaks, reservations not
/// yet released) counts in it. Whether it succeeded.
fn held_in_child() -> bool {
    let mut args: Vec<std::ffi::OsString> = Vec::new();
    let mut given = std::env::args_os().skip(1);
    while let Some(arg) = given.next() {
        if arg == "--view" {
            given.next();
            args.push("--view=held".into());
        } else if arg.to_str().is_some_and(|a| a.starts_with("--view=")) {
            args.push("--view=held".into());
        } else {
            args.push(arg);
        }
    }
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let status = std::env::current_exe().and_then(|exe| {
        std::process::Command::new(exe)
            .args(args)
            .env_remove("MEMLEDGER_REPORT")
            .status()
    });
    match status {
        Ok(status) => status.success(),
        Err(e) => {
            eprintln!("memledger-tpch: error: could not run the held view: {e}");
            false
        }
    }
}

/// After a measured run: its line on stdout (`q3: 11620 rows in 812 ms`) or
/// its error on stderr, and the window closed with that error. Returns the
/// report (none in a bare build) and whether the run failed.
fn ended(
    label: &str,
    session: Option<Session>,
    outcome: datafusion::common::Result<usize>,
    start: Instant,
) -> Result<(Option<Report>, bool), ExitCode> {
    let elapsed = start.elapsed();
    let error = match &outcome {
        Ok(rows) => {
            println!("{label}: {rows} rows in {} ms", elapsed.as_millis());
            None
        }
        Err(e) => {
            eprintln!("memledger-tpch: {label} failed: {e}");
            Some(e.to_string())
        }
    };
    let report = close_window(session, error.as_deref())?;
    Ok((report, error.is_some()))
}

fn exit_code(failed: bool) -> ExitCode {
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// The per-operator view, and each operator's top stacks when they were
/// sampled (symbolized here if the report left that to its reader), under
/// the name of `view` when given.
fn print_operators(mut report: Report, top: usize, view: Option<View>) {
    if let Some(stacks) = report.stacks.as_mut() {
        memledger_profiler::stacks::symbolize(stacks);
    }
    let rows = operator_view(&report);
    if let Some(view) = view {
        println!(
            "Per-operator view `{}`: {}.\n",
            view.name(),
            view.describe()
        );
    }
    println!("{}", render(&rows, top));
    let stacks = operator_stacks(&report, &rows, top, 5);
    if !stacks.is_empty() {
        println!("{stacks}");
    }
}

/// Runs `plan` to the end, counting rows and dropping each batch.
async fn drain(
    plan: Arc<dyn ExecutionPlan>,
    ctx: &SessionContext,
) -> datafusion::common::Result<usize> {
    let mut stream = execute_stream(plan, ctx.task_ctx())?;
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        rows += batch?.num_rows();
    }
    Ok(rows)
}

async fn plan_sql(
    ctx: &SessionContext,
    sql: &str,
    view: View,
) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
    let plan = ctx.sql(sql).await?.create_physical_plan().await?;
    instrument(plan, view)
}

/// `plan` with operator scopes in `view` (unchanged in a bare build).
fn instrument(
    plan: Arc<dyn ExecutionPlan>,
    view: View,
) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
    if BARE {
        Ok(plan)
    } else {
        instrument_plan_with(plan, view)
    }
}

/// Opens the measured window: peaks reset, the session started. `None` in
/// a bare build, which measures nothing itself.
fn open_window(label: &str, pool: &str) -> Option<Session> {
    if BARE {
        return None;
    }
    memledger_alloc::reset_peak();
    reset_peak_rss();
    let mut session = Session::from_env();
    session.set_label(label);
    session.set_pool_kind(pool);
    Some(session)
}

/// Closes the window: the report written where `MEMLEDGER_REPORT` says.
fn close_window(session: Option<Session>, error: Option<&str>) -> Result<Option<Report>, ExitCode> {
    let Some(mut session) = session else {
        return Ok(None);
    };
    if let Some(error) = error {
        session.set_error(error);
    }
    match session.finish() {
        Ok(report) => Ok(Some(report)),
        Err(e) => {
            eprintln!("memledger-tpch: error: could not write the report: {e}");
            Err(ExitCode::from(1))
        }
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

/// Where the tables come from.
#[derive(Debug, Clone)]
enum Tables {
    /// Generated in memory at this scale.
    InMemory(f64),
    /// Scanned from this Parquet data folder.
    Parquet(PathBuf),
}

/// The runtime and the session context with its tables registered.
struct Prepared {
    runtime: tokio::runtime::Runtime,
    ctx: SessionContext,
}

fn prepare(
    options: &RunOptions,
    pool: Arc<dyn MemoryPool>,
    tables: &Tables,
    names: &[&str],
) -> datafusion::common::Result<Prepared> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.partitions)
        .enable_all()
        .build()?;
    let config = SessionConfig::new()
        .with_target_partitions(options.partitions)
        .with_batch_size(options.batch_size);
    let pool: Arc<dyn MemoryPool> = if BARE {
        pool
    } else {
        install_scope_tracer();
        Arc::new(AuditedPool::new(pool))
    };
    let env = RuntimeEnvBuilder::new()
        .with_memory_pool(pool)
        .build_arc()?;
    let ctx = SessionContext::new_with_config_rt(config, env);
    match tables {
        Tables::Parquet(dir) => {
            runtime.block_on(parquet_data::register_tables(&ctx, dir))?;
        }
        Tables::InMemory(scale) => Scope::new("tpch-data").in_scope(|| {
            names.iter().try_for_each(|name| {
                let table = tpch::generate(name, *scale, options.partitions, options.batch_size)?;
                ctx.register_table(*name, table).map(|_| ())
            })
        })?,
    }
    Ok(Prepared { runtime, ctx })
}

/// Resets the kernel's peak RSS (`VmHWM`) to the current RSS, so the
/// report's peak covers the query alone. Best effort: without it the peak
/// includes table generation.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
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
        print_operators(report, top, None);
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
            Ok(report) => {
                println!("### {id}\n");
                print_operators(report, top, None);
            }
            Err(e) => println!("### {id}\n\n({e})\n"),
        }
    }
    ExitCode::SUCCESS
}
