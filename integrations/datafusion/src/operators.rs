//! The per-operator view: operators ranked by how far their live heap
//! exceeds their reservations at the heap peak.
//!
//! Built from a `memledger.report/1`: the scopes named `Operator[partition]`
//! (see [`scoped`](crate::scoped)) are summed over partitions per operator,
//! at the instant of the process's heap peak (`audit.scopes_at_heap_peak`)
//! and at each scope's own peaks (`scopes`: peak live, peak reserved — not
//! time-aligned, the figure DataFusion's own dhat-based measurements report
//! as "peak over pool").

use std::collections::BTreeMap;
use std::fmt::Write as _;

use memledger_profiler::report::Report;

/// One operator's figures, summed over its partitions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OperatorRow {
    /// `SortExec`, `HashJoinExec#2`, ...
    pub operator: String,
    /// Partitions seen.
    pub partitions: usize,
    /// Live heap bytes charged to the operator at the process's heap peak.
    pub live_at_heap_peak: i64,
    /// Bytes its consumers had reserved at that instant.
    pub reserved_at_heap_peak: u64,
    /// Sum over partitions of each scope's own live peak.
    pub peak_live: i64,
    /// Sum over partitions of each scope's own reserved peak.
    pub peak_reserved: u64,
}

impl OperatorRow {
    /// `live - reserved` at the heap peak: heap the pool did not know about.
    pub fn untracked_at_heap_peak(&self) -> i64 {
        self.live_at_heap_peak - self.reserved_at_heap_peak as i64
    }

    /// `live / reserved` at the heap peak, if anything was reserved.
    pub fn ratio_at_heap_peak(&self) -> Option<f64> {
        (self.reserved_at_heap_peak > 0)
            .then(|| self.live_at_heap_peak as f64 / self.reserved_at_heap_peak as f64)
    }

    /// Peak live over peak reserved, if anything was reserved.
    pub fn peak_ratio(&self) -> Option<f64> {
        (self.peak_reserved > 0).then(|| self.peak_live as f64 / self.peak_reserved as f64)
    }
}

/// Splits `"SortExec[3]"` into `("SortExec", 3)`; `None` for other scope names.
pub fn split_scope(name: &str) -> Option<(&str, usize)> {
    let open = name.rfind('[')?;
    let inner = name.get(open + 1..)?.strip_suffix(']')?;
    let partition = inner.parse().ok()?;
    let label = &name[..open];
    (!label.is_empty()).then_some((label, partition))
}

/// The operators of `report`, ranked by untracked bytes at the heap peak
/// (largest first), then by peak ratio.
pub fn operator_view(report: &Report) -> Vec<OperatorRow> {
    let mut rows: BTreeMap<String, (OperatorRow, std::collections::BTreeSet<usize>)> =
        BTreeMap::new();
    for s in &report.audit.scopes_at_heap_peak {
        if let Some((label, partition)) = split_scope(&s.scope) {
            let (row, parts) = rows.entry(label.to_string()).or_default();
            row.live_at_heap_peak += s.live_requested_bytes;
            row.reserved_at_heap_peak += s.reserved_bytes;
            parts.insert(partition);
        }
    }
    for s in &report.scopes {
        if let Some((label, partition)) = split_scope(&s.name) {
            let (row, parts) = rows.entry(label.to_string()).or_default();
            row.peak_live += s.peak_requested_bytes.max(0);
            row.peak_reserved += s.reserved_peak_bytes;
            parts.insert(partition);
        }
    }
    let mut out: Vec<OperatorRow> = rows
        .into_iter()
        .map(|(label, (mut row, parts))| {
            row.operator = label;
            row.partitions = parts.len();
            row
        })
        .collect();
    out.sort_by(|a, b| {
        b.untracked_at_heap_peak()
            .cmp(&a.untracked_at_heap_peak())
            .then(b.peak_live.cmp(&a.peak_live))
    });
    out
}

fn mib(bytes: i64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn ratio(r: Option<f64>, live: i64) -> String {
    match r {
        Some(r) => format!("{r:.1}x"),
        None if live > 0 => "unreserved".to_string(),
        None => "-".to_string(),
    }
}

/// The view as a Markdown table (the first `top` operators).
pub fn render(rows: &[OperatorRow], top: usize) -> String {
    let mut out = String::from(
        "| operator | parts | live at heap peak | reserved at heap peak | untracked | live/reserved | peak live | peak reserved | peak/peak |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows.iter().take(top) {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.operator,
            r.partitions,
            mib(r.live_at_heap_peak),
            mib(r.reserved_at_heap_peak as i64),
            mib(r.untracked_at_heap_peak()),
            ratio(r.ratio_at_heap_peak(), r.live_at_heap_peak),
            mib(r.peak_live),
            mib(r.peak_reserved as i64),
            ratio(r.peak_ratio(), r.peak_live),
        );
    }
    out
}

