//! `mem_profile export`: a real run's figures as Bencher JSON and CSV.

mod common;

use common::{
    MIB, assert_one_line_error, child_template, mem_profile, query, run_json, stderr, stdout,
};

const QUERIES: &str = "touch=4M report,exit=1,touch=2M window touch=6M report";

/// A real run of three children; returns its directory and run.json.
fn real_run(dir: &std::path::Path) -> serde_json::Value {
    let template = child_template();
    let out = mem_profile(
        dir,
        &[
            "run",
            "--cmd",
            &template,
            "--queries",
            QUERIES,
            "--allow-failures",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    run_json(&dir.join("mem_profile_out/run.json"))
}

#[test]
fn bencher_json_holds_the_figures_of_a_real_run() {
    let dir = tempfile::tempdir().unwrap();
    let run = real_run(dir.path());
    let out = mem_profile(
        dir.path(),
        &[
            "export",
            "mem_profile_out",
            "--format",
            "bencher",
            "-o",
            "bencher.json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).is_empty(), "written to the file only");
    let text = std::fs::read_to_string(dir.path().join("bencher.json")).unwrap();
    let bencher: serde_json::Value = serde_json::from_str(&text).unwrap();

    let touched = &bencher["touch=4M report"];
    assert_eq!(touched["heap_peak"]["value"], 4 * MIB);
    assert_eq!(touched["reserved_peak"]["value"], 2 * MIB);
    assert_eq!(touched["untracked_peak"]["value"], 2 * MIB);
    assert_eq!(touched["allocations"]["value"], 1);
    assert_eq!(
        touched["peak_rss"]["value"],
        query(&run, "touch=4M report")["peak_rss_bytes"],
        "the kernel's figure, as in run.json"
    );
    assert!(touched["peak_rss"]["value"].as_u64().unwrap() >= 4 * MIB);
    assert_eq!(
        touched["heap_growth"]["value"],
        4 * MIB,
        "no window step: from 0"
    );

    let windowed = &bencher["touch=2M window touch=6M report"];
    assert_eq!(windowed["heap_peak"]["value"], 8 * MIB);
    assert_eq!(
        windowed["heap_growth"]["value"],
        6 * MIB,
        "the 2 MiB before the window left out"
    );

    assert!(
        bencher.get("exit=1").is_none(),
        "a failed query is no data point"
    );
    assert_eq!(bencher.as_object().unwrap().len(), 2);

    // Without -o: the same on stdout.
    let out = mem_profile(
        dir.path(),
        &["export", "mem_profile_out", "--format", "bencher"],
    );
    assert_eq!(stdout(&out), text);
}

#[test]
fn csv_has_a_header_and_one_row_per_query() {
    let dir = tempfile::tempdir().unwrap();
    let run = real_run(dir.path());
    let out = mem_profile(
        dir.path(),
        &["export", "mem_profile_out/run.json", "--format", "csv"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3);
    let row = |id: &str| rows.iter().find(|r| &r[0] == id).unwrap();
    let ok = row("touch=4M report");
    assert_eq!(&ok[column("status")], "ok");
    assert_eq!(&ok[column("heap_peak_bytes")], (4 * MIB).to_string());
    assert_eq!(
        &ok[column("peak_rss_bytes")],
        query(&run, "touch=4M report")["peak_rss_bytes"].to_string()
    );
    let failed = row("exit=1");
    assert_eq!(&failed[column("status")], "failed");
    assert_eq!(
        &failed[column("heap_peak_bytes")],
        "",
        "not measured: empty"
    );
    assert_eq!(&failed[column("error")], "exited with code 1");
    let windowed = row("touch=2M window touch=6M report");
    assert_eq!(
        &windowed[column("heap_growth_bytes")],
        (6 * MIB).to_string()
    );
    assert_eq!(
        &windowed[column("heap_growth_per_reserved")],
        "1.5",
        "6 MiB over 4 MiB reserved"
    );
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("report.json"),
        r#"{"schema": "memledger.report/1"}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("future.json"),
        r#"{"schema": "memledger.run/2"}"#,
    )
    .unwrap();
    for args in [
        &["export", "missing", "--format", "csv"][..],
        &["export", "report.json", "--format", "bencher"],
        &["export", "future.json", "--format", "bencher"],
        &["export", "future.json", "--format", "xml"],
        &["export", "future.json"],
    ] {
        let out = mem_profile(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_one_line_error(&out);
    }
}
