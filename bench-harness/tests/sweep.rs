//! `mem_profile sweep` and the comparison of sweeps, through the real
//! binary, on scripted children whose pass/fail curve over the limit is
//! known exactly, and on the built-in suite's non-monotonic `merge`.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{
    MIB, assert_one_line_error, child_template, exe, mem_profile, processes_with, stderr, stdout,
    wait_for,
};

const KIB: u64 = 1024;

/// Passes from 2 MiB up, except in [5, 6) MiB; reserves 8 MiB unlimited.
const CURVE: &str = "touch=16M fail-below=2M fail-between=5M:6M report";

fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).expect("the file exists");
    serde_json::from_str(&text).expect("it is JSON")
}

fn sweep_query<'a>(sweep: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    sweep["queries"]
        .as_array()
        .expect("queries")
        .iter()
        .find(|q| q["id"] == id)
        .unwrap_or_else(|| panic!("no query {id} in {sweep:#}"))
}

fn limits(values: &serde_json::Value, key: &str) -> Vec<u64> {
    values
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v[key].as_u64().expect("a limit"))
        .collect()
}

/// `mem_profile sweep --cmd '<child> {query}' --queries QUERIES ARGS…` in `dir`.
fn sweep(dir: &Path, queries: &str, args: &[&str]) -> std::process::Output {
    let template = child_template();
    let mut all = vec!["sweep", "--cmd", &template, "--queries", queries];
    all.extend_from_slice(args);
    mem_profile(dir, &all)
}

