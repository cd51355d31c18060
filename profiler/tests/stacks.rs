//! Sampled stacks in the report: two call sites, one allocating three times
//! the bytes of the other, told apart by their symbolized frames.

use std::hint::black_box;

use memledger_alloc::stacks::start_sampling;
use memledger_alloc::{MiMalloc, Scope, Tracked};
use memledger_profiler::report::{Report, StacksReport};
use memledger_profiler::session::Session;
use memledger_profiler::stacks::{SYMBOLIZE_ENV, Weight, symbolize};

#[global_allocator]
static GLOBAL: Tracked<MiMalloc> = Tracked::new(MiMalloc);

#[inline(never)]
fn site_three_parts(n: usize) {
    for i in 0..n {
        black_box(vec![i as u8; 1000 + (i * 7919) % 30_000]);
    }
}

#[inline(never)]
fn site_one_part(n: usize) {
    for i in 0..n {
        black_box(vec![!(i as u8); 2000 + (i * 104_729) % 28_000]);
    }
}

/// Mean bytes between samples. Each block here is far smaller than the
/// mean, so the estimated total's relative error has a standard deviation
/// near `sqrt(MEAN / total)`: 0.48% for these 1.3 GiB, so the 5% bound
/// below is ten of them (at the default 512 KiB it would be 2.6, and fail
/// about one run in a hundred).
const MEAN: u64 = 32 * 1024;

fn bytes_through(r: &StacksReport, function: &str) -> u64 {
    r.stacks
        .iter()
        .filter(|s| s.frames.iter().any(|f| f.function.contains(function)))
        .map(|s| s.allocated_bytes)
        .sum()
}

#[test]
fn two_call_sites_are_split_3_to_1_and_the_total_estimated() {
    // As under `mem_profile run --stacks`: the report holds addresses, the
    // reader symbolizes them. (The only test of this binary: no other
    // thread reads the environment.)
    // SAFETY: no other thread runs yet.
    unsafe { std::env::set_var(SYMBOLIZE_ENV, "later") };
    start_sampling(MEAN);
    let session = Session::manual(None, None);
    let scope = Scope::new("sites");
    let before = scope.stats().total_usable;
    // About 1.3 GiB: ~42 000 samples; both sites average 16 000 bytes a
    // block.
    scope.in_scope(|| {
        for _ in 0..4 {
            site_three_parts(15_000);
            site_one_part(5_000);
        }
    });
    let truth = scope.stats().total_usable - before;
    let report: Report = session.finish().unwrap();
    let raw = report.stacks.clone().expect("stacks were sampled");
    assert!(!raw.symbolized);
    assert!(
        raw.stacks
            .iter()
            .all(|s| s.frames.is_empty() && !s.addresses.is_empty())
    );
    assert!(!raw.modules.is_empty());
    // Symbolized from the JSON, as a reader does after the process exited.
    let mut stacks = Report::from_json(&report.to_json())
        .unwrap()
        .stacks
        .unwrap();
    symbolize(&mut stacks);
    assert!(stacks.symbolized);
    assert_eq!(stacks.sample_bytes, MEAN);
    assert!(!stacks.live_tracked, "counting mode sees no frees");
    let a = bytes_through(&stacks, "site_three_parts");
    let b = bytes_through(&stacks, "site_one_part");
    let share = a as f64 / (a + b) as f64;
    assert!(
        (share / 0.75 - 1.0).abs() < 0.10,
        "share {share:.3} of {a} + {b}, expected 0.75"
    );
    let estimate: u64 = stacks
        .stacks
        .iter()
        .filter(|s| s.scope == "sites")
        .map(|s| s.allocated_bytes)
        .sum();
    let error = estimate as f64 / truth as f64 - 1.0;
    assert!(
        error.abs() < 0.05,
        "total {:+.1}% off {truth}",
        error * 100.0
    );
    // The allocator's own frames are left out: the innermost frame is the
    // standard library's or the program's, never memledger's.
    for s in &stacks.stacks {
        if let Some(inner) = s.frames.first() {
            assert!(
                !inner.function.starts_with("memledger_alloc::")
                    && !inner.function.contains("_Unwind_Backtrace"),
                "{inner:?}"
            );
        }
    }
    // Folded lines start with the scope and end with the weight.
    let folded = stacks.folded(Weight::Allocated);
    let line = folded
        .lines()
        .find(|l| l.contains("site_three_parts"))
        .expect("a folded line for the big site");
    assert!(line.starts_with("sites;"), "{line}");
    let weight: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(weight > 0);
    // Symbolizing twice changes nothing.
    let again = stacks.clone();
    symbolize(&mut stacks);
    assert_eq!(stacks, again);
}
