//! The built-in suite, run directly: what each query's report reveals, and
//! how it behaves under a pool limit.

use std::path::Path;
use std::process::{Command, Output};

use memledger_profiler::report::{ConsumerReport, Report};

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

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_ok(output: &Output) {
    assert_eq!(output.status.code(), Some(0), "{}", stderr(output));
}

fn consumer<'a>(report: &'a Report, name: &str) -> &'a ConsumerReport {
    report
        .consumers
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no consumer {name} in {:?}", report.consumers))
}

/// The scope's heap peak (requested bytes).
fn heap_peak(report: &Report, scope: &str) -> i64 {
    report
        .scopes
        .iter()
        .find(|s| s.name == scope)
        .unwrap_or_else(|| panic!("no scope {scope}"))
        .peak_requested_bytes
}

/// The `<query>: checksum <hex>, <n> spills` line a query prints: (checksum, spills).
fn printed(output: &Output) -> (String, u64) {
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .find(|l| l.contains(": checksum "))
        .unwrap_or_else(|| panic!("no checksum line in {text}"));
    let rest = line.split(": checksum ").nth(1).unwrap();
    let (sum, spills) = rest.split_once(", ").unwrap();
    let spills = spills.trim_end_matches(" spills").parse().unwrap();
    (sum.to_string(), spills)
}

#[test]
fn the_sort_under_reserves_and_spills_to_the_same_result_under_a_limit() {
    let dir = tempfile::tempdir().unwrap();
    let free = dir.path().join("free.json");
    let out = suite("sort", "0.02", None, &free);
    assert_ok(&out);
    let report = read(&free);
    let sorter = consumer(&report, "ExternalSorter[0]");
    assert!(sorter.can_spill);
    assert!(sorter.reserved_peak_bytes > 0);
    let heap = heap_peak(&report, "ExternalSorter[0]");
    assert!(
        heap > 2 * sorter.reserved_peak_bytes as i64,
        "the estimate misses the String headers and the sorted copy: heap peak {heap} vs reserved {}",
        sorter.reserved_peak_bytes
    );
    let (unlimited_sum, unlimited_spills) = printed(&out);
    assert_eq!(unlimited_spills, 0);

    let tight = dir.path().join("tight.json");
    let limited = suite("sort", "0.02", Some(512 * 1024), &tight);
    assert_ok(&limited);
    let (sum, spills) = printed(&limited);
    assert_eq!(sum, unlimited_sum, "spilling changes nothing in the output");
    assert!(spills > 0, "the sort spilled");
    let report = read(&tight);
    assert_eq!(report.error, None);
    let sorter = consumer(&report, "ExternalSorter[0]");
    assert!(sorter.refusals > 0, "the pool refused and the sort spilled");
    assert!(sorter.reserved_peak_bytes <= 512 * 1024);
    let merge = consumer(&report, "SortMerge[0]");
    assert!(merge.reserved_peak_bytes > 0);
    assert!(
        heap_peak(&report, "SortMerge[0]") > merge.reserved_peak_bytes as i64,
        "a cursor's read buffer alone is bigger than the guess"
    );
}

#[test]
fn the_join_fails_under_a_tiny_limit_and_names_its_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("join.json");
    let out = suite("join", "0.02", Some(64 * 1024), &path);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = read(&path);
    let error = report
        .error
        .clone()
        .expect("the report keeps the pool's error");
    assert!(error.contains("HashJoinBuild[0]"), "{error}");
    assert!(error.starts_with("Resources exhausted"), "{error}");
    assert!(stderr(&out).contains(&error), "{}", stderr(&out));
    let build = consumer(&report, "HashJoinBuild[0]");
    assert!(!build.can_spill);
    assert!(build.refusals > 0);

    // Without a limit it joins, and its table is bigger than it reserved.
    let free = dir.path().join("free.json");
    let out = suite("join", "0.02", None, &free);
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains(" matches"));
    let report = read(&free);
    let build = consumer(&report, "HashJoinBuild[0]");
    assert!(heap_peak(&report, "HashJoinBuild[0]") > build.reserved_peak_bytes as i64);
}

