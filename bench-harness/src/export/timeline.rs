//! One query's memory over time as a standalone SVG: RSS, heap live and
//! reserved against the time since the query started, the pool limit as a
//! horizontal line, and each peak marked where it happened. The same plot
//! sits next to `summary.md` (`timeline-NN-ID.svg`, written by `run`) and
//! inside the HTML report of [`super::html`], where a baseline's timelines
//! may be drawn under the current ones (dashed).
//!
//! Where the figures come from: the child's report when it wrote one (its
//! sampler reads RSS, heap and reserved at the same instants, so the three
//! lines are time-aligned, and its audit names the peaks); otherwise the
//! harness's own RSS polling, the only line then.
//!
//! Each series is one `<path class="series" data-series="…">`, downsampled
//! to the minimum and maximum of each pixel column, so a timeline of any
//! length is a few thousand points at most and no peak is lost. Each peak
//! is a `<g class="peak" data-series="…">`; the limit is the
//! `<line class="limit">`. No script, no external reference: the file
//! renders the same in a browser, an image viewer and a Markdown viewer.
//! The HTML report adds its zoom on top, reading the `data-` attributes of
//! the root element.

use std::fmt::Write;

use memledger_profiler::report::Instant;

use super::plot::{Axis, escape, shorten};
use crate::run::QueryResult;
use crate::units::{MIB, format_mib, format_mib_signed, format_wall_ms};

/// The whole image.
const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 330.0;
/// The plot area's margins.
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 94.0;
/// The longest id shown in a title.
const TITLE_ID_CHARS: usize = 60;

/// The plot area's width in pixels: the number of columns a series is
/// downsampled to.
pub const PLOT_WIDTH: f64 = WIDTH - LEFT - RIGHT;
const PLOT_HEIGHT: f64 = HEIGHT - TOP - BOTTOM;

/// A figure drawn over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Figure {
    /// Resident set size.
    Rss,
    /// Live heap (requested bytes).
    HeapLive,
    /// Reserved by the pool's consumers.
    Reserved,
}

impl Figure {
    /// Every figure, in drawing and legend order.
    pub const ALL: [Figure; 3] = [Figure::Rss, Figure::HeapLive, Figure::Reserved];

    /// The `data-series` value.
    pub fn key(self) -> &'static str {
        match self {
            Figure::Rss => "rss",
            Figure::HeapLive => "heap-live",
            Figure::Reserved => "reserved",
        }
    }

    /// The words in the legend.
    pub fn label(self) -> &'static str {
        match self {
            Figure::Rss => "RSS",
            Figure::HeapLive => "heap live",
            Figure::Reserved => "reserved",
        }
    }

    /// Its line's color (the sweep plot's colors for the same figures).
    pub fn color(self) -> &'static str {
        match self {
            Figure::Rss => "#d62728",
            Figure::HeapLive => "#1f77b4",
            Figure::Reserved => "#2ca02c",
        }
    }
}

/// One line: a figure's samples, `(t_ms, bytes)` in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Which figure.
    pub figure: Figure,
    /// True for the baseline's line (drawn dashed, under the current one).
    pub baseline: bool,
    /// The samples.
    pub points: Vec<(u64, f64)>,
}

/// A peak and, when the report knows them, the other figures at its instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Peak {
    /// Whose peak.
    pub figure: Figure,
    /// When, in ms since the query started.
    pub t_ms: u64,
    /// Its value in bytes.
    pub bytes: f64,
    /// All three figures at that instant, from the report's audit.
    pub aligned: Option<Instant>,
}

/// Everything one timeline plot draws.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelinePlot {
    /// The query's id (the title).
    pub id: String,
    /// Current lines first, then the baseline's.
    pub series: Vec<Series>,
    /// The pool limit the query ran under.
    pub limit_bytes: Option<u64>,
    /// The current run's peaks.
    pub peaks: Vec<Peak>,
}

impl TimelinePlot {
    /// The plot of one query of a run.
    pub fn of(query: &QueryResult) -> TimelinePlot {
        let (series, peaks) = lines(query, false);
        TimelinePlot {
            id: query.id.clone(),
            series,
            limit_bytes: query.limit_bytes,
            peaks,
        }
    }

    /// Adds the lines of the same query in a baseline run (none when the
    /// baseline kept no timeline, as a blessed baseline does not).
    pub fn with_baseline(mut self, baseline: &QueryResult) -> TimelinePlot {
        let (series, _) = lines(baseline, true);
        self.series.extend(series);
        self
    }

