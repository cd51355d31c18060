//! Usable bytes are what mimalloc really hands out: for every block, the
//! counted figure equals `mi_usable_size`, at alloc, realloc and free alike.

use std::alloc::{Layout, alloc, alloc_zeroed, dealloc, realloc};

use memledger_alloc::{MiMalloc, Tracked, this_thread};

#[global_allocator]
static GLOBAL: Tracked<MiMalloc> = Tracked::new(MiMalloc);

fn real(ptr: *mut u8) -> u64 {
    // SAFETY: a live block of the global allocator, which is mimalloc.
    unsafe { libmimalloc_sys::mi_usable_size(ptr.cast()) as u64 }
}

/// Sizes from 1 B to 8 MiB: every size up to 2 KiB, then powers of two and
/// their neighbours, and a spread in between.
fn sizes() -> Vec<usize> {
    let mut out: Vec<usize> = (1..=2048).collect();
    let mut p = 4096;
    while p <= 8 << 20 {
        out.extend([p - 1, p, p + 1, p + p / 3]);
        p *= 2;
    }
    out
}

#[test]
fn counted_usable_equals_mi_usable_size_for_every_size_and_alignment() {
    let mut checked = 0;
    for align in (0..=12).map(|k| 1usize << k) {
        for &size in &sizes() {
            let layout = Layout::from_size_align(size, align).unwrap();
            let zeroed = size % 3 == 0;
            let before = this_thread();
            // SAFETY: non-zero size; freed below with the same layout.
            let p = unsafe {
                if zeroed {
                    alloc_zeroed(layout)
                } else {
                    alloc(layout)
                }
            };
            assert!(!p.is_null());
            let counted = this_thread().total_usable - before.total_usable;
            assert_eq!(counted, real(p), "alloc {size} B at {align}");
            let live_before_free = this_thread().live_usable;
            // SAFETY: allocated above with `layout`.
            unsafe { dealloc(p, layout) };
            let freed = live_before_free - this_thread().live_usable;
            assert_eq!(freed as u64, counted, "free {size} B at {align}");
            checked += 1;
        }
    }
    assert!(checked > 20_000);
}

#[test]
fn reallocations_keep_usable_true_both_ways() {
    for align in [1usize, 8, 16, 64, 4096] {
        // Grow to 4 MiB, then shrink back, in odd steps.
        let steps: Vec<usize> = (0..40)
            .map(|i| {
                if i < 20 {
                    24 << (i / 2) | i
                } else {
                    24 << ((39 - i) / 2)
                }
            })
            .collect();
        let mut size = 24usize;
        let mut layout = Layout::from_size_align(size, align).unwrap();
        let start = this_thread().live_usable;
        // SAFETY: non-zero size.
        let mut p = unsafe { alloc(layout) };
        let mut expected = start + real(p) as i64;
        assert_eq!(this_thread().live_usable, expected);
        for &new_size in &steps {
            let old_real = real(p) as i64;
            // SAFETY: `p` is live for `layout`; the new size is non-zero.
            let q = unsafe { realloc(p, layout, new_size) };
            assert!(!q.is_null());
            expected += real(q) as i64 - old_real;
            assert_eq!(
                this_thread().live_usable,
                expected,
                "{size} -> {new_size} at {align}"
            );
            p = q;
            size = new_size;
            layout = Layout::from_size_align(size, align).unwrap();
        }
        // SAFETY: live for `layout`.
        unsafe { dealloc(p, layout) };
        assert_eq!(this_thread().live_usable, start, "at {align}");
    }
}
