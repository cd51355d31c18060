//! One query per DataFusion operator, each isolating it: the operator's
//! input exists before the measured window opens (in-memory TPC-H tables,
//! or Parquet files for the scan), and its output is counted and dropped
//! batch by batch, so what the window sees is the operator's own work.
//!
//! `memledger-tpch ops <name>` runs one; `mem_profile run --suite
//! datafusion-ops` runs them all. [`OpFigures`] sets the heap peak beside
//! the pool's reserved peak twice: for the whole process (heap above what
//! was live when the window opened) and for the isolated operator's own
//! scopes (see [`operators`](crate::operators)).

use std::sync::Arc;

use datafusion::common::{DataFusionError, Result};
use datafusion::physical_expr::expressions::col;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::{ExecutionPlan, Partitioning};
use datafusion::prelude::SessionContext;
use memledger_profiler::report::Report;

use crate::operators::operator_view;

/// How an op's query is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpQuery {
    /// SQL text.
    Sql(&'static str),
    /// `table` hash-repartitioned on `column` into the session's target
    /// partitions (no SQL statement plans a repartition on its own).
    HashRepartition {
        /// The input table.
        table: &'static str,
        /// The hash key.
        column: &'static str,
    },
}

/// One isolated operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    /// The name on the command line and in results (`sort`, `hash-join`).
    pub name: &'static str,
    /// The plan node names it isolates; their scopes are summed
    /// (`AggregateExec` covers the partial and the final stage).
    pub operators: &'static [&'static str],
    /// The TPC-H tables it reads.
    pub tables: &'static [&'static str],
    /// Reads the tables from Parquet files instead of memory.
    pub parquet: bool,
    /// Session settings (`SET key = value`) made before planning.
    pub settings: &'static [(&'static str, &'static str)],
    /// The query.
    pub query: OpQuery,
}

const SORT_SQL: &str = "SELECT l_orderkey, l_partkey, l_suppkey, l_quantity, l_extendedprice, \
     l_shipdate, l_comment FROM lineitem ORDER BY l_comment, l_orderkey";

const JOIN_SQL: &str = "SELECT o_orderkey, o_orderdate, o_totalprice, l_quantity, l_extendedprice \
     FROM orders JOIN lineitem ON o_orderkey = l_orderkey";

/// Every op, in the order the suite runs them.
pub const OPS: [Op; 8] = [
    Op {
        name: "sort",
        operators: &["SortExec"],
        tables: &["lineitem"],
        parquet: false,
        settings: &[],
        query: OpQuery::Sql(SORT_SQL),
    },
    Op {
        name: "aggregate",
        operators: &["AggregateExec"],
        tables: &["lineitem"],
        parquet: false,
        settings: &[],
        // Nearly one group per row: the high-cardinality case.
        query: OpQuery::Sql(
            "SELECT l_orderkey, l_partkey, SUM(l_quantity), COUNT(*) FROM lineitem \
             GROUP BY l_orderkey, l_partkey",
        ),
    },
    Op {
        name: "repartition",
        operators: &["RepartitionExec"],
        tables: &["lineitem"],
        parquet: false,
        settings: &[],
        query: OpQuery::HashRepartition {
            table: "lineitem",
            column: "l_orderkey",
        },
    },
    Op {
        name: "hash-join",
        operators: &["HashJoinExec"],
        tables: &["orders", "lineitem"],
        parquet: false,
        settings: &[],
        query: OpQuery::Sql(JOIN_SQL),
    },
    Op {
        name: "sort-merge-join",
        operators: &["SortMergeJoinExec"],
        tables: &["orders", "lineitem"],
        parquet: false,
        settings: &[("datafusion.optimizer.prefer_hash_join", "false")],
        query: OpQuery::Sql(JOIN_SQL),
    },
    Op {
        name: "window",
        operators: &["WindowAggExec", "BoundedWindowAggExec"],
        tables: &["lineitem"],
        parquet: false,
        settings: &[],
        // No ORDER BY in the window: each supplier's whole partition is the
        // frame, so the operator buffers it.
        query: OpQuery::Sql(
            "SELECT l_orderkey, l_suppkey, l_extendedprice, \
             SUM(l_extendedprice) OVER (PARTITION BY l_suppkey) FROM lineitem",
        ),
    },
    Op {
        name: "parquet-sort",
        operators: &["SortExec"],
        tables: &["lineitem"],
        parquet: true,
        settings: &[],
        query: OpQuery::Sql(SORT_SQL),
    },
    Op {
        name: "string-aggregate",
        operators: &["AggregateExec"],
        tables: &["lineitem"],
        parquet: false,
        settings: &[],
        // Few groups, each growing one long string.
        query: OpQuery::Sql(
            "SELECT l_suppkey, STRING_AGG(l_comment, ',') FROM lineitem GROUP BY l_suppkey",
        ),
    },
];

