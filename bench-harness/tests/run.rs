//! `mem_profile run`, `bless` and `show` through the real binary.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    MIB, assert_one_line_error, child_template, mem_profile, processes_with, query, run_json,
    stderr, stdout, wait_for,
};

#[test]
fn every_way_a_child_can_end_is_a_row_with_its_status() {
    let dir = tempfile::tempdir().unwrap();
    let template = child_template();
    let queries = [
        "touch=4M report",
        "exit=1",
        "signal=segv",
        "sleep=30s",
        "bad-report",
        "abort-oom",
        "signal=kill",
        "stderr=pool-said-no report-error=Resources_exhausted exit=1",
    ]
    .join(",");
    let started = Instant::now();
    let output = mem_profile(
        dir.path(),
        &[
            "run",
            "--cmd",
            &template,
            "--queries",
            &queries,
            "--timeout",
            "3s",
            "--memory-limit",
            "512M",
        ],
    );
    assert_eq!(
        output.status.code(),
        Some(1),
        "a query failed: {}",
        stderr(&output)
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the timeout worked"
    );
    let run = run_json(&dir.path().join("mem_profile_out/run.json"));
    assert_eq!(run["schema"], "memledger.run/1.2");
    assert_eq!(run["context"]["memory_limit_bytes"], 512 * MIB);
    assert_eq!(run["context"]["timeout_ms"], 3000);
    assert_eq!(
        run["queries"].as_array().unwrap().len(),
        8,
        "failed queries are rows"
    );

    let ok = query(&run, "touch=4M report");
    assert_eq!(ok["status"], "ok");
    assert_eq!(ok["exit_code"], 0);
    assert_eq!(ok["heap_peak_bytes"], 4 * MIB, "from the child's report");
    assert_eq!(ok["reserved_peak_bytes"], 2 * MIB);
    assert_eq!(ok["untracked_at_heap_peak_bytes"], 2 * MIB);
    assert_eq!(ok["untracked_peak_bytes"], 2 * MIB);
    assert_eq!(ok["allocations"], 1);
    assert_eq!(ok["limit_bytes"], 512 * MIB);
    assert_eq!(
        ok["report"]["memory_limit_bytes"],
        512 * MIB,
        "MEMLEDGER_MEMORY_LIMIT reached the child"
    );
    assert_eq!(
        ok["report"]["timeline"]["interval_ms"], 20,
        "MEMLEDGER_SAMPLE_MS too"
    );
    let peak = ok["peak_rss_bytes"].as_u64().unwrap();
    assert!((4 * MIB..64 * MIB).contains(&peak), "{peak}");
    assert!(ok["error"].is_null());

    let failed = query(&run, "exit=1");
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["exit_code"], 1);
    assert_eq!(failed["error"], "exited with code 1");
    assert!(
        failed["heap_peak_bytes"].is_null(),
        "no report: null, never 0"
    );
    assert!(failed["report"].is_null());
    assert!(
        failed["peak_rss_bytes"].as_u64().unwrap() > 0,
        "the kernel still measured it"
    );

    let segv = query(&run, "signal=segv");
    assert_eq!(segv["status"], "signal");
    assert_eq!(segv["signal"], libc::SIGSEGV);
    assert!(segv["exit_code"].is_null());

    let slow = query(&run, "sleep=30s");
    assert_eq!(slow["status"], "timeout");
    assert_eq!(slow["signal"], libc::SIGKILL);
    let wall = slow["wall_ms"].as_u64().unwrap();
    // The harness's deadline starts before the launcher does, the query's
    // clock when the launcher forks it: on a loaded machine the launcher's
    // start takes a little of the 3 s.
    assert!(
        (2500..10_000).contains(&wall),
        "killed near 3 s, took {wall}"
    );
    assert!(
        slow["peak_rss_bytes"].as_u64().is_some(),
        "a killed query keeps its peak"
    );

    let broken = query(&run, "bad-report");
    assert_eq!(broken["status"], "failed");
    assert_eq!(broken["exit_code"], 0);
    let why = broken["error"].as_str().unwrap();
    assert!(why.starts_with("malformed memledger report"), "{why}");

    let oom = query(&run, "abort-oom");
    assert_eq!(oom["status"], "oom");
    assert_eq!(oom["signal"], libc::SIGABRT);
    assert_eq!(
        oom["error"],
        "memory allocation of 1099511627776 bytes failed"
    );

    let killed = query(&run, "signal=kill");
    assert_eq!(
        killed["status"], "oom",
        "a SIGKILL the harness did not send"
    );

    let refused = query(
        &run,
        "stderr=pool-said-no report-error=Resources_exhausted exit=1",
    );
    assert_eq!(refused["status"], "failed");
    assert_eq!(
        refused["error"], "Resources_exhausted",
        "the report's error, verbatim"
    );
    assert_eq!(refused["stderr_tail"], "pool-said-no\n");

    let table = stdout(&output);
    assert!(table.contains("signal (SIGSEGV)"), "{table}");
    assert!(table.contains("failed (exit 1)"), "{table}");
    let summary = std::fs::read_to_string(dir.path().join("mem_profile_out/summary.md")).unwrap();
    assert!(
        summary.contains("| exit=1 | failed (exit 1) |"),
        "{summary}"
    );
    assert!(summary.contains("| sleep=30s | timeout |"), "{summary}");
}

#[test]
fn a_missing_program_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let output = mem_profile(
        dir.path(),
        &[
            "run",
            "--cmd",
            "no-such-benchmark-xyz --query {query}",
            "--queries",
            "1..3",
        ],
    );
    assert_eq!(output.status.code(), Some(2));
    let err = assert_one_line_error(&output);
    assert_eq!(
        err,
        "mem_profile: error: program `no-such-benchmark-xyz` not found in PATH\n"
    );
    assert!(
        !dir.path().join("mem_profile_out").exists(),
        "nothing ran, nothing written"
    );
}