/// The top sampled stacks of each of the first `top` operators of `rows`
/// (see [`operator_view`]), `per_operator` each, as Markdown: which code
/// allocated the bytes an operator holds. Ranked by bytes live at the heap
/// peak when frees were followed (owner mode), else by bytes allocated.
/// Empty when the report has no stacks.
pub fn operator_stacks(
    report: &Report,
    rows: &[OperatorRow],
    top: usize,
    per_operator: usize,
) -> String {
    let Some(stacks) = &report.stacks else {
        return String::new();
    };
    let live = stacks.live_tracked;
    let figure = |s: &memledger_profiler::report::StackReport| {
        if live {
            s.live_at_heap_peak_bytes.unwrap_or(0)
        } else {
            i64::try_from(s.allocated_bytes).unwrap_or(i64::MAX)
        }
    };
    let mut out = format!(
        "Top stacks per operator (sampled, one per {} KiB on average; bytes {}):\n",
        stacks.sample_bytes / 1024,
        if live {
            "live at the heap peak"
        } else {
            "allocated"
        }
    );
    for row in rows.iter().take(top) {
        let mut mine: Vec<_> = stacks
            .stacks
            .iter()
            .filter(|s| split_scope(&s.scope).is_some_and(|(op, _)| op == row.operator))
            .filter(|s| figure(s) > 0)
            .collect();
        if mine.is_empty() {
            continue;
        }
        // Partitions of one operator run the same code: add them up.
        let mut by_stack: BTreeMap<String, i64> = BTreeMap::new();
        for s in mine.drain(..) {
            *by_stack.entry(s.short(4)).or_default() += figure(s);
        }
        let mut ranked: Vec<(String, i64)> = by_stack.into_iter().collect();
        ranked.sort_by_key(|(_, bytes)| std::cmp::Reverse(*bytes));
        let _ = writeln!(out, "\n{}:", row.operator);
        for (stack, bytes) in ranked.into_iter().take(per_operator) {
            let _ = writeln!(out, "- {}: {stack}", mib(bytes));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use memledger_profiler::report::{ScopeAtPeak, ScopeReport};

    #[test]
    fn stacks_are_grouped_by_operator_over_partitions() {
        use memledger_profiler::report::{Frame, StackReport, StacksReport};
        let stack = |scope: &str, function: &str, live: i64| StackReport {
            scope: scope.into(),
            frames: vec![Frame {
                function: function.into(),
                file: Some("/src/sort.rs".into()),
                line: Some(7),
            }],
            live_at_heap_peak_bytes: Some(live),
            ..StackReport::default()
        };
        let report = Report {
            stacks: Some(StacksReport {
                sample_bytes: 512 * 1024,
                live_tracked: true,
                stacks: vec![
                    stack("SortExec[0]", "buffer", 3 << 20),
                    stack("SortExec[1]", "buffer", 2 << 20),
                    stack("SortExec[1]", "merge", 1 << 20),
                    stack("HashJoinExec[0]", "build", 9 << 20),
                ],
                ..StacksReport::default()
            }),
            ..Report::new()
        };
        let rows = [OperatorRow {
            operator: "SortExec".into(),
            ..OperatorRow::default()
        }];
        let text = operator_stacks(&report, &rows, 5, 5);
        assert!(
            text.contains(
                "SortExec:\n- 5.0 MiB: buffer (sort.rs:7)\n- 1.0 MiB: merge (sort.rs:7)\n"
            ),
            "{text}"
        );
        assert!(!text.contains("build"), "only the listed operators: {text}");
        assert_eq!(operator_stacks(&Report::new(), &rows, 5, 5), "");
    }

    #[test]
    fn scope_names_split_into_operator_and_partition() {
        assert_eq!(split_scope("SortExec[3]"), Some(("SortExec", 3)));
        assert_eq!(
            split_scope("HashJoinExec#2[10]"),
            Some(("HashJoinExec#2", 10))
        );
        assert_eq!(split_scope("unscoped"), None);
        assert_eq!(split_scope("[3]"), None);
        assert_eq!(split_scope("X[a]"), None);
    }

    #[test]
    fn partitions_are_summed_and_ranked_by_untracked_bytes() {
        let mut report = Report::new();
        let at = |scope: &str, live: i64, reserved: u64| ScopeAtPeak {
            scope: scope.into(),
            live_requested_bytes: live,
            reserved_bytes: reserved,
        };
        report.audit.scopes_at_heap_peak = vec![
            at("SortExec[0]", 600, 100),
            at("SortExec[1]", 400, 100),
            at("AggregateExec[0]", 3000, 2000),
            at("tpch-data", 1 << 30, 0),
        ];
        report.scopes = vec![ScopeReport {
            name: "SortExec[0]".into(),
            peak_requested_bytes: 700,
            reserved_peak_bytes: 100,
            ..ScopeReport::default()
        }];
        let rows = operator_view(&report);
        assert_eq!(rows.len(), 2, "tpch-data is not an operator");
        assert_eq!(rows[0].operator, "AggregateExec");
        assert_eq!(rows[0].untracked_at_heap_peak(), 1000);
        assert_eq!(rows[1].operator, "SortExec");
        assert_eq!(rows[1].partitions, 2);
        assert_eq!(rows[1].live_at_heap_peak, 1000);
        assert_eq!(rows[1].reserved_at_heap_peak, 200);
        assert_eq!(rows[1].ratio_at_heap_peak(), Some(5.0));
        assert_eq!(rows[1].peak_ratio(), Some(7.0));
        let table = render(&rows, 10);
        assert!(table.contains("| SortExec | 2 |"), "{table}");
    }
}
