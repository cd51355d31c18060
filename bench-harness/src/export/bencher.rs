//! Bencher Metric Format: a run's figures as JSON for Bencher and other
//! dashboards that take it.
//!
//! ```json
//! { "sort": { "peak_rss": { "value": 52428800 }, "heap_peak": { "value": 31457280 } } }
//! ```
//!
//! One entry per query that ended `ok` (a failed query's figures measure
//! something else, and would plot as a fall); one measure per
//! [`Metric`], named by its key, so that a
//! dashboard shows the figures `mem_profile compare` judges, under the same
//! names. A figure nobody measured is left out, never written as 0.

use serde_json::{Map, Number, Value};

use crate::compare::Metric;
use crate::run::{Run, Status};

/// The run in Bencher Metric Format, pretty JSON, newline-terminated.
pub fn render(run: &Run) -> String {
    let mut queries = Map::new();
    for query in run.queries.iter().filter(|q| q.status == Status::Ok) {
        let mut measures = Map::new();
        for metric in Metric::ALL {
            if let Some(value) = metric.value(query).and_then(number) {
                let mut measure = Map::new();
                measure.insert("value".to_string(), Value::Number(value));
                measures.insert(metric.key().to_string(), Value::Object(measure));
            }
        }
        queries.insert(query.id.clone(), Value::Object(measures));
    }
    // A tree of plain values: serializing cannot fail.
    let mut text = serde_json::to_string_pretty(&Value::Object(queries)).unwrap_or_default();
    text.push('\n');
    text
}

/// A JSON number for a figure (every figure fits an `i64` or a `u64`).
fn number(value: i128) -> Option<Number> {
    match i64::try_from(value) {
        Ok(v) => Some(Number::from(v)),
        Err(_) => u64::try_from(value).ok().map(Number::from),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::tests::{query, run};
    use crate::units::MIB;

    #[test]
    fn ok_queries_with_their_measured_figures_only() {
        let mut bare = query("q2", Status::Ok, 3 * MIB);
        bare.figures.heap_peak_bytes = None;
        bare.figures.peak_rss_bytes = Some(u64::MAX);
        let r = run(vec![
            query("q1", Status::Ok, 100 * MIB),
            bare,
            query("q3", Status::Failed, 5 * MIB),
        ]);
        let json: Value = serde_json::from_str(&render(&r)).unwrap();
        assert_eq!(json["q1"]["peak_rss"]["value"], 100 * MIB);
        assert_eq!(json["q1"]["heap_peak"]["value"], 50 * MIB);
        assert_eq!(json["q1"]["reserved_peak"]["value"], 25 * MIB);
        assert_eq!(json["q1"]["untracked_peak"]["value"], 25 * MIB);
        assert_eq!(json["q1"]["allocations"]["value"], 10_000);
        assert!(
            json["q1"].get("heap_growth").is_none(),
            "not measured: absent"
        );
        assert!(
            json["q2"].get("heap_peak").is_none(),
            "not measured: absent"
        );
        assert_eq!(json["q2"]["peak_rss"]["value"], u64::MAX);
        assert!(json.get("q3").is_none(), "failed queries are left out");
    }
}
