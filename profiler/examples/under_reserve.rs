//! A toy operator that under-reserves, and the summary that exposes it.
//!
//! ```text
//! cargo run --release -p memledger-profiler --example under_reserve
//! ```
//!
//! The operator buffers strings and reserves what a hand-made estimate says
//! they cost: their length. What they really cost is their capacity, the
//! `String` header and the `Vec` that holds them, which the tracked
//! allocator counts in the operator's scope.

use std::sync::Arc;

use memledger_alloc::{MiMalloc, Scope, Tracked};
use memledger_profiler::{MemoryConsumer, MemoryPool, PoolKind, Session, summary};

#[global_allocator]
static GLOBAL: Tracked<MiMalloc> = Tracked::new(MiMalloc);

fn main() {
    let mut session = Session::from_env();
    session.set_label("under_reserve");
    session.set_pool_kind("greedy");
    let pool: Arc<dyn MemoryPool> = PoolKind::Greedy.build(Some(1 << 30));

    let name = "ToySorter[0]";
    let _scope = Scope::new(name).enter();
    let mut reservation = MemoryConsumer::new(name)
        .with_can_spill(true)
        .register(&pool);
    let mut buffer: Vec<String> = Vec::new();
    for i in 0..200_000u64 {
        let mut s = String::with_capacity(64);
        s.push_str(&format!("row-{i:08}"));
        // The classic estimate: bytes of text, nothing else.
        reservation.grow(s.len());
        buffer.push(s);
    }
    std::thread::sleep(std::time::Duration::from_millis(50));
    buffer.sort();
    drop(buffer);
    reservation.free();
    drop(_scope);

    match session.finish() {
        Ok(report) => print!("{}", summary(&report)),
        Err(e) => eprintln!("could not write the report: {e}"),
    }
}
