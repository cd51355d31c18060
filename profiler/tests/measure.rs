//! Measurements isolated from the rest of the process, with the tracked
//! allocator installed.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use memledger_alloc::{MAX_SCOPES, MiMalloc, Scope, Tracked};
use memledger_profiler::{GreedyPool, MemoryConsumer, MemoryPool, measure, measure_future};

#[global_allocator]
static GLOBAL: Tracked<MiMalloc> = Tracked::new(MiMalloc);

/// Measurements are isolated from each other by design; this lock only
/// keeps the assertions on allocation counts away from the other tests'
/// threads starting up.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const MIB: i64 = 1 << 20;

#[test]
fn two_concurrent_measurements_see_only_their_own_allocations() {
    let _s = serial();
    // Both regions are under way at once: they meet here before allocating.
    let both_in = Arc::new(std::sync::Barrier::new(2));
    let handles: Vec<_> = [3usize, 5]
        .into_iter()
        .map(|mib| {
            let both_in = Arc::clone(&both_in);
            std::thread::spawn(move || {
                measure(|| {
                    both_in.wait();
                    let mut keep = Vec::new();
                    for _ in 0..20 {
                        let v = vec![0u8; mib << 20];
                        std::thread::yield_now();
                        keep.push(vec![1u8; 1000]);
                        drop(v);
                    }
                    keep
                })
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap().1).collect();
    for (m, mib) in results.iter().zip([3i64, 5]) {
        // The peak: one big buffer plus the small ones kept so far, plus the keep vector.
        assert!(
            m.peak_bytes >= mib * MIB && m.peak_bytes < mib * MIB + 64 * 1024,
            "{m:?}"
        );
        assert!(m.live_at_end_bytes >= 20 * 1000 && m.live_at_end_bytes < 20 * 1000 + 1024);
        assert!(m.allocations >= 40 && m.allocations < 50, "{m:?}");
    }
    assert_ne!(
        results[0].scope, results[1].scope,
        "one scope per region under way"
    );
}

#[test]
fn the_reservation_check_fails_readably_when_the_heap_outgrows_it() {
    let _s = serial();
    let pool: Arc<dyn MemoryPool> = Arc::new(GreedyPool::new(1 << 30));
    let (_, m) = measure(|| {
        let mut r = MemoryConsumer::new("Checked[0]").register(&pool);
        r.try_grow(MIB as usize).unwrap();
        let v = vec![0u8; 2 * MIB as usize];
        drop(v);
    });
    assert_eq!(m.reserved_peak_bytes, MIB as u64);
    assert!(
        m.peak_bytes >= 2 * MIB && m.peak_bytes < 2 * MIB + 4096,
        "{m:?}"
    );
    assert_eq!(m.untracked_peak_bytes, m.peak_bytes - MIB);
    assert_eq!(
        m.live_at_end_bytes, 0,
        "the ledger's row is not the region's"
    );
    let err = m.check_within_reservation(0.5).unwrap_err();
    assert!(
        err.starts_with(&format!(
            "heap peak {} bytes exceeds the reservation peak 1048576 bytes",
            m.peak_bytes
        )),
        "{err}"
    );
    assert!(m.check_within_reservation(1.5).is_ok());
    let panicked = std::panic::catch_unwind(|| m.assert_within_reservation(0.5)).unwrap_err();
    assert_eq!(panicked.downcast_ref::<String>(), Some(&err));
}

#[test]
fn a_scope_handed_back_measures_the_next_region_from_zero() {
    let _s = serial();
    let pool: Arc<dyn MemoryPool> = Arc::new(GreedyPool::new(1 << 30));
    let (kept, first) = measure(|| {
        let mut r = MemoryConsumer::new("Reused[0]").register(&pool);
        r.try_grow(3 * MIB as usize).unwrap();
        vec![0u8; 4 * MIB as usize]
    });
    let (_, second) = measure(|| drop(vec![0u8; MIB as usize]));
    // The next measurement on this thread reuses the scope: its peak and
    // counts start from what the first one left behind.
    assert_eq!(second.scope, first.scope);
    assert_eq!(first.live_at_end_bytes, 4 * MIB);
    assert_eq!(first.reserved_peak_bytes, 3 * MIB as u64);
    // The first region's reservation does not count in the second.
    assert_eq!(second.reserved_peak_bytes, 0);
    assert_eq!(second.untracked_peak_bytes, MIB);
    assert_eq!(
        (
            second.peak_bytes,
            second.allocations,
            second.live_at_end_bytes
        ),
        (MIB, 1, 0)
    );
    drop(kept);
}

/// Ready on the second poll; allocates on both.
struct TwoPolls {
    polled: u32,
    held: Vec<Vec<u8>>,
}

impl Future for TwoPolls {
    type Output = usize;
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        self.polled += 1;
        self.held.push(vec![7u8; 2 * MIB as usize]);
        if self.polled == 1 {
            cx.waker().wake_by_ref();
            Poll::Pending
        } else {
            let held = std::mem::take(&mut self.held);
            Poll::Ready(held.iter().map(Vec::len).sum())
        }
    }
}

#[test]
fn a_future_is_measured_across_polls_on_different_threads() {
    let _s = serial();
    let mut fut = Box::pin(measure_future(TwoPolls {
        polled: 0,
        held: Vec::new(),
    }));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    // Finish it on another thread: its allocations there count as well.
    let (total, m) = std::thread::spawn(move || {
        let mut cx = Context::from_waker(Waker::noop());
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(out) => out,
            Poll::Pending => panic!("ready on the second poll"),
        }
    })
    .join()
    .unwrap();
    assert_eq!(total, 4 * MIB as usize);
    assert!(
        m.peak_bytes >= 4 * MIB && m.peak_bytes < 4 * MIB + 4096,
        "{m:?}"
    );
    assert!(m.allocations >= 2, "{m:?}");
    // Counting mode: the first buffer was freed on the second thread, in the
    // same scope, so nothing is left.
    assert_eq!(m.live_at_end_bytes, 0, "{m:?}");
    let outside = Scope::current();
    assert_ne!(outside, m.scope, "the scope is left after the poll");
}

#[test]
fn more_measurements_than_scopes_reuse_scopes_and_stay_exact() {
    let _s = serial();
    let overflowed = memledger_alloc::overflowed_scope_names();
    let mut scopes = std::collections::BTreeSet::new();
    for i in 0..MAX_SCOPES + 100 {
        let bytes = 1000 + i % 7;
        let (_, m) = measure(|| drop(vec![0u8; bytes]));
        assert_eq!(
            (m.peak_bytes, m.allocations, m.live_at_end_bytes),
            (bytes as i64, 1, 0),
            "measurement {i}"
        );
        assert_ne!(m.scope, Scope::OVERFLOW, "measurement {i}");
        scopes.insert(m.scope);
    }
    assert!(scopes.len() <= 2, "{} scopes for one thread", scopes.len());
    assert_eq!(memledger_alloc::overflowed_scope_names(), overflowed);
}

#[test]
fn a_scope_reserved_peak_is_the_peak_of_its_consumers_sum() {
    let _s = serial();
    let pool: Arc<dyn MemoryPool> = Arc::new(GreedyPool::new(1 << 30));
    let (_, m) = measure(|| {
        let mut a = MemoryConsumer::new("SumPeakA[0]").register(&pool);
        let mut b = MemoryConsumer::new("SumPeakB[0]").register(&pool);
        // A peaks at 3 MiB alone; B peaks at 2 MiB while A holds 1 MiB.
        a.try_grow(3 * MIB as usize).unwrap();
        a.shrink(2 * MIB as usize);
        b.try_grow(2 * MIB as usize).unwrap();
        b.free();
        // The heap: 3.5 MiB at most, over the 3 MiB peak of the sum.
        drop(vec![0u8; 7 * MIB as usize / 2]);
    });
    assert_eq!(
        m.reserved_peak_bytes,
        3 * MIB as u64,
        "the peak of the sum, not 3 + 2 MiB"
    );
    // The region's own small allocations (the registrations) come on top.
    assert!(
        m.peak_bytes >= 7 * MIB / 2 && m.peak_bytes < 7 * MIB / 2 + 4096,
        "{m:?}"
    );
    assert_eq!(m.untracked_peak_bytes, m.peak_bytes - 3 * MIB);
    assert!(m.check_within_reservation(0.1).is_err());
    assert!(m.check_within_reservation(0.2).is_ok());
}
