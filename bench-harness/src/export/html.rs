//! `mem_profile report`: one self-contained HTML page for a run.
//!
//! The page opens from disk with nothing else: styles, plots and the small
//! zoom script are inline, no font, script or image is fetched. It holds
//! the run's context and table (the same cells as the other formats), then
//! one section per query:
//!
//! - its status and error text;
//! - with a baseline, each metric's change coloured by its
//!   [`Verdict`] (the rules of `mem_profile compare`, applied by
//!   [`crate::compare::compare`]);
//! - its [`timeline`](super::timeline) (the baseline's dashed under it),
//!   readable as a static SVG; dragging across it zooms the time axis,
//!   a double click resets it;
//! - the time-aligned peaks: RSS, heap and reserved at each peak;
//! - the scopes at the heap peak, live against reserved, the untracked
//!   part highlighted;
//! - the consumers and their reservations;
//! - the query's flamegraph, when its run entry names one
//!   (`stacks.flamegraph`, a path relative to the run's directory), in a
//!   sandboxed frame so that its own script and ids stay apart.
//!
//! [`render`] is pure; [`flamegraphs`] reads the files a run names.

use std::collections::HashMap;
use std::fmt::Write;
use std::path::{Component, Path};

use base64::Engine;
use memledger_profiler::report::{ConsumerReport, Report, ScopeAtPeak};
use serde::Deserialize;

use super::plot::{escape, shorten};
use super::timeline::TimelinePlot;
use super::{
    COMPARE_COLUMNS, RUN_COLUMNS, comparison_rows, context_fields, rules_line, run_row, side_line,
    status_cell, verdict_line,
};
use crate::compare::{Comparison, Outcome, QueryComparison, Verdict};
use crate::files::read_limited;
use crate::run::{QueryResult, Run, Status, untracked};
use crate::units::{format_mib, format_mib_signed, format_wall_ms};

/// The most scopes drawn at the heap peak (the largest by live bytes).
const MAX_SCOPES: usize = 24;
/// The most consumers listed (the largest by reserved peak).
const MAX_CONSUMERS: usize = 40;
/// The largest flamegraph inlined.
pub const FLAMEGRAPH_CAP: u64 = 8 << 20;

/// What the page shows.
pub struct ReportPage<'a> {
    /// The run.
    pub run: &'a Run,
    /// The baseline run and the comparison of the run against it.
    pub baseline: Option<(&'a Run, &'a Comparison)>,
    /// Per query id: its flamegraph's SVG text, or why it could not be read.
    pub flamegraphs: &'a HashMap<String, Result<String, String>>,
}

/// The query entries' `stacks.flamegraph`, read from a run's JSON text
/// (unknown to [`QueryResult`], which ignores it).
#[derive(Deserialize)]
struct StackIndex {
    #[serde(default)]
    queries: Vec<QueryStacks>,
}

#[derive(Deserialize)]
struct QueryStacks {
    id: String,
    #[serde(default)]
    stacks: Option<Stacks>,
}

#[derive(Deserialize)]
struct Stacks {
    #[serde(default)]
    flamegraph: Option<String>,
}

/// The flamegraphs a run names, read from `dir` (the run's directory): per
/// query id, the SVG text or why it was not read. Queries without one are
/// absent. A path must be relative and stay inside `dir`; the file must be
/// a regular file of at most [`FLAMEGRAPH_CAP`] bytes.
pub fn flamegraphs(run_json: &str, dir: &Path) -> HashMap<String, Result<String, String>> {
    let Ok(index) = serde_json::from_str::<StackIndex>(run_json) else {
        return HashMap::new();
    };
    index
        .queries
        .into_iter()
        .filter_map(|q| {
            let path = q.stacks?.flamegraph?;
            let relative = Path::new(&path);
            let text = if relative
                .components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
            {
                read_limited(&dir.join(relative), FLAMEGRAPH_CAP, false)
                    .map_err(|e| format!("cannot read the flamegraph {path}: {e}"))
            } else {
                Err(format!(
                    "the flamegraph path {path} is not inside the run's directory"
                ))
            };
            Some((q.id, text))
        })
        .collect()
}

