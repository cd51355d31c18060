//! GitHub Actions: the job summary that `run` and `compare` append to, and
//! `compare --format github-comment`, through the real binary.

mod common;

use std::path::Path;

use common::{
    MIB, assert_one_line_error, child_template, mem_profile, mem_profile_env, stderr, stdout,
};

const SUMMARY_CAP: usize = 1024 * 1024;
const COMMENT_CAP: usize = 65_536;

/// A minimal run file: `(id, status, peak_rss_bytes, heap_peak_bytes)` per query.
fn write_run(path: &Path, queries: &[(String, &str, u64, u64)]) {
    let queries: Vec<serde_json::Value> = queries
        .iter()
        .map(|(id, status, rss, heap)| {
            serde_json::json!({
                "id": id, "status": status, "wall_ms": 100,
                "peak_rss_bytes": rss, "heap_peak_bytes": heap,
            })
        })
        .collect();
    let run = serde_json::json!({
        "schema": "memledger.run/1.2",
        "context": {"date": "2025-01-02T03:04:05Z"},
        "queries": queries,
    });
    std::fs::write(path, serde_json::to_string_pretty(&run).unwrap()).unwrap();
}

#[test]
fn run_and_compare_append_their_markdown_to_the_job_summary() {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("step_summary.md");
    std::fs::write(&summary, "# an earlier step\n").unwrap();
    let env = [("GITHUB_STEP_SUMMARY", summary.as_path())];
    let template = child_template();
    let run = ["run", "--cmd", &template, "--queries", "touch=2M report"];
    let out = mem_profile_env(dir.path(), &run, &env);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = std::fs::read_to_string(&summary).unwrap();
    let own = std::fs::read_to_string(dir.path().join("mem_profile_out/summary.md")).unwrap();
    // The job summary has the run's Markdown; the timelines' pictures,
    // files in the out directory, are linked from summary.md alone.
    let own = own
        .split_once("\n### Timelines\n")
        .map_or(own.as_str(), |(head, _)| head)
        .to_string();
    assert_eq!(
        text,
        format!("# an earlier step\n\n{own}"),
        "the run's summary.md, after what was there"
    );
    assert!(own.contains("| touch=2M report | ok |"), "{own}");

    let compare = ["compare", "mem_profile_out", "mem_profile_out"];
    let out = mem_profile_env(dir.path(), &compare, &env);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let after = std::fs::read_to_string(&summary).unwrap();
    let added = after
        .strip_prefix(&text)
        .expect("appended, nothing replaced");
    assert_eq!(added, format!("\n{}", stdout(&out)), "compare's Markdown");
    assert!(
        added.contains("**No regression**: 1 query compared."),
        "{added}"
    );
}

