//! An inner allocator that fails: nulls come back as nulls, nothing is counted.

use std::alloc::{GlobalAlloc, Layout, System};

use memledger_alloc::{Plain, Tracked, heap, this_thread};

/// The system allocator, except that any request of at least 1 GiB fails.
struct FailsBig;

const BIG: usize = 1 << 30;

// SAFETY: forwards to System or returns null, which GlobalAlloc allows.
unsafe impl GlobalAlloc for FailsBig {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= BIG {
            std::ptr::null_mut()
        } else {
            unsafe { System.alloc(layout) }
        }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= BIG {
            std::ptr::null_mut()
        } else {
            unsafe { System.alloc_zeroed(layout) }
        }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size >= BIG {
            std::ptr::null_mut()
        } else {
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }
}

#[global_allocator]
static GLOBAL: Tracked<Plain<FailsBig>> = Tracked::new(Plain(FailsBig));

#[test]
fn failed_allocations_and_reallocations_count_nothing() {
    let mut v: Vec<u8> = Vec::with_capacity(100);
    v.extend_from_slice(b"kept");
    let thread_before = this_thread();
    let heap_before = heap();

    // alloc
    let mut fresh: Vec<u8> = Vec::new();
    assert!(fresh.try_reserve_exact(BIG).is_err());
    // realloc
    assert!(v.try_reserve_exact(BIG).is_err());
    // alloc_zeroed
    // SAFETY: a valid non-zero layout; the null result is checked.
    let z = unsafe { std::alloc::alloc_zeroed(Layout::from_size_align(BIG, 8).unwrap()) };
    assert!(z.is_null());

    assert_eq!(this_thread(), thread_before, "this thread's counters moved");
    // Other test threads may allocate meanwhile; the failed requests alone
    // would have added at least 3 GiB to the process's total.
    let heap_after = heap();
    assert!(heap_after.total_requested - heap_before.total_requested < (1 << 30));
    assert_eq!(v, b"kept", "the old block survives a failed realloc");
    assert_eq!(v.capacity(), 100);
}

#[test]
fn plain_inner_reports_usable_equal_to_requested() {
    let s = memledger_alloc::Scope::new("plain");
    let v = s.in_scope(|| vec![0u8; 1234]);
    let st = s.stats();
    assert_eq!(st.live_requested, 1234);
    assert_eq!(st.live_usable, 1234);
    drop(v);
}
