//! Growth figures: what a query added over what its process held when the
//! measured window began, in run.json, the table and summary.md.

mod common;

use common::{MIB, child_template, mem_profile, query, run_json, stderr, stdout};

#[test]
fn growth_leaves_out_what_was_touched_before_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let template = child_template();
    let id = "touch=40M window touch=8M report";
    let out = mem_profile(dir.path(), &["run", "--cmd", &template, "--queries", id]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let run = run_json(&dir.path().join("mem_profile_out/run.json"));
    let q = query(&run, id);
    assert_eq!(q["heap_peak_bytes"], 48 * MIB);
    assert_eq!(q["reserved_peak_bytes"], 24 * MIB);
    assert_eq!(q["window_start_heap_live_bytes"], 40 * MIB);
    assert_eq!(q["heap_growth_bytes"], 8 * MIB);
    assert_eq!(q["heap_growth_per_reserved"], 8.0 / 24.0);
    let peak = q["peak_rss_bytes"].as_i64().unwrap();
    let start = q["window_start_rss_bytes"].as_i64().unwrap();
    assert!(
        start >= 40 * MIB as i64,
        "the 40 MiB were resident: {start}"
    );
    assert_eq!(q["peak_rss_growth_bytes"], peak - start);
    let growth = peak - start;
    assert!(
        // Page-granular, and the two readings come from different files
        // (statm in the child, the kernel's high-water mark at exit).
        (7 * MIB as i64..16 * MIB as i64).contains(&growth),
        "the 8 MiB in the window, not the 48 of the process: {growth}"
    );
    let summary = std::fs::read_to_string(dir.path().join("mem_profile_out/summary.md")).unwrap();
    assert!(
        summary.contains("| RSS growth/reserved | heap growth/reserved |"),
        "{summary}"
    );
    let cell = |column: &str| summary_cell(&summary, id, column);
    assert_eq!(cell("heap/reserved"), "2.0x", "{summary}");
    assert_eq!(cell("heap growth/reserved"), "0.3x", "{summary}");
    // RSS growth is page-granular (see above): 7-16 MiB over 24 reserved.
    let rss_growth = cell("RSS growth/reserved");
    assert!(
        ["0.3x", "0.4x", "0.5x", "0.6x", "0.7x"].contains(&rss_growth.as_str()),
        "{rss_growth} in {summary}"
    );
    assert!(
        stdout(&out).contains("heap growth/reserved"),
        "the terminal table too"
    );
}

/// The cell of `summary.md`'s run table in the row of query `id` and the
/// column headed `column`.
fn summary_cell(summary: &str, id: &str, column: &str) -> String {
    let cells = |line: &str| -> Vec<String> {
        line.trim()
            .trim_matches('|')
            .split('|')
            .map(|cell| cell.trim().to_string())
            .collect()
    };
    let header = summary
        .lines()
        .find(|line| line.starts_with("| query |"))
        .map(cells)
        .expect("a run table");
    let row = summary
        .lines()
        .find(|line| line.starts_with(&format!("| {id} |")))
        .map(cells)
        .unwrap_or_else(|| panic!("no row for {id}"));
    let at = header
        .iter()
        .position(|name| name == column)
        .unwrap_or_else(|| panic!("no column {column} in {header:?}"));
    row[at].clone()
}

/// Runs the built-in `topk` at a small scale with `ballast` MiB held from
/// before its session; returns its query entry.
fn topk_with_ballast(ballast: u32) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let template = format!(
        "{} {{query}} --scale 0.05 --ballast-mib {ballast}",
        env!("CARGO_BIN_EXE_memledger-suite")
    );
    let out = mem_profile(
        dir.path(),
        &["run", "--cmd", &template, "--queries", "topk"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    query(
        &run_json(&dir.path().join("mem_profile_out/run.json")),
        "topk",
    )
    .clone()
}

#[test]
fn a_suite_query_with_ballast_grows_by_as_much_as_without() {
    let bare = topk_with_ballast(0);
    let loaded = topk_with_ballast(64);
    let figure = |q: &serde_json::Value, key: &str| {
        q[key].as_i64().unwrap_or_else(|| panic!("{key} in {q:#}"))
    };
    let heap_peak_difference =
        figure(&loaded, "heap_peak_bytes") - figure(&bare, "heap_peak_bytes");
    assert!(
        (63 * MIB as i64..66 * MIB as i64).contains(&heap_peak_difference),
        "the ballast is in the heap peak: {heap_peak_difference}"
    );
    let start = figure(&loaded, "window_start_heap_live_bytes");
    assert!(
        (64 * MIB as i64..66 * MIB as i64).contains(&start),
        "{start}"
    );
    let (grew_bare, grew_loaded) = (
        figure(&bare, "heap_growth_bytes"),
        figure(&loaded, "heap_growth_bytes"),
    );
    assert!(
        (grew_loaded - grew_bare).abs() < MIB as i64,
        "the ballast is not in the heap growth: {grew_bare} and {grew_loaded}"
    );
    let rss_start = figure(&loaded, "window_start_rss_bytes");
    assert!(
        rss_start >= 64 * MIB as i64,
        "the written ballast was resident: {rss_start}"
    );
    let rss_growth = figure(&loaded, "peak_rss_growth_bytes");
    let rss_peak = figure(&loaded, "peak_rss_bytes");
    assert_eq!(rss_growth, rss_peak - rss_start);
    assert!(
        rss_growth < rss_peak - 60 * MIB as i64,
        "{rss_growth} of {rss_peak}"
    );
    let reserved = figure(&loaded, "reserved_peak_bytes") as f64;
    assert_eq!(
        loaded["heap_growth_per_reserved"],
        grew_loaded as f64 / reserved
    );
}