#[test]
fn a_scripted_curve_yields_exactly_its_minimum_and_its_failing_limits() {
    let dir = tempfile::tempdir().unwrap();
    let output = sweep(dir.path(), CURVE, &["--resolution", "256K"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let out = dir.path().join("mem_profile_sweep");
    let sweep = read_json(&out.join("sweep.json"));
    assert_eq!(sweep["schema"], "memledger.sweep/1");
    assert_eq!(sweep["context"]["grid"], 8);
    assert_eq!(sweep["context"]["resolution"], "256KiB");
    assert!(sweep.get("interrupted").is_none(), "a complete sweep");

    let q = sweep_query(&sweep, CURVE);
    // The documented schema, field for field (README, `memledger.sweep/1`).
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let sorted = |names: &[&str]| {
        let mut k: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        k.sort();
        k
    };
    assert_eq!(keys(&sweep), sorted(&["schema", "context", "queries"]));
    assert_eq!(
        keys(&sweep["context"]),
        sorted(&[
            "tool",
            "suite",
            "command",
            "git_revision",
            "machine",
            "date",
            "resolution",
            "grid",
            "max_limit_bytes",
            "jobs",
            "timeout_ms",
            "sample_ms",
            "wall_ms"
        ])
    );
    assert_eq!(
        keys(q),
        sorted(&[
            "id",
            "status",
            "unlimited",
            "top_bytes",
            "top_source",
            "resolution_bytes",
            "minimum_limit_bytes",
            "failing_below_minimum_bytes",
            "non_monotonic",
            "worst_rss_over_limit",
            "runs",
            "wall_ms",
            "plot",
            "error",
            "points"
        ])
    );
    let point_keys = sorted(&[
        "limit_bytes",
        "phase",
        "status",
        "exit_code",
        "signal",
        "wall_ms",
        "peak_rss_bytes",
        "heap_peak_bytes",
        "reserved_peak_bytes",
        "spills",
        "refusals",
        "rss_over_limit",
        "error",
    ]);
    assert_eq!(keys(&q["unlimited"]), point_keys);
    assert_eq!(keys(&q["points"][0]), point_keys);
    assert_eq!(
        keys(&q["non_monotonic"][0]),
        sorted(&["limit_bytes", "status", "error"])
    );
    assert_eq!(q["unlimited"]["phase"], "unlimited");
    assert_eq!(q["unlimited"]["rss_over_limit"], serde_json::Value::Null);
    assert_eq!(q["status"], "done");
    assert_eq!(q["unlimited"]["status"], "ok");
    assert_eq!(q["unlimited"]["limit_bytes"], serde_json::Value::Null);
    assert_eq!(q["unlimited"]["reserved_peak_bytes"], 8 * MIB);
    assert_eq!(q["top_bytes"], 8 * MIB);
    assert_eq!(q["top_source"], "reserved_peak");
    assert_eq!(q["resolution_bytes"], 256 * KIB);
    assert_eq!(
        q["minimum_limit_bytes"],
        2 * MIB,
        "exactly the curve's minimum"
    );
    assert_eq!(q["failing_below_minimum_bytes"], 2 * MIB - 256 * KIB);
    assert_eq!(limits(&q["non_monotonic"], "limit_bytes"), [5 * MIB]);
    let failing = &q["non_monotonic"][0];
    assert_eq!(failing["status"], "failed");
    assert_eq!(
        failing["error"],
        "Resources exhausted: Failed to allocate additional bytes for __child with a pool \
         limit of 5242880 bytes (fail-between=5M:6M)",
        "the pool's text, verbatim, naming the limit the child was given"
    );

    // 8 grid limits (1..8 MiB), then (1, 2] MiB halved at 256 KiB: 1.5, 1.75.
    let points = &q["points"];
    assert_eq!(
        limits(points, "limit_bytes"),
        [
            MIB,
            3 * MIB / 2,
            7 * MIB / 4,
            2 * MIB,
            3 * MIB,
            4 * MIB,
            5 * MIB,
            6 * MIB,
            7 * MIB,
            8 * MIB
        ],
        "ascending, each limit once"
    );
    assert_eq!(q["runs"], 11, "the unlimited run and 10 limits");
    let statuses: Vec<&str> = points
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "failed", "failed", "failed", "ok", "ok", "ok", "failed", "ok", "ok", "ok"
        ]
    );
    let phases: Vec<&str> = points
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phase"].as_str().unwrap())
        .collect();
    assert_eq!(phases[1..3], ["bisect", "bisect"]);
    for p in points.as_array().unwrap() {
        let limit = p["limit_bytes"].as_u64().unwrap();
        let rss = p["peak_rss_bytes"].as_u64().unwrap();
        assert!(rss >= 16 * MIB, "the child touched 16 MiB: {rss}");
        let ratio = p["rss_over_limit"].as_f64().unwrap();
        assert!((ratio - rss as f64 / limit as f64).abs() < 1e-9, "{p}");
        assert_eq!(p["heap_peak_bytes"], 16 * MIB);
        assert_eq!(p["refusals"], 0);
    }
    let worst = q["worst_rss_over_limit"].as_f64().unwrap();
    let at_minimum = points[3]["rss_over_limit"].as_f64().unwrap();
    assert_eq!(
        worst, at_minimum,
        "the smallest passing limit overshoots most"
    );
    assert_eq!(q["wall_ms"].as_u64().unwrap(), {
        let mut sum = q["unlimited"]["wall_ms"].as_u64().unwrap();
        for p in points.as_array().unwrap() {
            sum += p["wall_ms"].as_u64().unwrap();
        }
        sum
    });

    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(
        summary.contains("| done | 8.0 MiB | 2.0 MiB | 5.0 MiB |"),
        "{summary}"
    );
    assert!(
        summary.contains("- 5.0 MiB: failed: Resources exhausted"),
        "{summary}"
    );
    assert!(stdout(&output).contains("2.0 MiB"), "{}", stdout(&output));

    // The plot: a standalone SVG with the three series, a mark per limit,
    // failed limits crossed.
    let plot = q["plot"].as_str().unwrap();
    assert!(plot.starts_with("01-") && plot.ends_with(".svg"), "{plot}");
    assert!(summary.contains(&format!("]({plot})")), "{summary}");
    let text = std::fs::read_to_string(out.join(plot)).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("valid XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.w3.org/2000/svg")
    );
    for id in ["peak-rss", "heap-peak", "reserved-peak"] {
        let series = root
            .descendants()
            .find(|n| n.attribute("id") == Some(id))
            .unwrap_or_else(|| panic!("no series {id}"));
        let polyline = series
            .children()
            .find(|n| n.has_tag_name("polyline"))
            .expect("a line through the points");
        assert_eq!(
            polyline.attribute("points").unwrap().split(' ').count(),
            10,
            "{id}"
        );
        let class_count = |class: &str| {
            series
                .children()
                .filter(|n| n.attribute("class") == Some(class))
                .count()
        };
        assert_eq!(class_count("passed"), 6, "{id}");
        assert_eq!(class_count("failed"), 4, "{id}");
    }
    assert!(
        root.descendants()
            .any(|n| n.attribute("id") == Some("minimum"))
    );

    // `show` reads a sweep back.
    let shown = mem_profile(dir.path(), &["show", "mem_profile_sweep"]);
    assert_eq!(shown.status.code(), Some(0), "{}", stderr(&shown));
    let line = stdout(&shown)
        .lines()
        .find(|l| l.starts_with("touch=16M"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    assert!(line.contains("done 8.0 MiB 2.0 MiB 5.0 MiB"), "{line}");
    let json = mem_profile(
        dir.path(),
        &["show", "mem_profile_sweep/sweep.json", "--format", "json"],
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stdout(&json)).unwrap(),
        sweep
    );
}