    /// The last instant drawn, in ms.
    fn duration_ms(&self) -> u64 {
        self.series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .chain(self.peaks.iter().map(|p| p.t_ms))
            .max()
            .unwrap_or(0)
    }

    /// The SVG document. `key` makes the ids inside it unique when several
    /// plots share one HTML page (letters, digits, `-` and `_` only; others
    /// are replaced).
    pub fn svg(&self, key: &str) -> String {
        let key: String = key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let duration = self.duration_ms() as f64;
        let y_top = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .chain(self.limit_bytes.map(|l| l as f64))
            .fold(0.0, f64::max);
        let time_unit = if duration > 2000.0 { 1000.0 } else { 1.0 };
        let x_axis = Axis::new(duration.max(1.0), time_unit);
        let y_axis = Axis::new(y_top, MIB as f64);
        let x = |t_ms: f64| LEFT + t_ms / x_axis.max * PLOT_WIDTH;
        let y = |bytes: f64| TOP + PLOT_HEIGHT - bytes / y_axis.max * PLOT_HEIGHT;
        let bottom = TOP + PLOT_HEIGHT;

        let mut svg = String::new();
        let _ = writeln!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12" data-t-max="{}" data-t-unit="{}" data-plot-left="{LEFT}" data-plot-top="{TOP}" data-plot-width="{PLOT_WIDTH}" data-plot-height="{PLOT_HEIGHT}" data-series-count="{}">"#,
            x_axis.max,
            time_unit,
            self.series.len()
        );
        let _ = writeln!(svg, "<title>{}: memory over time</title>", escape(&self.id));
        let _ = writeln!(
            svg,
            r#"<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
        );
        let _ = writeln!(
            svg,
            r#"<text x="{LEFT}" y="22" font-size="15" font-weight="bold">{}: memory over time</text>"#,
            escape(&shorten(&self.id, TITLE_ID_CHARS))
        );
        let _ = writeln!(
            svg,
            r#"<clipPath id="clip-{key}"><rect x="{LEFT}" y="{:.1}" width="{PLOT_WIDTH}" height="{:.1}"/></clipPath>"#,
            TOP - 6.0,
            PLOT_HEIGHT + 6.0
        );

        // Axes: the y ticks stay; the x ticks are one group the report's
        // zoom redraws.
        let _ = writeln!(
            svg,
            r##"<g class="axes" stroke="#444"><line x1="{LEFT}" y1="{bottom}" x2="{}" y2="{bottom}"/><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}"/></g>"##,
            LEFT + PLOT_WIDTH
        );
        svg.push_str("<g class=\"y-ticks\" fill=\"#444\">\n");
        for tick in y_axis.ticks() {
            let _ = writeln!(
                svg,
                r##"<line x1="{LEFT}" y1="{0:.1}" x2="{1}" y2="{0:.1}" stroke="#ddd"/><text x="{2}" y="{3:.1}" text-anchor="end">{4}</text>"##,
                y(tick),
                LEFT + PLOT_WIDTH,
                LEFT - 6.0,
                y(tick) + 4.0,
                y_axis.label(tick)
            );
        }
        svg.push_str("</g>\n<g class=\"x-ticks\" fill=\"#444\">\n");
        for tick in x_axis.ticks() {
            let _ = writeln!(
                svg,
                r##"<line x1="{0:.1}" y1="{TOP}" x2="{0:.1}" y2="{bottom}" stroke="#eee"/><text x="{0:.1}" y="{1}" text-anchor="middle">{2}</text>"##,
                x(tick),
                bottom + 16.0,
                x_axis.label(tick)
            );
        }
        let _ = writeln!(
            svg,
            r##"</g>
<text x="{:.1}" y="{}" text-anchor="middle" fill="#444">time since start ({})</text>
<text x="16" y="{:.1}" text-anchor="middle" fill="#444" transform="rotate(-90 16 {:.1})">MiB</text>"##,
            LEFT + PLOT_WIDTH / 2.0,
            bottom + 34.0,
            if time_unit == 1.0 { "ms" } else { "s" },
            TOP + PLOT_HEIGHT / 2.0,
            TOP + PLOT_HEIGHT / 2.0
        );

