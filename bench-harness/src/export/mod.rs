//! Renders runs and comparisons, one file per format behind [`Export`].
//!
//! - [`table`]: aligned columns for a terminal;
//! - [`markdown`]: GitHub-flavoured Markdown (`summary.md`, CI job summaries);
//! - [`github_comment`]: Markdown for a pull-request comment, regressions
//!   first, within GitHub's size limit;
//! - [`json`]: the run itself (`memledger.run/1`) or a comparison;
//! - [`html`]: `mem_profile report`, one self-contained page per run, with
//!   each query's [`timeline`] (also written as SVG next to `summary.md`)
//!   drawn with the axes and escaping of [`plot`], which the sweep's plots
//!   share.
//!
//! The cells are made here, once, so that every format shows the same words
//! and units: MiB with one decimal, `-` for a figure nobody measured. Adding
//! a format is one new file and one arm in [`exporter`].
//!
//! `mem_profile export` writes a run's raw figures for dashboards:
//! [`bencher`] (Bencher Metric Format JSON) and [`csv`].

pub mod bencher;
pub mod csv;
pub mod github_comment;
pub mod html;
pub mod json;
pub mod markdown;
pub mod plot;
pub mod table;
pub mod timeline;

use crate::compare::{Comparison, Metric, MetricChange, Outcome, QueryComparison, Verdict};
use crate::run::{QueryResult, Run, Status, per_reserved};
use crate::runner::signal_name;
use crate::units::{
    format_mib, format_mib_change, format_mib_signed, format_mib_wide, format_percent,
    format_percent_change, format_wall_ms,
};

/// A way to render results.
pub trait Export {
    /// A whole run: its context, one row per query, and what failed.
    fn run(&self, run: &Run) -> String;
    /// A comparison: a summary, then one row per query and metric.
    fn comparison(&self, comparison: &Comparison) -> String;
}

/// The formats, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for a terminal.
    Table,
    /// GitHub-flavoured Markdown.
    Markdown,
    /// JSON (`memledger.run/1`, or `memledger.compare/1` for a comparison).
    Json,
    /// A pull-request comment body: regressions, improvements, the rest
    /// folded; at most 64 KiB.
    GithubComment,
}

/// The exporter for a format.
pub fn exporter(format: Format) -> Box<dyn Export> {
    match format {
        Format::Table => Box::new(table::Table),
        Format::Markdown => Box::new(markdown::Markdown),
        Format::Json => Box::new(json::Json),
        Format::GithubComment => Box::new(github_comment::GithubComment),
    }
}

/// The columns of a run's table. The growth ratios leave out what the
/// process held when its measured window began (see [`crate::run`]).
pub const RUN_COLUMNS: [&str; 13] = [
    "query",
    "status",
    "time",
    "peak RSS",
    "heap peak",
    "reserved peak",
    "limit",
    "RSS/reserved",
    "heap/reserved",
    "RSS growth/reserved",
    "heap growth/reserved",
    "untracked at heap peak",
    "allocations",
];

/// Which run columns hold numbers (right-aligned).
pub const RUN_NUMERIC: [bool; 13] = [
    false, false, true, true, true, true, true, true, true, true, true, true, true,
];

/// The columns of a comparison's table.
pub const COMPARE_COLUMNS: [&str; 6] = [
    "query", "metric", "baseline", "current", "change", "verdict",
];

/// Which comparison columns hold numbers (right-aligned).
pub const COMPARE_NUMERIC: [bool; 6] = [false, false, true, true, true, false];

/// What a cell shows for a figure nobody measured.
pub const NOT_MEASURED: &str = "-";

/// `ok`, `failed (exit 1)`, `signal (SIGSEGV)`, `timeout`, `oom`.
pub fn status_cell(status: Status, exit_code: Option<i32>, signal: Option<i32>) -> String {
    match (status, exit_code, signal) {
        (Status::Failed, Some(code), _) => format!("failed (exit {code})"),
        (Status::Signal, _, Some(signal)) => format!("signal ({})", signal_name(signal)),
        (status, _, _) => status.to_string(),
    }
}

/// A ratio to the reserved peak as `3.2x`, or `-` when there is none.
fn ratio(ratio: Option<f64>) -> String {
    or_dash(ratio, |r| format!("{r:.1}x"))
}

fn or_dash<T>(value: Option<T>, show: impl Fn(T) -> String) -> String {
    value.map_or_else(|| NOT_MEASURED.to_string(), show)
}