#[test]
fn parallel_jobs_find_the_same_minimums() {
    let dir = tempfile::tempdir().unwrap();
    let queries = "touch=8M fail-below=1M report,touch=8M fail-below=3M report,touch=8M report";
    let output = sweep(
        dir.path(),
        queries,
        &["--resolution", "512K", "--jobs", "3", "--grid", "4"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let sweep = read_json(&dir.path().join("mem_profile_sweep/sweep.json"));
    assert_eq!(sweep["context"]["jobs"], 3);
    let ids: Vec<&str> = sweep["queries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        queries.split(',').collect::<Vec<_>>(),
        "in suite order"
    );
    let minimum = |id: &str| sweep_query(&sweep, id)["minimum_limit_bytes"].as_u64();
    assert_eq!(minimum("touch=8M fail-below=1M report"), Some(MIB));
    assert_eq!(minimum("touch=8M fail-below=3M report"), Some(3 * MIB));
    assert_eq!(
        minimum("touch=8M report"),
        Some(512 * KIB),
        "passes at every limit: the smallest one, one step"
    );
    assert_eq!(
        sweep_query(&sweep, "touch=8M report")["failing_below_minimum_bytes"],
        serde_json::Value::Null
    );
    for q in sweep["queries"].as_array().unwrap() {
        let plot = q["plot"].as_str().unwrap();
        assert!(dir.path().join("mem_profile_sweep").join(plot).is_file());
    }
}

#[test]
fn a_query_that_fails_without_a_limit_is_not_searched() {
    let dir = tempfile::tempdir().unwrap();
    let output = sweep(
        dir.path(),
        "report-error=broken exit=1,touch=1M report",
        &["--resolution", "1M"],
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let sweep = read_json(&dir.path().join("mem_profile_sweep/sweep.json"));
    let failed = sweep_query(&sweep, "report-error=broken exit=1");
    assert_eq!(failed["status"], "failed_unlimited");
    assert_eq!(failed["runs"], 1);
    assert_eq!(failed["points"].as_array().unwrap().len(), 0);
    assert_eq!(failed["minimum_limit_bytes"], serde_json::Value::Null);
    assert_eq!(failed["error"], "fails without a limit: broken");
    assert_eq!(
        sweep_query(&sweep, "touch=1M report")["status"],
        "done",
        "the other query is still swept"
    );

    let allowed = mem_profile(
        dir.path(),
        &[
            "sweep",
            "--cmd",
            &child_template(),
            "--queries",
            "exit=1",
            "--allow-failures",
            "--out",
            "allowed",
        ],
    );
    assert_eq!(allowed.status.code(), Some(0), "{}", stderr(&allowed));
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let template = child_template();
    for args in [
        &["sweep", "--resolution", "0"][..],
        &["sweep", "--resolution", "0%"],
        &["sweep", "--resolution", "-1M"],
        &["sweep", "--grid", "0"],
        &["sweep", "--grid", "65"],
        &["sweep", "--jobs", "0"],
        &["sweep", "--max-limit", "0"],
        &["sweep", "--queries", "1..3"],
        &[
            "sweep",
            "--cmd",
            &template,
            "--queries",
            "report",
            "-q",
            "nope",
        ],
        &[
            "sweep",
            "--cmd",
            "no-such-program-here {query}",
            "--queries",
            "1",
        ],
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

    // An out directory locked by another sweep.
    let out = dir.path().join("locked");
    std::fs::create_dir(&out).unwrap();
    let _held = memledger_harness::files::DirLock::acquire(&out, "pid 1, a test").unwrap();
    let output = sweep(dir.path(), "report", &["--out", out.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let err = assert_one_line_error(&output);
    assert!(err.contains("pid 1, a test"), "{err}");

    // Sweeps that cannot be compared.
    let run = dir.path().join("run.json");
    std::fs::write(
        &run,
        r#"{"schema":"memledger.run/1.1","context":{},"queries":[]}"#,
    )
    .unwrap();
    let newer = dir.path().join("newer.json");
    std::fs::write(&newer, r#"{"schema":"memledger.sweep/2","queries":[]}"#).unwrap();
    let broken = dir.path().join("broken.json");
    std::fs::write(
        &broken,
        r#"{"schema":"memledger.sweep/1","queries":[{"id":1}]}"#,
    )
    .unwrap();
    let good = dir.path().join("good.json");
    std::fs::write(
        &good,
        r#"{"schema":"memledger.sweep/1","context":{},"queries":[]}"#,
    )
    .unwrap();
    for (base, cur, says) in [
        (&good, &run, "not a memledger sweep"),
        (&run, &good, "not a memledger sweep"),
        (
            &good,
            &newer,
            "unsupported sweep schema `memledger.sweep/2`",
        ),
        (&broken, &good, "malformed memledger sweep"),
    ] {
        let output = mem_profile(
            dir.path(),
            &["compare", base.to_str().unwrap(), cur.to_str().unwrap()],
        );
        assert_eq!(output.status.code(), Some(2), "{base:?} {cur:?}");
        let err = assert_one_line_error(&output);
        assert!(err.contains(says), "{err}");
    }
    let output = mem_profile(
        dir.path(),
        &[
            "compare",
            good.to_str().unwrap(),
            good.to_str().unwrap(),
            "--metric-floor",
            "peak_rss=1M",
        ],
    );
    assert_eq!(output.status.code(), Some(2));
    assert_one_line_error(&output);
}

#[test]
fn a_minimum_that_grew_fails_the_comparison() {
    let dir = tempfile::tempdir().unwrap();
    let sweep_with = |out: &str, below: &str| {
        let template = format!(
            "{} __child touch=8M fail-below={below} report {{query}}",
            exe().display()
        );
        let output = mem_profile(
            dir.path(),
            &[
                "sweep",
                "--cmd",
                &template,
                "--queries",
                "sleep=0ms",
                "--resolution",
                "256K",
                "--out",
                out,
            ],
        );
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    };
    sweep_with("base", "2M");
    sweep_with("same", "2M");
    sweep_with("grown", "3M");
    let compare = |base: &str, cur: &str| {
        mem_profile(
            dir.path(),
            &[
                "compare",
                base,
                cur,
                "--threshold",
                "10%",
                "--floor",
                "512K",
            ],
        )
    };
    let output = compare("base", "same");
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert!(
        stdout(&output).contains("| sleep=0ms | 2.0 MiB | 2.0 MiB |"),
        "{}",
        stdout(&output)
    );
    let output = compare("base", "grown");
    assert_eq!(output.status.code(), Some(3), "{}", stdout(&output));
    let text = stdout(&output);
    assert!(text.contains("**regression**"), "{text}");
    assert!(text.contains("+1.0 MiB (+50.0%)"), "{text}");
    // Shrinking is no regression; a file path works as well as a directory.
    let output = compare("grown/sweep.json", "base");
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert!(stdout(&output).contains("improvement"));
    let output = mem_profile(
        dir.path(),
        &["compare", "base", "grown", "--format", "json"],
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "the default floor is 1 MiB: a growth of exactly 1 MiB is not past it"
    );
    let output = mem_profile(
        dir.path(),
        &[
            "compare", "base", "grown", "--format", "json", "--floor", "1023K",
        ],
    );
    assert_eq!(output.status.code(), Some(3));
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(json["schema"], "memledger.sweep-compare/1");
    assert_eq!(json["queries"][0]["outcome"], "regression");
    assert_eq!(json["queries"][0]["change_bytes"], MIB);
}

#[test]
fn an_interrupted_sweep_keeps_every_finished_run() {
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("count");
    let tag = format!("hang-from=5:{}", counter.display());
    // Runs 1..4 finish (the unlimited one, then three grid limits); the
    // fifth hangs until the sweep is interrupted.
    let query = format!("{tag} touch=4M fail-below=512K report");
    let mut child = Command::new(exe())
        .args([
            "sweep",
            "--cmd",
            &child_template(),
            "--queries",
            &query,
            "--resolution",
            "256K",
        ])
        .current_dir(dir.path())
        .env_remove("MEMLEDGER_MEMORY_LIMIT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the fifth run to start", || {
        std::fs::read_to_string(&counter).is_ok_and(|c| c.trim() == "5")
    });
    // SAFETY: kill has no memory effects; the pid is our child's.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(
        processes_with(&tag).is_empty(),
        "the hanging run was killed"
    );

    let sweep = read_json(&dir.path().join("mem_profile_sweep/sweep.json"));
    assert_eq!(sweep["interrupted"], true);
    let q = sweep_query(&sweep, &query);
    assert_eq!(q["status"], "interrupted");
    assert_eq!(q["runs"], 4, "every finished run, nothing of the cut one");
    assert_eq!(
        limits(&q["points"], "limit_bytes"),
        [256 * KIB, 512 * KIB, 768 * KIB],
        "grid limits of a 2 MiB top (4M touched, half reserved)"
    );
    assert_eq!(q["points"][0]["status"], "failed");
    assert_eq!(q["points"][1]["status"], "ok");
    assert_eq!(q["minimum_limit_bytes"], 512 * KIB, "an upper bound so far");
    // An interrupted sweep is no baseline.
    let output = mem_profile(
        dir.path(),
        &["compare", "mem_profile_sweep", "mem_profile_sweep"],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(assert_one_line_error(&output).contains("the sweep was interrupted"));
}

#[test]
fn the_builtin_merge_fails_above_limits_where_it_passes() {
    let dir = tempfile::tempdir().unwrap();
    let output = mem_profile(
        dir.path(),
        &[
            "sweep",
            "-q",
            "merge",
            "--scale",
            "0.02",
            "--resolution",
            "2%",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let sweep = read_json(&dir.path().join("mem_profile_sweep/sweep.json"));
    assert_eq!(sweep["context"]["suite"], "builtin");
    let q = sweep_query(&sweep, "merge");
    assert_eq!(q["status"], "done");
    // Unlimited, it reserves its input (T) and then the sorted copy (T).
    let top = q["top_bytes"].as_u64().unwrap();
    let input = top / 2;
    let minimum = q["minimum_limit_bytes"].as_u64().unwrap();
    assert!(
        minimum < input,
        "spilling lets it pass below its input: {minimum} vs {input}"
    );
    let failing = limits(&q["non_monotonic"], "limit_bytes");
    assert!(!failing.is_empty(), "{q:#}");
    for p in q["points"].as_array().unwrap() {
        let limit = p["limit_bytes"].as_u64().unwrap();
        let passed = p["status"] == "ok";
        if (input..top).contains(&limit) {
            assert!(!passed, "the whole input fits, its copy does not: {p}");
            assert!(
                p["error"].as_str().unwrap().contains("MergeSorter[0]"),
                "{p}"
            );
        } else if limit >= minimum {
            assert!(passed, "{p}");
        }
    }
    assert_eq!(
        failing,
        limits(&q["points"], "limit_bytes")
            .into_iter()
            .filter(|l| (input..top).contains(l))
            .collect::<Vec<_>>()
    );
}

#[test]
fn the_top_comes_from_max_limit_or_else_from_the_peak_rss() {
    let dir = tempfile::tempdir().unwrap();
    // A program that writes no report: no reserved peak to search up to.
    let output = sweep(
        dir.path(),
        "touch=2M",
        &["--resolution", "1M", "--grid", "2", "--out", "rss"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let q = read_json(&dir.path().join("rss/sweep.json"))["queries"][0].clone();
    assert_eq!(q["top_source"], "peak_rss");
    assert_eq!(q["top_bytes"], q["unlimited"]["peak_rss_bytes"]);
    assert_eq!(
        q["unlimited"]["reserved_peak_bytes"],
        serde_json::Value::Null
    );
    assert_eq!(
        q["points"][0]["spills"],
        serde_json::Value::Null,
        "no report: not measured"
    );

    let output = sweep(
        dir.path(),
        "touch=1M fail-below=3M report",
        &[
            "--resolution",
            "1M",
            "--grid",
            "4",
            "--max-limit",
            "8M",
            "--out",
            "max",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let q = read_json(&dir.path().join("max/sweep.json"))["queries"][0].clone();
    assert_eq!(q["top_source"], "max_limit");
    assert_eq!(q["top_bytes"], 8 * MIB);
    assert_eq!(q["minimum_limit_bytes"], 3 * MIB);
    assert_eq!(
        limits(&q["points"], "limit_bytes"),
        [2 * MIB, 3 * MIB, 4 * MIB, 6 * MIB, 8 * MIB],
        "grid 2, 4, 6, 8 MiB, then 3 MiB"
    );

    // A --max-limit below the minimum: the search goes above it, twice.
    let output = sweep(
        dir.path(),
        "touch=1M fail-below=30M report",
        &[
            "--resolution",
            "1M",
            "--grid",
            "1",
            "--max-limit",
            "4M",
            "--out",
            "low",
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let q = read_json(&dir.path().join("low/sweep.json"))["queries"][0].clone();
    assert_eq!(q["status"], "no_passing_limit");
    assert_eq!(
        limits(&q["points"], "limit_bytes"),
        [4 * MIB, 8 * MIB, 16 * MIB]
    );
    assert_eq!(q["error"], "fails at every limit tried, up to 16.0 MiB");
}
