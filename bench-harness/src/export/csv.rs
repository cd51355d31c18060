//! CSV: one row per query, with a header, for spreadsheets and dashboards.
//!
//! The columns are the run JSON's keys (`peak_rss_bytes`, ...), figures in
//! bytes; a figure nobody measured is an empty cell, never 0. Quoting is
//! left to the `csv` crate (an error text may hold commas, quotes and
//! newlines).

use crate::run::{QueryResult, Run};

/// The header, in column order.
pub const COLUMNS: [&str; 19] = [
    "id",
    "status",
    "exit_code",
    "signal",
    "wall_ms",
    "peak_rss_bytes",
    "heap_peak_bytes",
    "reserved_peak_bytes",
    "limit_bytes",
    "allocations",
    "untracked_at_heap_peak_bytes",
    "untracked_peak_bytes",
    "window_start_rss_bytes",
    "window_start_heap_live_bytes",
    "peak_rss_growth_bytes",
    "heap_growth_bytes",
    "peak_rss_growth_per_reserved",
    "heap_growth_per_reserved",
    "error",
];

/// The run as CSV.
pub fn render(run: &Run) -> Result<String, String> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let failed = |e: csv::Error| format!("cannot write CSV: {e}");
    writer.write_record(COLUMNS).map_err(failed)?;
    for query in &run.queries {
        writer.write_record(row(query)).map_err(failed)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| format!("cannot write CSV: {e}"))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// One query's cells, in [`COLUMNS`] order.
fn row(query: &QueryResult) -> [String; 19] {
    fn cell<T: ToString>(value: Option<T>) -> String {
        value.map_or_else(String::new, |v| v.to_string())
    }
    let f = &query.figures;
    [
        query.id.clone(),
        query.status.to_string(),
        cell(query.exit_code),
        cell(query.signal),
        f.wall_ms.to_string(),
        cell(f.peak_rss_bytes),
        cell(f.heap_peak_bytes),
        cell(f.reserved_peak_bytes),
        cell(query.limit_bytes),
        cell(f.allocations),
        cell(f.untracked_at_heap_peak_bytes),
        cell(f.untracked_peak_bytes),
        cell(f.window_start_rss_bytes),
        cell(f.window_start_heap_live_bytes),
        cell(f.peak_rss_growth_bytes),
        cell(f.heap_growth_bytes),
        cell(query.peak_rss_growth_per_reserved),
        cell(query.heap_growth_per_reserved),
        cell(query.error.as_deref()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::tests::{query, run};
    use crate::run::Status;
    use crate::units::MIB;

    #[test]
    fn one_quoted_row_per_query() {
        let mut failed = query("q2", Status::Failed, 3 * MIB);
        failed.error = Some("pool said \"no\", twice\nand spilled".to_string());
        failed.figures.heap_peak_bytes = None;
        let r = run(vec![query("q1", Status::Ok, 100 * MIB), failed]);
        let text = render(&r).unwrap();
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(header, COLUMNS);
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(&rows[0][0], "q1");
        assert_eq!(&rows[0][5], (100 * MIB).to_string());
        assert_eq!(&rows[0][18], "", "no error: empty");
        assert_eq!(&rows[1][1], "failed");
        assert_eq!(&rows[1][6], "", "not measured: empty, not 0");
        assert_eq!(&rows[1][18], "pool said \"no\", twice\nand spilled");
    }
}
