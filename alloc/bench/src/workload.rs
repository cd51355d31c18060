//! The timed workloads, run inside each allocator's binary.
//!
//! Every allocation goes through `std::alloc::{alloc, dealloc, realloc}`, that
//! is through the binary's `#[global_allocator]`, exactly as `Box` and `Vec`
//! reach it. Results pass through [`black_box`] so the optimiser can neither
//! drop an allocation nor pair an `alloc` with its `dealloc`. Each workload
//! returns nanoseconds per operation of its fastest batch.

use std::alloc::{Layout, alloc, dealloc, handle_alloc_error, realloc};
use std::hint::black_box;
use std::sync::Barrier;
use std::time::Instant;

use memledger_alloc::Scope;

/// One timed workload. The first four run in every binary; [`ScopePair`]
/// only where memledger is the global allocator.
///
/// [`ScopePair`]: Workload::ScopePair
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// `alloc` then `dealloc` of one block, sizes cycling 8, 16, ..., 128 B.
    Pairs,
    /// Random-size churn on one thread: [`CHURN_LIVE_BLOCKS`] live blocks of
    /// 8 B to 8 KiB; each step frees a random one and allocates a new size.
    Churn,
    /// The same churn on every thread at once, each with its own blocks.
    ChurnAllCores,
    /// A block grown by `realloc` from 16 B to 64 KiB, doubling each step.
    Realloc,
    /// `Scope::enter` and the guard's drop, no allocation (memledger only).
    ScopePair,
}

/// Live blocks in each thread's churn ring.
pub const CHURN_LIVE_BLOCKS: usize = 4096;
/// Smallest churn size in bytes.
pub const CHURN_MIN_BYTES: usize = 8;
/// Largest churn size in bytes.
pub const CHURN_MAX_BYTES: usize = 8192;
/// The seed of the single-thread churn and of the footprint's churn sizes.
pub const CHURN_SEED: u64 = 0x2545_F491_4F6C_DD1D;
/// `realloc` steps in one growth sequence: 16 B doubled twelve times is 64 KiB.
const REALLOC_STEPS: u64 = 12;
/// Each workload's iterations run as this many equal batches; a child
/// reports its fastest batch.
pub const BATCHES: u64 = 5;

impl Workload {
    /// Every workload, in the order they run and print.
    pub const ALL: [Workload; 5] = [
        Workload::Pairs,
        Workload::Churn,
        Workload::ChurnAllCores,
        Workload::Realloc,
        Workload::ScopePair,
    ];

    /// The short name used on the command line and between the processes.
    pub fn key(self) -> &'static str {
        match self {
            Workload::Pairs => "pairs",
            Workload::Churn => "churn",
            Workload::ChurnAllCores => "all-cores",
            Workload::Realloc => "realloc",
            Workload::ScopePair => "scope-pair",
        }
    }

    /// The workload named `key`, if any.
    pub fn from_key(key: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.key() == key)
    }

    /// The table label; `threads` is the all-core churn's thread count.
    pub fn label(self, threads: usize) -> String {
        match self {
            Workload::Pairs => "small alloc/free pairs (8–128 B)".into(),
            Workload::Churn => format!(
                "random churn {CHURN_MIN_BYTES} B–{} KiB, {CHURN_LIVE_BLOCKS} live",
                CHURN_MAX_BYTES / 1024
            ),
            Workload::ChurnAllCores => format!("same churn on {threads} threads at once"),
            Workload::Realloc => "realloc growth 16 B → 64 KiB (×2)".into(),
            Workload::ScopePair => "scope enter+exit pair, no allocation".into(),
        }
    }

    /// Operations in one run at scale 1.
    pub fn default_iterations(self) -> u64 {
        match self {
            Workload::Pairs => 3_000_000,
            Workload::Churn => 500_000,
            Workload::ChurnAllCores => 500_000,
            Workload::Realloc => 120_000,
            Workload::ScopePair => 10_000_000,
        }
    }

    /// Whether the workload only means something under memledger.
    pub fn memledger_only(self) -> bool {
        self == Workload::ScopePair
    }

    /// Runs `iterations` operations in [`BATCHES`] batches and returns the
    /// fastest batch's ns per operation. `scope`,
    /// when given, is entered around the timed work on every thread that
    /// allocates (the way memledger's users run their code); it is required
    /// for [`Workload::ScopePair`].
    pub fn run(self, iterations: u64, threads: usize, scope: Option<Scope>) -> f64 {
        let _guard = scope.map(Scope::enter);
        match self {
            Workload::Pairs => pairs(iterations),
            Workload::Churn => churn(iterations),
            Workload::ChurnAllCores => churn_all_cores(iterations, threads, scope),
            Workload::Realloc => realloc_growth(iterations),
            Workload::ScopePair if scope.is_some() => scope_pairs(iterations),
            Workload::ScopePair => f64::NAN,
        }
    }
}