        // The limit does not move with the time axis: outside the zoomed group.
        if let Some(limit) = self.limit_bytes {
            let _ = writeln!(
                svg,
                r##"<line class="limit" x1="{LEFT}" y1="{0:.1}" x2="{1}" y2="{0:.1}" stroke="#555" stroke-width="1.5" stroke-dasharray="8,4"/><text x="{2}" y="{3:.1}" text-anchor="end" fill="#555">limit {4}</text>"##,
                y(limit as f64),
                LEFT + PLOT_WIDTH,
                LEFT + PLOT_WIDTH - 4.0,
                y(limit as f64) - 4.0,
                format_mib(limit)
            );
        }

        let _ = writeln!(svg, r#"<g class="plot-area" clip-path="url(#clip-{key})">"#);
        // Baseline lines first, so the current ones are drawn over them.
        for series in self
            .series
            .iter()
            .filter(|s| s.baseline)
            .chain(self.series.iter().filter(|s| !s.baseline))
        {
            let pixels: Vec<(String, String)> =
                downsample(&series.points, x_axis.max, PLOT_WIDTH as usize)
                    .iter()
                    .map(|&(t, bytes)| (format!("{:.1}", x(t as f64)), format!("{:.1}", y(bytes))))
                    .collect();
            let mut d = String::with_capacity(pixels.len() * 12);
            let mut drawn = 0;
            for (i, (px, py)) in pixels.iter().enumerate() {
                // The inside of a flat stretch adds nothing to the line.
                let flat = i > 0
                    && pixels.get(i + 1).is_some_and(|next| next.1 == *py)
                    && pixels[i - 1].1 == *py;
                if flat {
                    continue;
                }
                let _ = write!(
                    d,
                    "{}{px},{py}",
                    match drawn {
                        0 => "M",
                        1 => "L",
                        _ => " ",
                    }
                );
                drawn += 1;
            }
            let style = if series.baseline {
                r#" stroke-width="1.5" stroke-dasharray="4,3" stroke-opacity="0.55""#
            } else {
                r#" stroke-width="1.8""#
            };
            let _ = writeln!(
                svg,
                r#"<path class="series{}" data-series="{}" fill="none" stroke="{}"{style} stroke-linejoin="round" d="{d}"/>"#,
                if series.baseline { " baseline" } else { "" },
                series.figure.key(),
                series.figure.color()
            );
        }
        for peak in &self.peaks {
            let px = x(peak.t_ms as f64);
            let py = y(peak.bytes);
            let color = peak.figure.color();
            let _ = writeln!(
                svg,
                r##"<g class="peak" data-series="{}"><title>{}</title><line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{bottom}" stroke="{color}" stroke-opacity="0.35" stroke-dasharray="2,3"/><circle cx="{px:.1}" cy="{py:.1}" r="4.5" fill="white" stroke="{color}" stroke-width="2"/></g>"##,
                peak.figure.key(),
                escape(&peak_text(peak))
            );
        }
        svg.push_str("</g>\n");

        // Legend: one entry per current line with its peak, then the
        // limit and the baseline's line style.
        let mut lx = LEFT;
        let ly = bottom + 56.0;
        for figure in Figure::ALL {
            if !self
                .series
                .iter()
                .any(|s| s.figure == figure && !s.baseline)
            {
                continue;
            }
            let peak = self.peaks.iter().find(|p| p.figure == figure);
            let text = match peak {
                Some(p) => format!(
                    "{} (peak {} at {})",
                    figure.label(),
                    format_mib(p.bytes as u64),
                    format_wall_ms(p.t_ms)
                ),
                None => figure.label().to_string(),
            };
            let _ = writeln!(
                svg,
                r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{}" stroke-width="2.5"/><text x="{}" y="{}">{}</text>"#,
                lx + 18.0,
                figure.color(),
                lx + 22.0,
                ly + 4.0,
                escape(&text)
            );
            lx += 26.0 + text.chars().count() as f64 * 6.3;
        }
        let mut lx = LEFT;
        let ly = ly + 20.0;
        if let Some(limit) = self.limit_bytes {
            let _ = writeln!(
                svg,
                r##"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="#555" stroke-width="1.5" stroke-dasharray="8,4"/><text x="{}" y="{}">pool limit {}</text>"##,
                lx + 18.0,
                lx + 22.0,
                ly + 4.0,
                format_mib(limit)
            );
            lx += 150.0;
        }
        if self.series.iter().any(|s| s.baseline) {
            let _ = writeln!(
                svg,
                r##"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="#444" stroke-width="1.5" stroke-dasharray="4,3"/><text x="{}" y="{}">baseline</text>"##,
                lx + 18.0,
                lx + 22.0,
                ly + 4.0
            );
            lx += 100.0;
        }
        let _ = writeln!(
            svg,
            r##"<circle cx="{}" cy="{ly}" r="4" fill="white" stroke="#444" stroke-width="2"/><text x="{}" y="{}">peak</text>"##,
            lx + 9.0,
            lx + 22.0,
            ly + 4.0
        );
        if self.series.iter().all(|s| s.points.is_empty()) {
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">no sample was taken</text>"#,
                LEFT + PLOT_WIDTH / 2.0,
                TOP + PLOT_HEIGHT / 2.0
            );
        }
        svg.push_str("</svg>\n");
        svg
    }
}

