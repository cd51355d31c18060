//! Owner mode: frees are charged back to the scope that allocated the block.

use memledger_alloc::{
    MiMalloc, OWNER_HEADER_BYTES, OWNER_HEADER_MIN, OWNER_TRAILER_BYTES, Owner, Scope, Tracked,
    mimalloc_good_size, precise,
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
    assert_eq!(
        sa.live_usable,
        mimalloc_good_size(100_000 + OWNER_HEADER_BYTES) as i64
    );
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
    drop(v);
    assert_eq!(
        b.stats().live_requested,
        0,
        "freed from unscoped, charged to B"
    );
    assert_eq!(
        Scope::UNSCOPED.stats().deallocations,
        Scope::UNSCOPED.stats().deallocations
    );
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

#[test]
fn realloc_across_the_header_threshold_keeps_contents_and_owner() {
    let a = Scope::new("owner-cross-A");
    let b = Scope::new("owner-cross-B");
    let _p = precise();
    let small = OWNER_HEADER_MIN / 2;
    let mut v: Vec<u8> = a.in_scope(|| (0..small).map(|i| i as u8).collect());
    assert_eq!(
        a.stats().live_usable,
        mimalloc_good_size(small + OWNER_TRAILER_BYTES) as i64
    );
    // Trailer -> header.
    a.in_scope(|| v.reserve_exact(4 * OWNER_HEADER_MIN - v.len()));
    assert!(v.iter().enumerate().all(|(i, &x)| x == i as u8));
    assert_eq!(a.stats().live_requested, (4 * OWNER_HEADER_MIN) as i64);
    // Header -> trailer, in another scope: the old block goes back to A.
    b.in_scope(|| v.shrink_to(small));
    assert_eq!(v.capacity(), small);
    assert!(v.iter().enumerate().all(|(i, &x)| x == i as u8));
    assert_eq!(a.stats().live_requested, 0);
    assert_eq!(b.stats().live_requested, small as i64);
    drop(v);
    assert_eq!((b.stats().live_requested, b.stats().live_usable), (0, 0));
}
