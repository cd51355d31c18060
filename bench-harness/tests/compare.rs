//! `mem_profile compare` on synthetic runs, through the real binary.

mod common;

use std::path::Path;

use common::{MIB, assert_one_line_error, mem_profile, stdout};

/// Writes a minimal run: `(id, status, peak_rss_bytes)` per query.
fn write_run(dir: &Path, name: &str, queries: &[(&str, &str, u64)]) {
    let queries: Vec<serde_json::Value> = queries
        .iter()
        .map(|(id, status, rss)| {
            serde_json::json!({
                "id": id,
                "status": status,
                "exit_code": if *status == "ok" { 0 } else { 1 },
                "wall_ms": 100,
                "peak_rss_bytes": rss,
                "heap_peak_bytes": null,
            })
        })
        .collect();
    let run = serde_json::json!({
        "schema": "memledger.run/1",
        "context": {"date": "2025-01-02T03:04:05Z"},
        "queries": queries,
    });
    std::fs::write(dir.join(name), serde_json::to_string_pretty(&run).unwrap()).unwrap();
}

fn compare(
    dir: &Path,
    base: &[(&str, &str, u64)],
    cur: &[(&str, &str, u64)],
    extra: &[&str],
) -> std::process::Output {
    write_run(dir, "base.json", base);
    write_run(dir, "cur.json", cur);
    let mut args = vec!["compare", "base.json", "cur.json"];
    args.extend_from_slice(extra);
    mem_profile(dir, &args)
}

#[test]
fn twenty_percent_more_peak_rss_is_a_regression() {
    let dir = tempfile::tempdir().unwrap();
    let out = compare(
        dir.path(),
        &[("q1", "ok", 100 * MIB)],
        &[("q1", "ok", 120 * MIB)],
        &[],
    );
    assert_eq!(out.status.code(), Some(3));
    let md = stdout(&out);
    assert!(
        md.starts_with("## mem_profile compare\n\n**1 regression**"),
        "{md}"
    );
    assert!(
        md.contains(
            "| q1 | peak RSS | 100.0 MiB | 120.0 MiB | +20.0 MiB (+20.0%) | **regression** |"
        ),
        "{md}"
    );
}

#[test]
fn three_percent_more_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let out = compare(
        dir.path(),
        &[("q1", "ok", 100 * MIB)],
        &[("q1", "ok", 103 * MIB)],
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("| +3.0 MiB (+3.0%) | unchanged |"));
}

#[test]
fn twenty_percent_of_100_kib_is_under_the_floor() {
    let dir = tempfile::tempdir().unwrap();
    let out = compare(
        dir.path(),
        &[("q1", "ok", 100 * 1024)],
        &[("q1", "ok", 120 * 1024)],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    // ... unless the floor is lowered.
    let lowered = compare(
        dir.path(),
        &[("q1", "ok", 100 * 1024)],
        &[("q1", "ok", 120 * 1024)],
        &["--metric-floor", "peak_rss=10K"],
    );
    assert_eq!(lowered.status.code(), Some(3));
}

#[test]
fn per_metric_thresholds_override_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let out = compare(
        dir.path(),
        &[("q1", "ok", 100 * MIB)],
        &[("q1", "ok", 120 * MIB)],
        &["--metric-threshold", "peak_rss=25%"],
    );
    assert_eq!(out.status.code(), Some(0));
    let strict = compare(
        dir.path(),
        &[("q1", "ok", 100 * MIB)],
        &[("q1", "ok", 103 * MIB)],
        &["--threshold", "2%"],
    );
    assert_eq!(strict.status.code(), Some(3));
}

#[test]
fn a_query_that_newly_fails_is_a_regression() {
    let dir = tempfile::tempdir().unwrap();
    let out = compare(
        dir.path(),
        &[("q1", "ok", MIB), ("q2", "ok", MIB)],
        &[("q1", "ok", MIB), ("q2", "timeout", MIB)],
        &[],
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(stdout(&out).contains("| q2 | status | ok | timeout |  | **new failure** |"));
}

#[test]
fn queries_missing_on_one_side_are_reported_not_failed() {
    let dir = tempfile::tempdir().unwrap();
    let out = compare(
        dir.path(),
        &[("q1", "ok", MIB), ("q2", "ok", MIB)],
        &[("q1", "ok", MIB), ("q3", "ok", MIB)],
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    let md = stdout(&out);
    assert!(
        md.contains("| q2 | status | ok | absent |  | missing in current |"),
        "{md}"
    );
    assert!(
        md.contains("| q3 | status | absent | ok |  | new query |"),
        "{md}"
    );
}

#[test]
fn unreadable_and_mismatched_input_exits_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_run(d, "good.json", &[("q1", "ok", MIB)]);
    std::fs::write(
        d.join("malformed.json"),
        "{\"schema\": \"memledger.run/1\", \"queries\": [",
    )
    .unwrap();
    std::fs::write(
        d.join("future.json"),
        r#"{"schema": "memledger.run/2", "queries": []}"#,
    )
    .unwrap();
    std::fs::write(d.join("report.json"), r#"{"schema": "memledger.report/1"}"#).unwrap();
    std::fs::write(d.join("noschema.json"), r#"{"queries": []}"#).unwrap();
    let limited = serde_json::json!({
        "schema": "memledger.run/1",
        "context": {"memory_limit_bytes": 512 * MIB},
        "queries": [{"id": "q1", "status": "ok", "peak_rss_bytes": MIB}],
    });
    std::fs::write(d.join("limited.json"), limited.to_string()).unwrap();
    write_run(d, "other.json", &[("q9", "ok", MIB)]);

    for (file, expected) in [
        (
            "malformed.json",
            "malformed.json: malformed memledger run: EOF while parsing",
        ),
        (
            "future.json",
            "future.json: unsupported run schema `memledger.run/2`: this mem_profile reads memledger.run/1",
        ),
        (
            "report.json",
            "report.json: not a memledger run (schema `memledger.report/1`",
        ),
        (
            "noschema.json",
            "noschema.json: not a memledger run (schema missing",
        ),
        ("absent.json", "cannot read absent.json"),
        (
            "limited.json",
            "different memory limits (unbounded in good.json, 512.0 MiB in limited.json)",
        ),
        (
            "other.json",
            "good.json and other.json have no query in common",
        ),
    ] {
        let out = mem_profile(d, &["compare", "good.json", file]);
        assert_eq!(out.status.code(), Some(2), "{file}");
        let err = assert_one_line_error(&out);
        assert!(err.contains(expected), "{file}: {err}");
    }
    let show = mem_profile(d, &["show", "future.json"]);
    assert_eq!(show.status.code(), Some(2));
    assert_one_line_error(&show);
}

#[test]
fn json_output_counts_regressions() {
    let dir = tempfile::tempdir().unwrap();
    let out = compare(
        dir.path(),
        &[("q1", "ok", 100 * MIB)],
        &[("q1", "ok", 150 * MIB)],
        &["--format", "json"],
    );
    assert_eq!(out.status.code(), Some(3));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value["schema"], "memledger.compare/1");
    assert_eq!(value["regressions"], 1);
    let metric = &value["comparison"]["queries"][0]["metrics"][0];
    assert_eq!(metric["metric"], "peak_rss");
    assert_eq!(metric["verdict"], "regression");
    assert_eq!(metric["current"], 150 * MIB);
}