/// `heap live peak 45.2 MiB at 1.23 s (RSS 80.1 MiB, heap live 45.2 MiB,
/// reserved 20.0 MiB, untracked 25.2 MiB)`.
fn peak_text(peak: &Peak) -> String {
    let mut text = format!(
        "{} peak {} at {}",
        peak.figure.label(),
        format_mib(peak.bytes as u64),
        format_wall_ms(peak.t_ms)
    );
    if let Some(at) = peak.aligned {
        let rss = at.rss_bytes.map_or_else(|| "-".to_string(), format_mib);
        let untracked = crate::run::untracked(at.heap_live_bytes, at.reserved_bytes)
            .map_or_else(|| "-".to_string(), format_mib_signed);
        let _ = write!(
            text,
            " (RSS {rss}, heap live {}, reserved {}, untracked {untracked})",
            format_mib_signed(at.heap_live_bytes),
            format_mib(at.reserved_bytes)
        );
    }
    text
}

/// A query's lines and peaks: from its report's timeline when it has
/// samples, else the harness's RSS polling.
fn lines(query: &QueryResult, baseline: bool) -> (Vec<Series>, Vec<Peak>) {
    let samples = query
        .report
        .as_ref()
        .map(|r| r.timeline.samples.as_slice())
        .unwrap_or_default();
    if let (Some(report), false) = (&query.report, samples.is_empty()) {
        let series = vec![
            Series {
                figure: Figure::Rss,
                baseline,
                points: samples
                    .iter()
                    .filter_map(|s| Some((s.t_ms, s.rss_bytes? as f64)))
                    .collect(),
            },
            Series {
                figure: Figure::HeapLive,
                baseline,
                points: samples
                    .iter()
                    .map(|s| (s.t_ms, s.heap_live_bytes.max(0) as f64))
                    .collect(),
            },
            Series {
                figure: Figure::Reserved,
                baseline,
                points: samples
                    .iter()
                    .map(|s| (s.t_ms, s.reserved_bytes as f64))
                    .collect(),
            },
        ];
        let peaks = &report.audit.peaks;
        let mut found = Vec::new();
        if let Some(rss) = peaks.rss.rss_bytes {
            found.push(Peak {
                figure: Figure::Rss,
                t_ms: peaks.rss.t_ms,
                bytes: rss as f64,
                aligned: Some(peaks.rss),
            });
        }
        found.push(Peak {
            figure: Figure::HeapLive,
            t_ms: peaks.heap.t_ms,
            bytes: peaks.heap.heap_live_bytes.max(0) as f64,
            aligned: Some(peaks.heap),
        });
        found.push(Peak {
            figure: Figure::Reserved,
            t_ms: peaks.reserved.t_ms,
            bytes: peaks.reserved.reserved_bytes as f64,
            aligned: Some(peaks.reserved),
        });
        return (series, found);
    }
    let points: Vec<(u64, f64)> = query
        .timeline
        .iter()
        .map(|&(t, rss)| (t, rss as f64))
        .collect();
    // The first of the highest samples.
    let peak = points
        .iter()
        .fold(None::<(u64, f64)>, |best, &p| match best {
            Some(b) if b.1 >= p.1 => Some(b),
            _ => Some(p),
        })
        .map(|(t_ms, bytes)| Peak {
            figure: Figure::Rss,
            t_ms,
            bytes,
            aligned: None,
        });
    let series = if points.is_empty() {
        Vec::new()
    } else {
        vec![Series {
            figure: Figure::Rss,
            baseline,
            points,
        }]
    };
    (series, peak.into_iter().collect())
}

