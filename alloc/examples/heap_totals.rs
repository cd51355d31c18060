//! Prints memledger's process totals after a multi-threaded workload, in
//! the units valgrind's memcheck reports, so the two can be held side by
//! side:
//!
//! ```text
//! cargo build --release -p memledger-alloc --example heap_totals
//! valgrind target/release/examples/heap_totals
//! ```
//!
//! The inner allocator is the system's (`Plain<System>`, usable = requested
//! bytes), so valgrind sees every block memledger counts. valgrind's
//! "allocs" counts `malloc` and `realloc` calls alike, and its "bytes
//! allocated" includes each `realloc`'s new size: compare them with
//! memledger's allocations plus reallocations, and its total requested
//! bytes. valgrind also sees the C library's own blocks (stdio, thread
//! set-up), which never pass through Rust's global allocator.

use std::alloc::{GlobalAlloc, Layout, System};

use memledger_alloc::{Plain, Scope, Tracked, heap};

#[global_allocator]
static GLOBAL: Tracked<Plain<System>> = Tracked::new(Plain(System));

/// Threads, and operations on each.
const THREADS: u64 = 8;
const STEPS: u64 = 20_000;

fn main() {
    let scopes = [Scope::new("a"), Scope::new("b"), Scope::new("c")];
    std::thread::scope(|s| {
        for t in 0..THREADS {
            s.spawn(move || work(t, &scopes));
        }
    });
    let h = heap();
    println!(
        "memledger: {} allocs ({} allocations + {} reallocations), {} frees, {} bytes allocated, {} bytes live",
        h.allocations + h.reallocations,
        h.allocations,
        h.reallocations,
        h.deallocations,
        h.total_requested,
        h.live_requested,
    );
}

/// Allocates, grows and frees blocks of 1 B to 256 KiB (some past the
/// packed counters' range), switching between three scopes.
fn work(seed: u64, scopes: &[Scope; 3]) {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut live: Vec<(*mut u8, Layout)> = Vec::with_capacity(64);
    for step in 0..STEPS {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let _guard = scopes[(step % 3) as usize].enter();
        let size = if state % 16 == 0 {
            1 + (state >> 8) as usize % (256 << 10)
        } else {
            1 + (state >> 8) as usize % 4096
        };
        let layout = Layout::from_size_align(size, 8).expect("a valid layout");
        // SAFETY: non-zero sizes; every block is freed once with its layout.
        unsafe {
            let p = GLOBAL.alloc(layout);
            assert!(!p.is_null());
            if state % 5 == 0 {
                let grown = GLOBAL.realloc(p, layout, size * 2);
                assert!(!grown.is_null());
                live.push((grown, Layout::from_size_align(size * 2, 8).expect("valid")));
            } else {
                live.push((p, layout));
            }
            if live.len() == 64 {
                for (p, layout) in live.drain(..) {
                    GLOBAL.dealloc(p, layout);
                }
            }
        }
    }
    for (p, layout) in live {
        // SAFETY: allocated above with this layout.
        unsafe { GLOBAL.dealloc(p, layout) };
    }
}
