//! GitHub-flavoured Markdown: `summary.md` for a run, and a comparison fit
//! for a CI job summary (which `run` and `compare` append to by themselves:
//! see [`crate::github`]), and [`fit`], which cuts Markdown to a size limit.

use super::{
    COMPARE_COLUMNS, COMPARE_NUMERIC, Export, RUN_COLUMNS, RUN_NUMERIC, comparison_rows,
    context_fields, failure_lines, one_line, rules_line, run_row, side_line, verdict_line,
};
use crate::compare::Comparison;
use crate::run::Run;

/// The Markdown format.
pub struct Markdown;

impl Export for Markdown {
    fn run(&self, run: &Run) -> String {
        let mut out = String::from("## mem_profile run\n\n");
        for (label, value) in context_fields(run) {
            let value = if label == "command" {
                code(&value)
            } else {
                value
            };
            out.push_str(&format!("- {label}: {value}\n"));
        }
        out.push('\n');
        let rows: Vec<Vec<String>> = run.queries.iter().map(|q| run_row(q).to_vec()).collect();
        out.push_str(&table(&RUN_COLUMNS, &RUN_NUMERIC, &rows));
        let failures = failure_lines(run);
        if !failures.is_empty() {
            out.push_str("\nNot ok:\n\n");
            for line in failures {
                out.push_str(&format!("- {}\n", escape(&line)));
            }
        }
        out.push_str(&crate::stacks::summary_section(run));
        out
    }

    fn comparison(&self, comparison: &Comparison) -> String {
        let mut out = self.comparison_head(comparison);
        let rows: Vec<Vec<String>> = comparison
            .queries
            .iter()
            .flat_map(comparison_rows)
            .map(|row| {
                let mut cells = row.cells.to_vec();
                if row.regression {
                    cells[5] = format!("**{}**", cells[5]);
                }
                cells
            })
            .collect();
        out.push_str(&table(&COMPARE_COLUMNS, &COMPARE_NUMERIC, &rows));
        out
    }
}

impl Markdown {
    /// A comparison's heading, verdict, sides and rules, ending in a blank line.
    pub(crate) fn comparison_head(&self, comparison: &Comparison) -> String {
        let (head, tail) = verdict_line(comparison);
        let mut out = String::from("## mem_profile compare\n\n");
        out.push_str(&format!("**{head}**: {tail}.\n\n"));
        out.push_str(&format!(
            "- baseline: {}\n- current: {}\n\n{}\n\n",
            escape(&side_line(&comparison.baseline)),
            escape(&side_line(&comparison.current)),
            rules_line(comparison)
        ));
        out
    }
}

/// A pipe table; numeric columns right-aligned, cells made safe for a table.
pub(crate) fn table(header: &[&str], numeric: &[bool], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n", header.join(" | "));
    let align: Vec<&str> = numeric
        .iter()
        .map(|&right| if right { "---:" } else { ":---" })
        .collect();
    out.push_str(&format!("|{}|\n", align.join("|")));
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| escape(c)).collect();
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    out
}

/// `text` when it fits in `max_bytes`; else its longest prefix of whole
/// lines that fits with `note` after it, on a line of its own (closing a
/// `<details>` fold the cut left open), in `max_bytes` at most.
pub fn fit(text: &str, max_bytes: usize, note: &str) -> String {
    if text.len() <= max_bytes {
        return text.to_string();
    }
    const CLOSE: &str = "\n</details>\n";
    let tail = format!("\n{note}\n");
    let budget = max_bytes.saturating_sub(tail.len() + CLOSE.len());
    // Searched as bytes: the budget may fall inside a character; a newline
    // never does.
    let cut = text.as_bytes()[..budget.min(text.len())]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let mut out = text[..cut].to_string();
    if out.matches("<details>").count() > out.matches("</details>").count() {
        out.push_str(CLOSE);
    }
    out.push_str(&tail);
    out
}

/// Text safe inside a table cell or list item: one line, pipes escaped.
pub(crate) fn escape(text: &str) -> String {
    one_line(text).replace('|', "\\|")
}

