//! Aligned plain-text columns for a terminal.

use super::{
    COMPARE_COLUMNS, COMPARE_NUMERIC, Export, RUN_COLUMNS, RUN_NUMERIC, comparison_rows,
    context_fields, failure_lines, rules_line, run_row, side_line, verdict_line,
};
use crate::compare::Comparison;
use crate::run::Run;

/// The terminal table format.
pub struct Table;

impl Export for Table {
    fn run(&self, run: &Run) -> String {
        let mut out = String::new();
        for (label, value) in context_fields(run) {
            out.push_str(&format!("{label}: {value}\n"));
        }
        out.push('\n');
        let rows: Vec<Vec<String>> = run.queries.iter().map(|q| run_row(q).to_vec()).collect();
        out.push_str(&render(&RUN_COLUMNS, &RUN_NUMERIC, &rows));
        let failures = failure_lines(run);
        if !failures.is_empty() {
            out.push_str("\nnot ok:\n");
            for line in failures {
                out.push_str(&format!("  {line}\n"));
            }
        }
        out
    }

    fn comparison(&self, comparison: &Comparison) -> String {
        let (head, tail) = verdict_line(comparison);
        let mut out = format!(
            "baseline: {}\ncurrent:  {}\n{}\n{head}: {tail}.\n\n",
            side_line(&comparison.baseline),
            side_line(&comparison.current),
            rules_line(comparison)
        );
        let rows: Vec<Vec<String>> = comparison
            .queries
            .iter()
            .flat_map(comparison_rows)
            .map(|row| {
                let mut cells = row.cells.to_vec();
                if row.regression {
                    cells[5] = cells[5].to_uppercase();
                }
                cells
            })
            .collect();
        out.push_str(&render(&COMPARE_COLUMNS, &COMPARE_NUMERIC, &rows));
        out
    }
}

/// Columns padded to their widest cell, numbers right-aligned, a rule under the header.
pub(crate) fn render(header: &[&str], numeric: &[bool], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| -> String {
        let padded: Vec<String> = cells
            .zip(&widths)
            .zip(numeric)
            .map(|((cell, &width), &right)| {
                if right {
                    format!("{cell:>width$}")
                } else {
                    format!("{cell:<width$}")
                }
            })
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(&mut header.iter().copied());
    let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
    out.push_str(&line(&mut rule.iter().map(String::as_str)));
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align() {
        let rows = vec![
            vec!["q1".to_string(), "1.5 MiB".to_string()],
            vec!["query22".to_string(), "10.0 MiB".to_string()],
        ];
        assert_eq!(
            render(&["query", "peak"], &[false, true], &rows),
            "query        peak\n\
             -------  --------\n\
             q1        1.5 MiB\n\
             query22  10.0 MiB\n"
        );
    }
}