/// xorshift64: cheap, and the same sequence in every binary.
#[inline(always)]
pub fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// A churn size from one random draw: 8 B to 8 KiB.
#[inline(always)]
pub fn churn_size(random: u64) -> usize {
    CHURN_MIN_BYTES + (random % (CHURN_MAX_BYTES - CHURN_MIN_BYTES + 1) as u64) as usize
}

/// The layout of a `size`-byte block, aligned like a `u64`.
#[inline(always)]
pub fn layout(size: usize) -> Layout {
    match Layout::from_size_align(size, 8) {
        Ok(layout) => layout,
        // Sizes here are at most 64 KiB.
        Err(_) => unreachable!("benchmark sizes are small"),
    }
}

/// Allocates through the global allocator; aborts like `Box` on failure.
#[inline(always)]
pub fn allocate(layout: Layout) -> *mut u8 {
    // SAFETY: every layout here has a non-zero size.
    let ptr = unsafe { alloc(layout) };
    if ptr.is_null() {
        handle_alloc_error(layout);
    }
    ptr
}

#[inline(never)]
fn pairs(iterations: u64) -> f64 {
    fastest_batch(iterations, |n| {
        let start = Instant::now();
        for i in 0..n {
            let layout = layout(8 + (i as usize & 15) * 8);
            let ptr = black_box(allocate(layout));
            // SAFETY: `ptr` was allocated just above with `layout`.
            unsafe { dealloc(ptr, layout) };
        }
        per_op(start, n)
    })
}

/// One thread's churn ring: live blocks and the generator that picks them.
struct Ring {
    blocks: Vec<(*mut u8, usize)>,
    state: u64,
}

impl Ring {
    /// Allocates [`CHURN_LIVE_BLOCKS`] blocks of random sizes (untimed).
    fn fill(seed: u64) -> Ring {
        let mut state = seed | 1;
        let blocks = (0..CHURN_LIVE_BLOCKS)
            .map(|_| {
                let size = churn_size(next_random(&mut state));
                (allocate(layout(size)), size)
            })
            .collect();
        Ring { blocks, state }
    }

    /// `steps` times: free a random block, allocate a random size in its place.
    #[inline(never)]
    fn churn(&mut self, steps: u64) -> f64 {
        let start = Instant::now();
        for _ in 0..steps {
            let random = next_random(&mut self.state);
            let slot = &mut self.blocks[random as usize % CHURN_LIVE_BLOCKS];
            let size = churn_size(random >> 20);
            // SAFETY: every ring slot holds a live block of the recorded size.
            unsafe { dealloc(slot.0, layout(slot.1)) };
            *slot = (black_box(allocate(layout(size))), size);
        }
        per_op(start, steps)
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        for &(ptr, size) in &self.blocks {
            // SAFETY: every ring slot holds a live block of the recorded size.
            unsafe { dealloc(ptr, layout(size)) };
        }
    }
}

