//! A scope's figures read by another thread while the owner switches in
//! and out of it millions of times: the counts of the scope the thread is
//! in never show up in the one it just left.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use memledger_alloc::{MiMalloc, Scope, Tracked};

#[global_allocator]
static GLOBAL: Tracked<MiMalloc> = Tracked::new(MiMalloc);

#[test]
fn an_idle_scope_reads_zero_while_its_thread_switches_out_and_allocates() {
    let idle = Scope::new("switching-idle");
    let busy = Scope::new("switching-busy");
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let _in_idle = idle.enter();
            let mut pairs = 0u64;
            while !stop.load(Relaxed) {
                for _ in 0..64 {
                    let _in_busy = busy.enter();
                    drop(black_box(Box::new(pairs)));
                    pairs += 1;
                }
            }
            pairs
        })
    };
    let deadline = Instant::now() + Duration::from_millis(1000);
    let (mut reads, mut last_busy) = (0u64, 0u64);
    while Instant::now() < deadline {
        let i = idle.stats();
        assert_eq!(
            (i.allocations, i.deallocations, i.total_requested),
            (0, 0, 0),
            "the idle scope was charged with the busy scope's counts (read {reads})"
        );
        let b = busy.stats();
        assert!(
            b.allocations >= last_busy,
            "the busy scope's count went down"
        );
        last_busy = b.allocations;
        reads += 1;
    }
    stop.store(true, Relaxed);
    let pairs = worker.join().unwrap();
    let b = busy.stats();
    assert_eq!((b.allocations, b.deallocations), (pairs, pairs));
    assert_eq!(b.total_requested, pairs * 8);
    assert!(reads > 10 && pairs > 10_000, "{reads} reads, {pairs} pairs");
}
