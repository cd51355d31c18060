//! `mem_profile run --stacks` on the built-in suite: the sampled stacks of
//! `sort`'s untracked bytes, as files, in run.json, summary.md and compare.

mod common;

use common::{mem_profile, query, run_json, stderr, stdout};

#[test]
fn sort_names_the_code_of_its_untracked_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let run = |out: &str, stacks: &str| {
        mem_profile(
            dir.path(),
            &["run", "--scale", "0.05", "-q", "sort", stacks, "--out", out],
        )
    };
    let out = run("a", "--stacks=128KiB");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json = run_json(&dir.path().join("a/run.json"));
    assert_eq!(json["context"]["stack_sample_bytes"], 131072);
    let sort = query(&json, "sort");
    let stacks = &sort["report"]["stacks"];
    assert_eq!(stacks["symbolized"], true, "the harness symbolized them");
    assert_eq!(stacks["sample_bytes"], 131072);
    assert!(stacks["samples"].as_u64().unwrap() > 20, "{stacks:#}");
    // The sorter holds more than it reserves; its top stacks are the
    // suite's own sort code.
    let over = stacks["untracked_by_scope"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["scope"] == "ExternalSorter[0]")
        .expect("the sorter is over its reservation");
    let top = over["top"].as_array().unwrap();
    assert!(!top.is_empty());
    let files: Vec<String> = top
        .iter()
        .flat_map(|i| {
            stacks["stacks"][i.as_u64().unwrap() as usize]["frames"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|f| f["file"].as_str().map(str::to_string))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        files.iter().any(|f| f.ends_with("memledger-suite/sort.rs")),
        "{files:?}"
    );
    // Files, linked from run.json.
    let folded_path = sort["stacks"]["folded"].as_str().unwrap();
    let folded = std::fs::read_to_string(dir.path().join("a").join(folded_path)).unwrap();
    let total: u64 = folded
        .lines()
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
        .sum();
    assert_eq!(
        total,
        stacks["stacks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["allocated_bytes"].as_u64().unwrap())
            .sum::<u64>()
    );
    // The allocator's own frames are dropped from the inner end of every
    // stack (memledger's code may still call the allocator, as callers do).
    let inner_frame = |l: &str| {
        l.rsplit_once(' ')
            .unwrap()
            .0
            .rsplit(';')
            .next()
            .unwrap()
            .to_string()
    };
    assert!(
        folded
            .lines()
            .all(|l| !inner_frame(l).starts_with("memledger_alloc::")
                && !inner_frame(l).contains("__rust_alloc")),
        "no allocator frames: {folded}"
    );
    let svg = std::fs::read_to_string(
        dir.path()
            .join("a")
            .join(sort["stacks"]["flamegraph"].as_str().unwrap()),
    )
    .unwrap();
    let xml = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..roxmltree::ParsingOptions::default()
    };
    let doc = roxmltree::Document::parse_with_options(&svg, xml).unwrap();
    assert!(
        doc.descendants()
            .any(|n| n.has_tag_name("title")
                && n.text().is_some_and(|t| t.contains("sorted_copy (")))
    );
    let summary = std::fs::read_to_string(dir.path().join("a/summary.md")).unwrap();
    assert!(
        summary.contains("## Where the untracked bytes come from"),
        "{summary}"
    );
    assert!(summary.contains("| ExternalSorter[0] |"), "{summary}");
    assert!(summary.contains("(sort.rs:"), "{summary}");

    // The HTML report shows the flamegraph.
    let out = mem_profile(dir.path(), &["report", "a", "-o", "a.html"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let html = std::fs::read_to_string(dir.path().join("a.html")).unwrap();
    assert!(
        html.contains("<iframe class=\"flamegraph\""),
        "the flamegraph is inlined"
    );

    // A run without --stacks has none; compare of two runs with stacks
    // lists what grew.
    let out = mem_profile(
        dir.path(),
        &["run", "--scale", "0.05", "-q", "sort", "--out", "b"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plain = run_json(&dir.path().join("b/run.json"));
    assert!(query(&plain, "sort")["report"].get("stacks").is_none());
    assert!(query(&plain, "sort").get("stacks").is_none());
    let out = mem_profile(
        dir.path(),
        &[
            "run", "--scale", "0.1", "-q", "sort", "--stacks", "--out", "c",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = mem_profile(dir.path(), &["compare", "a", "c", "--format", "markdown"]);
    let text = stdout(&out);
    assert!(text.contains("## Stacks that grew most"), "{text}");
    assert!(text.contains("| ExternalSorter[0] | +"), "{text}");
}

#[test]
fn a_bad_stack_size_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["--stacks=0", "--stacks=lots", "--stacks=-1"] {
        let out = mem_profile(dir.path(), &["run", "-q", "sort", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        assert_eq!(stderr(&out).lines().count(), 1, "{bad}: {}", stderr(&out));
    }
}
