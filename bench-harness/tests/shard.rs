//! `mem_profile run --shard K/N` and `mem_profile merge`, through the real binary.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{assert_one_line_error, child_template, mem_profile, run_json, stderr, stdout};

const QUERIES: &str = "touch=1M report,touch=2M report,touch=3M report,touch=4M report,exit=0";

fn run_shard(dir: &Path, shard: &str, out: &str) -> std::process::Output {
    let template = child_template();
    mem_profile(
        dir,
        &[
            "run",
            "--cmd",
            &template,
            "--queries",
            QUERIES,
            "--shard",
            shard,
            "--out",
            out,
        ],
    )
}

fn ids(run: &serde_json::Value) -> BTreeSet<String> {
    run["queries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn shards_are_disjoint_cover_the_selection_and_merge_back() {
    let dir = tempfile::tempdir().unwrap();
    let all: BTreeSet<String> = QUERIES.split(',').map(String::from).collect();
    let mut union = BTreeSet::new();
    for k in 1..=3 {
        let out = run_shard(dir.path(), &format!("{k}/3"), &format!("s{k}"));
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let run = run_json(&dir.path().join(format!("s{k}/run.json")));
        assert_eq!(
            run["context"]["shard"],
            serde_json::json!({"index": k, "count": 3})
        );
        let summary = std::fs::read_to_string(dir.path().join(format!("s{k}/summary.md"))).unwrap();
        assert!(summary.contains(&format!("- shard: {k}/3\n")), "{summary}");
        let part = ids(&run);
        assert!(!part.is_empty());
        assert!(union.is_disjoint(&part), "{part:?} overlaps {union:?}");
        union.extend(part);
    }
    assert_eq!(union, all, "every query in exactly one shard");

    let out = mem_profile(dir.path(), &["merge", "s1", "s2", "s3", "-o", "merged"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("touch=3M report"), "the merged table");
    let merged = run_json(&dir.path().join("merged/run.json"));
    assert_eq!(ids(&merged), all);
    assert!(
        merged["context"].get("shard").is_none(),
        "a whole run again"
    );
    assert_eq!(
        merged["context"]["merged_from"].as_array().unwrap().len(),
        3
    );
    let summary = std::fs::read_to_string(dir.path().join("merged/summary.md")).unwrap();
    assert!(summary.contains("- merged from: 3 runs\n"), "{summary}");
    assert!(!summary.contains("- shard:"), "{summary}");

    // The whole selection, unsharded, compares with the merged shards.
    let template = child_template();
    let out = mem_profile(
        dir.path(),
        &[
            "run",
            "--cmd",
            &template,
            "--queries",
            QUERIES,
            "--out",
            "whole",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = mem_profile(
        dir.path(),
        &["compare", "whole", "merged", "--floor", "64M"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("5 queries compared"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn merge_refuses_duplicates_mixed_contexts_and_unknown_majors() {
    let dir = tempfile::tempdir().unwrap();
    for k in 1..=2 {
        let out = run_shard(dir.path(), &format!("{k}/2"), &format!("s{k}"));
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let merge = |args: &[&str]| mem_profile(dir.path(), args);

    let out = merge(&["merge", "s1", "s1/run.json", "-o", "m"]);
    assert_eq!(out.status.code(), Some(2));
    let err = assert_one_line_error(&out);
    assert!(err.contains("is in both s1 and s1/run.json"), "{err}");
    assert!(!dir.path().join("m/run.json").exists(), "nothing written");

    let path = dir.path().join("s2/run.json");
    let mut other = run_json(&path);
    other["context"]["machine"]["hostname"] = "another-runner".into();
    std::fs::write(&path, other.to_string()).unwrap();
    let out = merge(&["merge", "s1", "s2", "-o", "m"]);
    assert_eq!(out.status.code(), Some(2));
    let err = assert_one_line_error(&out);
    assert!(err.contains("different machines"), "{err}");
    assert!(err.contains("--allow-mixed-contexts"), "{err}");
    let out = merge(&["merge", "s1", "s2", "-o", "m", "--allow-mixed-contexts"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(ids(&run_json(&dir.path().join("m/run.json"))).len(), 5);

    let mut limited = other.clone();
    limited["context"]["memory_limit_bytes"] = 1_048_576.into();
    std::fs::write(&path, limited.to_string()).unwrap();
    let out = merge(&["merge", "s1", "s2", "-o", "m2", "--allow-mixed-contexts"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(assert_one_line_error(&out).contains("different memory limits"));

    let mut future = other;
    future["schema"] = "memledger.run/2.0".into();
    std::fs::write(&path, future.to_string()).unwrap();
    let out = merge(&["merge", "s1", "s2", "-o", "m3"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(assert_one_line_error(&out).contains("unsupported run schema `memledger.run/2.0`"));

    for args in [
        &["merge", "-o", "m4"][..],
        &["merge", "s1"],
        &["merge", "nowhere", "-o", "m4"],
    ] {
        let out = merge(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_one_line_error(&out);
    }
}

#[test]
fn bad_shards_are_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    for shard in ["0/3", "4/3", "3", "a/b", "1/0", "6/6"] {
        let out = run_shard(dir.path(), shard, "out");
        assert_eq!(out.status.code(), Some(2), "{shard}: {}", stderr(&out));
        let err = assert_one_line_error(&out);
        assert!(err.contains(shard), "{err}");
    }
    assert!(
        !dir.path().join("out/run.json").exists(),
        "refused before running"
    );
}
