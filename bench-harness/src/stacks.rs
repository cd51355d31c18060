//! Sampled allocation stacks in a run: `mem_profile run --stacks`.
//!
//! The harness passes `MEMLEDGER_SAMPLE_BYTES` to each query; a child that
//! links `memledger-profiler` samples its allocation stacks and puts their
//! addresses in its report's `stacks` section. After the query exited, the
//! harness symbolizes them (so reading debug info never counts in the
//! query's peak RSS) and writes, per query, in `stacks/` of the out
//! directory:
//!
//! - `<id>.folded`: folded stacks weighed by estimated bytes allocated
//!   (`scope;outer;…;inner bytes`, for flamegraph.pl, inferno, speedscope);
//! - `<id>.svg`: their flamegraph;
//! - in owner mode also `<id>.live.folded` and `<id>.live.svg`, weighed by
//!   estimated bytes live at the heap peak;
//!
//! links them from the query in `run.json` (`stacks`), lists each query's
//! top stacks of untracked bytes in `summary.md`, and `mem_profile compare`
//! shows the stacks that grew most.

use std::collections::HashMap;
use std::path::Path;

use memledger_profiler::report::{StackReport, StacksReport};
use memledger_profiler::stacks::Weight;
use serde::{Deserialize, Serialize};

use crate::files::{file_name_part, write_atomic};
use crate::run::{QueryResult, Run};
use crate::units::{format_mib_change, format_mib_signed};

/// The folder of the stack files inside a run's out directory.
pub const STACKS_DIR: &str = "stacks";

/// Stacks listed per query in `summary.md`.
pub const SUMMARY_TOP: usize = 5;

/// Stacks listed per query by `compare`.
pub const COMPARE_TOP: usize = 5;

/// Where a query's stack files are, relative to the run's out directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackFiles {
    /// Folded stacks by estimated bytes allocated.
    pub folded: String,
    /// Their flamegraph (SVG).
    pub flamegraph: String,
    /// Owner mode: folded stacks by estimated bytes live at the heap peak.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_folded: Option<String>,
    /// Owner mode: their flamegraph.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_flamegraph: Option<String>,
}

/// A query id as a file name ([`file_name_part`]), never hidden nor empty.
pub fn file_stem(id: &str) -> String {
    match file_name_part(id).trim_start_matches('.') {
        "" => "query".to_string(),
        s => s.to_string(),
    }
}

/// Writes the stack files of `query` (when its report has stacks) under
/// `out`, and links them from it. An error leaves the query unlinked.
pub fn attach(out: &Path, query: &mut QueryResult) -> Result<(), String> {
    let Some(stacks) = query.report.as_ref().and_then(|r| r.stacks.as_ref()) else {
        return Ok(());
    };
    let dir = out.join(STACKS_DIR);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let stem = file_stem(&query.id);
    let title = format!("{}: bytes allocated, by stack (sampled)", query.id);
    let (folded, flamegraph) = write_pair(&dir, &stem, stacks, Weight::Allocated, &title)?;
    let mut files = StackFiles {
        folded,
        flamegraph,
        ..StackFiles::default()
    };
    if stacks.live_tracked {
        let title = format!(
            "{}: bytes live at the heap peak, by stack (sampled)",
            query.id
        );
        let (folded, flamegraph) = write_pair(
            &dir,
            &format!("{stem}.live"),
            stacks,
            Weight::LiveAtHeapPeak,
            &title,
        )?;
        files.live_folded = Some(folded);
        files.live_flamegraph = Some(flamegraph);
    }
    query.stacks = Some(files);
    Ok(())
}

/// Writes `<stem>.folded` and `<stem>.svg`; returns their paths relative to
/// the out directory.
fn write_pair(
    dir: &Path,
    stem: &str,
    stacks: &StacksReport,
    weight: Weight,
    title: &str,
) -> Result<(String, String), String> {
    let folded = stacks.folded(weight);
    let folded_name = format!("{stem}.folded");
    let svg_name = format!("{stem}.svg");
    write_atomic(&dir.join(&folded_name), &folded)
        .map_err(|e| format!("cannot write {}: {e}", dir.join(&folded_name).display()))?;
    let svg = flamegraph(&folded, title)?;
    write_atomic(&dir.join(&svg_name), &svg)
        .map_err(|e| format!("cannot write {}: {e}", dir.join(&svg_name).display()))?;
    Ok((
        format!("{STACKS_DIR}/{folded_name}"),
        format!("{STACKS_DIR}/{svg_name}"),
    ))
}