#[test]
fn the_job_summary_stays_under_github_limit_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("step_summary.md");
    let earlier = "x".repeat(SUMMARY_CAP - 1500) + "\n";
    std::fs::write(&summary, &earlier).unwrap();
    let queries: Vec<(String, &str, u64, u64)> = (0..200)
        .map(|i| (format!("query-{i:03}"), "ok", 100 * MIB, 50 * MIB))
        .collect();
    write_run(&dir.path().join("base.json"), &queries);
    let env = [("GITHUB_STEP_SUMMARY", summary.as_path())];
    let out = mem_profile_env(dir.path(), &["compare", "base.json", "base.json"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("| query-199 |"), "stdout is whole");
    let text = std::fs::read_to_string(&summary).unwrap();
    assert!(text.len() <= SUMMARY_CAP, "{}", text.len());
    assert!(
        text.len() > SUMMARY_CAP - 400,
        "filled, not skipped: {}",
        text.len()
    );
    assert!(text.starts_with(&earlier), "what was there is kept");
    assert!(text.contains("## mem_profile compare"));
    assert!(!text.contains("query-199"), "the tail was cut");
    assert!(
        text.trim_end()
            .ends_with("run `mem_profile compare` for every row._"),
        "{}",
        &text[text.len() - 300..]
    );

    // Already full: nothing appended, a warning, and the comparison's exit code.
    let out = mem_profile_env(dir.path(), &["compare", "base.json", "base.json"], &env);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(&summary).unwrap(), text);
    assert!(
        stderr(&out).contains("mem_profile: warning: cannot append to the job summary"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_unwritable_job_summary_is_a_warning_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("GITHUB_STEP_SUMMARY", dir.path())];
    let template = child_template();
    let out = mem_profile_env(
        dir.path(),
        &["run", "--cmd", &template, "--queries", "touch=1M report"],
        &env,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(
        warnings[0].starts_with("mem_profile: warning: cannot append to the job summary"),
        "{err}"
    );
    assert!(dir.path().join("mem_profile_out/run.json").is_file());
}

#[test]
fn the_comment_lists_regressions_then_improvements_then_folds_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let q =
        |id: &str, status: &'static str, rss: u64, heap: u64| (id.to_string(), status, rss, heap);
    write_run(
        &dir.path().join("base.json"),
        &[
            q("steady", "ok", 100 * MIB, 50 * MIB),
            q("better", "ok", 100 * MIB, 50 * MIB),
            q("worse", "ok", 100 * MIB, 50 * MIB),
        ],
    );
    write_run(
        &dir.path().join("cur.json"),
        &[
            q("steady", "ok", 100 * MIB, 50 * MIB),
            q("better", "ok", 60 * MIB, 50 * MIB),
            q("worse", "ok", 100 * MIB, 90 * MIB),
        ],
    );
    let out = mem_profile(
        dir.path(),
        &[
            "compare",
            "base.json",
            "cur.json",
            "--format",
            "github-comment",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "a regression: {}", stderr(&out));
    let body = stdout(&out);
    let at = |needle: &str| {
        body.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} in {body}"))
    };
    assert!(at("**1 regression**") < at("### Regressions (1)"));
    assert!(at("### Regressions (1)") < at("| worse | heap peak | 50.0 MiB | 90.0 MiB |"));
    assert!(at("| worse | heap peak |") < at("### Improvements (1)"));
    assert!(at("### Improvements (1)") < at("| better | peak RSS | 100.0 MiB | 60.0 MiB |"));
    assert!(at("| better | peak RSS |") < at("<details><summary>"));
    assert!(at("<details><summary>") < at("| steady | peak RSS |"));
    assert!(at("| steady | heap peak |") < at("</details>"));
    assert!(
        at("<details><summary>") < at("| worse | peak RSS |"),
        "unchanged: folded"
    );
    assert_eq!(
        body.matches("| worse | heap peak |").count(),
        1,
        "each row once"
    );
}

#[test]
fn the_comment_stays_under_64_kib_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<String> = (0..2000).map(|i| format!("query-{i:04}")).collect();
    let base: Vec<_> = ids
        .iter()
        .map(|id| (id.clone(), "ok", 100 * MIB, 50 * MIB))
        .collect();
    let cur: Vec<_> = ids
        .iter()
        .map(|id| (id.clone(), "ok", 150 * MIB, 50 * MIB))
        .collect();
    write_run(&dir.path().join("base.json"), &base);
    write_run(&dir.path().join("cur.json"), &cur);
    let out = mem_profile(
        dir.path(),
        &[
            "compare",
            "base.json",
            "cur.json",
            "--format",
            "github-comment",
        ],
    );
    assert_eq!(out.status.code(), Some(3));
    let body = stdout(&out);
    assert!(body.len() <= COMMENT_CAP, "{}", body.len());
    assert!(body.len() > COMMENT_CAP - 1024, "{}", body.len());
    assert!(body.starts_with("## mem_profile compare\n\n**2000 regressions**"));
    assert!(body.contains("| query-0000 | peak RSS |"));
    assert!(!body.contains("query-1999"));
    assert!(
        body.trim_end().ends_with("for every row._"),
        "{}",
        &body[body.len() - 200..]
    );
    let markdown = mem_profile(dir.path(), &["compare", "base.json", "cur.json"]);
    assert!(
        stdout(&markdown).contains("query-1999"),
        "Markdown is never cut"
    );
}

#[test]
fn an_unknown_format_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    write_run(
        &dir.path().join("a.json"),
        &[("q1".to_string(), "ok", MIB, MIB)],
    );
    let out = mem_profile(
        dir.path(),
        &["compare", "a.json", "a.json", "--format", "github"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert_one_line_error(&out);
}
