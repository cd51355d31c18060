//! A readable text summary of a report, for people.

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

fn instant(name: &str, i: &Instant) -> String {
    format!(
        "  at the {name:<8} peak (t={} ms): RSS {}, heap {}, reserved {}, untracked {}\n",
        i.t_ms,
        human(i.rss_bytes as i64),
        human(i.heap_live_bytes),
        human(i.reserved_bytes as i64),
        human(i.untracked_bytes()),
    )
}

/// The report as a few lines of text: peaks, the time-aligned view, the
/// drift peak, and the consumers whose scopes allocated most beyond what they
/// reserved.
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
        human(r.process.peak_rss_bytes as i64),
        human(r.heap.peak_requested_bytes),
        human(r.heap.peak_usable_bytes),
        human(r.audit.reserved_peak_bytes as i64),
        ratio(r.heap.peak_requested_bytes, r.audit.reserved_peak_bytes),
        r.heap.allocations,
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
        let _ = writeln!(
            out,
            "  scopes with reservations, by heap peak beyond reserved peak:"
        );
        for s in scopes.iter().take(8) {
            let _ = writeln!(
                out,
                "    {:<28} heap peak {:>10}  reserved peak {:>10}  untracked {:>10}  ({})",
                s.name,
                human(s.peak_requested_bytes),
                human(s.reserved_peak_bytes as i64),
                human(s.untracked_peak_bytes),
                ratio(s.peak_requested_bytes, s.reserved_peak_bytes),
            );
        }
    }
    out
}