/// The cells of one query's row, in [`RUN_COLUMNS`] order.
pub fn run_row(query: &QueryResult) -> [String; 13] {
    let f = &query.figures;
    let per_reserved = |bytes: Option<f64>| per_reserved(bytes, f.reserved_peak_bytes);
    [
        query.id.clone(),
        status_cell(query.status, query.exit_code, query.signal),
        format_wall_ms(f.wall_ms),
        or_dash(f.peak_rss_bytes, format_mib),
        or_dash(f.heap_peak_bytes, format_mib_signed),
        or_dash(f.reserved_peak_bytes, format_mib),
        or_dash(query.limit_bytes, format_mib),
        ratio(per_reserved(f.peak_rss_bytes.map(|b| b as f64))),
        ratio(per_reserved(f.heap_peak_bytes.map(|b| b as f64))),
        ratio(f.peak_rss_growth_per_reserved()),
        ratio(f.heap_growth_per_reserved()),
        or_dash(f.untracked_at_heap_peak_bytes, format_mib_signed),
        or_dash(f.allocations, |n| n.to_string()),
    ]
}

/// One line per query that is not `ok`: `q2: failed (exit 1): exited with code 1`.
pub fn failure_lines(run: &Run) -> Vec<String> {
    run.queries
        .iter()
        .filter(|q| q.status != Status::Ok)
        .map(|q| {
            let status = status_cell(q.status, q.exit_code, q.signal);
            match &q.error {
                Some(error) => format!("{}: {status}: {}", q.id, one_line(error)),
                None => format!("{}: {status}", q.id),
            }
        })
        .collect()
}

/// The run's context as `(label, value)` pairs.
pub fn context_fields(run: &Run) -> Vec<(&'static str, String)> {
    let c = &run.context;
    let m = &c.machine;
    let mut fields = vec![
        ("command", c.command.clone()),
        ("date", c.date.clone()),
        (
            "git",
            c.git_revision
                .as_deref()
                .map_or("-", short_revision)
                .to_string(),
        ),
        (
            "machine",
            format!(
                "{} ({} CPUs, {} memory, kernel {})",
                m.hostname,
                m.cpus,
                format_mib(m.memory_bytes),
                m.kernel
            ),
        ),
        ("memory limit", or_dash(c.memory_limit_bytes, format_mib)),
        ("timeout", or_dash(c.timeout_ms, format_wall_ms)),
        ("repeat", c.repeat.to_string()),
        ("sampling", format!("every {} ms", c.sample_ms)),
    ];
    if let Some(shard) = c.shard {
        fields.push(("shard", shard.to_string()));
    }
    if !c.merged_from.is_empty() {
        fields.push(("merged from", format!("{} runs", c.merged_from.len())));
    }
    fields
}

/// The first 12 characters of a revision.
pub fn short_revision(revision: &str) -> &str {
    revision.get(..12).unwrap_or(revision)
}

/// Text on one line: newlines and tabs become spaces, runs of blanks shrink.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A metric's value: MiB for bytes, a plain count for allocations.
fn metric_value(metric: Metric, value: Option<i128>) -> String {
    match value {
        None => NOT_MEASURED.to_string(),
        Some(v) if metric.is_bytes() => format_mib_wide(v),
        Some(v) => v.to_string(),
    }
}

/// `+20.0 MiB (+20.0%)`, `+2000 (+20.0%)`, or `-` when not comparable.
fn change_cell(change: &MetricChange) -> String {
    let Some(delta) = change.change() else {
        return NOT_MEASURED.to_string();
    };
    let absolute = if change.metric.is_bytes() {
        format_mib_change(delta)
    } else if delta >= 0 {
        format!("+{delta}")
    } else {
        delta.to_string()
    };
    match change.relative() {
        Some(relative) => format!("{absolute} ({})", format_percent_change(relative)),
        None => absolute,
    }
}

/// A comparison row's cells, in [`COMPARE_COLUMNS`] order, and its verdict.
pub struct CompareRow {
    /// The cells, in [`COMPARE_COLUMNS`] order.
    pub cells: [String; 6],
    /// True for rows that count as regressions (formats may highlight them).
    pub regression: bool,
    /// True for improvements: a figure that shrank past its rule, or a
    /// query that failed in the baseline and passes now.
    pub improvement: bool,
}

/// The rows of one query: one per metric when compared, else one `status` row.
pub fn comparison_rows(query: &QueryComparison) -> Vec<CompareRow> {
    if query.outcome == Outcome::Compared {
        return query
            .metrics
            .iter()
            .map(|m| CompareRow {
                cells: [
                    query.id.clone(),
                    m.metric.label().to_string(),
                    metric_value(m.metric, m.baseline),
                    metric_value(m.metric, m.current),
                    change_cell(m),
                    m.verdict.label().to_string(),
                ],
                regression: m.verdict == Verdict::Regression,
                improvement: m.verdict == Verdict::Improvement,
            })
            .collect();
    }
    let status = |s: Option<crate::run::Status>| s.map_or("absent".to_string(), |s| s.to_string());
    vec![CompareRow {
        cells: [
            query.id.clone(),
            "status".to_string(),
            status(query.baseline_status),
            status(query.current_status),
            String::new(),
            query.outcome.label().to_string(),
        ],
        regression: query.outcome == Outcome::NewFailure,
        improvement: query.outcome == Outcome::Fixed,
    }]
}