#[test]
fn usage_errors_are_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let template = child_template();
    for args in [
        &["run", "--cmd", "sh -c true", "--memory-limit", "5X"][..],
        &["run", "--cmd", &template, "--queries", "a,b", "-q", "c"],
        &["run", "--cmd", &template],
        &["run", "--cmd", "sh 'unterminated"],
        &["run", "--repeat", "0"],
        &["frobnicate"],
    ] {
        let output = mem_profile(dir.path(), args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        assert_one_line_error(&output);
    }
    let unknown = mem_profile(
        dir.path(),
        &["run", "--cmd", &template, "--queries", "a,b", "-q", "c"],
    );
    assert!(stderr(&unknown).contains("unknown query `c`; this suite has a, b"));
}

#[test]
fn the_builtin_suite_runs_with_its_scale() {
    let dir = tempfile::tempdir().unwrap();
    let output = mem_profile(dir.path(), &["run", "--scale", "0.02", "-q", "sort,topk"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let run = run_json(&dir.path().join("mem_profile_out/run.json"));
    assert!(
        run["context"]["command"]
            .as_str()
            .unwrap()
            .contains("--scale 0.02"),
        "{run}"
    );
    let queries = run["queries"].as_array().unwrap();
    assert_eq!(queries.len(), 2);
    for q in queries {
        assert_eq!(q["status"], "ok", "{q}");
        assert!(q["heap_peak_bytes"].as_u64().unwrap() > 0);
        assert!(q["reserved_peak_bytes"].as_u64().unwrap() > 0);
    }
}

#[test]
fn repeats_report_min_and_median() {
    let dir = tempfile::tempdir().unwrap();
    let template = child_template();
    let output = mem_profile(
        dir.path(),
        &[
            "run",
            "--cmd",
            &template,
            "--queries",
            "touch=2M report",
            "--repeat",
            "3",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let run = run_json(&dir.path().join("mem_profile_out/run.json"));
    assert_eq!(run["context"]["repeat"], 3);
    let q = query(&run, "touch=2M report");
    let repeats = q["repeats"].as_array().unwrap();
    assert_eq!(repeats.len(), 3);
    assert!(repeats.iter().all(|r| r["status"] == "ok"));
    let rss: Vec<u64> = repeats
        .iter()
        .map(|r| r["peak_rss_bytes"].as_u64().unwrap())
        .collect();
    let mut sorted = rss.clone();
    sorted.sort();
    assert_eq!(q["min"]["peak_rss_bytes"], sorted[0]);
    assert_eq!(q["median"]["peak_rss_bytes"], sorted[1]);
    assert_eq!(
        q["peak_rss_bytes"], sorted[1],
        "top-level figures are the median"
    );
    assert_eq!(q["median"]["heap_peak_bytes"], 2 * MIB);
}

#[test]
fn bless_show_and_compare_a_real_run() {
    let dir = tempfile::tempdir().unwrap();
    let template = child_template();
    let output = mem_profile(
        dir.path(),
        &[
            "run",
            "--cmd",
            &template,
            "--queries",
            "touch=3M report,exit=2",
            "--save-baseline",
            "saved.json",
        ],
    );
    assert_eq!(output.status.code(), Some(1), "exit=2 failed");
    let saved = std::fs::read_to_string(dir.path().join("saved.json")).unwrap();
    assert!(
        !saved.contains("\"timeline\""),
        "baselines carry no timeline"
    );
    assert!(saved.contains("\"heap_peak_bytes\": 3145728"), "{saved}");

    let bless = mem_profile(dir.path(), &["bless", "-o", "base.json"]);
    assert_eq!(bless.status.code(), Some(0), "{}", stderr(&bless));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("base.json")).unwrap(),
        saved,
        "bless and --save-baseline write the same file"
    );

    let show = mem_profile(dir.path(), &["show", "base.json"]);
    assert_eq!(show.status.code(), Some(0));
    let table = stdout(&show);
    assert!(table.contains("failed (exit 2)"), "{table}");
    assert!(table.contains("  3.0 MiB"), "heap peak column: {table}");

    let compare = mem_profile(dir.path(), &["compare", "base.json", "mem_profile_out"]);
    assert_eq!(compare.status.code(), Some(0), "{}", stdout(&compare));
    let markdown = stdout(&compare);
    assert!(
        markdown.contains("**No regression**: 1 query compared, 1 still failing."),
        "{markdown}"
    );
}

#[test]
fn an_interrupted_run_keeps_every_finished_query_and_kills_the_running_one() {
    let dir = tempfile::tempdir().unwrap();
    let tag = format!("stderr=interrupt-tag-{}", std::process::id());
    let slow = format!("sleep=60s {tag}");
    let queries = format!("touch=1M report,{slow},exit=0");
    let template = child_template();
    let mut harness = Command::new(common::exe())
        .args(["run", "--cmd", &template, "--queries", &queries])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let run_path = dir.path().join("mem_profile_out/run.json");
    wait_for("the slow query to start", || {
        !processes_with(&tag).is_empty()
    });
    // SAFETY: kill has no memory effects; the pid is our child.
    unsafe { libc::kill(harness.id() as i32, libc::SIGINT) };
    let status = harness.wait().unwrap();
    assert_eq!(status.code(), Some(130));

    let run = run_json(&run_path);
    let ids: Vec<&str> = run["queries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["touch=1M report"], "the finished query, and only it");
    assert_eq!(query(&run, "touch=1M report")["heap_peak_bytes"], MIB);
    wait_for("the slow query to die", || processes_with(&tag).is_empty());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("mem_profile_out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(run["interrupted"], true);
}
