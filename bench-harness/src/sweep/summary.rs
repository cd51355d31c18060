//! `summary.md` of a sweep: one row per query (minimum limit, failing
//! limits above it, worst overshoot, runs and time), then per query every
//! limit run with its figures, the errors of the failing limits above the
//! minimum, and its plot.

use std::fmt::Write;

use super::results::{Point, QuerySweep, Sweep, SweepStatus};
use crate::export::markdown::table;
use crate::export::{Format, one_line, short_revision, status_cell};
use crate::units::{format_mib_signed, format_size, format_wall_ms};

/// The columns of the per-query table.
pub const QUERY_COLUMNS: [&str; 8] = [
    "query",
    "sweep",
    "unlimited reserved peak",
    "minimum limit",
    "fails above minimum at",
    "worst peak RSS / limit",
    "runs",
    "time",
];

/// The columns of a query's table of limits.
pub const POINT_COLUMNS: [&str; 10] = [
    "limit",
    "status",
    "time",
    "peak RSS",
    "heap peak",
    "reserved peak",
    "spills",
    "refusals",
    "peak RSS / limit",
    "phase",
];

/// `12.0 MiB`, or `-` when not measured.
fn mib(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "-".to_string(), format_size)
}

/// `1.23x`, or `-`.
fn times(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "-".to_string(), |r| format!("{r:.2}x"))
}

/// The cells of a query's row in the per-query table.
pub fn query_row(q: &QuerySweep) -> [String; 8] {
    // An upper bound when the search was cut short, or when it passed at
    // the smallest limit tried (one step) and nothing below was run.
    let minimum = match (q.minimum_limit_bytes, q.status) {
        (Some(m), SweepStatus::Interrupted | SweepStatus::Running) => {
            format!("≤ {}", format_size(m))
        }
        (Some(m), _) if q.failing_below_minimum_bytes.is_none() => {
            format!("≤ {}", format_size(m))
        }
        (Some(m), _) => format_size(m),
        (None, _) => "-".to_string(),
    };
    let failing: Vec<String> = q
        .non_monotonic
        .iter()
        .map(|f| format_size(f.limit_bytes))
        .collect();
    [
        q.id.clone(),
        q.status.name().replace('_', " "),
        mib(q.unlimited.as_ref().and_then(|u| u.reserved_peak_bytes)),
        minimum,
        if failing.is_empty() {
            "none".to_string()
        } else {
            failing.join(", ")
        },
        times(q.worst_rss_over_limit),
        q.runs.to_string(),
        format_wall_ms(q.wall_ms),
    ]
}

/// The cells of one limit's row.
pub fn point_row(p: &Point) -> [String; 10] {
    [
        p.limit_bytes
            .map_or_else(|| "unlimited".to_string(), format_size),
        status_cell(p.status, p.exit_code, p.signal),
        format_wall_ms(p.wall_ms),
        mib(p.peak_rss_bytes),
        p.heap_peak_bytes
            .map_or_else(|| "-".to_string(), format_mib_signed),
        mib(p.reserved_peak_bytes),
        p.spills.map_or_else(|| "-".to_string(), |n| n.to_string()),
        p.refusals
            .map_or_else(|| "-".to_string(), |n| n.to_string()),
        times(p.rss_over_limit),
        format!("{:?}", p.phase).to_lowercase(),
    ]
}

/// The whole `summary.md`.
pub fn markdown(sweep: &Sweep) -> String {
    let c = &sweep.context;
    let mut out = String::from("## mem_profile sweep\n\n");
    let _ = writeln!(out, "- command: `{}`", c.command.replace('`', "'"));
    let _ = writeln!(out, "- suite: {}", c.suite);
    if let Some(revision) = &c.git_revision {
        let _ = writeln!(out, "- revision: {}", short_revision(revision));
    }
    let _ = writeln!(
        out,
        "- machine: {} ({} CPUs, {} memory)",
        c.machine.hostname,
        c.machine.cpus,
        format_size(c.machine.memory_bytes)
    );
    let _ = writeln!(out, "- date: {}", c.date);
    let top = match c.max_limit_bytes {
        Some(max) => format!("--max-limit {}", format_size(max)),
        None => "each query's unlimited reserved peak".to_string(),
    };
    let _ = writeln!(
        out,
        "- search: {} grid limits up to {top}, then bisection to {}; jobs: {}",
        c.grid, c.resolution, c.jobs
    );
    let runs: u32 = sweep.queries.iter().map(|q| q.runs).sum();
    let _ = writeln!(
        out,
        "- {} runs in {}{}",
        runs,
        format_wall_ms(c.wall_ms),
        if sweep.interrupted {
            " (interrupted)"
        } else {
            ""
        }
    );
    out.push('\n');
    let rows: Vec<Vec<String>> = sweep
        .queries
        .iter()
        .map(|q| query_row(q).to_vec())
        .collect();
    out.push_str(&table(
        &QUERY_COLUMNS,
        &[false, false, true, true, false, true, true, true],
        &rows,
    ));
    for q in &sweep.queries {
        let _ = writeln!(out, "\n### {}\n", q.id.replace('\n', " "));
        if let Some(error) = &q.error {
            let _ = writeln!(out, "{}\n", one_line(error));
        }
        let mut rows: Vec<Vec<String>> = Vec::new();
        if let Some(unlimited) = &q.unlimited {
            rows.push(point_row(unlimited).to_vec());
        }
        rows.extend(q.points.iter().map(|p| point_row(p).to_vec()));
        out.push_str(&table(
            &POINT_COLUMNS,
            &[true, false, true, true, true, true, true, true, true, false],
            &rows,
        ));
        if !q.non_monotonic.is_empty() {
            out.push_str("\nFails above its minimum:\n\n");
            for f in &q.non_monotonic {
                let _ = writeln!(
                    out,
                    "- {}: {}: {}",
                    format_size(f.limit_bytes),
                    f.status,
                    f.error.as_deref().map_or_else(|| "-".to_string(), one_line)
                );
            }
        }
        if let Some(plot) = &q.plot {
            let _ = writeln!(out, "\n![{}]({plot})", q.id.replace(['[', ']', '\n'], " "));
        }
    }
    out
}

/// The per-query table as aligned plain text, for a terminal.
pub fn text(sweep: &Sweep) -> String {
    let rows: Vec<Vec<String>> = sweep
        .queries
        .iter()
        .map(|q| query_row(q).to_vec())
        .collect();
    let mut widths: Vec<usize> = QUERY_COLUMNS.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| -> String {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, &width)| {
                let pad = width.saturating_sub(cell.chars().count());
                format!("{cell}{}", " ".repeat(pad))
            })
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let header: Vec<String> = QUERY_COLUMNS.iter().map(|h| h.to_string()).collect();
    let mut out = line(&header);
    let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
    out.push_str(&line(&rule));
    for row in &rows {
        out.push_str(&line(row));
    }
    out
}

/// The sweep in a format: the per-query table (`table`), `summary.md`
/// (`markdown`) or `sweep.json` itself (`json`).
pub fn render(sweep: &Sweep, format: Format) -> String {
    match format {
        Format::Table => text(sweep),
        Format::Markdown => markdown(sweep),
        Format::GithubComment => crate::export::markdown::fit(
            &markdown(sweep),
            crate::export::github_comment::COMMENT_MAX_BYTES,
            crate::export::github_comment::TRUNCATED_NOTE,
        ),
        Format::Json => sweep.to_json(),
    }
}
