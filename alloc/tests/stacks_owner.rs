//! Sampled allocation stacks in owner mode: live bytes by stack, from any
//! thread's frees and reallocations.

use memledger_alloc::stacks::{self, DEFAULT_SAMPLE_BYTES, SampledStack};
use memledger_alloc::{MiMalloc, Owner, Scope, Tracked};

#[global_allocator]
static GLOBAL: Tracked<MiMalloc, Owner> = Tracked::new(MiMalloc);

fn of_scope(scope: Scope) -> Vec<SampledStack> {
    stacks::sampled_stacks()
        .into_iter()
        .filter(|s| s.scope == scope)
        .collect()
}

fn live(scope: Scope) -> i64 {
    of_scope(scope)
        .iter()
        .map(|s| s.live.expect("owner mode"))
        .sum()
}

#[test]
fn live_bytes_by_stack_follow_frees_on_other_threads() {
    stacks::start_sampling(DEFAULT_SAMPLE_BYTES);
    let scope = Scope::new("held");
    // 1 GiB in 64 KiB blocks, never touched: the process's memory stays small.
    let mut blocks: Vec<Vec<u8>> =
        scope.in_scope(|| (0..16384).map(|_| Vec::with_capacity(65536)).collect());
    let truth = scope.stats().live_usable;
    let error = live(scope) as f64 / truth as f64 - 1.0;
    assert!(
        error.abs() < 0.10,
        "live {:+.1}% off {truth}",
        error * 100.0
    );
    // Three quarters freed on another thread, in another scope.
    let freed: Vec<Vec<u8>> = blocks.drain(..12288).collect();
    std::thread::spawn(move || Scope::new("elsewhere").in_scope(|| drop(freed)))
        .join()
        .unwrap();
    let truth = scope.stats().live_usable;
    assert!(truth > 0);
    let error = live(scope) as f64 / truth as f64 - 1.0;
    assert!(
        error.abs() < 0.20,
        "after frees: live {:+.1}% off {truth}",
        error * 100.0
    );
    drop(blocks);
    assert_eq!(scope.stats().live_usable, 0);
    assert_eq!(live(scope), 0, "every sampled block left the live samples");
    let allocated: u64 = of_scope(scope).iter().map(|s| s.allocated_usable).sum();
    assert!(allocated > 900 << 20, "allocated figures stay: {allocated}");
}

#[test]
fn reallocations_move_live_samples_and_small_blocks_never_leak() {
    stacks::start_sampling(DEFAULT_SAMPLE_BYTES);
    let scope = Scope::new("growing");
    scope.in_scope(|| {
        for round in 0..64 {
            // Doubling vectors: every size, reallocated in place or moved.
            let mut v: Vec<u64> = Vec::new();
            for i in 0..(1 << 20) {
                v.push(i + round);
            }
            // Small blocks without slack (8, 16, 32, 64 B) carry no tag.
            let small: Vec<Box<[u8; 32]>> = (0..20_000).map(|_| Box::new([0u8; 32])).collect();
            drop(small);
            drop(v);
        }
    });
    assert_eq!(scope.stats().live_usable, 0);
    assert!(!of_scope(scope).is_empty());
    assert_eq!(
        live(scope),
        0,
        "no live bytes left behind by reallocations or untagged blocks"
    );
}
