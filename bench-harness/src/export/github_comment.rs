//! A pull-request comment body (`mem_profile compare --format github-comment`).
//!
//! The verdict first, then the rows a reviewer must see: regressions, then
//! improvements, each in its own table; every other row is folded in a
//! `<details>` block. The body stays within [`COMMENT_MAX_BYTES`] (GitHub
//! refuses longer comments): past it, whole lines are cut from the end and
//! a note says so. The tables are the Markdown format's, row for row.

use super::markdown::{Markdown, fit, table};
use super::{COMPARE_COLUMNS, COMPARE_NUMERIC, Export, comparison_rows};
use crate::compare::Comparison;
use crate::run::Run;

/// GitHub's limit on a comment body (65 536 characters; a character is at
/// least a byte, so bytes are the safe count).
pub const COMMENT_MAX_BYTES: usize = 65_536;

/// The note that ends a comment cut to fit.
pub const TRUNCATED_NOTE: &str = "_Cut to fit GitHub's 64 KiB comment limit: run `mem_profile compare` \
     (or read the job summary) for every row._";

/// The pull-request comment format.
pub struct GithubComment;

impl Export for GithubComment {
    /// A run as its Markdown summary, within the comment limit.
    fn run(&self, run: &Run) -> String {
        fit(&Markdown.run(run), COMMENT_MAX_BYTES, TRUNCATED_NOTE)
    }

    fn comparison(&self, comparison: &Comparison) -> String {
        let mut out = Markdown.comparison_head(comparison);
        let (mut regressions, mut improvements, mut rest) = (Vec::new(), Vec::new(), Vec::new());
        for row in comparison.queries.iter().flat_map(comparison_rows) {
            let cells = row.cells.to_vec();
            if row.regression {
                regressions.push(cells);
            } else if row.improvement {
                improvements.push(cells);
            } else {
                rest.push(cells);
            }
        }
        for (title, rows) in [
            ("Regressions", &regressions),
            ("Improvements", &improvements),
        ] {
            if !rows.is_empty() {
                out.push_str(&format!("### {title} ({})\n\n", rows.len()));
                out.push_str(&table(&COMPARE_COLUMNS, &COMPARE_NUMERIC, rows));
                out.push('\n');
            }
        }
        if !rest.is_empty() {
            out.push_str(&format!(
                "<details><summary>Unchanged and other rows ({})</summary>\n\n",
                rest.len()
            ));
            out.push_str(&table(&COMPARE_COLUMNS, &COMPARE_NUMERIC, &rest));
            out.push_str("\n</details>\n");
        }
        fit(&out, COMMENT_MAX_BYTES, TRUNCATED_NOTE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::tests::{query, run};
    use crate::compare::{Rules, compare};
    use crate::run::Status;
    use crate::units::MIB;

    #[test]
    fn regressions_come_first_then_improvements_then_the_rest_folded() {
        let mut grown = query("q1", Status::Ok, 100 * MIB);
        grown.figures.peak_rss_bytes = Some(150 * MIB);
        let mut shrunk = query("q2", Status::Ok, 100 * MIB);
        shrunk.figures.heap_peak_bytes = Some(10 * MIB as i64);
        let base = run(vec![
            query("q1", Status::Ok, 100 * MIB),
            query("q2", Status::Ok, 100 * MIB),
            query("q3", Status::Failed, MIB),
        ]);
        let current = run(vec![grown, shrunk, query("q3", Status::Ok, MIB)]);
        let comparison = compare(("b", &base), ("c", &current), &Rules::default()).unwrap();
        let body = GithubComment.comparison(&comparison);
        let at = |needle: &str| {
            body.find(needle)
                .unwrap_or_else(|| panic!("{needle:?} in {body}"))
        };
        assert!(at("**1 regression**") < at("### Regressions (1)"));
        assert!(at("### Regressions (1)") < at("| q1 | peak RSS |"));
        assert!(at("| q1 | peak RSS |") < at("### Improvements (2)"));
        assert!(at("### Improvements (2)") < at("| q2 | heap peak |"));
        assert!(at("| q3 | status | failed | ok |  | fixed |") > at("### Improvements"));
        assert!(at("| q2 | heap peak |") < at("<details>"));
        assert!(
            at("<details>") < at("| q1 | heap peak |"),
            "unchanged rows are folded"
        );
        assert!(at("| q1 | heap peak |") < at("</details>"));
        assert_eq!(
            body.matches("| q1 | peak RSS |").count(),
            1,
            "each row once"
        );
    }

    #[test]
    fn a_huge_comparison_is_cut_under_the_limit_with_a_note() {
        let ids: Vec<String> = (0..3000).map(|i| format!("query-{i:04}")).collect();
        let base = run(ids
            .iter()
            .map(|id| query(id, Status::Ok, 100 * MIB))
            .collect());
        let current = run(ids
            .iter()
            .map(|id| {
                let mut q = query(id, Status::Ok, 100 * MIB);
                q.figures.peak_rss_bytes = Some(200 * MIB);
                q
            })
            .collect());
        let comparison = compare(("b", &base), ("c", &current), &Rules::default()).unwrap();
        let full = Markdown.comparison(&comparison);
        assert!(
            full.len() > COMMENT_MAX_BYTES,
            "the test needs a body over the limit"
        );
        let body = GithubComment.comparison(&comparison);
        assert!(body.len() <= COMMENT_MAX_BYTES, "{}", body.len());
        assert!(
            body.len() > COMMENT_MAX_BYTES - 1024,
            "cut near the limit, not far below"
        );
        assert!(body.trim_end().ends_with(TRUNCATED_NOTE));
        assert!(body.starts_with("## mem_profile compare\n\n**3000 regressions**"));
        assert!(body.contains("| query-0000 | peak RSS |"));
        assert!(!body.contains("| query-2999 | peak RSS |"));
        assert_eq!(
            body.matches("<details>").count(),
            body.matches("</details>").count()
        );
    }
}
