//! The held view: a batch is charged to the operator that received it, so a
//! sort that buffers all of lineitem (read from Parquet) holds its input;
//! in the allocated view those bytes stay with the scan. Batches an
//! in-memory table keeps are never moved into the plan.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use datafusion::arrow::array::{Array, ArrayData};
use datafusion::physical_plan::collect;
use datafusion::prelude::SessionContext;
use memledger_alloc::{MiMalloc, Owner, Scope, Tracked};
use memledger_datafusion::{
    OperatorRow, View, install_scope_tracer, instrument_plan_with, operator_view, parquet_data,
    tpch,
};
use memledger_profiler::Session;

mod common;

#[global_allocator]
static GLOBAL: Tracked<MiMalloc, Owner> = Tracked::new(MiMalloc);

/// The tests share operator scope names (`SortExec[0]`): one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const SORT_ALL: &str = "select * from lineitem order by l_shipdate, l_orderkey, l_linenumber";

/// What one run of a query showed.
struct Run {
    operators: Vec<OperatorRow>,
    rows: usize,
    /// Heap growth from the window's start to the process's heap peak.
    heap_growth: i64,
}

fn context(dir: &Path) -> (SessionContext, tokio::runtime::Runtime) {
    install_scope_tracer();
    let (ctx, _) = common::audited_context(2, 4096);
    let rt = common::runtime(2);
    rt.block_on(parquet_data::register_tables(&ctx, dir))
        .unwrap();
    (ctx, rt)
}

/// Runs `sql` on `dir`'s Parquet tables in `view`.
fn run(dir: &Path, sql: &str, view: View) -> Run {
    let (ctx, rt) = context(dir);
    memledger_alloc::reset_peak();
    let session = Session::manual(None, None);
    let rows = rt.block_on(async {
        let plan = ctx.sql(sql).await?.create_physical_plan().await?;
        let plan = instrument_plan_with(plan, view)?;
        let batches = collect(plan, ctx.task_ctx()).await?;
        Ok::<_, datafusion::common::DataFusionError>(
            batches.iter().map(|b| b.num_rows()).sum::<usize>(),
        )
    });
    let report = session.finish().unwrap();
    let start = report.audit.window_start.as_ref().unwrap();
    Run {
        operators: operator_view(&report),
        rows: rows.unwrap(),
        heap_growth: report.heap.peak_requested_bytes - start.heap_live_bytes.unwrap(),
    }
}

/// The bytes of `table`'s batches as DataFusion scans them, from Arrow's
/// own buffer capacities (a buffer shared by several batches counted once):
/// a measure that does not come from memledger.
fn table_bytes(dir: &Path, table: &str) -> usize {
    fn walk(data: &ArrayData, seen: &mut HashMap<usize, usize>) {
        let nulls = data.nulls().map(|n| n.buffer());
        for buffer in data.buffers().iter().chain(nulls) {
            seen.insert(buffer.data_ptr().as_ptr() as usize, buffer.capacity());
        }
        for child in data.child_data() {
            walk(child, seen);
        }
    }
    let (ctx, rt) = context(dir);
    let batches = rt
        .block_on(async {
            ctx.sql(&format!("select * from {table}"))
                .await?
                .collect()
                .await
        })
        .unwrap();
    let mut seen = HashMap::new();
    for batch in &batches {
        for column in batch.columns() {
            walk(&column.to_data(), &mut seen);
        }
    }
    seen.values().sum()
}

fn row<'a>(rows: &'a [OperatorRow], operator: &str) -> &'a OperatorRow {
    rows.iter()
        .find(|r| r.operator == operator)
        .unwrap_or_else(|| panic!("no {operator} in {rows:#?}"))
}

fn mib(bytes: impl Into<i64>) -> String {
    format!("{:.1} MiB", bytes.into() as f64 / 1048576.0)
}

#[test]
fn a_sort_of_all_lineitem_holds_its_input_in_the_held_view() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("tpch");
    parquet_data::write_tables(&dir, 0.02, 2, 2).unwrap();
    let input = table_bytes(&dir, "lineitem") as i64;

    let held = run(&dir, SORT_ALL, View::Held);
    assert!(
        held.rows > 100_000,
        "lineitem at scale 0.02: {} rows",
        held.rows
    );
    let sort = row(&held.operators, "SortExec");
    let figures = format!(
        "held view: SortExec holds {} at its peaks against {} reserved; lineitem's batches \
         are {}; the process's heap grew by {} at its peak",
        mib(sort.peak_live),
        mib(sort.peak_reserved as i64),
        mib(input),
        mib(held.heap_growth)
    );
    eprintln!("{figures}");
    // A sort that buffers its whole input holds about the input's bytes
    // (fewer when it compacts string views; more while it sorts a copy).
    assert!(
        sort.peak_live as f64 >= 0.5 * input as f64 && sort.peak_live as f64 <= 2.0 * input as f64,
        "{figures}"
    );
    // Nothing is charged twice: the sort cannot hold more than the process
    // grew by.
    assert!(sort.peak_live <= held.heap_growth, "{figures}");
    // Its reservation covers what it holds.
    assert!(sort.peak_reserved as i64 >= sort.peak_live, "{figures}");

    // The allocated view of the same query leaves the buffered batches with
    // the scan that decoded them.
    let allocated = run(&dir, SORT_ALL, View::Allocated);
    let scan = row(&allocated.operators, "DataSourceExec");
    let held_scan = row(&held.operators, "DataSourceExec");
    eprintln!(
        "allocated view: SortExec {}, DataSourceExec {}; held view: DataSourceExec {}",
        mib(row(&allocated.operators, "SortExec").peak_live),
        mib(scan.peak_live),
        mib(held_scan.peak_live)
    );
    assert!(
        scan.peak_live as f64 >= 0.5 * input as f64 && scan.peak_live > 2 * held_scan.peak_live,
        "allocated view: the scan's peak {}, held view: {}; input {}",
        mib(scan.peak_live),
        mib(held_scan.peak_live),
        mib(input)
    );
}

#[test]
fn an_in_memory_table_keeps_its_batches_in_the_held_view() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (ctx, _) = common::audited_context(2, 4096);
    let tables = Scope::new("held-test-tables");
    tables
        .in_scope(|| tpch::register_tables(&ctx, 0.01, 2, 4096))
        .unwrap();
    let before = tables.stats().live_requested;
    let rt = common::runtime(2);
    let rows = rt.block_on(async {
        let plan = ctx.sql(SORT_ALL).await?.create_physical_plan().await?;
        // The sort buffers the table's own batches (no scan copy): while it
        // runs they are the table's, and stay so.
        let plan = instrument_plan_with(plan, View::Held)?;
        let batches = collect(plan, ctx.task_ctx()).await?;
        Ok::<_, datafusion::common::DataFusionError>(
            batches.iter().map(|b| b.num_rows()).sum::<usize>(),
        )
    });
    assert!(rows.unwrap() > 50_000);
    assert!(before > 4 << 20, "the tables hold {before} bytes");
    assert_eq!(
        tables.stats().live_requested,
        before,
        "no batch of the table was moved into the plan"
    );
}
