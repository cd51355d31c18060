//! The command line, parsed once into typed options. Nothing else reads argv.
//!
//! Values with units are parsed here too (sizes, durations, percentages,
//! query lists stay text until the suite is built), so a bad value is a
//! usage error before anything runs.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::compare::{Metric, Rules};
use crate::export::Format;
use crate::units::{parse_percent, parse_scale, parse_size, parse_timeout};

/// The default of `--max-report-size`.
pub const DEFAULT_MAX_REPORT_SIZE: &str = "16MiB";

/// Runs each benchmark query as a subprocess, reports its peak RSS against
/// the memory its pool reserved, and compares runs in CI.
///
/// Exit codes: 0 success; 1 a query failed; 2 bad usage or unreadable
/// input; 3 `compare` found a regression; 130 interrupted.
///
/// On GitHub Actions (GITHUB_STEP_SUMMARY set), `run` and `compare` also
/// append their Markdown to the job summary, within GitHub's 1 MiB.
#[derive(Debug, Parser)]
#[command(name = "mem_profile", version)]
pub struct Cli {
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a suite: one subprocess per query and repeat.
    Run(RunArgs),
    /// Compare two runs (or a baseline and a run); exit 3 on a regression.
    Compare(CompareArgs),
    /// Write a reviewable baseline from a run, to be committed.
    Bless(BlessArgs),
    /// Print a run or a baseline.
    Show(ShowArgs),
    /// Write a run as one self-contained HTML page (timelines, scopes, consumers).
    ///
    /// Per query: its memory timeline (RSS, heap live, reserved, the limit,
    /// the peaks; drag to zoom), the scopes at the heap peak, the
    /// consumers, the status and error text, and its flamegraph when the
    /// run names one. With --baseline, the baseline's timelines are drawn
    /// under the run's and each change is coloured as `compare` judges it.
    /// The page opens from disk and fetches nothing.
    Report(ReportArgs),
    /// Find the smallest memory limit each query passes at, and the limits
    /// above it where it fails.
    Sweep(crate::sweep::options::SweepArgs),
    /// Write a run's figures for a dashboard: Bencher Metric Format JSON,
    /// or CSV with one row per query.
    Export(ExportArgs),
    /// Merge runs (the shards of one suite, say) into one run.
    Merge(MergeArgs),
    /// Internal: the launcher between the harness and a query.
    #[command(name = "__launch", hide = true)]
    Launch(LaunchArgs),
    /// Internal testing aid: a child that behaves as told.
    #[command(name = "__child", hide = true)]
    Child(ChildArgs),
}

/// The suites `--suite` can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SuiteName {
    /// The `memledger-suite` binary next to `mem_profile`.
    Builtin,
    /// The 22 TPC-H queries on DataFusion: `memledger-tpch` (from
    /// `integrations/datafusion`) next to `mem_profile` or on `PATH`, on
    /// Parquet data (--data, or generated once into the cache folder:
    /// `$MEMLEDGER_CACHE_DIR/tpch-sf<F>`, else
    /// `$XDG_CACHE_HOME/memledger/tpch-sf<F>`, else
    /// `~/.cache/memledger/tpch-sf<F>`).
    Tpch,
    /// One query per DataFusion operator, each isolating it
    /// (`memledger-tpch ops <op>`), on the same data as `tpch`.
    DatafusionOps,
}

