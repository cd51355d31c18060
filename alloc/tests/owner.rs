//! Owner mode: frees are charged back to the scope that allocated the block.

use std::alloc::Layout;

use memledger_alloc::{
    MiMalloc, OWNER_SIDE_TABLE_MIN, Owner, Scope, Tracked, mimalloc_good_size, precise, this_thread,
};

#[global_allocator]
static GLOBAL: Tracked<MiMalloc, Owner> = Tracked::new(MiMalloc);

#[test]
fn freed_in_another_scope_on_another_thread_is_charged_to_the_allocator() {
    let a = Scope::new("A");
    let b = Scope::new("B");
    let block = a.in_scope(|| vec![5u8; 100_000]);
    let sa = a.stats();
    assert_eq!(sa.live_requested, 100_000);
    // SAFETY: a live block of the global allocator, which is mimalloc.
    let usable = unsafe { libmimalloc_sys::mi_usable_size(block.as_ptr().cast()) };
    assert_eq!(sa.live_usable, usable as i64, "no extra bytes for the tag");
    std::thread::spawn(move || {
        let _in_b = b.enter();
        assert_eq!(block[99_999], 5);
        drop(block);
    })
    .join()
    .unwrap();
    let sa = a.stats();
    let sb = b.stats();
    assert_eq!(
        (sa.live_requested, sa.live_usable),
        (0, 0),
        "A gets its bytes back"
    );
    assert_eq!(sa.deallocations, 1);
    assert_eq!(
        (sb.live_requested, sb.live_usable, sb.deallocations),
        (0, 0, 0),
        "B untouched"
    );
    assert_eq!(
        memledger_alloc::attribution(),
        Some(memledger_alloc::Attribution::Owner)
    );
}

#[test]
fn realloc_in_another_scope_moves_ownership_and_keeps_contents() {
    let a = Scope::new("owner-realloc-A");
    let b = Scope::new("owner-realloc-B");
    let _p = precise();
    let mut v: Vec<u8> = a.in_scope(|| {
        let mut v = Vec::with_capacity(1000);
        v.extend(0..=255u8);
        v
    });
    assert_eq!(a.stats().live_requested, 1000);
    b.in_scope(|| v.reserve_exact(9000 - v.len()));
    assert_eq!(v.capacity(), 9000);
    assert!(v.iter().enumerate().all(|(i, &x)| x == i as u8));
    assert_eq!(
        a.stats().live_requested,
        0,
        "the old block is charged back to A"
    );
    assert_eq!(
        b.stats().live_requested,
        9000,
        "the grown block belongs to B"
    );
    let c = Scope::new("owner-realloc-C");
    c.in_scope(|| drop(v));
    assert_eq!(b.stats().live_requested, 0, "freed from C, charged to B");
    assert_eq!(c.stats().deallocations, 0, "C is not charged the free");
}

#[test]
fn same_scope_frees_and_odd_alignments_balance() {
    let s = Scope::new("owner-same");
    s.in_scope(|| {
        for align in [1usize, 2, 8, 16, 64, 4096] {
            for size in [1usize, 7, 8, 24, 100, 4095, 70_000] {
                let layout = std::alloc::Layout::from_size_align(size, align).unwrap();
                // SAFETY: non-zero size; freed with the same layout.
                unsafe {
                    let p = std::alloc::alloc(layout);
                    assert_eq!(p as usize % align, 0);
                    p.write_bytes(0xAB, size);
                    let q = std::alloc::realloc(p, layout, size * 2);
                    assert_eq!(q as usize % align, 0);
                    assert_eq!(*q.add(size - 1), 0xAB);
                    std::alloc::dealloc(
                        q,
                        std::alloc::Layout::from_size_align(size * 2, align).unwrap(),
                    );
                }
            }
        }
    });
    let st = s.stats();
    assert_eq!((st.live_requested, st.live_usable), (0, 0));
    assert_eq!(st.allocations, 42);
    assert_eq!(st.deallocations, 42);
}

/// What bare mimalloc hands out for `layout`.
fn bare_usable(layout: Layout) -> usize {
    // SAFETY: a fresh block, freed right after.
    unsafe {
        let p = libmimalloc_sys::mi_malloc_aligned(layout.size(), layout.align());
        assert!(!p.is_null());
        let usable = libmimalloc_sys::mi_usable_size(p);
        libmimalloc_sys::mi_free(p);
        usable
    }
}

