//! One standalone SVG plot per query: the limit on the x axis, and at each
//! limit run the peak RSS, heap peak and reserved peak on the y axis (MiB).
//! Failed runs are crosses, passed runs dots; the dashed diagonal is the
//! limit itself (a point above it outgrew its limit), and a vertical line
//! marks the minimum.
//!
//! Written by hand: a few elements, no script, no external reference, so
//! that it renders the same in a browser, an image viewer and a CI job
//! summary. Each series is one `<g class="series" id="…">` holding a
//! `<polyline>` through all its points and one mark per point.

use std::fmt::Write;

use super::results::{Point, QuerySweep};
use crate::export::plot::{Axis, escape, shorten};
use crate::units::{MIB, format_size};

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 440.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 180.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;

/// A plotted figure: its id, its label, its color, how to read it.
struct Series {
    id: &'static str,
    label: &'static str,
    color: &'static str,
    value: fn(&Point) -> Option<f64>,
}

/// The series, in legend order.
const SERIES: [Series; 3] = [
    Series {
        id: "peak-rss",
        label: "peak RSS",
        color: "#d62728",
        value: |p| p.peak_rss_bytes.map(|b| b as f64),
    },
    Series {
        id: "heap-peak",
        label: "heap peak",
        color: "#1f77b4",
        value: |p| p.heap_peak_bytes.map(|b| b.max(0) as f64),
    },
    Series {
        id: "reserved-peak",
        label: "reserved peak",
        color: "#2ca02c",
        value: |p| p.reserved_peak_bytes.map(|b| b as f64),
    },
];

/// The longest id shown in a title.
const TITLE_ID_CHARS: usize = 48;

