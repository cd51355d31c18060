//! A sort query and an aggregation query at a tiny TPC-H scale, run through
//! the instrumented plan: their allocations are charged to the operators'
//! scopes, not to `unscoped`, and their reservations are tied to them.

use std::sync::Arc;

use datafusion::physical_plan::collect;
use memledger_alloc::{MiMalloc, Tracked, scopes};
use memledger_datafusion::{AuditedPool, instrument_plan, tpch};

mod common;

#[global_allocator]
static GLOBAL: Tracked<MiMalloc> = Tracked::new(MiMalloc);

fn run(sql: &str) -> (usize, Arc<AuditedPool>) {
    let (ctx, pool) = common::audited_context(2, 1024);
    tpch::register_tables(&ctx, 0.01, 2, 1024).unwrap();
    let rt = common::runtime(2);
    let rows = rt.block_on(async {
        let plan = ctx
            .sql(sql)
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let plan = instrument_plan(plan).unwrap();
        let batches = collect(plan, ctx.task_ctx()).await.unwrap();
        batches.iter().map(|b| b.num_rows()).sum()
    });
    (rows, pool)
}

/// Allocations (count, bytes) of every scope whose name starts with `prefix`.
fn charged(prefix: &str) -> (u64, u64) {
    scopes()
        .iter()
        .filter(|s| s.name.starts_with(prefix))
        .fold((0, 0), |(n, b), s| {
            (n + s.allocations, b + s.total_requested)
        })
}

#[test]
fn sort_and_aggregate_operators_are_charged_their_allocations() {
    let (rows, pool) = run("select l_orderkey, l_comment from lineitem order by l_comment desc");
    assert!(
        rows > 50_000,
        "lineitem at scale 0.01 has about 60 000 rows, got {rows}"
    );
    let (allocs, bytes) = charged("SortExec[");
    assert!(
        allocs > 0 && bytes > 1 << 20,
        "SortExec scopes saw {allocs} allocations, {bytes} bytes"
    );
    let sorters: Vec<_> = pool
        .consumers()
        .into_iter()
        .filter(|c| c.name.starts_with("ExternalSorter"))
        .collect();
    assert!(!sorters.is_empty());
    assert!(
        sorters
            .iter()
            .all(|c| memledger_alloc::Scope::name(c.scope).starts_with("SortExec")),
        "sort reservations are tied to the SortExec scope: {sorters:?}"
    );

    let (rows, _) =
        run("select l_suppkey, count(*), sum(l_quantity) from lineitem group by l_suppkey");
    assert_eq!(rows, 100, "scale 0.01 has 100 suppliers");
    let (allocs, bytes) = charged("AggregateExec");
    assert!(
        allocs > 0 && bytes > 0,
        "AggregateExec scopes saw {allocs} allocations"
    );
}
