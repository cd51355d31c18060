//! The harness's peak RSS against GNU `/usr/bin/time -v` on the same child.
//!
//! `time` forks the child from its own small, freshly exec'd process, so its
//! "Maximum resident set size" is the child's own peak: the two must agree.

mod common;

use std::process::Command;

const MIB: u64 = common::MIB;

/// `Maximum resident set size (kbytes)` from `time -v`, in bytes.
fn time_v_max_rss(args: &[&str]) -> Option<u64> {
    let output = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(common::exe())
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stderr);
    let line = text
        .lines()
        .find(|l| l.contains("Maximum resident set size"))?;
    let kib: u64 = line.rsplit(':').next()?.trim().parse().ok()?;
    Some(kib * 1024)
}

#[test]
fn peak_rss_agrees_with_time_v() {
    let Some(time_v) = time_v_max_rss(&["__child", "touch=64M"]) else {
        eprintln!("/usr/bin/time is not installed: comparison skipped");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let template = common::child_template();
    let output = common::mem_profile(
        dir.path(),
        &["run", "--cmd", &template, "--queries", "touch=64M"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", common::stderr(&output));
    let run = common::run_json(&dir.path().join("mem_profile_out/run.json"));
    let ours = common::query(&run, "touch=64M")["peak_rss_bytes"]
        .as_u64()
        .unwrap();
    eprintln!(
        "mem_profile: {:.1} MiB, /usr/bin/time -v: {:.1} MiB",
        ours as f64 / MIB as f64,
        time_v as f64 / MIB as f64
    );
    assert!(ours >= 64 * MIB, "{ours}");
    assert!(
        ours.abs_diff(time_v) <= 2 * MIB,
        "mem_profile {ours} vs time -v {time_v}"
    );
}