fn churn(steps: u64) -> f64 {
    let mut ring = Ring::fill(CHURN_SEED);
    fastest_batch(steps, |n| ring.churn(n))
}

/// Every thread churns its own ring; each batch starts on all threads at
/// once (a barrier), and its figure is the mean over threads of their ns per
/// step. The fastest batch is returned.
fn churn_all_cores(steps: u64, threads: usize, scope: Option<Scope>) -> f64 {
    let threads = threads.max(1);
    let per_batch = (steps / BATCHES).max(1);
    let barrier = Barrier::new(threads);
    let per_thread: Vec<Vec<f64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads as u64)
            .map(|t| {
                let barrier = &barrier;
                s.spawn(move || {
                    let _guard = scope.map(Scope::enter);
                    let mut ring = Ring::fill(0x9E37_79B9_7F4A_7C15 ^ (t + 1));
                    (0..BATCHES)
                        .map(|_| {
                            barrier.wait();
                            ring.churn(per_batch)
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    (0..BATCHES as usize)
        .map(|b| {
            let batch: Vec<f64> = per_thread
                .iter()
                .filter_map(|t| t.get(b).copied())
                .collect();
            batch.iter().sum::<f64>() / batch.len().max(1) as f64
        })
        .fold(f64::INFINITY, f64::min)
}

#[inline(never)]
fn realloc_growth(operations: u64) -> f64 {
    let sequences = (operations / REALLOC_STEPS).max(1);
    fastest_batch(sequences, |n| {
        let start = Instant::now();
        for _ in 0..n {
            let mut size = 16;
            let mut ptr = allocate(layout(size));
            for _ in 0..REALLOC_STEPS {
                // SAFETY: `ptr` is live with `layout(size)`; the new size is non-zero.
                ptr = unsafe { realloc(ptr, layout(size), size * 2) };
                if ptr.is_null() {
                    handle_alloc_error(layout(size * 2));
                }
                size *= 2;
                black_box(ptr);
            }
            // SAFETY: `ptr` is live with `layout(size)`.
            unsafe { dealloc(ptr, layout(size)) };
        }
        per_op(start, n * REALLOC_STEPS)
    })
}

/// Enters a second scope from inside the one entered by [`Workload::run`] and
/// leaves it again: the switch a scoped operator makes on every poll.
#[inline(never)]
fn scope_pairs(pairs: u64) -> f64 {
    let inner = Scope::new("scope-pair");
    fastest_batch(pairs, |n| {
        let start = Instant::now();
        for _ in 0..n {
            let guard = black_box(inner).enter();
            black_box(&guard);
            drop(guard);
        }
        per_op(start, n)
    })
}

/// Runs `iterations` as [`BATCHES`] equal batches and returns the fastest
/// batch's ns per operation: on a shared machine, a batch that lost the CPU
/// to another process says nothing about the allocator.
fn fastest_batch(iterations: u64, mut batch: impl FnMut(u64) -> f64) -> f64 {
    let per_batch = (iterations / BATCHES).max(1);
    (0..BATCHES)
        .map(|_| batch(per_batch))
        .fold(f64::INFINITY, f64::min)
}

fn per_op(start: Instant, operations: u64) -> f64 {
    start.elapsed().as_nanos() as f64 / operations.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        for w in Workload::ALL {
            assert_eq!(Workload::from_key(w.key()), Some(w));
        }
        assert_eq!(Workload::from_key("nope"), None);
    }

    #[test]
    fn churn_sizes_stay_in_range() {
        let mut state = CHURN_SEED;
        let sizes: Vec<usize> = (0..100_000)
            .map(|_| churn_size(next_random(&mut state)))
            .collect();
        assert_eq!(sizes.iter().min(), Some(&CHURN_MIN_BYTES));
        assert_eq!(sizes.iter().max(), Some(&CHURN_MAX_BYTES));
    }

    #[test]
    fn realloc_steps_reach_64_kib() {
        assert_eq!(16usize << REALLOC_STEPS, 64 * 1024);
    }
}