#[test]
fn tags_never_move_a_block_into_a_larger_size_class() {
    let a = Scope::new("owner-class-A");
    let b = Scope::new("owner-class-B");
    let _p = precise();
    for align in [8usize, 16, 128, 4096] {
        for shift in 3..=20 {
            let size = 1usize << shift;
            let layout = Layout::from_size_align(size, align).unwrap();
            let before = this_thread().total_usable;
            let ptr = a.in_scope(|| {
                // SAFETY: non-zero size.
                unsafe { std::alloc::alloc(layout) }
            });
            assert!(!ptr.is_null());
            let counted = (this_thread().total_usable - before) as usize;
            // SAFETY: a live block of the global allocator.
            let real = unsafe { libmimalloc_sys::mi_usable_size(ptr.cast()) };
            assert_eq!(counted, real, "{size} B at {align}: counted = real");
            if align <= 8 && size <= 8192 {
                // Served by `mi_malloc` from the size's own class, which
                // mimalloc's aligned entry point (bare `MiMalloc`) exceeds
                // by one class for some sizes (8 KiB at 8: 10 KiB).
                assert_eq!(real, mimalloc_good_size(size), "{size} B at {align}");
                assert!(real <= bare_usable(layout), "{size} B at {align}");
            } else if size >= align {
                // (Smaller ones are over-allocated and offset by mimalloc,
                // differently each time.)
                assert_eq!(
                    real,
                    bare_usable(layout),
                    "{size} B at {align}: same class as bare mimalloc"
                );
            }
            let live_a = a.stats().live_requested;
            b.in_scope(|| {
                // SAFETY: allocated above with this layout.
                unsafe { std::alloc::dealloc(ptr, layout) }
            });
            // The place rule, on the size rounded up to a word.
            let rounded = size.next_multiple_of(8);
            let tagged = real >= rounded + 4 || rounded >= OWNER_SIDE_TABLE_MIN;
            if tagged {
                assert_eq!(
                    a.stats().live_requested,
                    live_a - size as i64,
                    "{size} B at {align}: the free is charged back to A"
                );
            } else {
                // Small blocks without slack carry no tag: charged where freed.
                assert_eq!(a.stats().live_requested, live_a, "{size} B at {align}");
            }
        }
    }
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!(
        sa.live_requested + sb.live_requested,
        0,
        "whatever the tags, the bytes balance"
    );
}

#[test]
fn a_shrinking_realloc_keeps_owner_and_usable_true() {
    let a = Scope::new("owner-shrink-A");
    let b = Scope::new("owner-shrink-B");
    let _p = precise();
    // 4096 B: side table; 100 B: trailer in its class's slack.
    let mut v: Vec<u8> = a.in_scope(|| (0..4096).map(|i| i as u8).collect());
    assert_eq!(a.stats().live_usable, 4096);
    b.in_scope(|| {
        v.truncate(100);
        v.shrink_to_fit();
    });
    assert_eq!(v.capacity(), 100);
    assert!(v.iter().take(100).enumerate().all(|(i, &x)| x == i as u8));
    assert_eq!(a.stats().live_requested, 0, "the old block goes back to A");
    assert_eq!(b.stats().live_requested, 100);
    // SAFETY: a live block of the global allocator.
    let real = unsafe { libmimalloc_sys::mi_usable_size(v.as_ptr().cast()) };
    assert_eq!(b.stats().live_usable, real as i64);
    assert_eq!(real, mimalloc_good_size(100));
    a.in_scope(|| drop(v));
    assert_eq!((b.stats().live_requested, b.stats().live_usable), (0, 0));
}

#[test]
fn a_corrupt_tag_is_charged_to_overflow_never_to_a_real_scope() {
    let a = Scope::new("owner-corrupt-A");
    let b = Scope::new("owner-corrupt-B");
    let layout = Layout::from_size_align(100, 8).unwrap();
    // SAFETY: non-zero size.
    let p = a.in_scope(|| unsafe { std::alloc::alloc(layout) });
    let usable = mimalloc_good_size(100);
    assert!(usable >= 100 + memledger_alloc::OWNER_TAG_BYTES);
    // SAFETY: the tag sits in the last four usable bytes, inside the block.
    unsafe { p.add(usable - 4).cast::<u32>().write_unaligned(0xFFFF_FFF0) };
    let overflow_before = Scope::OVERFLOW.stats().deallocations;
    let (a_before, b_before) = (a.stats().deallocations, b.stats().deallocations);
    // SAFETY: allocated above with `layout`.
    b.in_scope(|| unsafe { std::alloc::dealloc(p, layout) });
    assert_eq!(Scope::OVERFLOW.stats().deallocations, overflow_before + 1);
    assert_eq!(a.stats().deallocations, a_before);
    assert_eq!(b.stats().deallocations, b_before);
}