/// `mem_profile run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The suite to run (when no --cmd is given).
    #[arg(long, value_enum, default_value_t = SuiteName::Builtin, conflicts_with = "cmd")]
    pub suite: SuiteName,

    /// Data scale passed to the suite binary as `--scale F` (builtin: 1.0 is a
    /// few hundred MB per query; tpch: the TPC-H scale factor, default 0.1).
    #[arg(long, value_name = "F", conflicts_with = "cmd", allow_hyphen_values = true, value_parser = parse_scale)]
    pub scale: Option<String>,

    /// TPC-H Parquet data folder for --suite tpch and datafusion-ops
    /// (written by `memledger-tpch gen`); default: the cache folder,
    /// generated on first use.
    #[arg(long, value_name = "DIR", conflicts_with = "cmd")]
    pub data: Option<PathBuf>,

    /// An external benchmark command; `{query}` is replaced by each query.
    /// Split into words like a shell would (quotes, backslashes), never run
    /// through a shell.
    #[arg(long, value_name = "'PROGRAM ARGS… {query}'")]
    pub cmd: Option<String>,

    /// The queries of --cmd: a list of names and inclusive ranges, e.g. `1..22,25`.
    #[arg(long, value_name = "LIST", requires = "cmd")]
    pub queries: Option<String>,

    /// Run only these queries (a list like --queries; repeatable).
    #[arg(short = 'q', long = "query", value_name = "LIST")]
    pub query: Vec<String>,

    /// Runs per query; min and median of each figure are reported.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,

    /// Pool limit passed as MEMLEDGER_MEMORY_LIMIT, e.g. 512M, 1.5GiB (powers of 1024).
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true, value_parser = parse_size)]
    pub memory_limit: Option<u64>,

    /// Kill a query (and every process it started) that runs longer, e.g.
    /// 30s, 500ms, 2m.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true, value_parser = parse_timeout)]
    pub timeout: Option<Duration>,

    /// The largest report a query may write; a larger one is not read and
    /// the query is `failed`.
    #[arg(long, value_name = "SIZE", default_value = DEFAULT_MAX_REPORT_SIZE, allow_hyphen_values = true, value_parser = parse_size)]
    pub max_report_size: u64,

    /// Sample allocation stacks in the queries, one per SIZE allocated on
    /// average (default 512KiB), passed as MEMLEDGER_SAMPLE_BYTES; writes
    /// folded stacks and flamegraphs to stacks/ in the out directory.
    #[arg(long, value_name = "SIZE", num_args = 0..=1, require_equals = true, default_missing_value = "512KiB", value_parser = parse_stack_size)]
    pub stacks: Option<u64>,

    /// RSS sampling interval in ms (also passed as MEMLEDGER_SAMPLE_MS).
    #[arg(long, value_name = "MS", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub sample_ms: u64,

    /// Directory for run.json, summary.md and one SVG timeline per query
    /// (linked from summary.md), rewritten after every repeat; locked while
    /// the run writes there.
    #[arg(long, value_name = "DIR", default_value = "mem_profile_out")]
    pub out: PathBuf,

    /// Also write a baseline of this run to FILE when it completes.
    #[arg(long, value_name = "FILE")]
    pub save_baseline: Option<PathBuf>,

    /// Exit 0 even when queries fail.
    #[arg(long)]
    pub allow_failures: bool,

    /// Run only shard K of N of the selected queries, e.g. 2/4: the ids are
    /// sorted and dealt out in turn (the Kth, the (K+N)th, ...), so every
    /// query lands in exactly one shard. Recorded in the run's context;
    /// `mem_profile merge` puts the shards back together.
    #[arg(long, value_name = "K/N", value_parser = crate::run::Shard::parse)]
    pub shard: Option<crate::run::Shard>,
}

/// The formats of `mem_profile export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// Bencher Metric Format JSON: `{"<query>": {"<measure>": {"value": N}}}`.
    Bencher,
    /// CSV, one row per query, with a header.
    Csv,
}

/// `mem_profile export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The run: a run.json, a directory holding one, or a baseline file.
    #[arg(default_value = "mem_profile_out")]
    pub run: PathBuf,
    /// What to write.
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// Write to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `mem_profile merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The runs: run.json files, directories holding one, or baselines.
    #[arg(required = true, value_name = "RUN")]
    pub runs: Vec<PathBuf>,
    /// The directory to write the merged run.json and summary.md to.
    #[arg(short, long, value_name = "DIR")]
    pub output: PathBuf,
    /// Merge runs made on different machines, revisions, commands or
    /// settings (the memory limit must still be the same).
    #[arg(long)]
    pub allow_mixed_contexts: bool,
}

