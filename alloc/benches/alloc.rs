//! The allocator benchmark: memledger's `Tracked` against bare mimalloc and
//! its peers, in one run, on the same machine.
//!
//! ```text
//! cargo bench -p memledger-alloc --bench alloc            # full run
//! MEMLEDGER_BENCH_ROUNDS=3 cargo bench -p memledger-alloc --bench alloc   # quicker
//! ```
//!
//! Every allocator is called directly through `GlobalAlloc` on a static, so
//! all of them run in this one process and are inlined the same way. Rounds
//! interleave the allocators; each figure is the fastest round (the least
//! disturbed by the rest of the machine). The
//! table prints ns per operation and the ratio to bare mimalloc measured in
//! the same run; absolute times on a shared machine mean little.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::{Barrier, OnceLock};
use std::time::Instant;

use cap::Cap;
use memledger_alloc::{
    MiMalloc, OWNER_HEADER_BYTES, OWNER_HEADER_MIN, OWNER_TRAILER_BYTES, Owner, Tracked,
    mimalloc_good_size,
};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

static MIMALLOC: MiMalloc = MiMalloc;
static SYSTEM: System = System;
static COUNTING: Tracked<MiMalloc> = Tracked::new(MiMalloc);
static OWNER: Tracked<MiMalloc, Owner> = Tracked::new(MiMalloc);
static CAP: Cap<MiMalloc> = Cap::new(MiMalloc, usize::MAX);

fn stats_alloc_mimalloc() -> &'static StatsAlloc<MiMalloc> {
    static S: OnceLock<StatsAlloc<MiMalloc>> = OnceLock::new();
    S.get_or_init(|| StatsAlloc::new(MiMalloc))
}

#[derive(Clone, Copy, PartialEq)]
enum Workload {
    Pairs,
    Churn,
    ChurnAllCores,
    Realloc,
}

impl Workload {
    const ALL: [Workload; 4] = [
        Workload::Pairs,
        Workload::Churn,
        Workload::ChurnAllCores,
        Workload::Realloc,
    ];

    fn label(self, cores: usize) -> String {
        match self {
            Workload::Pairs => "small alloc/free pairs (8-128 B)".into(),
            Workload::Churn => "random churn 8 B-8 KiB, 4096 live".into(),
            Workload::ChurnAllCores => format!("same churn on {cores} threads at once"),
            Workload::Realloc => "realloc growth 16 B -> 64 KiB (x2)".into(),
        }
    }
}

/// xorshift64: cheap, the same sequence for every allocator.
#[inline(always)]
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

fn layout(size: usize) -> Layout {
    // Sizes are small and non-zero.
    Layout::from_size_align(size, 8).unwrap()
}

const PAIRS: usize = 2_000_000;
const CHURN_STEPS: usize = 1_000_000;
const SLOTS: usize = 4096;
const REALLOC_SEQUENCES: usize = 100_000;

#[inline(never)]
fn pairs<A: GlobalAlloc>(a: &A) -> f64 {
    let start = Instant::now();
    for i in 0..PAIRS {
        let l = layout(8 + (i & 15) * 8);
        // SAFETY: valid layout; freed with the same layout.
        unsafe {
            let p = a.alloc(l);
            black_box(p);
            a.dealloc(p, l);
        }
    }
    start.elapsed().as_nanos() as f64 / PAIRS as f64
}

