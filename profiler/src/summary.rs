//! A readable text summary of a report, for people: a few lines, human
//! units, the words of the report (reserved, untracked, ...).

use std::fmt::Write as _;

use crate::pool::human;
use crate::report::{Instant, Report};

fn ratio(a: i64, b: u64) -> String {
    if b == 0 {
        "-".to_string()
    } else {
        format!("{:.1}x", a as f64 / b as f64)
    }
}

/// Human bytes, or `-` for a figure that was not measured.
fn measured(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "-".to_string(), |b| human(b as i64))
}

fn instant(name: &str, i: &Instant) -> String {
    format!(
        "  at the {name:<8} peak (t={} ms): RSS {}, heap {}, reserved {}, untracked {}\n",
        i.t_ms,
        measured(i.rss_bytes),
        human(i.heap_live_bytes),
        human(i.reserved_bytes as i64),
        human(i.untracked_bytes()),
    )
}

/// The report as a few lines of text: peaks, the time-aligned view, the
/// drift peak, the scopes that allocated most beyond what they reserved
/// (over the run and at the heap peak), scope names that found the scope
/// table full, refusals and spills, and external bytes. Every line ends
/// with `\n`.
pub fn summary(r: &Report) -> String {
    let mut out = String::new();
    let label = r.label.as_deref().unwrap_or("run");
    let _ = write!(
        out,
        "memledger report: {label}, {} ms, attribution {}",
        r.wall_ms, r.attribution
    );
    if let Some(pool) = &r.pool {
        let _ = write!(out, ", pool {pool}");
    }
    if let Some(limit) = r.memory_limit_bytes {
        let _ = write!(out, " (limit {})", human(limit as i64));
    }
    out.push('\n');
    if let Some(e) = &r.error {
        let _ = writeln!(out, "  error: {e}");
    }
    let _ = writeln!(
        out,
        "  peak RSS {} | heap peak {} requested, {} usable | reserved peak {} | heap/reserved {} | {} allocations",
        measured(r.process.peak_rss_bytes),
        human(r.heap.peak_requested_bytes),
        human(r.heap.peak_usable_bytes),
        human(r.audit.reserved_peak_bytes as i64),
        ratio(r.heap.peak_requested_bytes, r.audit.reserved_peak_bytes),
        r.heap.allocations,
    );
    let _ = writeln!(
        out,
        "  time-aligned (sampled every {} ms; the peaks above are exact):",
        r.timeline.interval_ms
    );
    out.push_str(&instant("RSS", &r.audit.peaks.rss));
    out.push_str(&instant("heap", &r.audit.peaks.heap));
    out.push_str(&instant("reserved", &r.audit.peaks.reserved));
    let d = &r.audit.drift_peak;
    let _ = writeln!(
        out,
        "  drift peak: {} untracked at t={} ms (heap {}, reserved {}; last reservation change: {})",
        human(d.untracked_bytes),
        d.t_ms,
        human(d.heap_live_bytes),
        human(d.reserved_bytes as i64),
        d.consumer.as_deref().unwrap_or("none"),
    );
    let mut scopes: Vec<_> = r
        .scopes
        .iter()
        .filter(|s| s.reserved_peak_bytes > 0)
        .collect();
    scopes.sort_by_key(|s| std::cmp::Reverse(s.untracked_peak_bytes));
    if !scopes.is_empty() {
        let _ = writeln!(out, "  scopes with reservations, by untracked peak:");
        for s in scopes.iter().take(8) {
            let _ = writeln!(
                out,
                "    {:<28} heap peak {:>10}  reserved peak {:>10}  untracked peak {:>10}  (heap/reserved {})",
                s.name,
                human(s.peak_requested_bytes),
                human(s.reserved_peak_bytes as i64),
                human(s.untracked_peak_bytes),
                ratio(s.peak_requested_bytes, s.reserved_peak_bytes),
            );
        }
    }
    // Which code held the heap at its sampled peak, against its reservations.
    let mut at_peak: Vec<_> = r.audit.scopes_at_heap_peak.iter().collect();
    at_peak.sort_by_key(|s| std::cmp::Reverse(s.live_requested_bytes - s.reserved_bytes as i64));
    if !at_peak.is_empty() {
        let _ = writeln!(
            out,
            "  at the heap peak (t={} ms), per scope, by untracked:",
            r.audit.peaks.heap.t_ms
        );
        for s in at_peak.iter().take(8) {
            let _ = writeln!(
                out,
                "    {:<28} live {:>10}  reserved {:>10}  untracked {:>10}",
                s.scope,
                human(s.live_requested_bytes),
                human(s.reserved_bytes as i64),
                human(s.live_requested_bytes - s.reserved_bytes as i64),
            );
        }
    }
    if r.overflowed_scope_names > 0 {
        let _ = writeln!(
            out,
            "  scope table full: {} scope names were charged to `overflow`",
            r.overflowed_scope_names
        );
    }
    let busy: Vec<_> = r
        .consumers
        .iter()
        .filter(|c| c.refusals + c.spills > 0)
        .collect();
    if !busy.is_empty() {
        let _ = write!(out, "  refusals and spills:");
        for (i, c) in busy.iter().take(8).enumerate() {
            let sep = if i == 0 { " " } else { "; " };
            let _ = write!(
                out,
                "{sep}{} refused {}, spilled {}",
                c.name, c.refusals, c.spills
            );
        }
        out.push('\n');
    }
    for e in &r.external {
        let _ = writeln!(
            out,
            "  external (outside the heap): {} {} now, {} peak",
            e.scope,
            human(e.bytes as i64),
            human(e.peak_bytes as i64)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{ConsumerReport, ExternalReport, ScopeAtPeak, ScopeReport};

    #[test]
    fn the_summary_names_the_under_reserving_scope_and_the_refusals() {
        let mut r = Report::new();
        r.label = Some("q7".into());
        r.timeline.interval_ms = 10;
        r.heap.peak_requested_bytes = 12 << 20;
        r.audit.reserved_peak_bytes = 3 << 20;
        r.scopes = vec![ScopeReport {
            name: "HashJoin[0]".into(),
            peak_requested_bytes: 10 << 20,
            reserved_peak_bytes: 2 << 20,
            untracked_peak_bytes: 8 << 20,
            ..ScopeReport::default()
        }];
        r.audit.peaks.heap.t_ms = 70;
        r.audit.scopes_at_heap_peak = vec![
            ScopeAtPeak {
                scope: "Sort[1]".into(),
                live_requested_bytes: 1 << 20,
                reserved_bytes: 2 << 20,
            },
            ScopeAtPeak {
                scope: "HashJoin[0]".into(),
                live_requested_bytes: 9 << 20,
                reserved_bytes: 2 << 20,
            },
        ];
        r.consumers = vec![ConsumerReport {
            name: "HashJoin[0]".into(),
            refusals: 2,
            spills: 1,
            ..ConsumerReport::default()
        }];
        r.external = vec![ExternalReport {
            scope: "Parquet[0]".into(),
            bytes: 1024,
            peak_bytes: 4 << 20,
        }];
        r.overflowed_scope_names = 3;
        let text = summary(&r);
        assert!(
            text.contains("scope table full: 3 scope names were charged to `overflow`"),
            "{text}"
        );
        assert!(text.starts_with("memledger report: q7, "), "{text}");
        assert!(text.contains("heap/reserved 4.0x"), "{text}");
        assert!(text.contains("sampled every 10 ms"), "{text}");
        assert!(
            text.contains("untracked peak    8.0 MiB  (heap/reserved 5.0x)"),
            "{text}"
        );
        // The under-reserving scope first, the over-reserving one after it.
        let join = text.find("HashJoin[0]                  live    9.0 MiB  reserved    2.0 MiB  untracked    7.0 MiB");
        let sort = text.find("Sort[1]                      live    1.0 MiB  reserved    2.0 MiB  untracked   -1.0 MiB");
        assert!(
            text.contains("at the heap peak (t=70 ms), per scope"),
            "{text}"
        );
        assert!(join.is_some() && sort.is_some() && join < sort, "{text}");
        assert!(text.contains("HashJoin[0] refused 2, spilled 1"), "{text}");
        assert!(
            text.contains("Parquet[0] 1.0 KiB now, 4.0 MiB peak"),
            "{text}"
        );
        assert!(text.ends_with('\n'));
    }
}
