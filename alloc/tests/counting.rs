//! Counting mode with mimalloc as the inner allocator: exact figures for known
//! sequences. Scopes and the calling thread's own counters isolate each test
//! from whatever else the test runner allocates.

use std::alloc::{Layout, dealloc};
use std::hint::black_box;

/// Allocations the optimizer may not elide (an unused one may be removed).
unsafe fn alloc(layout: Layout) -> *mut u8 {
    // SAFETY: the caller's contract.
    black_box(unsafe { std::alloc::alloc(layout) })
}

unsafe fn realloc(ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
    // SAFETY: the caller's contract.
    black_box(unsafe { std::alloc::realloc(black_box(ptr), layout, new_size) })
}

unsafe fn alloc_zeroed(layout: Layout) -> *mut u8 {
    // SAFETY: the caller's contract.
    black_box(unsafe { std::alloc::alloc_zeroed(layout) })
}
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use memledger_alloc::{MiMalloc, Scope, Tracked, mimalloc_good_size, precise, this_thread};

#[global_allocator]
static GLOBAL: Tracked<MiMalloc> = Tracked::new(MiMalloc);

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

#[test]
fn known_sequence_gives_exact_scope_and_thread_figures() {
    let scope = Scope::new("known-sequence");
    let _precise = precise();
    let before = this_thread();
    let (live, peak) = scope.in_scope(|| unsafe {
        let a = alloc(layout(100));
        let b = alloc(layout(1000));
        let c = alloc(layout(24));
        dealloc(b, layout(1000));
        (a, c)
    });
    let after = this_thread();
    let s = scope.stats();
    assert_eq!(s.live_requested, 124);
    assert_eq!(
        s.live_usable,
        (mimalloc_good_size(100) + mimalloc_good_size(24)) as i64
    );
    assert_eq!(
        s.live_usable,
        112 + 32,
        "mimalloc classes: 100 -> 112, 24 -> 32"
    );
    assert_eq!(s.peak_requested, 1124);
    assert_eq!(s.total_requested, 1124);
    assert_eq!(s.total_usable, 112 + 1024 + 32);
    assert_eq!(s.allocations, 3);
    assert_eq!(s.deallocations, 1);
    // The thread saw the same operations (nothing else ran on it in between).
    assert_eq!(after.allocations - before.allocations, 3);
    assert_eq!(after.deallocations - before.deallocations, 1);
    assert_eq!(after.total_requested - before.total_requested, 1124);
    assert_eq!(after.live_requested - before.live_requested, 124);
    unsafe {
        dealloc(live, layout(100));
        dealloc(peak, layout(24));
    }
    // Counting mode: freed outside the scope, so the scope keeps its bytes...
    assert_eq!(scope.stats().live_requested, 124);
    // ...and the thread is back where it started.
    assert_eq!(this_thread().live_requested, before.live_requested);
}

#[test]
fn realloc_grow_and_shrink_in_place_and_moved() {
    let scope = Scope::new("realloc");
    let _precise = precise();
    scope.in_scope(|| unsafe {
        let before = this_thread();
        let p = alloc(layout(100));
        p.write_bytes(7, 100);
        // Shrinking within the size class keeps the block in place.
        let q = realloc(p, layout(100), 97);
        assert_eq!(q, p, "mimalloc shrinks in place within the size class");
        assert_eq!(scope.stats().live_requested, 97);
        // Growing far past the class moves it; the contents come along.
        let r = realloc(q, layout(97), 100_000);
        assert_eq!(*r.add(96), 7);
        assert_eq!(scope.stats().live_requested, 100_000);
        assert_eq!(
            scope.stats().live_usable,
            mimalloc_good_size(100_000) as i64
        );
        // Shrinking to a small size.
        let s = realloc(r, layout(100_000), 10);
        assert_eq!(*s.add(9), 7);
        let stats = scope.stats();
        assert_eq!(stats.live_requested, 10);
        assert_eq!(stats.peak_requested, 100_000);
        assert_eq!(stats.total_requested, 100 + 97 + 100_000 + 10);
        assert_eq!(stats.allocations, 1, "reallocations are not allocations");
        let after = this_thread();
        assert_eq!(after.reallocations - before.reallocations, 3);
        assert_eq!(after.allocations - before.allocations, 1);
        dealloc(s, layout(10));
        assert_eq!(scope.stats().live_requested, 0);
        assert_eq!(scope.stats().deallocations, 1);
    });
}