/// The whole page.
pub fn render(page: &ReportPage) -> String {
    let run = page.run;
    let mut html = String::with_capacity(64 * 1024);
    let title = match run.context.date.as_str() {
        "" => "mem_profile report".to_string(),
        date => format!("mem_profile report, {date}"),
    };
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        escape(&title),
        escape(&title)
    );

    html.push_str("<ul class=\"context\">\n");
    for (label, value) in context_fields(run) {
        let _ = writeln!(html, "<li>{label}: <span>{}</span></li>", escape(&value));
    }
    if run.interrupted {
        html.push_str("<li class=\"warning\">the run was interrupted</li>\n");
    }
    html.push_str("</ul>\n");

    if let Some((_, comparison)) = page.baseline {
        let (head, tail) = verdict_line(comparison);
        let class = if comparison.regressions() > 0 {
            "regression"
        } else {
            "unchanged"
        };
        let _ = writeln!(
            html,
            "<p class=\"verdict {class}\"><strong>{}</strong>: {}.</p>\n<ul class=\"context\">\n\
             <li>baseline: <span>{}</span></li>\n<li>current: <span>{}</span></li>\n</ul>\n<p>{}</p>",
            escape(&head),
            escape(&tail),
            escape(&side_line(&comparison.baseline)),
            escape(&side_line(&comparison.current)),
            escape(&rules_line(comparison))
        );
    }

    // The run's table, each id a link to its section.
    html.push_str("<table class=\"run\">\n<tr>");
    for column in RUN_COLUMNS {
        let _ = write!(html, "<th>{column}</th>");
    }
    html.push_str("</tr>\n");
    for (index, query) in run.queries.iter().enumerate() {
        let cells = run_row(query);
        let _ = write!(
            html,
            "<tr><td><a href=\"#query-{}\">{}</a></td><td class=\"status {}\">{}</td>",
            index + 1,
            escape(&cells[0]),
            query.status.name(),
            escape(&cells[1])
        );
        for cell in &cells[2..] {
            let _ = write!(html, "<td class=\"number\">{}</td>", escape(cell));
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</table>\n");
    if run.queries.is_empty() {
        html.push_str("<p>The run has no query.</p>\n");
    }

    for (index, query) in run.queries.iter().enumerate() {
        let baseline = page.baseline.map(|(base, comparison)| {
            (
                base.query(&query.id),
                comparison.queries.iter().find(|c| c.id == query.id),
            )
        });
        section(
            &mut html,
            index,
            query,
            baseline,
            page.flamegraphs.get(&query.id),
        );
    }
    if let Some((_, comparison)) = page.baseline {
        let missing: Vec<&QueryComparison> = comparison
            .queries
            .iter()
            .filter(|q| q.outcome == Outcome::MissingInCurrent)
            .collect();
        if !missing.is_empty() {
            html.push_str("<h2>In the baseline only</h2>\n");
            for q in missing {
                comparison_table(&mut html, q);
            }
        }
    }
    let _ = write!(html, "<script>{SCRIPT}</script>\n</body>\n</html>\n");
    html
}

/// One query's section.
fn section(
    html: &mut String,
    index: usize,
    query: &QueryResult,
    baseline: Option<(Option<&QueryResult>, Option<&QueryComparison>)>,
    flamegraph: Option<&Result<String, String>>,
) {
    let _ = writeln!(
        html,
        "<section class=\"query\" id=\"query-{}\" data-query-id=\"{}\">\n<h2>{} \
         <span class=\"status {}\">{}</span></h2>",
        index + 1,
        escape(&query.id),
        escape(&shorten(&query.id, 120)),
        query.status.name(),
        escape(&status_cell(query.status, query.exit_code, query.signal))
    );
    if let Some(error) = &query.error {
        let _ = writeln!(html, "<pre class=\"error\">{}</pre>", escape(error));
    }
    if query.status != Status::Ok && !query.stderr_tail.trim().is_empty() {
        let _ = writeln!(
            html,
            "<details><summary>stderr (last lines)</summary><pre>{}</pre></details>",
            escape(&query.stderr_tail)
        );
    }
    if let Some((_, Some(comparison))) = baseline {
        comparison_table(html, comparison);
    }

    let mut plot = TimelinePlot::of(query);
    if let Some((Some(base), _)) = baseline {
        plot = plot.with_baseline(base);
    }
    let _ = writeln!(
        html,
        "<div class=\"plot\">{}</div>\n<p class=\"hint\">Drag across the plot to zoom \
         into a time range; double-click to see it all.</p>",
        plot.svg(&format!("q{}", index + 1))
    );

    if let Some(report) = &query.report {
        aligned_peaks(html, report);
        scopes(html, &report.audit.scopes_at_heap_peak);
        consumers(html, &report.consumers);
    }
    match flamegraph {
        Some(Ok(svg)) => {
            let _ = writeln!(
                html,
                "<h3>Flamegraph</h3>\n<iframe class=\"flamegraph\" sandbox=\"allow-scripts\" \
                 title=\"flamegraph of {}\" src=\"data:image/svg+xml;base64,{}\"></iframe>",
                escape(&query.id),
                base64::engine::general_purpose::STANDARD.encode(svg)
            );
        }
        Some(Err(why)) => {
            let _ = writeln!(
                html,
                "<h3>Flamegraph</h3>\n<p class=\"warning\">{}</p>",
                escape(why)
            );
        }
        None => {}
    }
    html.push_str("</section>\n");
}

/// The CSS class of a comparison row.
fn verdict_class(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Regression => "regression",
        Verdict::Improvement => "improvement",
        Verdict::Unchanged => "unchanged",
        Verdict::NotComparable => "not-comparable",
    }
}

