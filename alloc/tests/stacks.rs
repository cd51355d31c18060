//! Sampled allocation stacks in counting mode: unbiased estimates, safe
//! under threads, fork and thread-local teardown.

use std::alloc::{Layout, alloc, dealloc};
use std::hint::black_box;

use memledger_alloc::stacks::{self, DEFAULT_SAMPLE_BYTES, SampledStack};
use memledger_alloc::{MiMalloc, Scope, Tracked};

#[global_allocator]
static GLOBAL: Tracked<MiMalloc> = Tracked::new(MiMalloc);

fn start() {
    stacks::start_sampling(DEFAULT_SAMPLE_BYTES);
}

fn of_scope(scope: Scope) -> Vec<SampledStack> {
    stacks::sampled_stacks()
        .into_iter()
        .filter(|s| s.scope == scope)
        .collect()
}

fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Allocates and frees blocks of 1 B to 32 KiB until `bytes` were asked for.
fn churn(bytes: u64, seed: u64) {
    assert_ne!(seed, 0, "xorshift stays at 0");
    let mut state = seed;
    let mut done = 0;
    while done < bytes {
        let size = 1 + (next(&mut state) % 32768) as usize;
        let layout = Layout::from_size_align(size, 8).unwrap();
        // SAFETY: non-zero size; freed with the same layout.
        unsafe {
            let p = black_box(alloc(layout));
            assert!(!p.is_null());
            dealloc(p, layout);
        }
        done += size as u64;
    }
}

#[test]
fn estimates_the_bytes_allocated_within_5_percent() {
    start();
    let scope = Scope::new("estimate");
    scope.in_scope(|| churn(4 << 30, 0x1234_5678));
    let truth = scope.stats();
    let samples = of_scope(scope);
    let estimate: u64 = samples.iter().map(|s| s.allocated_usable).sum();
    let estimate_requested: u64 = samples.iter().map(|s| s.allocated_requested).sum();
    let error = estimate as f64 / truth.total_usable as f64 - 1.0;
    assert!(
        error.abs() < 0.05,
        "estimated {estimate} usable bytes, allocated {} ({:+.1}%)",
        truth.total_usable,
        error * 100.0
    );
    let error = estimate_requested as f64 / truth.total_requested as f64 - 1.0;
    assert!(error.abs() < 0.05, "requested {:+.1}%", error * 100.0);
    // One loop, one call site: the remembered stacks give the same frames
    // as the unwinder, so the samples share one record for each of the
    // allocator's two ways into the sampler (blocks its packed counters
    // take, and larger ones), whose frames differ inside the allocator
    // only.
    assert!((1..=2).contains(&samples.len()), "{samples:?}");
    let shortest = samples.iter().map(|s| s.frames.len()).min().unwrap();
    let shared = (0..shortest)
        .take_while(|&i| {
            let outer = |s: &stacks::SampledStack| s.frames[s.frames.len() - 1 - i];
            samples.iter().all(|s| outer(s) == outer(&samples[0]))
        })
        .count();
    assert!(
        shared >= 3 && samples.iter().all(|s| s.frames.len() - shared <= 12),
        "{shared} outer frames shared: {samples:?}"
    );
    assert!(
        samples.iter().all(|s| s.live.is_none()),
        "counting mode has no live figure"
    );
    // The unwinder walked few of the stacks: a thread recognizes the ones
    // it remembers.
    let taken: u64 = stacks::sampled_stacks().iter().map(|s| s.samples).sum();
    assert!(
        stacks::unwinds() * 4 < taken,
        "{} walks for {taken} samples",
        stacks::unwinds()
    );
}

#[test]
fn splits_the_bytes_of_two_scopes_3_to_1_within_10_percent() {
    start();
    let big = Scope::new("three-parts");
    let small = Scope::new("one-part");
    // About 16 000 samples at the default mean: the smaller share's
    // relative error has a standard deviation near 1.6%, so 10% is six of
    // them.
    for round in 0..64 {
        big.in_scope(|| churn(96 << 20, round + 1));
        small.in_scope(|| churn(32 << 20, round + 100));
    }
    let a: u64 = of_scope(big).iter().map(|s| s.allocated_usable).sum();
    let b: u64 = of_scope(small).iter().map(|s| s.allocated_usable).sum();
    let share = a as f64 / (a + b) as f64;
    assert!(
        (share / 0.75 - 1.0).abs() < 0.10 && ((1.0 - share) / 0.25 - 1.0).abs() < 0.10,
        "share {share:.3}, expected 0.75"
    );
}

#[test]
fn sixteen_threads_churning_and_exiting_lose_no_count() {
    start();
    let scope = Scope::new("sixteen");
    let handles: Vec<_> = (0..16)
        .map(|t| {
            std::thread::spawn(move || {
                let _in = scope.enter();
                churn(64 << 20, 77 + t);
                let kept: Vec<Vec<u8>> = (0..100).map(|i| vec![i as u8; 5000]).collect();
                drop(kept);
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let s = scope.stats();
    assert_eq!(s.live_requested, 0);
    assert_eq!(s.allocations, s.deallocations);
    assert!(s.total_requested >= 16 * (64 << 20));
    let estimate: u64 = of_scope(scope).iter().map(|s| s.allocated_usable).sum();
    let error = estimate as f64 / s.total_usable as f64 - 1.0;
    assert!(error.abs() < 0.10, "{:+.1}%", error * 100.0);
}

struct AllocatesOnDrop;

impl Drop for AllocatesOnDrop {
    fn drop(&mut self) {
        churn(16 << 20, 5);
    }
}

thread_local! {
    static ON_EXIT: AllocatesOnDrop = const { AllocatesOnDrop };
}

#[test]
fn thread_local_teardown_keeps_counting_while_sampling() {
    start();
    let scope = Scope::new("teardown");
    std::thread::spawn(move || {
        let _in = scope.enter();
        ON_EXIT.with(|_| ());
    })
    .join()
    .unwrap();
    // The destructor ran after the scope guard: its bytes went to the
    // thread's scope then, `unscoped`; what matters is nothing crashed and
    // the process's figures balance.
    let h = memledger_alloc::heap();
    assert!(h.total_requested >= 16 << 20);
}

#[test]
fn a_forked_child_samples_and_exits() {
    start();
    let scope = Scope::new("fork");
    // Keep other threads allocating while forking.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let busy = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                churn(1 << 20, 9);
            }
        })
    };
    let mut statuses = Vec::new();
    for _ in 0..20 {
        // SAFETY: the child only allocates, reads the allocator's figures and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let ok = scope.in_scope(|| {
                churn(64 << 20, 3);
                !of_scope(scope).is_empty()
            });
            // SAFETY: ends the child without running the test harness's exit.
            unsafe { libc::_exit(if ok { 0 } else { 7 }) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        statuses.push(status);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    busy.join().unwrap();
    assert!(statuses.iter().all(|&s| s == 0), "{statuses:?}");
}