/// An SVG flamegraph of folded stacks (a short notice when there are none).
pub fn flamegraph(folded: &str, title: &str) -> Result<String, String> {
    let mut options = inferno::flamegraph::Options::default();
    options.title = title.to_string();
    options.count_name = "bytes".to_string();
    options.name_type = "Stack:".to_string();
    let mut svg = Vec::new();
    if folded.trim().is_empty() {
        return Ok(empty_svg(title));
    }
    inferno::flamegraph::from_lines(&mut options, folded.lines(), &mut svg)
        .map_err(|e| format!("cannot draw the flamegraph: {e}"))?;
    String::from_utf8(svg).map_err(|e| format!("cannot draw the flamegraph: {e}"))
}

fn empty_svg(title: &str) -> String {
    let title = title
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"600\" height=\"60\">\
         <text x=\"10\" y=\"25\" font-family=\"sans-serif\" font-size=\"14\">{title}</text>\
         <text x=\"10\" y=\"45\" font-family=\"sans-serif\" font-size=\"12\">no sampled bytes</text></svg>\n"
    )
}

/// The top stacks of untracked bytes of one query: from each scope over
/// its reservation at the heap peak, its top stacks, largest first.
pub fn top_untracked(stacks: &StacksReport, n: usize) -> Vec<(&str, i64, &StackReport)> {
    let mut top: Vec<(&str, i64, &StackReport)> = Vec::new();
    for scope in &stacks.untracked_by_scope {
        for &i in &scope.top {
            if let Some(s) = stacks.stacks.get(i) {
                let bytes = if stacks.live_tracked {
                    s.live_at_heap_peak_bytes.unwrap_or(0)
                } else {
                    i64::try_from(s.allocated_bytes).unwrap_or(i64::MAX)
                };
                top.push((scope.scope.as_str(), bytes, s));
            }
        }
    }
    top.sort_by_key(|t| std::cmp::Reverse(t.1));
    top.truncate(n);
    top
}

/// `summary.md`'s stacks section: each query's top stacks of untracked
/// bytes, with links to its flamegraphs. Empty when no query has stacks.
pub fn summary_section(run: &Run) -> String {
    let mut out = String::new();
    for q in &run.queries {
        let Some(stacks) = q.report.as_ref().and_then(|r| r.stacks.as_ref()) else {
            continue;
        };
        if out.is_empty() {
            out.push_str("\n## Where the untracked bytes come from (sampled stacks)\n");
        }
        out.push_str(&format!("\n### {}\n\n", escape(&q.id)));
        let measure = if stacks.live_tracked {
            "live at the heap peak"
        } else {
            "allocated (counting mode: frees are not seen)"
        };
        out.push_str(&format!(
            "{} samples, one per {} on average; bytes {measure}.",
            stacks.samples,
            crate::units::format_size(stacks.sample_bytes)
        ));
        if let Some(files) = &q.stacks {
            out.push_str(&format!(" Flamegraph: [allocated]({})", files.flamegraph));
            if let Some(live) = &files.live_flamegraph {
                out.push_str(&format!(", [live at the heap peak]({live})"));
            }
            out.push('.');
        }
        out.push_str("\n\n");
        let top = top_untracked(stacks, SUMMARY_TOP);
        if top.is_empty() {
            out.push_str("No scope held more than it reserved at the heap peak.\n");
            continue;
        }
        out.push_str("| scope | bytes | stack (innermost first) |\n| --- | ---: | --- |\n");
        for (scope, bytes, s) in top {
            out.push_str(&format!(
                "| {} | {} | {} |\n",
                escape(scope),
                format_mib_signed(bytes),
                escape(&s.short(4))
            ));
        }
    }
    out
}

/// The stacks that grew most from `baseline` to `current`, per query that
/// has stacks in both: by estimated bytes allocated, per scope and stack.
/// Empty when no query has stacks on both sides.
pub fn growth_section(baseline: &Run, current: &Run, markdown: bool) -> String {
    let mut out = String::new();
    for q in &current.queries {
        let (Some(now), Some(before)) = (
            q.report.as_ref().and_then(|r| r.stacks.as_ref()),
            baseline
                .query(&q.id)
                .and_then(|b| b.report.as_ref())
                .and_then(|r| r.stacks.as_ref()),
        ) else {
            continue;
        };
        let grown = growth(before, now);
        if grown.is_empty() {
            continue;
        }
        if out.is_empty() {
            out.push_str(if markdown {
                "\n## Stacks that grew most (sampled, bytes allocated)\n"
            } else {
                "\nStacks that grew most (sampled, bytes allocated):\n"
            });
        }
        if markdown {
            out.push_str(&format!(
                "\n### {}\n\n| scope | change | stack (innermost first) |\n| --- | ---: | --- |\n",
                escape(&q.id)
            ));
        } else {
            out.push_str(&format!("\n{}:\n", q.id));
        }
        for (scope, change, s) in grown.into_iter().take(COMPARE_TOP) {
            let change = format_mib_change(change);
            if markdown {
                out.push_str(&format!(
                    "| {} | {change} | {} |\n",
                    escape(&scope),
                    escape(&s.short(4))
                ));
            } else {
                out.push_str(&format!("  {change:>12}  {scope}: {}\n", s.short(4)));
            }
        }
    }
    out
}