/// `--stacks=SIZE`: a size above 0.
fn parse_stack_size(text: &str) -> Result<u64, String> {
    match parse_size(text)? {
        0 => Err("the mean bytes between sampled stacks must be above 0".to_string()),
        n => Ok(n),
    }
}

/// A `METRIC=VALUE` override.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricValue<T> {
    /// The metric it applies to.
    pub metric: Metric,
    /// A threshold (fraction) or a floor (bytes, or a count for allocations).
    pub value: T,
}

fn parse_metric_threshold(text: &str) -> Result<MetricValue<f64>, String> {
    let (metric, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not METRIC=PERCENT"))?;
    Ok(MetricValue {
        metric: Metric::from_key(metric.trim())?,
        value: parse_percent(value)?,
    })
}

fn parse_metric_floor(text: &str) -> Result<MetricValue<u64>, String> {
    let (metric, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not METRIC=AMOUNT"))?;
    Ok(MetricValue {
        metric: Metric::from_key(metric.trim())?,
        value: parse_size(value)?,
    })
}

/// `mem_profile compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The baseline: a run.json, a directory holding one, or a baseline
    /// file; or a sweep.json (or its directory), compared with another sweep.
    pub baseline: PathBuf,
    /// The run to judge (same forms as BASELINE).
    pub current: PathBuf,

    /// When a change is a regression.
    #[command(flatten)]
    pub rules: RuleArgs,

    /// Output format (`github-comment`: a pull-request comment body,
    /// regressions first, under 64 KiB).
    #[arg(long, value_enum, default_value_t = Format::Markdown)]
    pub format: Format,
}

/// The thresholds and floors of a comparison (`compare`, `report --baseline`).
#[derive(Debug, Args)]
pub struct RuleArgs {
    /// Relative growth needed for a regression (every metric).
    #[arg(long, value_name = "PERCENT", default_value = "5%", allow_hyphen_values = true, value_parser = parse_percent)]
    pub threshold: f64,

    /// Absolute growth needed for a regression (byte metrics; allocations: 1000).
    #[arg(long, value_name = "SIZE", default_value = "1MiB", allow_hyphen_values = true, value_parser = parse_size)]
    pub floor: u64,

    /// Per-metric threshold, e.g. peak_rss=10% (peak_rss, heap_peak,
    /// reserved_peak, allocations, untracked_peak, peak_rss_growth,
    /// heap_growth; repeatable).
    #[arg(long, value_name = "METRIC=PERCENT", value_parser = parse_metric_threshold)]
    pub metric_threshold: Vec<MetricValue<f64>>,

    /// Per-metric floor, e.g. heap_peak=4MiB or allocations=500 (repeatable).
    #[arg(long, value_name = "METRIC=AMOUNT", value_parser = parse_metric_floor)]
    pub metric_floor: Vec<MetricValue<u64>>,
}

impl RuleArgs {
    /// The rules these options give.
    pub fn rules(&self) -> Rules {
        let mut rules = Rules::new(self.threshold, self.floor);
        for o in &self.metric_threshold {
            rules.set_threshold(o.metric, o.value);
        }
        for o in &self.metric_floor {
            rules.set_floor(o.metric, o.value);
        }
        rules
    }
}

/// `mem_profile report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run: its directory (flamegraphs named by the run are read from
    /// there) or its run.json.
    #[arg(default_value = "mem_profile_out")]
    pub run: PathBuf,
    /// A run or baseline to compare with: its timelines are drawn under the
    /// run's, and each figure's change is coloured as `compare` judges it.
    #[arg(long, value_name = "BASE")]
    pub baseline: Option<PathBuf>,
    /// When a change is a regression (with --baseline).
    #[command(flatten)]
    pub rules: RuleArgs,
    /// Where to write the page.
    #[arg(short, long, value_name = "FILE", default_value = "report.html")]
    pub output: PathBuf,
}