#[test]
fn alloc_zeroed_is_zero_and_counted() {
    let scope = Scope::new("zeroed");
    scope.in_scope(|| unsafe {
        let l = layout(1 << 20);
        let p = alloc_zeroed(l);
        let bytes = std::slice::from_raw_parts(p, 1 << 20);
        assert!(bytes.iter().all(|&b| b == 0));
        assert_eq!(scope.stats().live_requested, 1 << 20);
        assert_eq!(scope.stats().allocations, 1);
        dealloc(p, l);
        assert_eq!(scope.stats().live_requested, 0);
    });
}

#[test]
fn page_alignment_is_honoured_and_counted() {
    let scope = Scope::new("aligned");
    scope.in_scope(|| unsafe {
        let l = Layout::from_size_align(5000, 4096).unwrap();
        let p = alloc(l);
        assert_eq!(p as usize % 4096, 0);
        let s = scope.stats();
        assert_eq!(s.live_requested, 5000);
        assert!(
            s.live_usable >= 5000,
            "usable {} < requested",
            s.live_usable
        );
        let q = realloc(p, l, 9000);
        assert_eq!(q as usize % 4096, 0);
        assert_eq!(scope.stats().live_requested, 9000);
        dealloc(q, Layout::from_size_align(9000, 4096).unwrap());
        let s = scope.stats();
        assert_eq!((s.live_requested, s.live_usable), (0, 0));
    });
}

#[test]
fn nested_scopes_innermost_wins_and_guard_restores() {
    let outer = Scope::new("outer");
    let inner = Scope::new("inner");
    assert_eq!(Scope::current(), Scope::UNSCOPED);
    let _o = outer.enter();
    let a = vec![0u8; 300];
    {
        let _i = inner.enter();
        assert_eq!(Scope::current(), inner);
        let b = vec![0u8; 500];
        std::mem::forget(b);
    }
    assert_eq!(Scope::current(), outer);
    let c = vec![0u8; 700];
    assert_eq!(inner.stats().live_requested, 500);
    assert_eq!(outer.stats().live_requested, 1000);
    assert_eq!(Scope::new("inner"), inner, "interned by name");
    assert_eq!(inner.name(), "inner");
    drop((a, c));
}

/// Allocates 1000 bytes per poll and is ready on the second poll.
struct TwoPolls {
    polls: u32,
    kept: Vec<Vec<u8>>,
}

impl Future for TwoPolls {
    type Output = Vec<Vec<u8>>;
    fn poll(mut self: std::pin::Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.polls += 1;
        let v = vec![1u8; 1000];
        self.kept.push(v);
        if self.polls == 2 {
            Poll::Ready(std::mem::take(&mut self.kept))
        } else {
            Poll::Pending
        }
    }
}

#[test]
fn instrumented_future_polled_from_two_threads_charges_its_scope() {
    let scope = Scope::new("future");
    let fut = Box::new(scope.instrument(TwoPolls {
        polls: 0,
        kept: Vec::with_capacity(4),
    }));
    let fut = std::thread::spawn(move || {
        let mut fut = fut;
        let mut cx = Context::from_waker(Waker::noop());
        assert!(std::pin::Pin::new(&mut *fut).poll(&mut cx).is_pending());
        fut
    })
    .join()
    .unwrap();
    let out = std::thread::spawn(move || {
        let mut cx = Context::from_waker(Waker::noop());
        let mut fut = pin!(fut);
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("second poll is ready"),
        }
    })
    .join()
    .unwrap();
    assert_eq!(out.len(), 2);
    let s = scope.stats();
    assert_eq!(
        s.allocations, 2,
        "one allocation per poll, each charged to the scope"
    );
    assert_eq!(s.live_requested, 2000);
    assert_eq!(Scope::UNSCOPED.name(), "unscoped");
}

#[test]
fn precise_thread_peak_is_exact_within_a_flush_window() {
    let scope = Scope::new("precise-peak");
    let _p = precise();
    scope.in_scope(|| {
        for _ in 0..3 {
            let v = vec![0u8; 10_000];
            drop(v);
        }
    });
    let s = scope.stats();
    assert_eq!(s.peak_requested, 10_000);
    assert_eq!(s.live_requested, 0);
    assert_eq!(s.total_requested, 30_000);
}

