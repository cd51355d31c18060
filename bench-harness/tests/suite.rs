//! The built-in suite, run directly: what each query's report reveals, and
//! how it behaves under a pool limit.

use std::path::Path;
use std::process::{Command, Output};

use memledger_profiler::report::Report;

fn suite(query: &str, scale: &str, limit: Option<u64>, report: &Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_memledger-suite"));
    cmd.args([query, "--scale", scale])
        .env("MEMLEDGER_REPORT", report)
        .env("MEMLEDGER_SAMPLE_MS", "5");
    match limit {
        Some(l) => cmd.env("MEMLEDGER_MEMORY_LIMIT", l.to_string()),
        None => cmd.env_remove("MEMLEDGER_MEMORY_LIMIT"),
    };
    cmd.output().expect("memledger-suite runs")
}

fn read(report: &Path) -> Report {
    Report::from_json(&std::fs::read_to_string(report).unwrap()).unwrap()
}

/// The `checksum …` line a query prints.
fn checksum(output: &Output) -> String {
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("checksum"))
        .unwrap_or_default();
    line.split(',').next().unwrap_or_default().to_string()
}

#[test]
fn the_sort_under_reserves_and_spills_to_the_same_result_under_a_limit() {
    let dir = tempfile::tempdir().unwrap();
    let free = dir.path().join("free.json");
    let out = suite("sort", "0.02", None, &free);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = read(&free);
    let consumer = report
        .consumers
        .iter()
        .find(|c| c.name == "ExternalSorter[0]")
        .unwrap();
    assert!(consumer.reserved_peak_bytes > 0);
    let scope = report
        .scopes
        .iter()
        .find(|s| s.name == "ExternalSorter[0]")
        .unwrap();
    assert!(
        scope.peak_requested_bytes > 2 * consumer.reserved_peak_bytes as i64,
        "the estimate misses the String headers and the sorted copy: heap peak {} vs reserved {}",
        scope.peak_requested_bytes,
        consumer.reserved_peak_bytes
    );

    let tight = dir.path().join("tight.json");
    let limited = suite("sort", "0.02", Some(512 * 1024), &tight);
    assert!(
        limited.status.success(),
        "{}",
        String::from_utf8_lossy(&limited.stderr)
    );
    assert_eq!(
        checksum(&limited),
        checksum(&out),
        "spilling changes nothing in the output"
    );
    let report = read(&tight);
    let sorter = report
        .consumers
        .iter()
        .find(|c| c.name == "ExternalSorter[0]")
        .unwrap();
    assert!(sorter.refusals > 0, "the pool refused and the sort spilled");
    assert!(sorter.reserved_peak_bytes <= 512 * 1024);
    assert!(report.consumers.iter().any(|c| c.name == "SortMerge[0]"));
}

#[test]
fn the_join_fails_under_a_tiny_limit_and_names_its_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("join.json");
    let out = suite("join", "0.02", Some(64 * 1024), &path);
    assert_eq!(out.status.code(), Some(1));
    let report = read(&path);
    let error = report.error.expect("the report keeps the pool's error");
    assert!(
        error.starts_with("Resources exhausted: failed to reserve"),
        "{error}"
    );
    assert!(
        error.contains("for HashJoinBuild[0] in fair pool (limit 64.0 KiB"),
        "{error}"
    );
}

#[test]
fn the_arbiter_makes_room_by_spilling() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("arbiter.json");
    let out = suite("arbiter", "0.05", Some(2 << 20), &path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = read(&path);
    assert_eq!(report.pool.as_deref(), Some("arbiter"));
    let spills: u64 = report.consumers.iter().map(|c| c.spills).sum();
    assert!(spills > 0, "{:?}", report.consumers);
    assert!(report.audit.reserved_peak_bytes <= 2 << 20);
}

#[test]
fn topk_and_aggregate_report_their_consumers() {
    let dir = tempfile::tempdir().unwrap();
    for (query, consumer) in [
        ("topk", "TopK[0]"),
        ("aggregate", "GroupedHashAggregate[0]"),
    ] {
        let path = dir.path().join(format!("{query}.json"));
        let out = suite(query, "0.02", None, &path);
        assert!(
            out.status.success(),
            "{query}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report = read(&path);
        let c = report
            .consumers
            .iter()
            .find(|c| c.name == consumer)
            .unwrap();
        let s = report.scopes.iter().find(|s| s.name == consumer).unwrap();
        assert!(
            s.peak_requested_bytes > c.reserved_peak_bytes as i64,
            "{query}: heap {} vs reserved {}",
            s.peak_requested_bytes,
            c.reserved_peak_bytes
        );
    }
}

#[test]
fn bad_usage_is_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_memledger-suite"))
        .arg("nope")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(env!("CARGO_BIN_EXE_memledger-suite"))
        .args(["sort", "--scale", "-1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