/// At most two points per pixel column (`columns` columns over `0..=t_max`
/// ms): the lowest and the highest of the column, in time order, so every
/// extreme survives. Fewer points than columns are returned as they are.
pub fn downsample(points: &[(u64, f64)], t_max: f64, columns: usize) -> Vec<(u64, f64)> {
    if points.len() <= columns || columns == 0 || t_max <= 0.0 {
        return points.to_vec();
    }
    let column = |t: u64| ((t as f64 / t_max) * columns as f64).min(columns as f64 - 1.0) as usize;
    let mut out = Vec::with_capacity(2 * columns);
    /// A point and its index in `points`.
    type Indexed = (usize, (u64, f64));
    let mut flush = |low: Indexed, high: Indexed| {
        if low.0 == high.0 {
            out.push(low.1);
        } else if low.0 < high.0 {
            out.extend([low.1, high.1]);
        } else {
            out.extend([high.1, low.1]);
        }
    };
    // The current column, its lowest and its highest point.
    let mut current: Option<(usize, Indexed, Indexed)> = None;
    for (i, &p) in points.iter().enumerate() {
        let c = column(p.0);
        current = match current {
            Some((col, low, high)) if col == c => Some((
                col,
                if p.1 < low.1.1 { (i, p) } else { low },
                if p.1 > high.1.1 { (i, p) } else { high },
            )),
            Some((_, low, high)) => {
                flush(low, high);
                Some((c, (i, p), (i, p)))
            }
            None => Some((c, (i, p), (i, p))),
        };
    }
    if let Some((_, low, high)) = current {
        flush(low, high);
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::compare::tests::query;
    use crate::run::Status;
    use memledger_profiler::report::{Report, Sample};

    /// A query with a report whose timeline has `n` samples 1 ms apart: a
    /// triangle of heap bytes peaking at 40 MiB in the middle, every odd
    /// sample 1 MiB lower (so that each pixel column has a low and a high).
    pub(crate) fn sampled(id: &str, n: u64, limit: Option<u64>) -> QueryResult {
        let mut q = query(id, Status::Ok, 100 * MIB);
        let mut report = Report::new();
        let peak_t = n / 2;
        report.timeline.samples = (0..n)
            .map(|t| {
                let heap =
                    (MIB * 40).saturating_sub(t.abs_diff(peak_t) * 1000 + t % 2 * MIB) as i64;
                Sample {
                    t_ms: t,
                    rss_bytes: Some(heap as u64 + 10 * MIB),
                    heap_live_bytes: heap,
                    reserved_bytes: heap as u64 / 2,
                    untracked_bytes: heap / 2,
                    top_scopes: Vec::new(),
                }
            })
            .collect();
        let at_peak = Instant {
            t_ms: peak_t,
            rss_bytes: Some(50 * MIB),
            heap_live_bytes: 40 * MIB as i64,
            reserved_bytes: 20 * MIB,
        };
        report.audit.peaks.rss = at_peak;
        report.audit.peaks.heap = at_peak;
        report.audit.peaks.reserved = at_peak;
        q.report = Some(report);
        q.limit_bytes = limit;
        q
    }

    fn series_paths<'a>(doc: &'a roxmltree::Document) -> Vec<roxmltree::Node<'a, 'a>> {
        doc.descendants()
            .filter(|n| {
                n.has_tag_name("path")
                    && n.attribute("class")
                        .is_some_and(|c| c.split(' ').any(|w| w == "series"))
            })
            .collect()
    }

    /// The (x, y) pairs of a path's `d`.
    fn coordinates(d: &str) -> Vec<(f64, f64)> {
        d.split(['M', 'L', ' '])
            .filter(|s| !s.is_empty())
            .map(|pair| {
                let (x, y) = pair.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect()
    }

    #[test]
    fn a_long_timeline_is_one_path_per_series_and_keeps_its_peak() {
        let q = sampled("q<1>", 4096, Some(64 * MIB));
        let text = TimelinePlot::of(&q).svg("q1");
        let doc = roxmltree::Document::parse(&text).expect("valid XML");
        let paths = series_paths(&doc);
        let keys: Vec<&str> = paths
            .iter()
            .map(|p| p.attribute("data-series").unwrap())
            .collect();
        assert_eq!(keys, ["rss", "heap-live", "reserved"]);
        // The y axis runs to 80 MiB (ticks of 20 MiB above the 64 MiB limit).
        let y_of = |bytes: f64| TOP + PLOT_HEIGHT - bytes / (80.0 * MIB as f64) * PLOT_HEIGHT;
        for path in &paths {
            let points = coordinates(path.attribute("d").unwrap());
            assert!(
                points.len() <= 2 * PLOT_WIDTH as usize,
                "{} points",
                points.len()
            );
            assert!(
                points.len() > PLOT_WIDTH as usize,
                "a low and a high per column: {} points",
                points.len()
            );
            assert!(points.windows(2).all(|w| w[0].0 <= w[1].0), "time order");
        }
        let heap = coordinates(paths[1].attribute("d").unwrap());
        let top = heap.iter().map(|p| p.1).fold(f64::MAX, f64::min);
        assert!(
            (top - y_of(40.0 * MIB as f64)).abs() < 0.06,
            "the 40 MiB peak survives downsampling: {top}"
        );
        let limit = doc
            .descendants()
            .find(|n| n.attribute("class") == Some("limit"))
            .expect("a limit line");
        let limit_y: f64 = limit.attribute("y1").unwrap().parse().unwrap();
        assert!(
            (limit_y - y_of(64.0 * MIB as f64)).abs() < 0.06,
            "{limit_y}"
        );
        let peaks: Vec<&str> = doc
            .descendants()
            .filter(|n| n.attribute("class") == Some("peak"))
            .map(|n| n.attribute("data-series").unwrap())
            .collect();
        assert_eq!(peaks, ["rss", "heap-live", "reserved"]);
        let title = doc
            .descendants()
            .find(|n| n.has_tag_name("title"))
            .and_then(|n| n.text())
            .unwrap();
        assert_eq!(title, "q<1>: memory over time");
        assert!(text.contains("heap live peak 40.0 MiB at 2.05 s (RSS 50.0 MiB"));
        assert!(text.contains(r#"clip-path="url(#clip-q1)""#));
    }

    #[test]
    fn without_a_report_the_harness_rss_is_the_only_line_and_no_limit_is_drawn() {
        let mut q = query("plain", Status::Ok, MIB);
        q.report = None;
        q.timeline = vec![(0, MIB), (20, 3 * MIB), (40, 3 * MIB), (60, 2 * MIB)];
        let text = TimelinePlot::of(&q).svg("p");
        let doc = roxmltree::Document::parse(&text).unwrap();
        let paths = series_paths(&doc);
        assert_eq!(paths.len(), 1);
        assert_eq!(paths[0].attribute("data-series"), Some("rss"));
        assert_eq!(coordinates(paths[0].attribute("d").unwrap()).len(), 4);
        assert!(
            !doc.descendants()
                .any(|n| n.attribute("class") == Some("limit"))
        );
        let peak = doc
            .descendants()
            .find(|n| n.attribute("class") == Some("peak"))
            .unwrap();
        let circle = peak.children().find(|n| n.has_tag_name("circle")).unwrap();
        // The first of the two 3 MiB samples, at 20 of 60 ms on an axis to 60 ms.
        let cx: f64 = circle.attribute("cx").unwrap().parse().unwrap();
        assert!((cx - (LEFT + PLOT_WIDTH / 3.0)).abs() < 0.06, "{cx}");
    }

    #[test]
    fn a_baseline_adds_dashed_lines_under_the_current_ones() {
        let current = sampled("q1", 300, None);
        let base = sampled("q1", 600, None);
        let text = TimelinePlot::of(&current).with_baseline(&base).svg("q1");
        let doc = roxmltree::Document::parse(&text).unwrap();
        let classes: Vec<&str> = series_paths(&doc)
            .iter()
            .map(|p| p.attribute("class").unwrap())
            .collect();
        assert_eq!(classes[..3], ["series baseline"; 3]);
        assert_eq!(classes[3..], ["series"; 3]);
        // The time axis covers the longer (baseline) run: 600 ms.
        let root = doc.root_element();
        assert_eq!(root.attribute("data-t-max"), Some("600"));
    }

    #[test]
    fn downsampling_keeps_each_columns_extremes_in_time_order() {
        let points: Vec<(u64, f64)> = (0..1000u64)
            .map(|t| {
                (
                    t,
                    if t == 501 {
                        9.0
                    } else if t == 503 {
                        -9.0
                    } else {
                        0.0
                    },
                )
            })
            .collect();
        let out = downsample(&points, 1000.0, 10);
        assert_eq!(
            out.len(),
            11,
            "one per flat column, two in column 5: {out:?}"
        );
        let column_5: Vec<(u64, f64)> = out
            .iter()
            .copied()
            .filter(|p| (500..600).contains(&p.0))
            .collect();
        assert_eq!(column_5, [(501, 9.0), (503, -9.0)]);
        assert_eq!(downsample(&points[..5], 1000.0, 10), points[..5]);
    }
}