/// The rules in one sentence: `regression: more than +5% and +1.0 MiB
/// (allocations: +5% and +1000)`.
pub fn rules_line(comparison: &Comparison) -> String {
    let describe = |metric: Metric| {
        let rule = comparison.rules.get(metric);
        let floor = if metric.is_bytes() {
            format_mib(rule.floor)
        } else {
            rule.floor.to_string()
        };
        format!("+{} and +{floor}", format_percent(rule.threshold))
    };
    // Group metrics that share a rule, in table order.
    let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
    for metric in Metric::ALL {
        let rule = describe(metric);
        match groups.iter_mut().find(|(r, _)| *r == rule) {
            Some((_, labels)) => labels.push(metric.label()),
            None => groups.push((rule, vec![metric.label()])),
        }
    }
    let parts: Vec<String> = groups
        .iter()
        .map(|(rule, labels)| format!("{}: {rule}", labels.join(", ")))
        .collect();
    format!(
        "A figure regresses when it grows by more than both its threshold and its floor ({}).",
        parts.join("; ")
    )
}

/// `**2 regressions** ...` without the bold: the verdict in one sentence.
pub fn verdict_line(comparison: &Comparison) -> (String, String) {
    let regressions = comparison.regressions();
    let compared = comparison.count(Outcome::Compared);
    let head = match regressions {
        0 => "No regression".to_string(),
        1 => "1 regression".to_string(),
        n => format!("{n} regressions"),
    };
    let mut tail = vec![format!(
        "{compared} {} compared",
        if compared == 1 { "query" } else { "queries" }
    )];
    for outcome in [
        Outcome::NewFailure,
        Outcome::StillFailing,
        Outcome::Fixed,
        Outcome::MissingInCurrent,
        Outcome::NewQuery,
    ] {
        let n = comparison.count(outcome);
        if n > 0 {
            tail.push(format!("{n} {}", outcome.label()));
        }
    }
    (head, tail.join(", "))
}

/// `path (date, git rev)` for one side of a comparison.
pub fn side_line(side: &crate::compare::Side) -> String {
    format!(
        "{} ({}, git {})",
        side.path,
        if side.date.is_empty() {
            "-"
        } else {
            &side.date
        },
        side.git_revision.as_deref().map_or("-", short_revision)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::tests::query;
    use crate::units::MIB;

    #[test]
    fn run_rows_show_units_ratios_and_dashes() {
        let mut q = query("q1", Status::Ok, 100 * MIB);
        q.limit_bytes = Some(512 * MIB);
        let row = run_row(&q);
        assert_eq!(
            row,
            [
                "q1",
                "ok",
                "100 ms",
                "100.0 MiB",
                "50.0 MiB",
                "25.0 MiB",
                "512.0 MiB",
                "4.0x",
                "2.0x",
                "-",
                "-",
                "25.0 MiB",
                "10000"
            ]
        );
        let mut bare = query("q2", Status::Signal, MIB);
        bare.exit_code = None;
        bare.signal = Some(libc::SIGSEGV);
        bare.figures.heap_peak_bytes = None;
        bare.figures.reserved_peak_bytes = None;
        let row = run_row(&bare);
        assert_eq!(row[1], "signal (SIGSEGV)");
        assert_eq!(row[4], "-");
        assert_eq!(row[7], "-", "no ratio without a reserved peak");
        assert_eq!(row[9], "-", "no growth ratio without a reserved peak");
    }

    #[test]
    fn extreme_values_keep_their_sign() {
        let huge = i128::from(u64::MAX);
        assert_eq!(
            metric_value(Metric::PeakRss, Some(huge)),
            "17592186044416.0 MiB"
        );
        assert_eq!(
            metric_value(Metric::UntrackedPeak, Some(i128::from(i64::MIN))),
            "-8796093022208.0 MiB"
        );
        let mut base = query("q1", Status::Ok, MIB);
        base.figures.peak_rss_bytes = Some(0);
        let mut cur = query("q1", Status::Ok, MIB);
        cur.figures.peak_rss_bytes = Some(u64::MAX);
        let comparison = crate::compare::compare(
            ("b", &crate::compare::tests::run(vec![base])),
            ("c", &crate::compare::tests::run(vec![cur])),
            &crate::compare::Rules::default(),
        )
        .unwrap();
        let rows = comparison_rows(&comparison.queries[0]);
        let text: Vec<String> = rows.iter().flat_map(|r| r.cells.clone()).collect();
        let text = text.join("|");
        assert!(text.contains("+17592186044416.0 MiB"), "{text}");
        assert!(!text.contains("-0.0"), "{text}");
    }
}
