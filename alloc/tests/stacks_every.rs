//! Sampling every allocation: a capture never samples the allocations it
//! makes itself (no recursion), every count stays exact, and a sample is
//! taken per allocation.

use memledger_alloc::stacks::{self, sampled_stacks};
use memledger_alloc::{MiMalloc, Scope, Tracked};

#[global_allocator]
static GLOBAL: Tracked<MiMalloc> = Tracked::new(MiMalloc);

#[test]
fn every_allocation_sampled_on_many_threads() {
    // A mean of 1 byte: every allocation is due for a sample, including any
    // the unwinder might make while capturing. (The countdown is drawn
    // from an exponential of mean 1 byte, so it exceeds a block's 64 bytes
    // with probability e^-64: each of these blocks is sampled. Blocks of 8
    // bytes would miss one sample in about 3 000.)
    stacks::start_sampling(1);
    let scope = Scope::new("every");
    let handles: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                let _in = scope.enter();
                for i in 0..2000 {
                    let v = vec![t as u8; 64 + (i % 300)];
                    std::hint::black_box(&v);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    stacks::start_sampling(0);
    let s = scope.stats();
    assert_eq!(s.allocations, 16_000);
    assert_eq!(s.deallocations, 16_000);
    assert_eq!(s.live_requested, 0);
    let samples: u64 = sampled_stacks()
        .iter()
        .filter(|r| r.scope == scope)
        .map(|r| r.samples)
        .sum();
    assert_eq!(samples, 16_000, "one sample per allocation");
    assert_eq!(stacks::sample_bytes(), None, "turned off");
}
