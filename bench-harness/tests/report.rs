//! The SVG timelines `mem_profile run` writes next to `summary.md`, and
//! `mem_profile report`, on real runs of the built-in suite.

mod common;

use std::path::Path;

use common::{assert_one_line_error, mem_profile, query, run_json, stderr};

/// Runs the built-in suite's `queries` at a small scale into `dir/out`.
fn run_builtin(dir: &Path, queries: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["run", "--scale", "0.02", "-q", queries, "--out", "out"];
    args.extend_from_slice(extra);
    let output = mem_profile(dir, &args);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    run_json(&dir.join("out/run.json"))
}

/// The `(x, y)` pairs of a path's `d`.
fn coordinates(d: &str) -> Vec<(f64, f64)> {
    d.split(['M', 'L', ' '])
        .filter(|s| !s.is_empty())
        .map(|pair| {
            let (x, y) = pair.split_once(',').expect("x,y");
            (x.parse().unwrap(), y.parse().unwrap())
        })
        .collect()
}

fn number(node: roxmltree::Node, attribute: &str) -> f64 {
    node.attribute(attribute)
        .unwrap_or_else(|| panic!("{attribute} on {node:?}"))
        .parse()
        .unwrap()
}

#[test]
fn timelines_next_to_the_summary_hold_every_series_the_limit_and_the_peaks() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_builtin(dir.path(), "sort,join", &["--memory-limit", "64M"]);
    let summary = std::fs::read_to_string(dir.path().join("out/summary.md")).unwrap();
    for (index, id) in ["sort", "join"].iter().enumerate() {
        let name = format!("timeline-{:02}-{id}.svg", index + 1);
        assert!(
            summary.contains(&format!("[![{id}: memory over time]({name})]({name})")),
            "{summary}"
        );
        let text = std::fs::read_to_string(dir.path().join("out").join(&name)).unwrap();
        let doc = roxmltree::Document::parse(&text).expect("the SVG is XML");
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "svg");
        assert_eq!(
            root.tag_name().namespace(),
            Some("http://www.w3.org/2000/svg")
        );

        let paths: Vec<roxmltree::Node> = doc
            .descendants()
            .filter(|n| n.has_tag_name("path") && n.attribute("class") == Some("series"))
            .collect();
        let keys: Vec<&str> = paths
            .iter()
            .map(|p| p.attribute("data-series").unwrap())
            .collect();
        assert_eq!(keys, ["rss", "heap-live", "reserved"], "{id}");
        let samples = query(&run, id)["report"]["timeline"]["samples"]
            .as_array()
            .unwrap()
            .len();
        let lines: Vec<Vec<(f64, f64)>> = paths
            .iter()
            .map(|p| coordinates(p.attribute("d").unwrap()))
            .collect();
        for (key, line) in keys.iter().zip(&lines) {
            assert!(
                line.len() >= 2 && line.len() <= samples,
                "{id} {key}: {} points of {samples} samples",
                line.len()
            );
        }

        // The limit: one horizontal line at 64 MiB on the y axis.
        let limits: Vec<roxmltree::Node> = doc
            .descendants()
            .filter(|n| n.attribute("class") == Some("limit"))
            .collect();
        assert_eq!(limits.len(), 1, "{id}");
        let limit_y = number(limits[0], "y1");
        assert_eq!(limit_y, number(limits[0], "y2"));
        let zero_y = tick_y(&doc, "0");
        let twenty_y = tick_y(&doc, "20");
        let per_mib = (zero_y - twenty_y) / 20.0;
        assert!(
            (zero_y - limit_y - 64.0 * per_mib).abs() < 0.2,
            "{id}: the limit at y={limit_y}, 0 at {zero_y}, 20 MiB at {twenty_y}"
        );

        // The peaks: one marker per series; the sampled peaks (RSS, heap)
        // sit on their line's highest point, the reserved peak (the
        // ledger's exact instant) no lower than its line.
        let peaks: Vec<(String, f64)> = doc
            .descendants()
            .filter(|n| n.attribute("class") == Some("peak"))
            .map(|g| {
                let circle = g.children().find(|c| c.has_tag_name("circle")).unwrap();
                (
                    g.attribute("data-series").unwrap().to_string(),
                    number(circle, "cy"),
                )
            })
            .collect();
        let peak_keys: Vec<&str> = peaks.iter().map(|p| p.0.as_str()).collect();
        assert_eq!(peak_keys, ["rss", "heap-live", "reserved"], "{id}");
        for ((key, cy), line) in peaks.iter().zip(&lines) {
            let highest = line.iter().map(|p| p.1).fold(f64::MAX, f64::min);
            if key == "reserved" {
                assert!(*cy <= highest + 0.11, "{id} {key}: {cy} vs {highest}");
            } else {
                assert!((cy - highest).abs() < 0.11, "{id} {key}: {cy} vs {highest}");
            }
        }
        let heap_peak = query(&run, id)["report"]["audit"]["peaks"]["heap"]["heap_live_bytes"]
            .as_f64()
            .unwrap();
        let heap_cy = peaks[1].1;
        assert!(
            (zero_y - heap_cy - heap_peak / common::MIB as f64 * per_mib).abs() < 0.2,
            "{id}: the heap peak marker at y={heap_cy} for {heap_peak} bytes"
        );
    }
}