#[test]
fn batched_peak_is_within_the_stated_error_bound() {
    let scope = Scope::new("batched-peak");
    scope.in_scope(|| {
        let v = vec![0u8; 3 << 20];
        drop(v);
    });
    let s = scope.stats();
    let bound = memledger_alloc::peak_error_bytes() as i64;
    assert!(bound >= memledger_alloc::FLUSH_BYTES as i64);
    assert!(
        (s.peak_requested - (3 << 20)).abs() <= bound,
        "peak {}",
        s.peak_requested
    );
    assert_eq!(s.live_requested, 0);
}

#[test]
fn heap_totals_cover_scoped_work() {
    let before = memledger_alloc::heap();
    let v: Vec<Box<[u8; 4096]>> = (0..256).map(|_| Box::new([0u8; 4096])).collect();
    let during = memledger_alloc::heap();
    assert!(during.total_requested - before.total_requested >= 256 * 4096);
    assert!(during.allocations - before.allocations >= 257);
    assert!(during.peak_requested >= during.live_requested);
    drop(v);
    assert_eq!(
        memledger_alloc::attribution(),
        Some(memledger_alloc::Attribution::Counting)
    );
    assert!(memledger_alloc::is_installed());
}

#[cfg(feature = "stream")]
#[test]
fn instrumented_stream_charges_every_poll_next() {
    use futures_core::Stream;

    /// Yields three 512-byte buffers.
    struct Buffers(u32);
    impl Stream for Buffers {
        type Item = Vec<u8>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Vec<u8>>> {
            if self.0 == 3 {
                return Poll::Ready(None);
            }
            self.0 += 1;
            Poll::Ready(Some(vec![0u8; 512]))
        }
    }

    let scope = Scope::new("stream");
    let mut stream = scope.instrument(Buffers(0));
    let mut cx = Context::from_waker(Waker::noop());
    let mut kept = Vec::new();
    while let Poll::Ready(Some(b)) = std::pin::Pin::new(&mut stream).poll_next(&mut cx) {
        kept.push(b);
    }
    let s = scope.stats();
    assert_eq!(s.allocations, 3);
    assert_eq!(s.live_requested, 3 * 512);
}

#[test]
fn a_cancelled_future_frees_inside_its_scope() {
    let scope = Scope::new("cancelled");
    let mut fut = Box::pin(scope.instrument(TwoPolls {
        polls: 0,
        kept: Vec::new(),
    }));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    let held = scope.stats().live_requested;
    assert!(
        held >= 1000,
        "the first poll allocated in the scope: {held}"
    );
    // Cancelled from outside the scope: its state is freed inside it.
    drop(fut);
    let s = scope.stats();
    assert_eq!(s.live_requested, 0, "freed where it was allocated");
    assert_eq!(s.deallocations, s.allocations);
}

#[test]
fn the_usable_peak_is_within_one_flush_of_the_truth() {
    // 60 000 one-byte boxes: 60 000 requested bytes, 480 000 usable ones.
    const N: usize = 60_000;
    let scope = Scope::new("tiny-boxes");
    let (peak, live) = std::thread::spawn(move || {
        let mut boxes: Vec<Box<u8>> = Vec::with_capacity(N);
        scope.in_scope(|| {
            for i in 0..N {
                boxes.push(Box::new(i as u8));
            }
            boxes.clear();
        });
        let s = scope.stats();
        (s.peak_usable, s.live_usable)
    })
    .join()
    .unwrap();
    let truth = (N * mimalloc_good_size(1)) as i64;
    assert_eq!(live, 0);
    assert!(
        (truth - peak).abs() <= memledger_alloc::FLUSH_BYTES as i64,
        "usable peak {peak}, truth {truth}: one thread holds back at most one flush"
    );
}

#[test]
fn counting_mode_adopts_nothing() {
    let a = Scope::new("counting-adopt-A");
    let b = Scope::new("counting-adopt-B");
    let block = a.in_scope(|| black_box(vec![3u8; 100_000]));
    assert_eq!(b.adopt(block.as_ptr()), None, "no tags, nothing to find");
    assert_eq!(a.stats().live_requested, 100_000);
    assert_eq!(b.stats().live_requested, 0);
}
