//! Tasks DataFusion spawns run in the scope of the operator that spawned
//! them once `install_scope_tracer` has been called.

use datafusion::common::runtime::SpawnedTask;
use datafusion::physical_plan::collect;
use memledger_alloc::{MiMalloc, Scope, Tracked, scopes};
use memledger_datafusion::{install_scope_tracer, instrument_plan, tpch};

mod common;

#[global_allocator]
static GLOBAL: Tracked<MiMalloc> = Tracked::new(MiMalloc);

const MIB: u64 = 1 << 20;

fn runtime() -> tokio::runtime::Runtime {
    common::runtime(4)
}

/// Allocates and frees `bytes` (kept from being optimised away).
fn churn(bytes: usize) -> usize {
    let v: Vec<u8> = Vec::with_capacity(bytes);
    std::hint::black_box(&v);
    v.capacity()
}

#[test]
fn spawned_futures_and_blocking_closures_run_in_the_spawning_scope() {
    assert!(install_scope_tracer());
    assert!(install_scope_tracer(), "installing twice keeps it in place");
    let rt = runtime();
    let traced = Scope::new("spawner");
    let blocking = Scope::new("blocking-spawner");
    let untraced = Scope::new("tokio-spawner");
    rt.block_on(async {
        let task = traced.in_scope(|| SpawnedTask::spawn(async { churn(MIB as usize) }));
        assert_eq!(task.join().await.unwrap(), MIB as usize);
        let task = blocking.in_scope(|| SpawnedTask::spawn_blocking(|| churn(MIB as usize)));
        assert_eq!(task.join().await.unwrap(), MIB as usize);
        // A plain tokio task does not pass through DataFusion's hook.
        let task = untraced.in_scope(|| tokio::spawn(async { churn(MIB as usize) }));
        assert_eq!(task.await.unwrap(), MIB as usize);
    });
    assert!(
        traced.stats().total_requested >= MIB,
        "{:?}",
        traced.stats()
    );
    assert!(
        blocking.stats().total_requested >= MIB,
        "{:?}",
        blocking.stats()
    );
    assert!(
        untraced.stats().total_requested < MIB,
        "{:?}",
        untraced.stats()
    );
}

/// Runs `sql` on TPC-H at scale 0.01 in 4 partitions, plan instrumented.
fn run(rt: &tokio::runtime::Runtime, sql: &str) -> usize {
    let (ctx, _) = common::audited_context(4, 1024);
    tpch::register_tables(&ctx, 0.01, 4, 1024).unwrap();
    rt.block_on(async {
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
    })
}

/// (peak live, total requested) summed over the scopes of `operator`.
fn charged(operator: &str) -> (i64, u64) {
    scopes()
        .iter()
        .filter(|s| s.name.starts_with(&format!("{operator}[")))
        .fold((0, 0), |(p, t), s| {
            (p + s.peak_requested, t + s.total_requested)
        })
}

#[test]
fn repartition_work_is_charged_to_repartition_exec() {
    assert!(install_scope_tracer());
    let rt = runtime();
    let rows = run(&rt, tpch::query(1).unwrap());
    assert_eq!(rows, 4, "q1 has four (returnflag, linestatus) groups");
    let (peak, _) = charged("RepartitionExec");
    assert!(peak > 0, "RepartitionExec's live peak in q1 is {peak}");

    // 15 000 orders at scale 0.01, each in one lineitem partition: the
    // partial aggregates send 15 000 rows through the hash repartition,
    // which copies at least their 8-byte keys into its output batches.
    let (_, before) = charged("RepartitionExec");
    let rows = run(
        &rt,
        "select l_orderkey, count(*) from lineitem group by l_orderkey",
    );
    assert_eq!(rows, 15_000);
    let (_, after) = charged("RepartitionExec");
    assert!(
        after - before >= 8 * 15_000,
        "RepartitionExec allocated {} bytes",
        after - before
    );
}