#[test]
fn large_blocks_are_charged_back_through_the_side_table() {
    let a = Scope::new("owner-side-A");
    let b = Scope::new("owner-side-B");
    // 20 000 live buffers of 4 KiB (Arrow-like: power of two, align 128).
    let layout = Layout::from_size_align(4096, 128).unwrap();
    let mut blocks: Vec<usize> = Vec::with_capacity(20_000);
    a.in_scope(|| {
        for _ in 0..20_000 {
            // SAFETY: non-zero size.
            blocks.push(unsafe { std::alloc::alloc(layout) } as usize);
        }
    });
    assert_eq!(a.stats().live_requested, 20_000 * 4096);
    b.in_scope(|| {
        for &p in &blocks {
            // SAFETY: allocated above with `layout`.
            unsafe { std::alloc::dealloc(p as *mut u8, layout) };
        }
    });
    assert_eq!(memledger_alloc::side_table_overflows(), 0);
    assert_eq!(a.stats().live_requested, 0, "every free charged back to A");
    assert_eq!(b.stats().deallocations, 0);
}

#[test]
fn an_adopted_block_moves_its_live_bytes_and_its_free_to_the_new_scope() {
    let a = Scope::new("adopt-A");
    let b = Scope::new("adopt-B");
    let c = Scope::new("adopt-C");
    let block = a.in_scope(|| vec![7u8; 100_000]);
    // SAFETY: a live block of the global allocator, which is mimalloc.
    let usable = unsafe { libmimalloc_sys::mi_usable_size(block.as_ptr().cast()) };
    let thread_before = this_thread();
    let (a0, b0) = (a.stats(), b.stats());

    assert_eq!(b.adopt(block.as_ptr()), Some(usable));
    let (a1, b1) = (a.stats(), b.stats());
    assert_eq!((a1.live_requested, a1.live_usable), (0, 0), "A let it go");
    assert_eq!(
        (b1.live_requested, b1.live_usable),
        (100_000, usable as i64),
        "B holds it"
    );
    assert!(b1.peak_requested >= 100_000, "B's peak rises with it");
    assert_eq!(
        (
            a1.allocations,
            a1.deallocations,
            b1.allocations,
            b1.deallocations
        ),
        (
            a0.allocations,
            a0.deallocations,
            b0.allocations,
            b0.deallocations
        ),
        "a move is no allocation"
    );
    let thread_after = this_thread();
    assert_eq!(
        (
            thread_after.allocations,
            thread_after.total_requested,
            thread_after.live_requested
        ),
        (
            thread_before.allocations,
            thread_before.total_requested,
            thread_before.live_requested
        ),
        "no thread figure moves"
    );

    // Adopting again changes nothing; a pointer into the block finds nothing.
    assert_eq!(b.adopt(block.as_ptr()), Some(usable));
    assert_eq!(b.stats().live_requested, 100_000);
    assert_eq!(c.adopt(block[16..].as_ptr()), None);
    assert_eq!(c.adopt(std::ptr::null()), None);

    // The free, from a third scope on another thread, is charged to B.
    std::thread::spawn(move || c.in_scope(|| drop(block)))
        .join()
        .unwrap();
    let (a2, b2, c2) = (a.stats(), b.stats(), c.stats());
    assert_eq!((a2.live_requested, b2.live_requested), (0, 0));
    assert_eq!(b2.deallocations, b0.deallocations + 1, "B took the free");
    assert_eq!(c2.deallocations, 0);

    // A block is adopted from the scopes the caller accepts only.
    let other = a.in_scope(|| vec![2u8; 50_000]);
    assert_eq!(c.adopt_from(other.as_ptr(), |from| from == b), None);
    assert_eq!(a.stats().live_requested, 50_000, "A keeps it");
    assert!(c.adopt_from(other.as_ptr(), |from| from == a).is_some());
    assert_eq!(
        (a.stats().live_requested, c.stats().live_requested),
        (0, 50_000)
    );
    drop(other);
    assert_eq!(c.stats().live_requested, 0);

    // Blocks below the side table's size keep their tag where only their
    // layout finds it: not adoptable.
    let small = a.in_scope(|| vec![1u8; 200]);
    assert_eq!(b.adopt(small.as_ptr()), None);
    assert_eq!(a.stats().live_requested, 200);
}