/// Inline code that survives backticks inside the text (CommonMark strips
/// one space on each side inside a double-backtick span).
fn code(text: &str) -> String {
    let text = one_line(text);
    if text.contains('`') {
        format!("`` {text} ``")
    } else {
        format!("`{text}`")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::tests::{query, run};
    use crate::compare::{Metric, Rules, compare};
    use crate::run::{Context, Machine, Status};
    use crate::units::{KIB, MIB};

    #[test]
    fn comparison_snapshot() {
        let mut grown = query("q1", Status::Ok, 100 * MIB);
        grown.figures.peak_rss_bytes = Some(120 * MIB);
        grown.figures.allocations = Some(10_300);
        let mut small = query("q2", Status::Ok, 100 * KIB);
        small.figures.peak_rss_bytes = Some(120 * KIB);
        small.figures.heap_peak_bytes = None;
        small.figures.reserved_peak_bytes = None;
        small.figures.allocations = None;
        small.figures.untracked_peak_bytes = None;
        let mut small_base = query("q2", Status::Ok, 100 * KIB);
        small_base.figures.heap_peak_bytes = None;
        small_base.figures.reserved_peak_bytes = None;
        small_base.figures.allocations = None;
        small_base.figures.untracked_peak_bytes = None;
        let mut base = run(vec![
            query("q1", Status::Ok, 100 * MIB),
            small_base,
            query("q3", Status::Ok, 10 * MIB),
            query("q4", Status::Ok, 10 * MIB),
        ]);
        base.context.git_revision = Some("0123456789abcdef0123".to_string());
        let current = run(vec![grown, small, query("q3", Status::Oom, 10 * MIB)]);
        let mut rules = Rules::default();
        rules.set_threshold(Metric::UntrackedPeak, 0.10);
        let comparison = compare(
            ("baseline.json", &base),
            ("mem_profile_out/run.json", &current),
            &rules,
        )
        .unwrap();
        let expected = "\
## mem_profile compare

**2 regressions**: 2 queries compared, 1 new failure, 1 missing in current.

- baseline: baseline.json (2025-01-02T03:04:05Z, git 0123456789ab)
- current: mem_profile_out/run.json (2025-01-02T03:04:05Z, git -)

A figure regresses when it grows by more than both its threshold and its floor (peak RSS, heap peak, reserved peak, peak RSS growth, heap growth: +5% and +1.0 MiB; allocations: +5% and +1000; untracked peak: +10% and +1.0 MiB).

| query | metric | baseline | current | change | verdict |
|:---|:---|---:|---:|---:|:---|
| q1 | peak RSS | 100.0 MiB | 120.0 MiB | +20.0 MiB (+20.0%) | **regression** |
| q1 | heap peak | 50.0 MiB | 50.0 MiB | +0.0 MiB (+0.0%) | unchanged |
| q1 | reserved peak | 25.0 MiB | 25.0 MiB | +0.0 MiB (+0.0%) | unchanged |
| q1 | allocations | 10000 | 10300 | +300 (+3.0%) | unchanged |
| q1 | untracked peak | 25.0 MiB | 25.0 MiB | +0.0 MiB (+0.0%) | unchanged |
| q2 | peak RSS | 0.1 MiB | 0.1 MiB | +0.0 MiB (+20.0%) | unchanged |
| q3 | status | ok | oom |  | **new failure** |
| q4 | status | ok | absent |  | missing in current |
";
        assert_eq!(Markdown.comparison(&comparison), expected);
        assert_eq!(comparison.regressions(), 2);
    }

    #[test]
    fn run_snapshot() {
        let mut ok = query("q1", Status::Ok, 100 * MIB);
        ok.limit_bytes = Some(512 * MIB);
        // 60 MiB resident and 20 MiB of heap before the window: growth 40
        // and 30 MiB over 25 MiB reserved.
        ok.figures.peak_rss_growth_bytes = Some(40 * MIB as i64);
        ok.figures.heap_growth_bytes = Some(30 * MIB as i64);
        let mut failed = query("q2", Status::Failed, 3 * MIB);
        failed.figures.heap_peak_bytes = None;
        failed.figures.reserved_peak_bytes = None;
        failed.figures.allocations = None;
        failed.figures.untracked_at_heap_peak_bytes = None;
        failed.figures.untracked_peak_bytes = None;
        failed.error = Some("Resources exhausted:\nsort | spill failed".to_string());
        let mut r = run(vec![ok, failed]);
        r.context = Context {
            tool: "mem_profile 0.1.0".into(),
            suite: "command".into(),
            command: "bench --query {query}".into(),
            git_revision: None,
            machine: Machine {
                hostname: "ci".into(),
                cpus: 2,
                kernel: "6.1.0".into(),
                memory_bytes: 8192 * MIB,
            },
            date: "2025-01-02T03:04:05Z".into(),
            stack_sample_bytes: None,
            memory_limit_bytes: Some(512 * MIB),
            timeout_ms: Some(60_000),
            sample_ms: 20,
            repeat: 1,
            ..Context::default()
        };
        let expected = "\
## mem_profile run

- command: `bench --query {query}`
- date: 2025-01-02T03:04:05Z
- git: -
- machine: ci (2 CPUs, 8192.0 MiB memory, kernel 6.1.0)
- memory limit: 512.0 MiB
- timeout: 60.00 s
- repeat: 1
- sampling: every 20 ms

| query | status | time | peak RSS | heap peak | reserved peak | limit | RSS/reserved | heap/reserved | RSS growth/reserved | heap growth/reserved | untracked at heap peak | allocations |
|:---|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
| q1 | ok | 100 ms | 100.0 MiB | 50.0 MiB | 25.0 MiB | 512.0 MiB | 4.0x | 2.0x | 1.6x | 1.2x | 25.0 MiB | 10000 |
| q2 | failed (exit 1) | 100 ms | 3.0 MiB | - | - | - | - | - | - | - | - | - |

Not ok:

- q2: failed (exit 1): Resources exhausted: sort \\| spill failed
";
        assert_eq!(Markdown.run(&r), expected);
    }

    #[test]
    fn fitting_cuts_whole_lines_and_closes_folds() {
        let text = "line one\n<details>\n\n| a |\n| b |\n</details>\n";
        assert_eq!(fit(text, text.len(), "cut"), text, "fits: unchanged");
        let cut = fit(text, 40, "_cut_");
        assert_eq!(cut, "line one\n<details>\n\n\n</details>\n\n_cut_\n");
        assert!(cut.len() <= 40);
        let tiny = fit(text, 12, "_cut_");
        assert_eq!(tiny, "\n_cut_\n", "nothing whole fits: the note alone");
    }

    #[test]
    fn inline_code_survives_backticks() {
        assert_eq!(code("a b"), "`a b`");
        assert_eq!(code("echo `x`"), "`` echo `x` ``");
    }
}