/// The SVG document for one query (a plot with no point says so).
pub fn plot(query: &QuerySweep) -> String {
    let id = shorten(&query.id, TITLE_ID_CHARS);
    let points: Vec<&Point> = query
        .points
        .iter()
        .filter(|p| p.limit_bytes.is_some())
        .collect();
    let x_max = points
        .iter()
        .filter_map(|p| p.limit_bytes)
        .max()
        .unwrap_or(0) as f64;
    let y_max = points
        .iter()
        .flat_map(|p| SERIES.iter().filter_map(|s| (s.value)(p)))
        .fold(x_max, f64::max);
    let x_axis = Axis::new(x_max, MIB as f64);
    let y_axis = Axis::new(y_max, MIB as f64);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |bytes: f64| LEFT + bytes / x_axis.max * plot_w;
    let y = |bytes: f64| TOP + plot_h - bytes / y_axis.max * plot_h;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        svg,
        r#"<title>{}: memory against the pool limit</title>"#,
        escape(&query.id)
    );
    let _ = writeln!(
        svg,
        r#"<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
    );
    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="24" font-size="15" font-weight="bold">{}: memory against the pool limit</text>"#,
        escape(&id)
    );

    // Axes, ticks and grid lines.
    let _ = writeln!(svg, r##"<g class="axes" stroke="#444" fill="none">"##);
    let _ = writeln!(
        svg,
        r#"<line x1="{LEFT}" y1="{}" x2="{}" y2="{}"/>"#,
        TOP + plot_h,
        LEFT + plot_w,
        TOP + plot_h
    );
    let _ = writeln!(
        svg,
        r#"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{}"/>"#,
        TOP + plot_h
    );
    svg.push_str("</g>\n<g class=\"ticks\" fill=\"#444\">\n");
    for tick in x_axis.ticks() {
        let _ = writeln!(
            svg,
            r##"<line x1="{0:.1}" y1="{1}" x2="{0:.1}" y2="{2}" stroke="#ddd"/><text x="{0:.1}" y="{3}" text-anchor="middle">{4}</text>"##,
            x(tick),
            TOP,
            TOP + plot_h,
            TOP + plot_h + 16.0,
            x_axis.label(tick)
        );
    }
    for tick in y_axis.ticks() {
        let _ = writeln!(
            svg,
            r##"<line x1="{0}" y1="{1:.1}" x2="{2}" y2="{1:.1}" stroke="#ddd"/><text x="{3}" y="{4:.1}" text-anchor="end">{5}</text>"##,
            LEFT,
            y(tick),
            LEFT + plot_w,
            LEFT - 6.0,
            y(tick) + 4.0,
            y_axis.label(tick)
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{}" text-anchor="middle">pool limit (MiB)</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 18.0
    );
    let _ = writeln!(
        svg,
        r#"<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">MiB</text>"#,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0
    );
    svg.push_str("</g>\n");

    // The limit itself, and the minimum.
    let diagonal_end = x_axis.max.min(y_axis.max);
    let _ = writeln!(
        svg,
        r##"<line id="limit" x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#888" stroke-dasharray="5,4"/>"##,
        x(0.0),
        y(0.0),
        x(diagonal_end),
        y(diagonal_end)
    );
    if let Some(minimum) = query.minimum_limit_bytes.filter(|_| x_max > 0.0) {
        let _ = writeln!(
            svg,
            r##"<line id="minimum" x1="{0:.1}" y1="{1}" x2="{0:.1}" y2="{2}" stroke="#9467bd" stroke-width="1.5"/><text x="{3:.1}" y="{4}" fill="#9467bd">minimum {5}</text>"##,
            x(minimum as f64),
            TOP,
            TOP + plot_h,
            x(minimum as f64) + 4.0,
            TOP + 12.0,
            format_size(minimum)
        );
    }

    // The series.
    for series in &SERIES {
        let _ = writeln!(
            svg,
            r#"<g class="series" id="{}" stroke="{}" fill="{}">"#,
            series.id, series.color, series.color
        );
        let coords: Vec<(f64, f64, bool)> = points
            .iter()
            .filter_map(|p| {
                let limit = p.limit_bytes? as f64;
                Some((x(limit), y((series.value)(p)?), p.passed()))
            })
            .collect();
        let path: Vec<String> = coords
            .iter()
            .map(|(px, py, _)| format!("{px:.1},{py:.1}"))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke-width="1.5" points="{}"/>"#,
            path.join(" ")
        );
        for (px, py, passed) in coords {
            if passed {
                let _ = writeln!(
                    svg,
                    r#"<circle class="passed" cx="{px:.1}" cy="{py:.1}" r="3.5"/>"#
                );
            } else {
                let _ = writeln!(
                    svg,
                    r#"<path class="failed" fill="none" stroke-width="2" d="M{:.1},{:.1} l9,9 m0,-9 l-9,9"/>"#,
                    px - 4.5,
                    py - 4.5
                );
            }
        }
        svg.push_str("</g>\n");
    }

    // Legend.
    let lx = WIDTH - RIGHT + 16.0;
    for (i, series) in SERIES.iter().enumerate() {
        let ly = TOP + 10.0 + i as f64 * 20.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{}" stroke-width="2"/><text x="{}" y="{}">{}</text>"#,
            lx + 20.0,
            series.color,
            lx + 26.0,
            ly + 4.0,
            series.label
        );
    }
    let ly = TOP + 10.0 + SERIES.len() as f64 * 20.0;
    let _ = writeln!(
        svg,
        r##"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="#888" stroke-dasharray="5,4"/><text x="{}" y="{}">limit</text>"##,
        lx + 20.0,
        lx + 26.0,
        ly + 4.0
    );
    let _ = writeln!(
        svg,
        r##"<circle cx="{}" cy="{}" r="3.5" fill="#444"/><text x="{}" y="{}">passed</text>"##,
        lx + 10.0,
        ly + 20.0,
        lx + 26.0,
        ly + 24.0
    );
    let _ = writeln!(
        svg,
        r##"<path d="M{:.1},{:.1} l9,9 m0,-9 l-9,9" stroke="#444" stroke-width="2"/><text x="{}" y="{}">failed</text>"##,
        lx + 5.5,
        ly + 35.5,
        lx + 26.0,
        ly + 44.0
    );
    if points.is_empty() {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">no limit was run</text>"#,
            LEFT + plot_w / 2.0,
            TOP + plot_h / 2.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_without_limits_still_gets_a_valid_plot() {
        use crate::sweep::results::SweepStatus;
        let query = QuerySweep {
            id: "q<1> & \"friends\"".to_string(),
            status: SweepStatus::FailedUnlimited,
            unlimited: None,
            top_bytes: None,
            top_source: None,
            resolution_bytes: None,
            minimum_limit_bytes: None,
            failing_below_minimum_bytes: None,
            non_monotonic: Vec::new(),
            worst_rss_over_limit: None,
            runs: 1,
            wall_ms: 1,
            plot: None,
            error: None,
            points: Vec::new(),
        };
        let text = plot(&query);
        let doc = roxmltree::Document::parse(&text).expect("valid XML");
        let title = doc
            .descendants()
            .find(|n| n.has_tag_name("title"))
            .and_then(|n| n.text())
            .unwrap();
        assert_eq!(title, "q<1> & \"friends\": memory against the pool limit");
        assert!(text.contains("no limit was run"));
        let series = doc
            .descendants()
            .filter(|n| n.attribute("class") == Some("series"))
            .count();
        assert_eq!(series, 3);
    }
}
