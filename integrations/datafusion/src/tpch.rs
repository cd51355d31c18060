//! TPC-H: tables generated in memory at a scale factor, and the 22 queries.
//!
//! The tables come from `tpchgen`/`tpchgen-arrow`, generated in `partitions`
//! parts (one per DataFusion partition) and registered as in-memory tables,
//! so no file and no download is involved. The query text is in
//! `queries/q1.sql` … `queries/q22.sql`, compiled into the crate.

use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatchReader;
use datafusion::catalog::MemTable;
use datafusion::common::{DataFusionError, Result};
use datafusion::prelude::SessionContext;
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator,
    PartSuppGenerator, RegionGenerator, SupplierGenerator,
};
use tpchgen_arrow::{
    CustomerArrow, LineItemArrow, NationArrow, OrderArrow, PartArrow, PartSuppArrow, RegionArrow,
    SupplierArrow,
};

/// The TPC-H table names.
pub const TABLES: [&str; 8] = [
    "lineitem", "orders", "customer", "part", "partsupp", "supplier", "nation", "region",
];

/// Number of TPC-H queries.
pub const QUERY_COUNT: usize = 22;

const QUERIES: [&str; QUERY_COUNT] = [
    include_str!("../queries/q1.sql"),
    include_str!("../queries/q2.sql"),
    include_str!("../queries/q3.sql"),
    include_str!("../queries/q4.sql"),
    include_str!("../queries/q5.sql"),
    include_str!("../queries/q6.sql"),
    include_str!("../queries/q7.sql"),
    include_str!("../queries/q8.sql"),
    include_str!("../queries/q9.sql"),
    include_str!("../queries/q10.sql"),
    include_str!("../queries/q11.sql"),
    include_str!("../queries/q12.sql"),
    include_str!("../queries/q13.sql"),
    include_str!("../queries/q14.sql"),
    include_str!("../queries/q15.sql"),
    include_str!("../queries/q16.sql"),
    include_str!("../queries/q17.sql"),
    include_str!("../queries/q18.sql"),
    include_str!("../queries/q19.sql"),
    include_str!("../queries/q20.sql"),
    include_str!("../queries/q21.sql"),
    include_str!("../queries/q22.sql"),
];

/// The SQL of query `n` (1-based), or `None` outside 1..=22.
pub fn query(n: usize) -> Option<&'static str> {
    n.checked_sub(1).and_then(|i| QUERIES.get(i)).copied()
}

/// Parses `"3"`, `"q3"` or `"Q03"` into a query number in 1..=22.
pub fn parse_query(text: &str) -> Option<usize> {
    let digits = text.trim().trim_start_matches(['q', 'Q']);
    let n: usize = digits.parse().ok()?;
    (1..=QUERY_COUNT).contains(&n).then_some(n)
}

/// The generators of table `name` at `scale`, one per part: `parts` parts
/// for the six scaled tables, one for `nation` and `region` (tiny and fixed).
///
/// Each reader yields batches of `batch_size` rows; together they yield the
/// whole table, each row once.
pub fn readers(
    name: &str,
    scale: f64,
    parts: usize,
    batch_size: usize,
) -> Result<Vec<Box<dyn RecordBatchReader + Send>>> {
    fn boxed<R: RecordBatchReader + Send + 'static>(r: R) -> Box<dyn RecordBatchReader + Send> {
        Box::new(r)
    }
    let n = i32::try_from(parts.max(1))
        .map_err(|_| DataFusionError::Plan(format!("too many parts: {parts}")))?;
    let range = 1..=n;
    let b = batch_size;
    Ok(match name {
        "lineitem" => range
            .map(|p| {
                boxed(LineItemArrow::new(LineItemGenerator::new(scale, p, n)).with_batch_size(b))
            })
            .collect(),
        "orders" => range
            .map(|p| boxed(OrderArrow::new(OrderGenerator::new(scale, p, n)).with_batch_size(b)))
            .collect(),
        "customer" => range
            .map(|p| {
                boxed(CustomerArrow::new(CustomerGenerator::new(scale, p, n)).with_batch_size(b))
            })
            .collect(),
        "part" => range
            .map(|p| boxed(PartArrow::new(PartGenerator::new(scale, p, n)).with_batch_size(b)))
            .collect(),
        "partsupp" => range
            .map(|p| {
                boxed(PartSuppArrow::new(PartSuppGenerator::new(scale, p, n)).with_batch_size(b))
            })
            .collect(),
        "supplier" => range
            .map(|p| {
                boxed(SupplierArrow::new(SupplierGenerator::new(scale, p, n)).with_batch_size(b))
            })
            .collect(),
        "nation" => vec![boxed(
            NationArrow::new(NationGenerator::new(scale, 1, 1)).with_batch_size(b),
        )],
        "region" => vec![boxed(
            RegionArrow::new(RegionGenerator::new(scale, 1, 1)).with_batch_size(b),
        )],
        other => {
            return Err(DataFusionError::Plan(format!(
                "unknown TPC-H table `{other}`"
            )));
        }
    })
}

/// Generates one TPC-H table at `scale` in `parts` partitions, in memory.
pub fn generate(name: &str, scale: f64, parts: usize, batch_size: usize) -> Result<Arc<MemTable>> {
    let readers = readers(name, scale, parts, batch_size)?;
    let schema = match readers.first() {
        Some(r) => r.schema(),
        None => return Err(DataFusionError::Plan(format!("no parts for `{name}`"))),
    };
    let partitions = readers
        .into_iter()
        .map(|r| r.collect::<std::result::Result<Vec<_>, _>>())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| DataFusionError::ArrowError(Box::new(e), None))?;
    Ok(Arc::new(MemTable::try_new(schema, partitions)?))
}

/// Generates every table and registers it in `ctx`.
pub fn register_tables(
    ctx: &SessionContext,
    scale: f64,
    parts: usize,
    batch_size: usize,
) -> Result<()> {
    for name in TABLES {
        ctx.register_table(name, generate(name, scale, parts, batch_size)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_numbers_parse_and_every_query_has_text() {
        assert_eq!(parse_query("q3"), Some(3));
        assert_eq!(parse_query("Q22"), Some(22));
        assert_eq!(parse_query("7"), Some(7));
        assert_eq!(parse_query("0"), None);
        assert_eq!(parse_query("23"), None);
        assert_eq!(parse_query("x"), None);
        for n in 1..=QUERY_COUNT {
            let sql = query(n).unwrap().to_lowercase();
            assert!(sql.contains("select"), "q{n} has no select");
        }
        assert!(query(23).is_none());
    }
}