/// `mem_profile bless`.
#[derive(Debug, Args)]
pub struct BlessArgs {
    /// The run: a run.json or a directory holding one.
    #[arg(default_value = "mem_profile_out")]
    pub run: PathBuf,
    /// Where to write the baseline.
    #[arg(
        short,
        long,
        value_name = "FILE",
        default_value = "memledger-baseline.json"
    )]
    pub output: PathBuf,
    /// Bless a run that was interrupted (its interrupted queries keep that status).
    #[arg(long)]
    pub allow_interrupted: bool,
}

/// `mem_profile show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A run.json, a directory holding one, or a baseline file; or a
    /// sweep.json (or its directory).
    pub file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// `mem_profile __launch` (internal; see `runner::launcher`).
#[derive(Debug, Args)]
pub struct LaunchArgs {
    /// The write end of the status pipe.
    #[arg(long)]
    pub status_fd: i32,
    /// The harness's pid.
    #[arg(long)]
    pub parent: u32,
    /// The executable's path, then the full argv (`argv[0]` first).
    #[arg(raw = true, required = true, num_args = 2..)]
    pub command: Vec<OsString>,
}

/// `mem_profile __child` (internal testing aid; see `child`).
#[derive(Debug, Args)]
pub struct ChildArgs {
    /// What to do, in order (an argument may hold several steps separated by blanks).
    #[arg(required = true, allow_hyphen_values = true)]
    pub steps: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn run_options_parse_with_units() {
        let cli = Cli::try_parse_from([
            "mem_profile",
            "run",
            "--cmd",
            "bench {query}",
            "--queries",
            "1..3",
            "-q",
            "2",
            "--memory-limit",
            "512M",
            "--timeout",
            "1.5s",
        ])
        .unwrap();
        let Command::Run(run) = cli.command else {
            panic!("not run")
        };
        assert_eq!(run.memory_limit, Some(512 * 1024 * 1024));
        assert_eq!(run.timeout, Some(Duration::from_millis(1500)));
        assert_eq!(run.query, ["2"]);
        assert_eq!(run.repeat, 1);
        assert_eq!(run.sample_ms, 20);
        assert_eq!(run.max_report_size, 16 * 1024 * 1024);
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for args in [
            &["mem_profile", "run", "--memory-limit", "5X"][..],
            &["mem_profile", "run", "--repeat", "0"],
            &["mem_profile", "run", "--memory-limit", "-5M"],
            &["mem_profile", "run", "--timeout", "0"],
            &["mem_profile", "run", "--scale", "-1"],
            &["mem_profile", "run", "--scale", "NaN"],
            &["mem_profile", "compare", "a", "b", "--threshold=-5%"],
            &["mem_profile", "run", "--queries", "1..3"],
            &["mem_profile", "run", "--suite", "builtin", "--cmd", "x"],
            &[
                "mem_profile",
                "compare",
                "a",
                "b",
                "--metric-floor",
                "rss=1M",
            ],
        ] {
            let err = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
        let cli = Cli::try_parse_from([
            "mem_profile",
            "compare",
            "a",
            "b",
            "--metric-threshold",
            "peak_rss=10%",
            "--metric-floor",
            "allocations=500",
        ])
        .unwrap();
        let Command::Compare(c) = cli.command else {
            panic!("not compare")
        };
        assert_eq!(c.rules.metric_threshold[0].metric, Metric::PeakRss);
        assert_eq!(c.rules.metric_threshold[0].value, 0.10);
        assert_eq!(c.rules.metric_floor[0].value, 500);
        assert_eq!(c.rules.threshold, 0.05);
        assert_eq!(c.rules.floor, 1024 * 1024);
        let rules = c.rules.rules();
        assert_eq!(rules.get(Metric::PeakRss).threshold, 0.10);
        assert_eq!(rules.get(Metric::HeapPeak).threshold, 0.05);
        assert_eq!(rules.get(Metric::Allocations).floor, 500);
    }
}
