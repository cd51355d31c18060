//! End to end: two TPC-H queries at a tiny scale through `mem_profile`, the
//! run JSON checked.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root of the core crates (two levels up).
fn core_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `mem_profile`, built from the core workspace if no build is there yet.
fn mem_profile() -> PathBuf {
    let root = core_root();
    for profile in ["release", "debug"] {
        let bin = root.join("target").join(profile).join("mem_profile");
        if bin.exists() {
            return bin;
        }
    }
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "-p",
            "memledger-harness",
            "--bin",
            "mem_profile",
            "--manifest-path",
        ])
        .arg(root.join("Cargo.toml"))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building mem_profile failed");
    root.join("target/debug/mem_profile")
}

#[test]
fn two_tpch_queries_through_mem_profile() {
    let out = tempfile::tempdir().unwrap();
    let tpch = env!("CARGO_BIN_EXE_memledger-tpch");
    let result = Command::new(mem_profile())
        .args(["run", "--cmd"])
        .arg(format!("{tpch} {{query}} --scale 0.01 --partitions 2"))
        .args([
            "--queries",
            "1,3",
            "--memory-limit",
            "256M",
            "--timeout",
            "120s",
            "--out",
        ])
        .arg(out.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "mem_profile failed: {stderr}");
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("run.json")).unwrap())
            .unwrap();
    // Any minor version of the run schema's first major.
    let schema = run["schema"].as_str().unwrap_or_default();
    assert_eq!(
        schema
            .split_once('/')
            .map(|(name, version)| (name, version.split('.').next())),
        Some(("memledger.run", Some("1"))),
        "{schema}"
    );
    let queries = run["queries"].as_array().unwrap();
    assert_eq!(queries.len(), 2);
    for (q, id) in queries.iter().zip(["q1", "q3"]) {
        assert_eq!(q["id"], id);
        assert_eq!(q["status"], "ok", "{q}");
        assert_eq!(q["limit_bytes"], 256 << 20);
        let rss = q["peak_rss_bytes"].as_u64().unwrap();
        let heap = q["heap_peak_bytes"].as_u64().unwrap();
        assert!(heap > 1 << 20, "{id}: heap peak {heap}");
        assert!(rss > heap / 2, "{id}: peak RSS {rss} vs heap peak {heap}");
        assert!(
            q["reserved_peak_bytes"].as_u64().unwrap() > 0,
            "{id} reserved nothing"
        );
        assert!(q["allocations"].as_u64().unwrap() > 1000);
        let report = &q["report"];
        assert_eq!(report["label"], id);
        assert_eq!(report["pool"], "fair");
        let consumers = report["consumers"].as_array().unwrap();
        assert!(!consumers.is_empty(), "{id} has consumers");
    }
    // q3 sorts and aggregates: its report names those operators' consumers.
    let names: Vec<&str> = queries[1]["report"]["consumers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(
        names.iter().any(|n| n.contains("HashAggregateStream")),
        "{names:?}"
    );
    assert!(names.iter().any(|n| n.starts_with("TopK")), "{names:?}");
}
