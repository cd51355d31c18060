//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The `mem_profile` binary under test.
pub fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mem_profile"))
}

/// `mem_profile ARGS` run in `dir` (outside any GitHub job summary).
pub fn mem_profile(dir: &Path, args: &[&str]) -> Output {
    mem_profile_env(dir, args, &[])
}

/// `mem_profile ARGS` run in `dir` with `env` set on top of the test's own
/// environment (less `MEMLEDGER_MEMORY_LIMIT` and `GITHUB_STEP_SUMMARY`).
pub fn mem_profile_env(dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut command = Command::new(exe());
    command
        .args(args)
        .current_dir(dir)
        .env_remove("MEMLEDGER_MEMORY_LIMIT")
        .env_remove("GITHUB_STEP_SUMMARY");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("mem_profile runs")
}

/// A `--cmd` template running `mem_profile __child {query}`.
pub fn child_template() -> String {
    format!("{} __child {{query}}", exe().display())
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Reads `run.json` as untyped JSON (what a CI script would see).
pub fn run_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).expect("run.json exists");
    serde_json::from_str(&text).expect("run.json is JSON")
}

/// The query with this id in an untyped run.
pub fn query<'a>(run: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    run["queries"]
        .as_array()
        .expect("queries")
        .iter()
        .find(|q| q["id"] == id)
        .unwrap_or_else(|| panic!("no query {id} in {run:#}"))
}

/// Asserts that stderr is exactly one line starting with `mem_profile: error:`.
pub fn assert_one_line_error(output: &Output) -> String {
    let err = stderr(output);
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with("mem_profile: error: "), "{err:?}");
    err
}

pub const MIB: u64 = 1024 * 1024;

/// Pids of live `mem_profile __child` processes whose arguments contain `tag`.
pub fn processes_with(tag: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).into_owned();
        let args: Vec<&str> = cmdline.split('\0').collect();
        if args.get(1) == Some(&"__child") && cmdline.contains(tag) && !is_zombie(pid) {
            found.push(pid);
        }
    }
    found
}

pub fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true)
}

pub fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