/// Stacks of `now` with their change in allocated bytes against `before`
/// (matched by scope and function names), largest growth first; only
/// those that grew.
fn growth<'a>(
    before: &StacksReport,
    now: &'a StacksReport,
) -> Vec<(String, i128, &'a StackReport)> {
    let key = |s: &StackReport| {
        let mut k = s.scope.clone();
        for f in &s.frames {
            k.push(';');
            k.push_str(&f.function);
        }
        k
    };
    let mut old: HashMap<String, u64> = HashMap::new();
    for s in &before.stacks {
        *old.entry(key(s)).or_default() += s.allocated_bytes;
    }
    let mut grown: Vec<(String, i128, &StackReport)> = now
        .stacks
        .iter()
        .map(|s| {
            let was = old.get(&key(s)).copied().unwrap_or(0);
            (
                s.scope.clone(),
                i128::from(s.allocated_bytes) - i128::from(was),
                s,
            )
        })
        .filter(|g| g.1 > 0)
        .collect();
    grown.sort_by_key(|g| std::cmp::Reverse(g.1));
    grown
}

fn escape(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use memledger_profiler::report::{Frame, ScopeStacks};

    fn stack(scope: &str, frames: &[&str], allocated: u64, live: Option<i64>) -> StackReport {
        StackReport {
            scope: scope.into(),
            frames: frames
                .iter()
                .map(|f| Frame {
                    function: f.to_string(),
                    file: None,
                    line: None,
                })
                .collect(),
            samples: 1,
            allocated_bytes: allocated,
            live_at_heap_peak_bytes: live,
            ..StackReport::default()
        }
    }

    #[test]
    fn top_untracked_ranks_across_scopes() {
        let r = StacksReport {
            live_tracked: true,
            stacks: vec![
                stack("a", &["f"], 10, Some(5)),
                stack("b", &["g"], 10, Some(50)),
                stack("a", &["h"], 10, Some(20)),
            ],
            untracked_by_scope: vec![
                ScopeStacks {
                    scope: "a".into(),
                    untracked_bytes: 30,
                    ranked_by: "live_at_heap_peak".into(),
                    top: vec![2, 0],
                },
                ScopeStacks {
                    scope: "b".into(),
                    untracked_bytes: 10,
                    ranked_by: "live_at_heap_peak".into(),
                    top: vec![1],
                },
            ],
            ..StacksReport::default()
        };
        let top: Vec<(&str, i64)> = top_untracked(&r, 2).iter().map(|t| (t.0, t.1)).collect();
        assert_eq!(top, [("b", 50), ("a", 20)]);
    }

    #[test]
    fn growth_matches_stacks_by_scope_and_functions() {
        let before = StacksReport {
            stacks: vec![
                stack("s", &["f", "main"], 100, None),
                stack("s", &["g"], 50, None),
            ],
            ..StacksReport::default()
        };
        let now = StacksReport {
            stacks: vec![
                stack("s", &["f", "main"], 400, None),
                stack("s", &["g"], 40, None),
                stack("t", &["f", "main"], 70, None),
            ],
            ..StacksReport::default()
        };
        let g: Vec<(String, i128)> = growth(&before, &now)
            .into_iter()
            .map(|g| (g.0, g.1))
            .collect();
        assert_eq!(g, [("s".to_string(), 300), ("t".to_string(), 70)]);
    }

    #[test]
    fn flamegraphs_parse_and_name_the_frames() {
        let folded = "sort;main;sort::buffer 3000\nsort;main;sort::merge 1000\n";
        let svg = flamegraph(folded, "sort").unwrap();
        let xml = roxmltree::ParsingOptions {
            allow_dtd: true,
            ..roxmltree::ParsingOptions::default()
        };
        let doc = roxmltree::Document::parse_with_options(&svg, xml).unwrap();
        let titles: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("title"))
            .filter_map(|n| n.text())
            .collect();
        assert!(
            titles
                .iter()
                .any(|t| t.starts_with("sort::buffer (3,000 bytes, 75")),
            "{titles:?}"
        );
        let empty = flamegraph("", "nothing").unwrap();
        roxmltree::Document::parse_with_options(&empty, xml).unwrap();
    }

    #[test]
    fn file_stems_are_safe() {
        assert_eq!(file_stem("q1"), "q1");
        assert_eq!(file_stem("../etc/passwd"), "_etc_passwd");
        assert_eq!(file_stem("a b/c"), "a_b_c");
        assert_eq!(file_stem(""), "query");
    }
}
