//! `mem_profile run` against children that crash, hang, fork, escape and
//! write garbage, and users that point it at the wrong files. Each test
//! asserts the row, the exit code, and that nothing else was touched.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::{FileTypeExt, PermissionsExt, symlink};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{
    MIB, assert_one_line_error, child_template, exe, mem_profile, processes_with, query, run_json,
    stderr, wait_for,
};

/// The names in a directory.
fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// What a finished run leaves in its out directory, and nothing else:
/// its files and one timeline per query of `run` (its `run.json`).
fn run_files(run: &serde_json::Value) -> BTreeSet<String> {
    let timelines = run["queries"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, q)| memledger_harness::output::timeline_name(i, q["id"].as_str().unwrap()));
    ["run.json", "summary.md", ".mem_profile.lock"]
        .into_iter()
        .map(String::from)
        .chain(timelines)
        .collect()
}

/// `mem_profile run --cmd <child> --queries QUERIES EXTRA…` in `dir`.
fn run_children(dir: &Path, queries: &str, extra: &[&str]) -> std::process::Output {
    let template = child_template();
    let mut args = vec!["run", "--cmd", &template, "--queries", queries];
    args.extend_from_slice(extra);
    mem_profile(dir, &args)
}

/// Waits for a harness started in the background; a harness that has not
/// ended after two minutes is killed and the test fails (a hang, not a
/// slow machine: every query here ends within seconds).
fn wait_bounded(mut harness: Child) -> ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = harness.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = harness.kill();
            let _ = harness.wait();
            panic!("mem_profile hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn background(dir: &Path, args: &[&str]) -> Child {
    Command::new(exe())
        .args(args)
        .current_dir(dir)
        .env_remove("MEMLEDGER_MEMORY_LIMIT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn a_fifo_report_is_a_failed_row_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let template = child_template();
    let harness = background(
        dir.path(),
        &[
            "run",
            "--cmd",
            &template,
            "--queries",
            "report-fifo,touch=1M report",
        ],
    );
    assert_eq!(wait_bounded(harness).code(), Some(1));
    let out = dir.path().join("mem_profile_out");
    let run = run_json(&out.join("run.json"));
    let fifo = query(&run, "report-fifo");
    assert_eq!(fifo["status"], "failed");
    assert_eq!(fifo["exit_code"], 0);
    assert_eq!(
        fifo["error"],
        "the report is a FIFO, not a regular file; it was not read"
    );
    assert!(fifo["report"].is_null());
    assert_eq!(
        query(&run, "touch=1M report")["status"],
        "ok",
        "later queries still run"
    );
    assert_eq!(names(&out), run_files(&run));
}

#[test]
fn endless_and_oversize_reports_are_refused_and_the_cap_is_overridable() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_children(dir.path(), "report-link=/dev/zero,report-pad=17M", &[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let out = dir.path().join("mem_profile_out");
    let run = run_json(&out.join("run.json"));
    let endless = query(&run, "report-link=/dev/zero");
    assert_eq!(endless["status"], "failed");
    assert_eq!(
        endless["error"],
        "the report is a symbolic link, not a regular file; it was not read"
    );
    let big = query(&run, "report-pad=17M");
    assert_eq!(big["status"], "failed");
    assert_eq!(
        big["error"],
        format!(
            "the report holds {} bytes or more, over the cap of {} bytes (--max-report-size); \
             it was not read",
            17 * MIB,
            16 * MIB
        )
    );
    let run_size = std::fs::metadata(out.join("run.json")).unwrap().len();
    assert!(run_size < MIB, "nothing copied into run.json: {run_size}");
    assert!(
        std::fs::metadata("/dev/zero")
            .unwrap()
            .file_type()
            .is_char_device()
    );

    // Under a larger cap the same report is read (and is no report at all).
    let output = run_children(
        dir.path(),
        "report-pad=17M",
        &["--max-report-size", "32M", "--out", "big"],
    );
    assert_eq!(output.status.code(), Some(1));
    let run = run_json(&dir.path().join("big/run.json"));
    let why = query(&run, "report-pad=17M")["error"].as_str().unwrap();
    assert!(why.starts_with("malformed memledger report"), "{why}");
    assert_eq!(run["queries"].as_array().unwrap().len(), 1);

    // A tiny cap refuses an ordinary report.
    let output = run_children(
        dir.path(),
        "touch=1M report",
        &["--max-report-size", "1K", "--out", "tiny"],
    );
    assert_eq!(output.status.code(), Some(1));
    let run = run_json(&dir.path().join("tiny/run.json"));
    let row = query(&run, "touch=1M report");
    assert!(
        row["error"]
            .as_str()
            .unwrap()
            .contains("over the cap of 1024 bytes"),
        "{row}"
    );
    assert!(row["heap_peak_bytes"].is_null());
}

#[test]
fn a_planted_symlink_is_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mem_profile_out");
    std::fs::create_dir(&out).unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    for name in [".run.json.tmp", ".summary.md.tmp", ".saved.json.tmp"] {
        symlink(&victim, out.join(name)).unwrap();
    }
    let output = run_children(
        dir.path(),
        "touch=1M report",
        &["--save-baseline", "mem_profile_out/saved.json"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    let run = run_json(&out.join("run.json"));
    assert_eq!(query(&run, "touch=1M report")["status"], "ok");
    let mut expected = run_files(&run);
    expected.extend(
        [
            "saved.json",
            ".run.json.tmp",
            ".summary.md.tmp",
            ".saved.json.tmp",
        ]
        .map(String::from),
    );
    assert_eq!(names(&out), expected);
    assert!(
        std::fs::symlink_metadata(out.join(".run.json.tmp"))
            .unwrap()
            .file_type()
            .is_symlink()
    );

    // run.json itself a link: refused before anything runs.
    std::fs::remove_file(out.join("run.json")).unwrap();
    symlink(&victim, out.join("run.json")).unwrap();
    let output = run_children(dir.path(), "touch=1M report", &[]);
    assert_eq!(output.status.code(), Some(2));
    let err = assert_one_line_error(&output);
    assert!(
        err.contains("it is a symbolic link, not a regular file"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
}

#[test]
fn device_nodes_and_the_input_run_are_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let is_null_device = || {
        std::fs::symlink_metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device()
    };
    let output = run_children(
        dir.path(),
        "touch=1M report",
        &["--save-baseline", "/dev/null"],
    );
    assert_eq!(output.status.code(), Some(2));
    let err = assert_one_line_error(&output);
    assert!(err.contains("a character device"), "{err}");
    assert!(is_null_device());
    assert!(
        !dir.path().join("mem_profile_out").exists(),
        "refused before anything ran"
    );

    let output = run_children(dir.path(), "touch=1M report", &[]);
    assert_eq!(output.status.code(), Some(0));
    let run_path = dir.path().join("mem_profile_out/run.json");
    let before = std::fs::read_to_string(&run_path).unwrap();

    let bless = mem_profile(dir.path(), &["bless", "-o", "/dev/null"]);
    assert_eq!(bless.status.code(), Some(2));
    assert_one_line_error(&bless);
    assert!(is_null_device());

    let bless = mem_profile(
        dir.path(),
        &["bless", "mem_profile_out", "-o", "mem_profile_out/run.json"],
    );
    assert_eq!(bless.status.code(), Some(2));
    let err = assert_one_line_error(&bless);
    assert!(err.contains("over its own input"), "{err}");
    assert_eq!(std::fs::read_to_string(&run_path).unwrap(), before);

    let output = run_children(
        dir.path(),
        "touch=1M report",
        &["--save-baseline", "mem_profile_out/run.json"],
    );
    assert_eq!(output.status.code(), Some(2));
    let err = assert_one_line_error(&output);
    assert!(err.contains("this run's own run.json"), "{err}");
    assert_eq!(std::fs::read_to_string(&run_path).unwrap(), before);
    let output = run_children(
        dir.path(),
        "touch=1M report",
        &["--out", "new", "--save-baseline", "new/summary.md"],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        !dir.path().join("new").exists(),
        "refused before anything ran"
    );
}

#[test]
fn a_second_run_on_a_locked_out_dir_exits_2_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let tag = format!("stderr=lock-tag-{}", std::process::id());
    let template = child_template();
    let slow = format!("touch=1M report,sleep=600s {tag}");
    let first = background(dir.path(), &["run", "--cmd", &template, "--queries", &slow]);
    wait_for("the first run's slow query", || {
        !processes_with(&tag).is_empty()
    });
    let run_path = dir.path().join("mem_profile_out/run.json");
    let before = std::fs::read_to_string(&run_path).unwrap();

    let second = run_children(dir.path(), "exit=0", &[]);
    assert_eq!(second.status.code(), Some(2));
    let err = assert_one_line_error(&second);
    assert!(
        err.contains(&format!("is in use by another run (pid {}", first.id())),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&run_path).unwrap(),
        before,
        "the first run's results are untouched"
    );

    // SAFETY: kill has no memory effects; the pid is our child.
    unsafe { libc::kill(first.id() as i32, libc::SIGINT) };
    assert_eq!(wait_bounded(first).code(), Some(130));
    let run = run_json(&run_path);
    assert_eq!(query(&run, "touch=1M report")["heap_peak_bytes"], MIB);

    // Released with its run: the directory is usable again.
    let third = run_children(dir.path(), "exit=0", &[]);
    assert_eq!(third.status.code(), Some(0), "{}", stderr(&third));
}

#[test]
fn a_setsid_grandchild_dies_with_its_query_and_counts_in_its_peak() {
    let dir = tempfile::tempdir().unwrap();
    let tag = format!("stderr=setsid-tag-{}", std::process::id());
    let detached = format!("spawn=touch=40M+ready+sleep=600s+{tag} exit=0");
    let output = run_children(dir.path(), &format!("{detached},exit=0"), &[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        processes_with(&tag).is_empty(),
        "the grandchild was killed and reaped before mem_profile ended"
    );
    let run = run_json(&dir.path().join("mem_profile_out/run.json"));
    let row = query(&run, &detached);
    assert_eq!(row["status"], "failed");
    assert_eq!(row["exit_code"], 0);
    let why = row["error"].as_str().unwrap();
    assert!(
        why.starts_with("exited leaving 1 process running ("),
        "{why}"
    );
    let peak = row["peak_rss_bytes"].as_u64().unwrap();
    assert!(peak >= 40 * MIB, "the grandchild's 40 MiB count: {peak}");
    assert_eq!(query(&run, "exit=0")["status"], "ok");
    assert_eq!(names(&dir.path().join("mem_profile_out")), run_files(&run));
}

#[test]
fn a_query_in_the_harness_group_still_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let tag = format!("stderr=group-tag-{}", std::process::id());
    let escapee = format!("escape-group sleep=600s {tag}");
    let nested = format!("spawn=escape-group+ready+sleep=600s+{tag} sleep=600s");
    let template = child_template();
    let harness = background(
        dir.path(),
        &[
            "run",
            "--cmd",
            &template,
            "--queries",
            &format!("{escapee},{nested}"),
            "--timeout",
            "1s",
        ],
    );
    assert_eq!(wait_bounded(harness).code(), Some(1));
    assert!(
        processes_with(&tag).is_empty(),
        "nothing outlives its query"
    );
    let run = run_json(&dir.path().join("mem_profile_out/run.json"));
    for id in [&escapee, &nested] {
        let row = query(&run, id);
        assert_eq!(row["status"], "timeout", "{row}");
        assert_eq!(row["signal"], libc::SIGKILL);
    }
}

#[test]
fn nothing_outlives_a_killed_launcher_or_a_killed_harness() {
    let dir = tempfile::tempdir().unwrap();
    let tag = format!("stderr=orphan-tag-{}", std::process::id());
    let killer = format!("spawn=ready+sleep=600s+{tag} signal-launcher=kill sleep=600s");
    // A kill request that does not come from mem_profile is ignored.
    let pretender = "signal-launcher=usr1 sleep=200ms exit=0";
    let output = run_children(dir.path(), &format!("{killer},{pretender}"), &[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        processes_with(&tag).is_empty(),
        "the orphan of a killed launcher was killed and reaped by mem_profile"
    );
    let run = run_json(&dir.path().join("mem_profile_out/run.json"));
    let row = query(&run, &killer);
    assert_eq!(row["status"], "failed");
    assert!(
        row["error"]
            .as_str()
            .unwrap()
            .starts_with("the launcher ended without a result"),
        "{row}"
    );
    assert_eq!(query(&run, pretender)["status"], "ok");

    // The harness itself killed: its launcher ends the query's tree.
    let tag = format!("stderr=harness-tag-{}", std::process::id());
    let template = child_template();
    let detached = format!("spawn=ready+sleep=600s+{tag} sleep=600s");
    let mut harness = background(
        dir.path(),
        &[
            "run",
            "--cmd",
            &template,
            "--queries",
            &detached,
            "--out",
            "killed",
        ],
    );
    // The query's arguments hold the tag too: two processes once the
    // grandchild is ready.
    wait_for("the query and its grandchild", || {
        processes_with(&tag).len() == 2
    });
    harness.kill().unwrap();
    harness.wait().unwrap();
    wait_for("the tree of a killed harness to end", || {
        processes_with(&tag).is_empty()
    });
}

#[test]
fn a_closed_stderr_loses_progress_only() {
    let dir = tempfile::tempdir().unwrap();
    let template = child_template();
    let mut harness = Command::new(exe())
        .args([
            "run",
            "--cmd",
            &template,
            "--queries",
            "exit=0,touch=1M report,stderr=hello",
        ])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Nobody reads the harness's stderr: every write to it fails with EPIPE.
    drop(harness.stderr.take());
    let status = harness.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let run = run_json(&dir.path().join("mem_profile_out/run.json"));
    let ids: Vec<&str> = run["queries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["exit=0", "touch=1M report", "stderr=hello"]);
    assert!(
        run["queries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|q| q["status"] == "ok")
    );
    assert_eq!(names(&dir.path().join("mem_profile_out")), run_files(&run));
}

#[test]
fn duplicate_ids_are_refused_in_lists_and_in_runs() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_children(dir.path(), "q7,7", &[]);
    assert_eq!(output.status.code(), Some(2));
    let err = assert_one_line_error(&output);
    assert_eq!(
        err,
        "mem_profile: error: `q7` and `7` are both the query `q7`; list each query once\n"
    );
    assert!(!dir.path().join("mem_profile_out").exists());

    let output = run_children(dir.path(), "exit=0,exit=1", &[]);
    assert_eq!(output.status.code(), Some(1));
    let text = std::fs::read_to_string(dir.path().join("mem_profile_out/run.json")).unwrap();
    let edited = text.replace("\"id\": \"exit=1\"", "\"id\": \"exit=0\"");
    assert_ne!(edited, text);
    std::fs::write(dir.path().join("edited.json"), &edited).unwrap();
    for args in [
        &["compare", "mem_profile_out", "edited.json"][..],
        &["compare", "edited.json", "mem_profile_out"],
        &["show", "edited.json"],
        &["bless", "edited.json", "-o", "base.json"],
    ] {
        let output = mem_profile(dir.path(), args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let err = assert_one_line_error(&output);
        assert!(
            err.contains("the query id `exit=0` appears more than once"),
            "{err}"
        );
    }
    assert!(!dir.path().join("base.json").exists());
}

#[test]
fn interrupted_repeats_mark_the_query_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("count");
    let tag = format!("stderr=repeat-tag-{}", std::process::id());
    let id = format!("hang-from=3:{} {tag}", counter.display());
    let template = child_template();
    let harness = background(
        dir.path(),
        &["run", "--cmd", &template, "--queries", &id, "--repeat", "5"],
    );
    wait_for("the third repeat to hang", || {
        std::fs::read_to_string(&counter).is_ok_and(|c| c.trim() == "3")
            && !processes_with(&tag).is_empty()
    });
    // SAFETY: kill has no memory effects; the pid is our child.
    unsafe { libc::kill(harness.id() as i32, libc::SIGINT) };
    assert_eq!(wait_bounded(harness).code(), Some(130));
    assert!(processes_with(&tag).is_empty());

    let run = run_json(&dir.path().join("mem_profile_out/run.json"));
    assert_eq!(run["interrupted"], true);
    let row = query(&run, &id);
    assert_eq!(row["status"], "interrupted");
    assert_eq!(row["error"], "the run was interrupted after 2 of 5 repeats");
    let statuses: Vec<&str> = row["repeats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["ok", "ok", "interrupted"]);
    assert_eq!(names(&dir.path().join("mem_profile_out")), run_files(&run));

    let bless = mem_profile(dir.path(), &["bless", "-o", "base.json"]);
    assert_eq!(bless.status.code(), Some(2));
    let err = assert_one_line_error(&bless);
    assert!(err.contains("--allow-interrupted"), "{err}");
    assert!(!dir.path().join("base.json").exists());
    let bless = mem_profile(
        dir.path(),
        &["bless", "-o", "base.json", "--allow-interrupted"],
    );
    assert_eq!(bless.status.code(), Some(0), "{}", stderr(&bless));
    assert!(
        std::fs::read_to_string(dir.path().join("base.json"))
            .unwrap()
            .contains("\"status\": \"interrupted\"")
    );
}

#[test]
fn a_query_that_never_ran_has_no_figures() {
    let dir = tempfile::tempdir().unwrap();
    // Executable, but its interpreter does not exist: `execv` fails.
    let script = dir.path().join("orphan-script");
    std::fs::write(&script, "#!/nonexistent/interpreter\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let output = mem_profile(dir.path(), &["run", "--cmd", script.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let run = run_json(&dir.path().join("mem_profile_out/run.json"));
    let row = query(&run, "cmd");
    assert_eq!(row["status"], "failed");
    assert_eq!(row["exit_code"], 127);
    assert!(row["peak_rss_bytes"].is_null(), "{row}");
    assert_eq!(row["timeline"], serde_json::json!([]));
}

#[test]
fn bad_values_get_one_line_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let template = child_template();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let file = file.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--memory-limit", "-5M"], "`-5M` is negative"),
        (&["--memory-limit", "18446744073709551616"], "too large"),
        (&["--timeout", "0"], "would kill every query at once"),
        (&["--timeout", "10000000000000000000s"], "out of range"),
        (&["--out", file], "is a regular file, not a directory"),
        (&["--max-report-size", "-1"], "negative"),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["run", "--cmd", &template, "--queries", "exit=0"];
        args.extend_from_slice(extra);
        let output = mem_profile(dir.path(), &args);
        assert_eq!(output.status.code(), Some(2), "{extra:?}");
        let err = assert_one_line_error(&output);
        assert!(err.contains(expected), "{extra:?}: {err}");
    }
    for (args, expected) in [
        (&["run", "--scale", "-1"][..], "negative"),
        (&["run", "--scale", "0"], "must be above 0"),
        (&["run", "--scale", "NaN"], "not a number"),
        (&["run", "--scale", "inf"], "not a number"),
        (&["run", "--cmd", "/tmp"], "is a directory, not a program"),
        (
            &["run", "--cmd", "sh -c true", "--queries", "1,2"],
            "no {query}",
        ),
        (&["compare", "a", "b", "--threshold=-5%"], "negative"),
    ] {
        let output = mem_profile(dir.path(), args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let err = assert_one_line_error(&output);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    assert_eq!(names(dir.path()), BTreeSet::from(["a-file".to_string()]));

    // An exact limit reaches the child exactly.
    let output = run_children(
        dir.path(),
        "report",
        &["--memory-limit", "9007199254740993"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let run = run_json(&dir.path().join("mem_profile_out/run.json"));
    assert_eq!(
        run["context"]["memory_limit_bytes"],
        9_007_199_254_740_993u64
    );
    assert_eq!(
        query(&run, "report")["report"]["memory_limit_bytes"],
        9_007_199_254_740_993u64
    );

    // The longest timeout there is: stored exactly, never a panic.
    let output = run_children(
        dir.path(),
        "exit=0",
        &["--timeout", "18446744073709551615ms", "--out", "long"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let run = run_json(&dir.path().join("long/run.json"));
    assert_eq!(run["context"]["timeout_ms"], u64::MAX);
    assert_eq!(query(&run, "exit=0")["status"], "ok");
}