/// One query's rows of the comparison, each coloured by its verdict.
fn comparison_table(html: &mut String, query: &QueryComparison) {
    let classes: Vec<&str> = if query.outcome == Outcome::Compared {
        query
            .metrics
            .iter()
            .map(|m| verdict_class(m.verdict))
            .collect()
    } else {
        vec![match query.outcome {
            Outcome::NewFailure => "regression",
            Outcome::Fixed => "improvement",
            _ => "unchanged",
        }]
    };
    html.push_str("<table class=\"comparison\">\n<tr>");
    for column in &COMPARE_COLUMNS[1..] {
        let _ = write!(html, "<th>{column}</th>");
    }
    html.push_str("</tr>\n");
    for (row, class) in comparison_rows(query).iter().zip(classes) {
        let _ = write!(html, "<tr class=\"{class}\">");
        for (i, cell) in row.cells[1..].iter().enumerate() {
            let numeric = (1..=3).contains(&i);
            let _ = write!(
                html,
                "<td{}>{}</td>",
                if numeric { " class=\"number\"" } else { "" },
                escape(cell)
            );
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</table>\n");
}

/// RSS, heap and reserved at each peak, and the largest untracked value.
fn aligned_peaks(html: &mut String, report: &Report) {
    let peaks = &report.audit.peaks;
    html.push_str(
        "<h3>At each peak</h3>\n<table class=\"peaks\">\n<tr><th>at the peak of</th><th>time</th>\
         <th>RSS</th><th>heap live</th><th>reserved</th><th>untracked</th></tr>\n",
    );
    for (name, at) in [
        ("RSS", peaks.rss),
        ("heap", peaks.heap),
        ("reserved", peaks.reserved),
    ] {
        let _ = writeln!(
            html,
            "<tr><td>{name}</td><td class=\"number\">{}</td><td class=\"number\">{}</td>\
             <td class=\"number\">{}</td><td class=\"number\">{}</td><td class=\"number\">{}</td></tr>",
            format_wall_ms(at.t_ms),
            at.rss_bytes.map_or_else(|| "-".to_string(), format_mib),
            format_mib_signed(at.heap_live_bytes),
            format_mib(at.reserved_bytes),
            untracked(at.heap_live_bytes, at.reserved_bytes)
                .map_or_else(|| "-".to_string(), format_mib_signed)
        );
    }
    html.push_str("</table>\n");
    let drift = &report.audit.drift_peak;
    let _ = writeln!(
        html,
        "<p>Largest untracked (heap live − reserved): <strong>{}</strong> at {}{}.</p>",
        format_mib_signed(drift.untracked_bytes),
        format_wall_ms(drift.t_ms),
        drift
            .consumer
            .as_ref()
            .map(|c| format!(
                ", after a reservation change of {}",
                escape(&shorten(c, 80))
            ))
            .unwrap_or_default()
    );
}

/// The scopes at the heap peak as bars: live (the untracked part, live
/// above reserved, highlighted) over reserved.
fn scopes(html: &mut String, scopes: &[ScopeAtPeak]) {
    if scopes.is_empty() {
        return;
    }
    let mut sorted: Vec<&ScopeAtPeak> = scopes.iter().collect();
    sorted.sort_by(|a, b| {
        b.live_requested_bytes
            .max(b.reserved_bytes as i64)
            .cmp(&a.live_requested_bytes.max(a.reserved_bytes as i64))
            .then_with(|| a.scope.cmp(&b.scope))
    });
    let shown = &sorted[..sorted.len().min(MAX_SCOPES)];
    let largest = shown
        .iter()
        .map(|s| (s.live_requested_bytes.max(0) as f64).max(s.reserved_bytes as f64))
        .fold(1.0, f64::max);
    const WIDTH: f64 = 760.0;
    const NAME: f64 = 190.0;
    const BARS: f64 = 330.0;
    const ROW: f64 = 30.0;
    let height = 30.0 + ROW * shown.len() as f64;
    let scale = |bytes: f64| bytes.max(0.0) / largest * BARS;
    let _ = writeln!(
        html,
        "<h3>Scopes at the heap peak</h3>\n<svg xmlns=\"http://www.w3.org/2000/svg\" \
         class=\"scopes\" width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"{WIDTH}\" height=\"{height}\" fill=\"white\"/>\n\
         <rect x=\"{NAME}\" y=\"6\" width=\"14\" height=\"9\" fill=\"#1f77b4\"/><text x=\"{}\" y=\"15\">live</text>\
         <rect x=\"{}\" y=\"6\" width=\"14\" height=\"9\" fill=\"#d62728\"/><text x=\"{}\" y=\"15\">untracked (live above reserved)</text>\
         <rect x=\"{}\" y=\"6\" width=\"14\" height=\"9\" fill=\"#2ca02c\"/><text x=\"{}\" y=\"15\">reserved</text>",
        NAME + 18.0,
        NAME + 60.0,
        NAME + 78.0,
        NAME + 280.0,
        NAME + 298.0
    );
    for (i, scope) in shown.iter().enumerate() {
        let top = 26.0 + ROW * i as f64;
        let live = scope.live_requested_bytes.max(0) as f64;
        let reserved = scope.reserved_bytes as f64;
        let tracked = live.min(reserved);
        let gap = untracked(scope.live_requested_bytes, scope.reserved_bytes);
        let over = gap.is_some_and(|g| g > 0);
        let _ = write!(
            html,
            "<g class=\"scope{}\" data-scope=\"{}\"><title>{}: live {}, reserved {}, untracked {}</title>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
             <rect class=\"live\" x=\"{NAME}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"11\" fill=\"#1f77b4\"/>",
            if over { " untracked" } else { "" },
            escape(&scope.scope),
            escape(&scope.scope),
            format_mib_signed(scope.live_requested_bytes),
            format_mib(scope.reserved_bytes),
            gap.map_or_else(|| "-".to_string(), format_mib_signed),
            NAME - 8.0,
            top + 14.0,
            escape(&shorten(&scope.scope, 28)),
            scale(tracked)
        );
        if over {
            let _ = write!(
                html,
                "<rect class=\"untracked\" x=\"{:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"11\" fill=\"#d62728\"/>",
                NAME + scale(tracked),
                scale(live) - scale(tracked)
            );
        }
        let _ = writeln!(
            html,
            "<rect class=\"reserved\" x=\"{NAME}\" y=\"{:.1}\" width=\"{:.1}\" height=\"9\" fill=\"#2ca02c\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\"{}>{} live / {} reserved</text></g>",
            top + 12.0,
            scale(reserved),
            NAME + BARS + 8.0,
            top + 14.0,
            if over { " fill=\"#b00\"" } else { "" },
            format_mib_signed(scope.live_requested_bytes),
            format_mib(scope.reserved_bytes)
        );
    }
    html.push_str("</svg>\n");
    if sorted.len() > shown.len() {
        let _ = writeln!(
            html,
            "<p class=\"hint\">{} smaller scopes not drawn.</p>",
            sorted.len() - shown.len()
        );
    }
}

/// The consumers, largest reserved peak first.
fn consumers(html: &mut String, consumers: &[ConsumerReport]) {
    if consumers.is_empty() {
        return;
    }
    let mut sorted: Vec<&ConsumerReport> = consumers.iter().collect();
    sorted.sort_by(|a, b| {
        b.reserved_peak_bytes
            .cmp(&a.reserved_peak_bytes)
            .then_with(|| a.name.cmp(&b.name))
    });
    html.push_str(
        "<h3>Consumers</h3>\n<table class=\"consumers\">\n<tr><th>consumer</th><th>scope</th>\
         <th>can spill</th><th>reserved peak</th><th>reserved at the end</th><th>refusals</th>\
         <th>spills</th><th>registrations</th></tr>\n",
    );
    for c in sorted.iter().take(MAX_CONSUMERS) {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"number\">{}</td><td class=\"number\">{}</td>\
             <td class=\"number\">{}</td><td class=\"number\">{}</td><td class=\"number\">{}</td></tr>",
            escape(&shorten(&c.name, 80)),
            escape(&shorten(&c.scope, 80)),
            if c.can_spill { "yes" } else { "no" },
            format_mib(c.reserved_peak_bytes),
            format_mib(c.reserved_bytes),
            c.refusals,
            c.spills,
            c.registrations
        );
    }
    html.push_str("</table>\n");
    if sorted.len() > MAX_CONSUMERS {
        let _ = writeln!(
            html,
            "<p class=\"hint\">{} more consumers with smaller reservations.</p>",
            sorted.len() - MAX_CONSUMERS
        );
    }
}

const STYLE: &str = r#"
body { font-family: sans-serif; margin: 1.5em auto; max-width: 1000px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.25em; margin-top: 0; } h3 { font-size: 1.05em; }
ul.context { list-style: none; padding: 0; color: #444; } ul.context span { color: #000; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; }
th { background: #f3f3f3; } td.number { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
section.query { border-top: 2px solid #bbb; margin-top: 2em; padding-top: 1em; }
.status.ok { color: #1a7f37; } .status.failed, .status.oom, .status.signal, .status.timeout { color: #b00; font-weight: bold; }
.status.interrupted, .warning { color: #9a6700; }
pre { background: #f6f6f6; padding: 0.6em; white-space: pre-wrap; overflow-wrap: anywhere; }
pre.error { background: #fff0f0; border-left: 4px solid #d62728; }
tr.regression td { background: #ffe0e0; color: #a00; font-weight: bold; }
tr.improvement td { background: #e0f5e0; color: #1a7f37; }
tr.unchanged td { color: #555; } tr.not-comparable td { color: #888; font-style: italic; }
p.verdict.regression { color: #a00; } p.verdict.unchanged { color: #1a7f37; }
div.plot svg { max-width: 100%; height: auto; cursor: crosshair; user-select: none; }
svg.scopes { max-width: 100%; height: auto; }
.hint { color: #777; font-size: 0.85em; margin-top: 0; }
iframe.flamegraph { width: 100%; height: 520px; border: 1px solid #ccc; }
"#;

/// Redraws a timeline's x axis over the dragged time range, and records on
/// each plot how many of its lines drew something (`data-drawn-series`)
/// and where its plot area is on the page (`data-plot-rect`).
const SCRIPT: &str = r#"
(function () {
  'use strict';
  var NS = 'http://www.w3.org/2000/svg';
  var PAIR = /(-?\d+(?:\.\d+)?),(-?\d+(?:\.\d+)?)/g;
  function step(span) {
    var rough = span / 6, magnitude = Math.pow(10, Math.floor(Math.log10(rough)));
    var steps = [1, 2, 5, 10];
    for (var i = 0; i < steps.length; i++) {
      if (steps[i] * magnitude >= rough) { return steps[i] * magnitude; }
    }
    return 10 * magnitude;
  }
  function element(name, attributes) {
    var e = document.createElementNS(NS, name);
    Object.keys(attributes).forEach(function (k) { e.setAttribute(k, attributes[k]); });
    return e;
  }
  function setup(svg) {
    var d = svg.dataset;
    var left = +d.plotLeft, top = +d.plotTop, width = +d.plotWidth, height = +d.plotHeight;
    var tMax = +d.tMax, unit = +d.tUnit;
    var area = svg.querySelector('.plot-area'), ticks = svg.querySelector('.x-ticks');
    var view = [0, tMax];
    var shapes = [];
    area.querySelectorAll('path').forEach(function (e) { shapes.push([e, 'd', e.getAttribute('d')]); });
    area.querySelectorAll('circle').forEach(function (e) { shapes.push([e, 'cx', +e.getAttribute('cx')]); });
    area.querySelectorAll('line').forEach(function (e) { shapes.push([e, 'x', +e.getAttribute('x1')]); });
    function x(t) { return left + (t - view[0]) / (view[1] - view[0]) * width; }
    function moved(originalX) { return x((originalX - left) / width * tMax).toFixed(1); }
    function redraw() {
      shapes.forEach(function (s) {
        if (s[1] === 'd') {
          s[0].setAttribute('d', s[2].replace(PAIR, function (_, px, py) { return moved(+px) + ',' + py; }));
        } else if (s[1] === 'cx') {
          s[0].setAttribute('cx', moved(s[2]));
        } else {
          s[0].setAttribute('x1', moved(s[2]));
          s[0].setAttribute('x2', moved(s[2]));
        }
      });
      while (ticks.firstChild) { ticks.removeChild(ticks.firstChild); }
      var span = view[1] - view[0], tick = step(span / unit) * unit;
      var decimals = Math.max(0, -Math.floor(Math.log10(tick / unit) + 1e-9));
      for (var t = Math.ceil(view[0] / tick) * tick; t <= view[1] + tick * 1e-6; t += tick) {
        var at = x(t).toFixed(1);
        ticks.appendChild(element('line', { x1: at, x2: at, y1: top, y2: top + height, stroke: '#eee' }));
        var label = element('text', { x: at, y: top + height + 16, 'text-anchor': 'middle' });
        label.textContent = (t / unit).toFixed(decimals);
        ticks.appendChild(label);
      }
    }
    var selection = element('rect', { y: top, height: height, fill: '#1f77b4', 'fill-opacity': 0.15 });
    selection.style.display = 'none';
    svg.appendChild(selection);
    var start = null;
    function pointer(event) {
      var p = svg.createSVGPoint();
      p.x = event.clientX; p.y = event.clientY;
      var m = svg.getScreenCTM();
      return m ? p.matrixTransform(m.inverse()).x : left;
    }
    function clamp(v) { return Math.min(left + width, Math.max(left, v)); }
    svg.addEventListener('mousedown', function (event) {
      var at = pointer(event);
      if (at < left || at > left + width) { return; }
      start = at;
      selection.setAttribute('x', at); selection.setAttribute('width', 0);
      selection.style.display = '';
      event.preventDefault();
    });
    svg.addEventListener('mousemove', function (event) {
      if (start === null) { return; }
      var at = clamp(pointer(event));
      selection.setAttribute('x', Math.min(at, start));
      selection.setAttribute('width', Math.abs(at - start));
    });
    window.addEventListener('mouseup', function (event) {
      if (start === null) { return; }
      var at = clamp(pointer(event)), a = Math.min(at, start), b = Math.max(at, start);
      start = null;
      selection.style.display = 'none';
      if (b - a < 4) { return; }
      var span = view[1] - view[0];
      view = [view[0] + (a - left) / width * span, view[0] + (b - left) / width * span];
      redraw();
    });
    svg.addEventListener('dblclick', function () { view = [0, tMax]; redraw(); });
    var drawn = 0;
    svg.querySelectorAll('path.series').forEach(function (p) {
      var box = p.getBBox();
      if (box.width > 0 || box.height > 0) { drawn++; }
    });
    svg.setAttribute('data-drawn-series', drawn);
    var r = svg.getBoundingClientRect(), k = r.width / svg.viewBox.baseVal.width;
    svg.setAttribute('data-plot-rect', [
      r.left + window.scrollX + left * k, r.top + window.scrollY + top * k, width * k, height * k
    ].map(function (v) { return v.toFixed(0); }).join(','));
  }
  document.querySelectorAll('svg.timeline').forEach(setup);
  document.body.setAttribute('data-timelines', document.querySelectorAll('svg.timeline[data-drawn-series]').length);
})();
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::tests::{query, run};
    use crate::compare::{Rules, compare};
    use crate::export::timeline::tests::sampled;
    use crate::units::MIB;
    use memledger_profiler::report::ConsumerReport;

    fn page_of(run: &Run) -> String {
        render(&ReportPage {
            run,
            baseline: None,
            flamegraphs: &HashMap::new(),
        })
    }

    #[test]
    fn twenty_two_long_queries_against_a_baseline_stay_small() {
        let queries: Vec<QueryResult> = (1..=22)
            .map(|i| sampled(&format!("q{i}"), 4096, Some(64 * MIB)))
            .collect();
        let current = run(queries.clone());
        let base = run(queries);
        let comparison = compare(("base", &base), ("cur", &current), &Rules::default()).unwrap();
        let html = render(&ReportPage {
            run: &current,
            baseline: Some((&base, &comparison)),
            flamegraphs: &HashMap::new(),
        });
        assert!(html.len() < 3 << 20, "{} bytes", html.len());
        assert_eq!(
            html.matches("<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"timeline\"")
                .count(),
            22
        );
        assert_eq!(html.matches("class=\"series baseline\"").count(), 66);
        assert_eq!(
            html.matches("http").count(),
            html.matches("http://www.w3.org/2000/svg").count(),
            "no reference outside the page but the SVG namespace"
        );
    }

    #[test]
    fn deltas_are_coloured_by_the_compare_rules() {
        let mut grown = query("q1", Status::Ok, 100 * MIB);
        grown.figures.peak_rss_bytes = Some(120 * MIB);
        grown.figures.heap_peak_bytes = Some(40 * MIB as i64);
        let current = run(vec![grown, query("q2", Status::Oom, MIB)]);
        let base = run(vec![
            query("q1", Status::Ok, 100 * MIB),
            query("q2", Status::Ok, MIB),
        ]);
        let comparison = compare(("base", &base), ("cur", &current), &Rules::default()).unwrap();
        let html = render(&ReportPage {
            run: &current,
            baseline: Some((&base, &comparison)),
            flamegraphs: &HashMap::new(),
        });
        assert!(
            html.contains("<tr class=\"regression\"><td>peak RSS</td>"),
            "{html}"
        );
        assert!(
            html.contains("<tr class=\"improvement\"><td>heap peak</td>"),
            "{html}"
        );
        assert!(
            html.contains("<tr class=\"unchanged\"><td>reserved peak</td>"),
            "{html}"
        );
        assert!(html.contains("<tr class=\"regression\"><td>status</td><td class=\"number\">ok</td><td class=\"number\">oom</td>"), "{html}");
        assert!(html.contains("<strong>2 regressions</strong>"), "{html}");
    }

    #[test]
    fn scopes_show_untracked_bytes_and_consumers_are_listed() {
        let mut q = sampled("sort", 100, None);
        let report = q.report.as_mut().unwrap();
        report.audit.scopes_at_heap_peak = vec![
            ScopeAtPeak {
                scope: "sort<a>".to_string(),
                live_requested_bytes: 30 * MIB as i64,
                reserved_bytes: 10 * MIB,
            },
            ScopeAtPeak {
                scope: "merge".to_string(),
                live_requested_bytes: 5 * MIB as i64,
                reserved_bytes: 8 * MIB,
            },
        ];
        report.consumers = vec![ConsumerReport {
            name: "ExternalSorter[0]".to_string(),
            scope: "sort<a>".to_string(),
            can_spill: true,
            reserved_bytes: 0,
            reserved_peak_bytes: 10 * MIB,
            refusals: 3,
            spills: 2,
            registrations: 1,
        }];
        let html = page_of(&run(vec![q]));
        let start = html
            .find("<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"scopes\"")
            .unwrap();
        let end = start + html[start..].find("</svg>").unwrap() + 6;
        let doc = roxmltree::Document::parse(&html[start..end]).expect("valid XML");
        let rows: Vec<(&str, Option<&str>)> = doc
            .descendants()
            .filter(|n| n.attribute("data-scope").is_some())
            .map(|n| (n.attribute("data-scope").unwrap(), n.attribute("class")))
            .collect();
        assert_eq!(
            rows,
            [
                ("sort<a>", Some("scope untracked")),
                ("merge", Some("scope"))
            ]
        );
        let width = |scope: &str, class: &str| -> f64 {
            doc.descendants()
                .find(|n| n.attribute("data-scope") == Some(scope))
                .unwrap()
                .children()
                .find(|n| n.attribute("class") == Some(class))
                .map_or(0.0, |n| n.attribute("width").unwrap().parse().unwrap())
        };
        // 30 MiB is the widest bar (330 px): 10 tracked, 20 untracked.
        assert!((width("sort<a>", "live") - 110.0).abs() < 0.1);
        assert!((width("sort<a>", "untracked") - 220.0).abs() < 0.1);
        assert!((width("merge", "reserved") - 88.0).abs() < 0.1);
        assert_eq!(width("merge", "untracked"), 0.0);
        assert!(html.contains("<tr><td>ExternalSorter[0]</td><td>sort&lt;a&gt;</td><td>yes</td><td class=\"number\">10.0 MiB</td>"), "{html}");
    }

    #[test]
    fn errors_are_escaped_and_flamegraphs_are_framed() {
        let mut failed = query("q<2>", Status::Failed, MIB);
        failed.error = Some("Resources exhausted: <sort> & more".to_string());
        let r = run(vec![query("q1", Status::Ok, MIB), failed]);
        let mut graphs = HashMap::new();
        graphs.insert(
            "q1".to_string(),
            Ok("<svg xmlns=\"http://www.w3.org/2000/svg\"/>".to_string()),
        );
        graphs.insert(
            "q<2>".to_string(),
            Err("cannot read the flamegraph x.svg: no such file".to_string()),
        );
        let html = render(&ReportPage {
            run: &r,
            baseline: None,
            flamegraphs: &graphs,
        });
        assert!(
            html.contains(
                "<pre class=\"error\">Resources exhausted: &lt;sort&gt; &amp; more</pre>"
            )
        );
        assert!(html.contains("src=\"data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciLz4=\""));
        assert!(
            html.contains(
                "<p class=\"warning\">cannot read the flamegraph x.svg: no such file</p>"
            )
        );
        assert_eq!(html.matches("<section class=\"query\"").count(), 2);
    }

    #[test]
    fn flamegraph_paths_stay_inside_the_run_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("q1.svg"), "<svg/>").unwrap();
        let json = r#"{"schema":"memledger.run/1.1","queries":[
            {"id":"q1","status":"ok","stacks":{"flamegraph":"q1.svg"}},
            {"id":"q2","status":"ok","stacks":{"flamegraph":"../q1.svg"}},
            {"id":"q3","status":"ok","stacks":{"flamegraph":"/etc/hostname"}},
            {"id":"q4","status":"ok","stacks":{}},
            {"id":"q5","status":"ok"}]}"#;
        let found = flamegraphs(json, dir.path());
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found["q1"], Ok("<svg/>".to_string()));
        assert!(found["q2"].as_ref().unwrap_err().contains("not inside"));
        assert!(found["q3"].as_ref().unwrap_err().contains("not inside"));
    }
}