/// The y of the y-axis tick labelled `label`.
fn tick_y(doc: &roxmltree::Document, label: &str) -> f64 {
    let ticks = doc
        .descendants()
        .find(|n| n.attribute("class") == Some("y-ticks"))
        .unwrap();
    let line = ticks
        .children()
        .filter(|n| n.is_element())
        .collect::<Vec<_>>()
        .windows(2)
        .find(|w| w[1].text() == Some(label))
        .map(|w| w[0])
        .unwrap_or_else(|| panic!("no tick {label}"));
    number(line, "y1")
}

#[test]
fn a_report_against_a_baseline_colours_what_regressed() {
    let dir = tempfile::tempdir().unwrap();
    run_builtin(dir.path(), "sort,join", &[]);
    // The baseline: the same run with sort's peak RSS a third lower, so
    // that the current run's is a regression by compare's rules.
    let mut base = run_json(&dir.path().join("out/run.json"));
    let queries = base["queries"].as_array_mut().unwrap();
    let sort = queries.iter_mut().find(|q| q["id"] == "sort").unwrap();
    let rss = sort["peak_rss_bytes"].as_u64().unwrap();
    sort["peak_rss_bytes"] = serde_json::json!(rss * 2 / 3);
    std::fs::write(dir.path().join("base.json"), base.to_string()).unwrap();

    let output = mem_profile(
        dir.path(),
        &[
            "report",
            "out",
            "--baseline",
            "base.json",
            "-o",
            "report.html",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    let sort_section = section(&html, "sort");
    assert!(
        sort_section.contains("<tr class=\"regression\"><td>peak RSS</td>"),
        "{sort_section}"
    );
    assert_eq!(sort_section.matches("class=\"series baseline\"").count(), 3);
    let join_section = section(&html, "join");
    assert!(
        join_section.contains("<tr class=\"unchanged\"><td>peak RSS</td>"),
        "{join_section}"
    );
    assert!(
        html.contains("<strong>1 regression</strong>"),
        "the verdict"
    );

    // Any regression rule of compare applies: a 60% threshold forgives it.
    let output = mem_profile(
        dir.path(),
        &[
            "report",
            "out",
            "--baseline",
            "base.json",
            "--metric-threshold",
            "peak_rss=60%",
            "-o",
            "report.html",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(
        section(&html, "sort").contains("<tr class=\"unchanged\"><td>peak RSS</td>"),
        "{html}"
    );
}

/// The `<section>` of one query.
fn section<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("data-query-id=\"{id}\""))
        .unwrap_or_else(|| panic!("no section {id}"));
    let end = start + html[start..].find("</section>").unwrap();
    &html[start..end]
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("broken")).unwrap();
    std::fs::write(
        d.join("broken/run.json"),
        "{\"schema\": \"memledger.run/1\", ",
    )
    .unwrap();
    std::fs::create_dir(d.join("future")).unwrap();
    std::fs::write(
        d.join("future/run.json"),
        r#"{"schema":"memledger.run/2","queries":[]}"#,
    )
    .unwrap();
    std::fs::create_dir(d.join("good")).unwrap();
    std::fs::write(
        d.join("good/run.json"),
        r#"{"schema":"memledger.run/1.1","context":{},"queries":[{"id":"q1","status":"ok"}]}"#,
    )
    .unwrap();
    for (args, expected) in [
        (&["report", "missing"][..], "cannot read missing"),
        (&["report", "broken"], "malformed memledger run"),
        (
            &["report", "future"],
            "unsupported run schema `memledger.run/2`",
        ),
        (
            &["report", "good", "--baseline", "broken"],
            "malformed memledger run",
        ),
        (
            &["report", "good", "-o", "good/run.json"],
            "refusing to write the report over its own input",
        ),
    ] {
        let output = mem_profile(d, args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let err = assert_one_line_error(&output);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    assert!(!d.join("report.html").exists());
    let output = mem_profile(d, &["report", "good", "-o", "good.html"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let html = std::fs::read_to_string(d.join("good.html")).unwrap();
    assert_eq!(html.matches("<section class=\"query\"").count(), 1);
    assert!(html.contains("no sample was taken"));
}
