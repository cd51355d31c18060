//! A toy operator that under-reserves, and the summary that exposes it.
//!
//! ```text
//! cargo run --release -p memledger-profiler --example under_reserve
//! ```
//!
//! The operator buffers strings and reserves what a hand-made estimate says
//! they cost: their length. What they really cost is their capacity, the
//! `String` header and the `Vec` that holds them, which the tracked
//! allocator counts in the operator's scope. The summary shows the gap
//! (untracked bytes, heap/reserved ratio) for the run and for the operator's
//! scope; then the same operator runs under [`measure`], the check a test
//! would make.

use std::sync::Arc;

use memledger_alloc::{MiMalloc, Scope, Tracked};
use memledger_profiler::{
    MemoryConsumer, MemoryPool, PoolError, PoolKind, Session, measure, summary,
};

#[global_allocator]
static GLOBAL: Tracked<MiMalloc> = Tracked::new(MiMalloc);

/// Buffers `rows` strings, reserving only their length, calls `at_peak`
/// (all rows buffered), then sorts them. Its allocations go to whatever
/// scope the caller entered.
fn toy_sorter(
    pool: &Arc<dyn MemoryPool>,
    name: &str,
    rows: u64,
    at_peak: impl Fn(),
) -> Result<usize, PoolError> {
    let mut reservation = MemoryConsumer::new(name)
        .with_can_spill(true)
        .register(pool);
    let mut buffer: Vec<String> = Vec::new();
    for i in 0..rows {
        let mut s = String::with_capacity(64);
        s.push_str(&format!("row-{i:08}"));
        // The classic estimate: bytes of text, nothing else.
        reservation.try_grow(s.len())?;
        buffer.push(s);
    }
    at_peak();
    buffer.sort();
    Ok(buffer.len())
}

fn main() {
    let mut session = Session::from_env().with_pool_kind(PoolKind::Greedy);
    session.set_label("under_reserve");
    // Greedy with MEMLEDGER_MEMORY_LIMIT, unbounded without.
    let pool = session.pool();
    let name = "ToySorter[0]";
    // The consumer is tied to the scope of its name; the operator runs in it.
    // A sample at the peak, whatever the sampling interval.
    let sorted =
        Scope::new(name).in_scope(|| toy_sorter(&pool, name, 200_000, || session.record_sample()));
    if let Err(e) = sorted {
        session.set_error(&e.to_string());
    }
    match session.finish() {
        Ok(report) => print!("{}", summary(&report)),
        Err(e) => eprintln!("could not write the report: {e}"),
    }

    // The same check in a test: the heap may exceed the reservation by 20%.
    // The region runs in the measurement's scope, and so does its consumer.
    let (_, m) = measure(|| toy_sorter(&pool, "ToySorter[1]", 20_000, || ()));
    match m.check_within_reservation(0.2) {
        Ok(()) => println!("measure: within the reservation"),
        Err(e) => println!("measure: {e}"),
    }
}