/// The op named `name`.
pub fn op(name: &str) -> Option<&'static Op> {
    OPS.iter().find(|o| o.name == name)
}

/// The names of every op, comma-separated (for messages and the suite).
pub fn names() -> String {
    OPS.iter().map(|o| o.name).collect::<Vec<_>>().join(",")
}

impl Op {
    /// Plans the op's query in `ctx` (its tables registered), its settings
    /// applied first.
    pub async fn plan(&self, ctx: &SessionContext) -> Result<Arc<dyn ExecutionPlan>> {
        for (key, value) in self.settings {
            ctx.sql(&format!("SET {key} = {value}"))
                .await?
                .collect()
                .await?;
        }
        match self.query {
            OpQuery::Sql(sql) => ctx.sql(sql).await?.create_physical_plan().await,
            OpQuery::HashRepartition { table, column } => {
                // Built by hand: the optimizer drops a repartition that no
                // operator above needs.
                let scan = ctx.table(table).await?.create_physical_plan().await?;
                let key = col(column, &scan.schema())?;
                let partitions = ctx.copied_config().target_partitions();
                Ok(Arc::new(RepartitionExec::try_new(
                    scan,
                    Partitioning::Hash(vec![key], partitions),
                )?))
            }
        }
    }
}

/// An op's heap peak beside the pool's reserved peak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpFigures {
    /// The process's heap peak (requested bytes) above what was live when
    /// the window opened: the operator's input is not in it.
    pub heap_peak_bytes: i64,
    /// The pool's reserved peak for the whole process.
    pub reserved_peak_bytes: u64,
    /// Sum over the isolated operator's scopes of each one's live peak.
    pub operator_peak_live_bytes: i64,
    /// Sum over the isolated operator's scopes of each one's reserved peak.
    pub operator_peak_reserved_bytes: u64,
}

fn ratio(num: i64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

impl OpFigures {
    /// The figures of `report` for `op`, `base_live_bytes` being the heap
    /// live when the window opened.
    pub fn new(op: &Op, report: &Report, base_live_bytes: i64) -> Result<OpFigures> {
        let heap_peak_bytes = report
            .heap
            .peak_requested_bytes
            .checked_sub(base_live_bytes)
            .ok_or_else(|| DataFusionError::Internal("heap peak out of range".to_string()))?;
        let mut figures = OpFigures {
            heap_peak_bytes,
            reserved_peak_bytes: report.audit.reserved_peak_bytes,
            ..OpFigures::default()
        };
        for row in operator_view(report) {
            let base = row.operator.split('#').next().unwrap_or_default();
            if op.operators.contains(&base) {
                figures.operator_peak_live_bytes += row.peak_live;
                figures.operator_peak_reserved_bytes += row.peak_reserved;
            }
        }
        Ok(figures)
    }

    /// Process heap peak over reserved peak, if anything was reserved.
    pub fn process_ratio(&self) -> Option<f64> {
        ratio(self.heap_peak_bytes, self.reserved_peak_bytes)
    }

    /// The operator's peak live over its peak reserved, if it reserved.
    pub fn operator_ratio(&self) -> Option<f64> {
        ratio(
            self.operator_peak_live_bytes,
            self.operator_peak_reserved_bytes,
        )
    }

    /// One line: `op heap_peak reserved_peak ratio operator_peak_live
    /// operator_peak_reserved ratio` (MiB, ratios with two decimals,
    /// `-` where nothing was reserved).
    pub fn line(&self, name: &str) -> String {
        let mib = |b: i64| format!("{:.1}", b as f64 / (1u64 << 20) as f64);
        let r = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.2}x"));
        format!(
            "{name}: heap peak {} MiB, reserved peak {} MiB, {}; operator peak live {} MiB, \
             operator peak reserved {} MiB, {}",
            mib(self.heap_peak_bytes),
            mib(self.reserved_peak_bytes as i64),
            r(self.process_ratio()),
            mib(self.operator_peak_live_bytes),
            mib(self.operator_peak_reserved_bytes as i64),
            r(self.operator_ratio()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_is_found_by_name_and_names_are_unique() {
        for o in &OPS {
            assert_eq!(op(o.name), Some(o));
            assert!(
                !o.operators.is_empty() && !o.tables.is_empty(),
                "{}",
                o.name
            );
        }
        assert_eq!(names().split(',').count(), OPS.len());
        assert!(op("nope").is_none());
    }

    #[test]
    fn ratios_are_absent_without_reservations() {
        let f = OpFigures {
            heap_peak_bytes: 300,
            reserved_peak_bytes: 100,
            operator_peak_live_bytes: 50,
            operator_peak_reserved_bytes: 0,
        };
        assert_eq!(f.process_ratio(), Some(3.0));
        assert_eq!(f.operator_ratio(), None);
        assert!(f.line("x").contains("3.00x"), "{}", f.line("x"));
    }
}