#[inline(never)]
fn churn<A: GlobalAlloc>(a: &A, seed: u64, barrier: Option<&Barrier>) -> f64 {
    let mut slots: Vec<(*mut u8, usize)> = vec![(std::ptr::null_mut(), 0); SLOTS];
    let mut seed = seed | 1;
    // Fill, untimed: thousands of live blocks.
    for slot in slots.iter_mut() {
        let size = 8 + (next(&mut seed) % 8185) as usize;
        // SAFETY: valid layout; freed below with the same size.
        *slot = (unsafe { a.alloc(layout(size)) }, size);
    }
    if let Some(b) = barrier {
        b.wait();
    }
    let start = Instant::now();
    for _ in 0..CHURN_STEPS {
        let r = next(&mut seed);
        let i = (r as usize) % SLOTS;
        let size = 8 + ((r >> 20) % 8185) as usize;
        // SAFETY: each slot holds a live block of the recorded size.
        unsafe {
            let (p, old) = slots[i];
            a.dealloc(p, layout(old));
            let q = a.alloc(layout(size));
            black_box(q);
            slots[i] = (q, size);
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / CHURN_STEPS as f64;
    for (p, size) in slots {
        // SAFETY: as above.
        unsafe { a.dealloc(p, layout(size)) };
    }
    ns
}

fn churn_all_cores<A: GlobalAlloc + Sync>(a: &A, threads: usize) -> f64 {
    let barrier = Barrier::new(threads);
    let per_thread: Vec<f64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let barrier = &barrier;
                s.spawn(move || churn(a, 0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1), Some(barrier)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    per_thread.iter().sum::<f64>() / per_thread.len() as f64
}

#[inline(never)]
fn realloc_growth<A: GlobalAlloc>(a: &A) -> f64 {
    let start = Instant::now();
    let mut ops = 0usize;
    for _ in 0..REALLOC_SEQUENCES / 10 {
        // SAFETY: each step reallocates the live block with its current layout.
        unsafe {
            let mut size = 16;
            let mut p = a.alloc(layout(size));
            while size < 64 * 1024 {
                p = a.realloc(p, layout(size), size * 2);
                size *= 2;
                ops += 1;
                black_box(p);
            }
            a.dealloc(p, layout(size));
        }
    }
    start.elapsed().as_nanos() as f64 / ops as f64
}

fn run<A: GlobalAlloc + Sync>(a: &A, w: Workload, cores: usize) -> f64 {
    match w {
        Workload::Pairs => pairs(a),
        Workload::Churn => churn(a, 0x2545_F491_4F6C_DD1D, None),
        Workload::ChurnAllCores => churn_all_cores(a, cores),
        Workload::Realloc => realloc_growth(a),
    }
}

type Runner = Box<dyn Fn(Workload, usize) -> f64>;

fn main() {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let rounds: usize = std::env::var("MEMLEDGER_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let allocators: Vec<(&str, Runner)> = vec![
        ("mimalloc (bare)", Box::new(|w, c| run(&MIMALLOC, w, c))),
        ("System (bare)", Box::new(|w, c| run(&SYSTEM, w, c))),
        ("memledger counting", Box::new(|w, c| run(&COUNTING, w, c))),
        ("memledger owner", Box::new(|w, c| run(&OWNER, w, c))),
        ("cap<mimalloc>", Box::new(|w, c| run(&CAP, w, c))),
        (
            "stats_alloc<mimalloc>",
            Box::new(|w, c| run(stats_alloc_mimalloc(), w, c)),
        ),
        (
            "stats_alloc<System>",
            Box::new(|w, c| run(&INSTRUMENTED_SYSTEM, w, c)),
        ),
    ];
    // Warm up every allocator (page faults, thread registration).
    for (_, f) in &allocators {
        f(Workload::Churn, cores);
    }
    // MEMLEDGER_BENCH_ONLY=pairs,churn,all-cores,realloc picks workloads.
    let only = std::env::var("MEMLEDGER_BENCH_ONLY").unwrap_or_default();
    let picked = |w: Workload| {
        let key = match w {
            Workload::Pairs => "pairs",
            Workload::Churn => "churn",
            Workload::ChurnAllCores => "all-cores",
            Workload::Realloc => "realloc",
        };
        only.is_empty() || only.split(',').any(|k| k.trim() == key)
    };
    let mut samples = vec![vec![Vec::with_capacity(rounds); allocators.len()]; Workload::ALL.len()];
    for round in 0..rounds {
        for (wi, &w) in Workload::ALL.iter().enumerate() {
            if !picked(w) {
                continue;
            }
            // Rotate the order so no allocator always runs first.
            for k in 0..allocators.len() {
                let ai = (k + round) % allocators.len();
                samples[wi][ai].push((allocators[ai].1)(w, cores));
            }
        }
        eprintln!("round {}/{rounds} done", round + 1);
    }
    // The fastest round is the one least disturbed by the rest of the
    // machine; on a shared machine it is the most repeatable figure.
    let best = |v: &mut Vec<f64>| v.iter().copied().fold(f64::INFINITY, f64::min);
    println!(
        "memledger-alloc benchmark: {cores} cores, best of {rounds} interleaved rounds, ratio = ns/op / bare mimalloc ns/op in this run\n"
    );
    println!("| workload | allocator | ns/op | ratio |");
    println!("|---|---|---:|---:|");
    let mut verdicts = Vec::new();
    for (wi, &w) in Workload::ALL.iter().enumerate() {
        if !picked(w) {
            continue;
        }
        let base = best(&mut samples[wi][0]);
        for (ai, (name, _)) in allocators.iter().enumerate() {
            let ns = best(&mut samples[wi][ai]);
            let ratio = ns / base;
            println!("| {} | {name} | {ns:.2} | {ratio:.2}x |", w.label(cores));
            let target = match (*name, w) {
                ("memledger counting", Workload::Pairs) => Some(1.15),
                ("memledger counting", Workload::ChurnAllCores) => Some(1.10),
                ("memledger owner", Workload::Pairs | Workload::ChurnAllCores) => Some(1.5),
                _ => None,
            };
            if let Some(t) = target {
                verdicts.push(format!(
                    "{name} on {}: {ratio:.2}x (target <= {t:.2}x) {}",
                    w.label(cores),
                    if ratio <= t { "MEETS" } else { "MISSES" }
                ));
            }
        }
    }
    println!();
    for v in verdicts {
        println!("{v}");
    }
    // Owner mode's memory cost: usable bytes with the 4-byte trailer over
    // usable bytes without it, on each workload's size distribution.
    let cost = |sizes: &mut dyn Iterator<Item = usize>| {
        let (mut with, mut without) = (0usize, 0usize);
        for s in sizes {
            let tag = if s >= OWNER_HEADER_MIN {
                OWNER_HEADER_BYTES
            } else {
                OWNER_TRAILER_BYTES
            };
            with += mimalloc_good_size(s + tag);
            without += mimalloc_good_size(s);
        }
        (with as f64 / without as f64 - 1.0) * 100.0
    };
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let churn_cost = cost(&mut (0..100_000).map(|_| 8 + ((next(&mut seed) >> 20) % 8185) as usize));
    let pair_cost = cost(&mut (0..16).map(|i| 8 + i * 8));
    println!(
        "\nowner-mode tags ({OWNER_TRAILER_BYTES} B trailer below {OWNER_HEADER_MIN} B, {OWNER_HEADER_BYTES} B header above): +{pair_cost:.1}% usable bytes on the pair sizes, +{churn_cost:.1}% on the churn sizes"
    );
}
