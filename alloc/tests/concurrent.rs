//! Figures read while threads run: 8 workers at a time churn, switch scopes
//! and exit, in waves, while a reader reads every figure in a loop.
//! Cumulative figures (totals, counts, per scope, the `exited` row) must
//! never go down between two reads; live figures must stay within what the
//! workers can hold plus the stated bound; when all is quiet, figures are
//! exact.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Barrier};

use memledger_alloc::{
    MiMalloc, Scope, Tracked, heap, peak_error_bytes, reset_peak, scopes, threads,
};

#[global_allocator]
static GLOBAL: Tracked<MiMalloc> = Tracked::new(MiMalloc);

const WORKERS: usize = 8;
const WAVES: usize = 12;
/// The most one worker holds at once: a 1 MiB block and a ring of small ones.
const HELD: i64 = (1 << 20) + 64 * 1024;

fn worker(seed: u64, scopes: [Scope; 4]) {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut ring: Vec<Option<Vec<u8>>> = scopes[0].in_scope(|| (0..128).map(|_| None).collect());
    for round in 0..4000 {
        let scope = scopes[(next() % 4) as usize];
        let _in = scope.enter();
        let i = (next() % 128) as usize;
        ring[i] = Some(vec![0u8; 16 + (next() % 480) as usize]);
        if round % 500 == 0 {
            // A large block, freed in another scope.
            let big = vec![1u8; 1 << 20];
            drop(_in);
            let _other = scopes[(round / 500) % 4].enter();
            drop(big);
        }
    }
    scopes[0].in_scope(|| drop(ring));
}

#[derive(Clone, Copy, Default)]
struct Cumulative {
    total_requested: u64,
    total_usable: u64,
    allocations: u64,
    deallocations: u64,
}

#[test]
fn figures_read_while_threads_churn_switch_and_exit_are_consistent() {
    let names = ["churn-A", "churn-B", "churn-C", "churn-D"];
    let work_scopes = names.map(Scope::new);
    // Settle the test thread's own state before the baseline.
    let _ = (heap(), scopes(), threads());
    let base = heap();
    reset_peak();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut last = Cumulative::default();
            let mut last_scopes: Vec<(u64, u64, u64)> = Vec::new();
            let mut last_exited = (0u64, 0u64);
            let mut reads = 0u64;
            let mut worst_live = i64::MIN;
            while !stop.load(Relaxed) {
                let h = heap();
                let now = Cumulative {
                    total_requested: h.total_requested,
                    total_usable: h.total_usable,
                    allocations: h.allocations,
                    deallocations: h.deallocations,
                };
                assert!(
                    now.total_requested >= last.total_requested,
                    "total_requested went down"
                );
                assert!(
                    now.total_usable >= last.total_usable,
                    "total_usable went down"
                );
                assert!(now.allocations >= last.allocations, "allocations went down");
                assert!(
                    now.deallocations >= last.deallocations,
                    "deallocations went down"
                );
                last = now;
                worst_live = worst_live.max(h.live_requested - base.live_requested);
                let all = scopes();
                let work: Vec<(u64, u64, u64)> = all
                    .iter()
                    .filter(|s| names.contains(&s.name))
                    .map(|s| (s.total_requested, s.allocations, s.deallocations))
                    .collect();
                if last_scopes.len() == work.len() {
                    for (before, after) in last_scopes.iter().zip(&work) {
                        assert!(after.0 >= before.0, "a scope's total_requested went down");
                        assert!(after.1 >= before.1, "a scope's allocations went down");
                        assert!(after.2 >= before.2, "a scope's deallocations went down");
                    }
                }
                last_scopes = work;
                let exited = threads().into_iter().find(|t| t.exited).unwrap();
                assert!(
                    exited.total_requested >= last_exited.0,
                    "exited row went down"
                );
                assert!(exited.allocations >= last_exited.1, "exited row went down");
                last_exited = (exited.total_requested, exited.allocations);
                reads += 1;
            }
            (reads, worst_live)
        })
    };
    for wave in 0..WAVES {
        let barrier = Arc::new(Barrier::new(WORKERS));
        let handles: Vec<_> = (0..WORKERS)
            .map(|i| {
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    worker((wave * WORKERS + i) as u64 * 0x9E37_79B9 + 7, work_scopes);
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    }
    stop.store(true, Relaxed);
    let (reads, worst_live) = reader.join().unwrap();
    assert!(
        reads > 10,
        "the reader read while workers ran ({reads} reads)"
    );
    // Workers hold at most HELD each, and the reader a little.
    let bound = WORKERS as i64 * HELD + 256 * 1024;
    assert!(
        worst_live <= bound,
        "live read {worst_live} B above the start, more than the workers can hold ({bound} B)"
    );
    let h = heap();
    assert!(
        h.peak_requested - base.live_requested <= bound + peak_error_bytes() as i64,
        "peak {} B above the start: beyond what the workers held plus the bound",
        h.peak_requested - base.live_requested
    );
    // Quiet: every worker freed what it allocated (std keeps a few bytes of
    // per-thread bookkeeping), and the three views agree to the byte: the
    // process, the sum of its threads (live and exited), the sum of its scopes.
    assert!(
        (h.live_requested - base.live_requested).abs() < 4096,
        "back where it started: {} B",
        h.live_requested - base.live_requested
    );
    // (Reading allocates a little, so each view is bracketed by two reads
    // of the process figures.)
    let before = heap();
    let rows = threads();
    let after = heap();
    let by_threads = rows.iter().fold((0, 0), |a, t| {
        (a.0 + t.total_requested, a.1 + t.allocations)
    });
    assert!(
        (before.total_requested..=after.total_requested).contains(&by_threads.0)
            && (before.allocations..=after.allocations).contains(&by_threads.1),
        "threads sum to {by_threads:?}, the process {:?}..{:?}",
        (before.total_requested, before.allocations),
        (after.total_requested, after.allocations)
    );
    let before = heap();
    let all = scopes();
    let after = heap();
    let by_scopes = all.iter().fold((0, 0), |a, s| {
        (a.0 + s.total_requested, a.1 + s.allocations)
    });
    assert!(
        (before.total_requested..=after.total_requested).contains(&by_scopes.0)
            && (before.allocations..=after.allocations).contains(&by_scopes.1),
        "scopes sum to {by_scopes:?}, the process {:?}..{:?}",
        (before.total_requested, before.allocations),
        (after.total_requested, after.allocations)
    );
    let work: i64 = scopes()
        .iter()
        .filter(|s| names.contains(&s.name))
        .map(|s| s.live_requested)
        .sum();
    assert_eq!(work, 0, "the work scopes balance (counting mode: summed)");
}
