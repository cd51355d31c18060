//! The options of `mem_profile sweep`, parsed by [`crate::cli`] like every
//! other subcommand's: the query selection of `run`, then the search's own.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::cli::{DEFAULT_MAX_REPORT_SIZE, SuiteName};
use crate::units::{
    KIB, MIB, format_percent, parse_percent, parse_scale, parse_size, parse_timeout,
};

/// The default of `--grid`.
pub const DEFAULT_GRID: u32 = 8;
/// The default of `--resolution`.
pub const DEFAULT_RESOLUTION: &str = "2%";
/// The default of `--out`.
pub const DEFAULT_OUT: &str = "mem_profile_sweep";

/// `mem_profile sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// The suite to sweep (when no --cmd is given).
    #[arg(long, value_enum, default_value_t = SuiteName::Builtin, conflicts_with = "cmd")]
    pub suite: SuiteName,

    /// Data scale passed to the suite binary as `--scale F` (as for `run`).
    #[arg(long, value_name = "F", conflicts_with = "cmd", allow_hyphen_values = true, value_parser = parse_scale)]
    pub scale: Option<String>,

    /// An external benchmark command; `{query}` is replaced by each query.
    #[arg(long, value_name = "'PROGRAM ARGS… {query}'")]
    pub cmd: Option<String>,

    /// The queries of --cmd: a list of names and inclusive ranges, e.g. `1..22,25`.
    #[arg(long, value_name = "LIST", requires = "cmd")]
    pub queries: Option<String>,

    /// Sweep only these queries (a list like --queries; repeatable).
    #[arg(short = 'q', long = "query", value_name = "LIST")]
    pub query: Vec<String>,

    /// How close the minimum is searched: a size (`1MiB`), or a percentage
    /// of the query's unlimited reserved peak (`2%`).
    #[arg(long, value_name = "SIZE|PERCENT", default_value = DEFAULT_RESOLUTION, allow_hyphen_values = true, value_parser = parse_resolution)]
    pub resolution: Resolution,

    /// Grid limits: k/N of the search's top (the unlimited reserved peak)
    /// for k = 1..N, each run (1 to 64).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_GRID, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub grid: u32,

    /// The top of the search instead of the unlimited reserved peak (needed
    /// when the program writes no report and its peak RSS is no guide).
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true, value_parser = parse_positive_size)]
    pub max_limit: Option<u64>,

    /// Queries swept at once, each by its own sequence of runs (peak RSS
    /// stays per process; wall times grow when they share cores).
    #[arg(short = 'j', long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub jobs: u32,

    /// Kill a run (and every process it started) that runs longer; it
    /// counts as failing at its limit.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true, value_parser = parse_timeout)]
    pub timeout: Option<Duration>,

    /// The largest report a run may write; a larger one is not read and
    /// the run is `failed`.
    #[arg(long, value_name = "SIZE", default_value = DEFAULT_MAX_REPORT_SIZE, allow_hyphen_values = true, value_parser = parse_size)]
    pub max_report_size: u64,

    /// RSS sampling interval in ms (also passed as MEMLEDGER_SAMPLE_MS).
    #[arg(long, value_name = "MS", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub sample_ms: u64,

    /// Directory for sweep.json, summary.md and one SVG plot per query,
    /// rewritten after every run; locked while the sweep writes there.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_OUT)]
    pub out: PathBuf,

    /// Exit 0 even when a query fails without a limit or at every limit tried.
    #[arg(long)]
    pub allow_failures: bool,
}

/// The step of the search: the minimum is found to within one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// A fixed number of bytes.
    Bytes(u64),
    /// Millionths of a percent (`2%` is 2 000 000) of the query's top.
    Millionths(u64),
}

impl Resolution {
    /// The step in bytes for a search whose top is `top` bytes: at least 1.
    pub fn step(self, top: u64) -> u64 {
        match self {
            Resolution::Bytes(bytes) => bytes.max(1),
            Resolution::Millionths(m) => {
                // top × m / 10^8, rounded up; at most top × 10^4 (1 000 000 %).
                let step = (u128::from(top) * u128::from(m)).div_ceil(100_000_000);
                u64::try_from(step).unwrap_or(u64::MAX).max(1)
            }
        }
    }

    /// As it can be written on the command line: `2%`, `1MiB`, `256KiB`, `1000B`.
    pub fn describe(self) -> String {
        match self {
            Resolution::Bytes(bytes) if bytes % MIB == 0 => format!("{}MiB", bytes / MIB),
            Resolution::Bytes(bytes) if bytes % KIB == 0 => format!("{}KiB", bytes / KIB),
            Resolution::Bytes(bytes) => format!("{bytes}B"),
            Resolution::Millionths(m) => format_percent(m as f64 / 1e8),
        }
    }
}

/// `2%` or a size; neither may be 0.
pub fn parse_resolution(text: &str) -> Result<Resolution, String> {
    let trimmed = text.trim();
    let resolution = if trimmed.ends_with('%') {
        let fraction = parse_percent(trimmed)?;
        // parse_percent gives millionths of a percent / 10^8 exactly.
        Resolution::Millionths((fraction * 1e8).round() as u64)
    } else {
        Resolution::Bytes(parse_size(trimmed)?)
    };
    match resolution {
        Resolution::Bytes(0) | Resolution::Millionths(0) => Err(format!(
            "`{trimmed}`: the resolution must be above 0, e.g. 1MiB or 2%"
        )),
        r => Ok(r),
    }
}

/// A size above 0.
fn parse_positive_size(text: &str) -> Result<u64, String> {
    match parse_size(text)? {
        0 => Err(format!("`{}` must be above 0", text.trim())),
        bytes => Ok(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolutions_parse_to_exact_steps() {
        assert_eq!(parse_resolution("1MiB"), Ok(Resolution::Bytes(1 << 20)));
        assert_eq!(
            parse_resolution("2%"),
            Ok(Resolution::Millionths(2_000_000))
        );
        assert_eq!(
            parse_resolution("0.5%"),
            Ok(Resolution::Millionths(500_000))
        );
        assert!(parse_resolution("0%").is_err());
        assert!(parse_resolution("0").is_err());
        assert!(parse_resolution("-1M").is_err());
        assert!(parse_resolution("2 apples").is_err());
        // 2% of 100 MiB, rounded up to a whole byte.
        assert_eq!(Resolution::Millionths(2_000_000).step(100 << 20), 2_097_152);
        assert_eq!(Resolution::Millionths(2_000_000).step(101), 3);
        assert_eq!(Resolution::Millionths(2_000_000).step(0), 1);
        assert_eq!(Resolution::Bytes(4096).step(1), 4096);
        assert_eq!(
            Resolution::Millionths(100_000_000_000).step(u64::MAX),
            u64::MAX,
            "a step past u64 is the largest one, not a wrapped one"
        );
        assert_eq!(Resolution::Millionths(2_500_000).describe(), "2.5%");
        assert_eq!(Resolution::Bytes(3 << 20).describe(), "3MiB");
        assert_eq!(Resolution::Bytes(256 << 10).describe(), "256KiB");
        assert_eq!(Resolution::Bytes(1000).describe(), "1000B");
        for r in ["3MiB", "256KiB", "1000B", "2.5%"] {
            assert_eq!(parse_resolution(r).unwrap().describe(), r, "round trip");
        }
    }
}