#[test]
fn the_arbiter_makes_room_by_spilling() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("arbiter.json");
    let limit = 2 << 20;
    let out = suite("arbiter", "0.05", Some(limit), &path);
    assert_ok(&out);
    let report = read(&path);
    assert_eq!(report.pool.as_deref(), Some("arbiter"));
    assert_eq!(report.memory_limit_bytes, Some(limit));
    let asked: u64 = report.consumers.iter().map(|c| c.spills).sum();
    assert!(
        asked > 0,
        "the pool asked for spills: {:?}",
        report.consumers
    );
    for name in ["ExternalSorter[0]", "GroupedHashAggregate[0]"] {
        assert!(consumer(&report, name).can_spill, "{name}");
    }
    assert!(!consumer(&report, "HashJoinBuild[0]").can_spill);
    assert!(report.audit.reserved_peak_bytes <= limit);
    let (sum, spills) = printed(&out);
    assert!(spills > 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("ExternalSorter[0] spilled") && stdout.contains("asked by the pool"),
        "{stdout}"
    );

    // With room for everything: nothing spills, the output is the same.
    let roomy = dir.path().join("roomy.json");
    let out = suite("arbiter", "0.05", Some(1 << 30), &roomy);
    assert_ok(&out);
    assert_eq!(printed(&out), (sum, 0));
}

#[test]
fn the_aggregation_under_reserves_and_spills_to_the_same_result() {
    let dir = tempfile::tempdir().unwrap();
    let free = dir.path().join("free.json");
    let out = suite("aggregate", "0.02", None, &free);
    assert_ok(&out);
    let report = read(&free);
    let agg = consumer(&report, "GroupedHashAggregate[0]");
    let heap = heap_peak(&report, "GroupedHashAggregate[0]");
    assert!(
        heap > agg.reserved_peak_bytes as i64,
        "the hash table costs more than key + 16 per group: heap {heap} vs reserved {}",
        agg.reserved_peak_bytes
    );
    let (sum, _) = printed(&out);

    let tight = dir.path().join("tight.json");
    let limited = suite("aggregate", "0.02", Some(128 * 1024), &tight);
    assert_ok(&limited);
    let (limited_sum, spills) = printed(&limited);
    assert_eq!(limited_sum, sum, "spilling changes nothing in the output");
    assert!(spills > 0);
    assert!(consumer(&read(&tight), "GroupedHashAggregate[0]").refusals > 0);
}

#[test]
fn topk_reserves_for_the_first_row_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("topk.json");
    let out = suite("topk", "0.02", None, &path);
    assert_ok(&out);
    let report = read(&path);
    let topk = consumer(&report, "TopK[0]");
    let heap = heap_peak(&report, "TopK[0]");
    assert!(
        heap > topk.reserved_peak_bytes as i64,
        "heap {heap} vs reserved {}",
        topk.reserved_peak_bytes
    );
}

#[test]
fn bad_usage_is_exit_2() {
    for args in [
        &["nope"][..],
        &["sort", "--scale", "-1"],
        &["sort", "--scale", "x"],
        &["sort", "--pool", "nope"],
        &[],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_memledger-suite"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn merge_fails_where_its_whole_input_fits_and_passes_below_and_above() {
    let dir = tempfile::tempdir().unwrap();
    let free = dir.path().join("free.json");
    let out = suite("merge", "0.02", None, &free);
    assert_ok(&out);
    let (sum, spills) = printed(&out);
    assert_eq!(spills, 0);
    let report = read(&free);
    let sorter = consumer(&report, "MergeSorter[0]");
    assert!(sorter.can_spill);
    // The input's estimate, then as much again for the sorted copy.
    let input = sorter.reserved_peak_bytes / 2;
    assert_eq!(sorter.reserved_peak_bytes, 2 * input);
    let sort = suite("sort", "0.02", None, &dir.path().join("sort.json"));
    assert_eq!(printed(&sort).0, sum, "the same rows, sorted the same");

    // The input fits, its copy does not: refused, and no way back to spilling.
    let fits = dir.path().join("fits.json");
    let out = suite("merge", "0.02", Some(input + input / 2), &fits);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let error = read(&fits).error.expect("the pool's refusal");
    assert!(error.contains("MergeSorter[0]"), "{error}");

    // Less memory: it spills runs and merges them in one pass.
    for limit in [input / 2, input - 1] {
        let path = dir.path().join(format!("{limit}.json"));
        let out = suite("merge", "0.02", Some(limit), &path);
        assert_ok(&out);
        let (limited_sum, spills) = printed(&out);
        assert_eq!(limited_sum, sum);
        assert!(spills > 0);
        let report = read(&path);
        let merge = consumer(&report, "SpillMerge[0]");
        assert!(!merge.can_spill);
        assert_eq!(
            merge.reserved_peak_bytes,
            (spills + 1) * 64 * 1024,
            "one read buffer per run: the spilled ones and the last buffer"
        );
    }
    // Room for the copy too: no spill.
    let out = suite(
        "merge",
        "0.02",
        Some(2 * input),
        &dir.path().join("room.json"),
    );
    assert_ok(&out);
    assert_eq!(printed(&out), (sum, 0));
}