#[test]
fn blocks_adopted_back_and_forth_by_many_threads_end_with_every_scope_even() {
    const THREADS: usize = 8;
    const BLOCKS: usize = 2_000;
    let scopes: Vec<Scope> = (0..THREADS)
        .map(|i| Scope::new(&format!("adopt-many-{i}")))
        .collect();
    let origin = Scope::new("adopt-many-origin");
    // Arrow-like buffers shared by every thread.
    let blocks: std::sync::Arc<Vec<Vec<u8>>> = std::sync::Arc::new(origin.in_scope(|| {
        (0..BLOCKS)
            .map(|i| vec![0u8; 1024 + 64 * (i % 50)])
            .collect()
    }));
    let held: i64 = blocks.iter().map(|b| b.len() as i64).sum();
    let total = |list: &[Scope]| -> i64 { list.iter().map(|s| s.stats().live_requested).sum() };
    let before = total(&scopes) + origin.stats().live_requested;
    std::thread::scope(|t| {
        for (i, scope) in scopes.iter().enumerate() {
            let blocks = &blocks;
            t.spawn(move || {
                for round in 0..20 {
                    for (j, block) in blocks.iter().enumerate() {
                        if (j + round + i) % 3 == 0 {
                            assert!(scope.adopt(block.as_ptr()).is_some());
                        }
                    }
                }
            });
        }
    });
    // Every block is in exactly one scope: the moves add up.
    assert_eq!(total(&scopes) + origin.stats().live_requested, before);
    assert!(origin.stats().live_requested < held, "blocks moved out");
    drop(std::sync::Arc::into_inner(blocks).unwrap());
    for s in scopes.iter().chain([&origin]) {
        let st = s.stats();
        assert!(
            st.live_requested == 0 && st.live_usable == 0,
            "{}: {st:?}",
            st.name
        );
    }
}

#[test]
fn short_path_blocks_of_each_place_count_exactly_past_many_flushes() {
    let a = Scope::new("owner-short-A");
    let b = Scope::new("owner-short-B");
    // Short-path sizes (at most 8 KiB, align 8) of each tag place: 48 B and
    // 64 B fill their class (untagged, charged where freed), 72 B and
    // 4000 B have slack (trailer), 256 B and 4 KiB fill a class of 256 B or
    // more (side table). Thousands of each cross the thread's flush limits
    // many times.
    let sizes = [48usize, 64, 72, 256, 4000, 4096];
    let per_size = 5_000;
    let mut blocks: Vec<(usize, Layout)> = Vec::with_capacity(sizes.len() * per_size);
    a.in_scope(|| {
        for _ in 0..per_size {
            for &size in &sizes {
                let layout = Layout::from_size_align(size, 8).unwrap();
                // SAFETY: non-zero size.
                blocks.push((unsafe { std::alloc::alloc(layout) } as usize, layout));
            }
        }
    });
    let requested: i64 = sizes.iter().map(|&s| (s * per_size) as i64).sum();
    let usable: i64 = sizes
        .iter()
        .map(|&s| (mimalloc_good_size(s) * per_size) as i64)
        .sum();
    let sa = a.stats();
    assert_eq!((sa.live_requested, sa.live_usable), (requested, usable));
    assert_eq!(sa.allocations, (sizes.len() * per_size) as u64);
    b.in_scope(|| {
        for &(p, layout) in &blocks {
            // SAFETY: allocated above with `layout`.
            unsafe { std::alloc::dealloc(p as *mut u8, layout) };
        }
    });
    // Tagged blocks go back to A; untagged ones stay in B.
    let untagged = |s: usize| s == 48 || s == 64;
    let back: i64 = sizes
        .iter()
        .filter(|&&s| !untagged(s))
        .map(|&s| (s * per_size) as i64)
        .sum();
    let stayed: i64 = requested - back;
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!(sa.live_requested, requested - back);
    assert_eq!(sb.live_requested, -stayed);
    assert_eq!(sa.deallocations, (4 * per_size) as u64);
    assert_eq!(sb.deallocations, (2 * per_size) as u64);
    assert_eq!(sb.allocations, 0);
}
