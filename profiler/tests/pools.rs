//! Pool semantics, through the public API, with the tracked allocator
//! installed so refusals can name what consumers really allocated. The
//! ledger is process-wide, so tests run one at a time.

use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use memledger_alloc::{MiMalloc, Scope, Tracked};
use memledger_profiler::ledger::{MAX_FINISHED_ROWS, OTHERS};
use memledger_profiler::{
    ArbiterPool, FairSpillPool, GreedyPool, MemoryConsumer, MemoryPool, MemoryReservation,
    PoolKind, ReleaseError, UnboundedPool, ledger,
};

#[global_allocator]
static GLOBAL: Tracked<MiMalloc> = Tracked::new(MiMalloc);

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn greedy_refuses_over_its_limit_and_grants_after_a_free() {
    let _s = serial();
    let pool: Arc<dyn MemoryPool> = Arc::new(GreedyPool::new(1000));
    let mut a = MemoryConsumer::new("greedy-a").register(&pool);
    let mut b = MemoryConsumer::new("greedy-b").register(&pool);
    a.try_grow(600).unwrap();
    assert!(b.try_grow(500).is_err());
    assert_eq!(pool.reserved(), 600);
    b.try_grow(400).unwrap();
    assert_eq!(pool.reserved(), 1000);
    a.shrink(100);
    b.try_grow(100).unwrap();
    assert_eq!((a.size(), b.size(), pool.reserved()), (500, 500, 1000));
    drop(a);
    assert_eq!(pool.reserved(), 500, "dropping a reservation frees it");
    let stats = ledger().consumers();
    let b_stats = stats.iter().find(|c| c.name == "greedy-b").unwrap();
    assert_eq!(
        (b_stats.reserved, b_stats.reserved_peak, b_stats.refusals),
        (500, 500, 1)
    );
    let a_stats = stats.iter().rev().find(|c| c.name == "greedy-a").unwrap();
    assert_eq!(
        (a_stats.reserved, a_stats.reserved_peak, a_stats.live),
        (0, 600, false)
    );
}

#[test]
fn fair_pool_shares_what_unspillable_consumers_leave() {
    let _s = serial();
    let pool: Arc<dyn MemoryPool> = Arc::new(FairSpillPool::new(1000));
    let mut fixed = MemoryConsumer::new("fair-fixed").register(&pool);
    fixed.try_grow(400).unwrap();
    let mut s1 = MemoryConsumer::new("fair-s1")
        .with_can_spill(true)
        .register(&pool);
    let mut s2 = MemoryConsumer::new("fair-s2")
        .with_can_spill(true)
        .register(&pool);
    // 600 left for two spillers: 300 each.
    s1.try_grow(300).unwrap();
    assert!(
        s1.try_grow(1).is_err(),
        "a spiller may not exceed its share"
    );
    s2.try_grow(250).unwrap();
    assert!(s2.try_grow(51).is_err());
    s2.try_grow(50).unwrap();
    // An unspillable consumer takes what is free, first come first served.
    assert!(fixed.try_grow(1).is_err(), "nothing left");
    drop(s2);
    // One spiller left: its share is all 600.
    s1.try_grow(300).unwrap();
    assert_eq!(pool.reserved(), 1000);
}

/// A spillable operator: its buffered bytes behind a lock the pool's
/// callback can take.
struct Spiller {
    reservation: Mutex<Option<MemoryReservation>>,
    spilled: Mutex<Vec<usize>>,
}

fn spiller(pool: &Arc<dyn MemoryPool>, name: &str, bytes: usize) -> Arc<Spiller> {
    let s = Arc::new(Spiller {
        reservation: Mutex::new(None),
        spilled: Mutex::new(Vec::new()),
    });
    let weak = Arc::downgrade(&s);
    let mut r = MemoryConsumer::new(name)
        .with_spill(Arc::new(move |_wanted| {
            let Some(s) = weak.upgrade() else { return 0 };
            // Never block in a callback: a busy operator spills by itself.
            let Ok(mut guard) = s.reservation.try_lock() else {
                return 0;
            };
            let freed = guard.as_mut().map_or(0, |r| r.free());
            s.spilled.lock().unwrap().push(freed);
            freed
        }))
        .register(pool);
    r.try_grow(bytes).unwrap();
    *s.reservation.lock().unwrap() = Some(r);
    s
}

#[test]
fn arbiter_spills_the_largest_shrinkable_consumer_first_then_grants() {
    let _s = serial();
    let pool: Arc<dyn MemoryPool> = Arc::new(ArbiterPool::new(1000));
    let small = spiller(&pool, "arb-small", 200);
    let large = spiller(&pool, "arb-large", 500);
    let mut join = MemoryConsumer::new("arb-join").register(&pool);
    join.try_grow(200).unwrap();
    // 900 used; 400 more needs 300 back: the largest (500) spills alone.
    join.try_grow(400).unwrap();
    assert_eq!(*large.spilled.lock().unwrap(), vec![500]);
    assert!(
        small.spilled.lock().unwrap().is_empty(),
        "the smaller one was not asked"
    );
    assert_eq!(pool.reserved(), 800);
    // 300 more: the small one is asked (200 freed); still 100 short: refused.
    let err = join.try_grow(500).unwrap_err();
    assert_eq!(*small.spilled.lock().unwrap(), vec![200]);
    assert!(err.to_string().contains("arb-join"), "{err}");
    let spills = ledger()
        .consumers()
        .into_iter()
        .find(|c| c.name == "arb-large")
        .unwrap()
        .spills;
    assert_eq!(spills, 1);
}

#[test]
fn split_resize_and_drop_keep_pool_and_ledger_in_step() {
    let _s = serial();
    let pool = PoolKind::Greedy.build(Some(10_000));
    let mut r = MemoryConsumer::new("split-me").register(&pool);
    r.try_grow(1000).unwrap();
    let mut part = r.split(300);
    assert_eq!((r.size(), part.size(), pool.reserved()), (700, 300, 1000));
    r.try_resize(2000).unwrap();
    assert_eq!(pool.reserved(), 2300);
    part.resize(100);
    assert_eq!(pool.reserved(), 2100);
    assert!(r.try_resize(20_000).is_err());
    assert_eq!(r.free(), 2000);
    drop(part);
    assert_eq!(pool.reserved(), 0);
    let c = ledger()
        .consumers()
        .into_iter()
        .find(|c| c.name == "split-me")
        .unwrap();
    assert_eq!((c.reserved, c.reserved_peak, c.refusals), (0, 2300, 1));
}

#[test]
fn a_refusal_names_the_top_consumers_with_reserved_and_allocated_bytes() {
    let _s = serial();
    let pool: Arc<dyn MemoryPool> = Arc::new(GreedyPool::new(8 << 20));
    let mut hog = MemoryConsumer::new("HashJoinInput[7]").register(&pool);
    let hog_data = Scope::new("HashJoinInput[7]").in_scope(|| vec![1u8; 6 << 20]);
    hog.try_grow(1 << 20).unwrap();
    let mut other = MemoryConsumer::new("ExternalSorter[7]").register(&pool);
    other.try_grow(2 << 20).unwrap();
    let err = other.try_grow(6 << 20).unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("Resources exhausted: failed to reserve 6.0 MiB for ExternalSorter[7] in greedy pool (limit 8.0 MiB, 3.0 MiB reserved)."), "{text}");
    assert!(
        text.contains("ExternalSorter[7] reserved 2.0 MiB, allocated 0 B"),
        "{text}"
    );
    assert!(
        text.contains("HashJoinInput[7] reserved 1.0 MiB, allocated 6.0 MiB"),
        "{text}"
    );
    let first = text.find("ExternalSorter[7] reserved").unwrap();
    assert!(
        first < text.find("HashJoinInput[7] reserved").unwrap(),
        "largest reservation first"
    );
    assert_eq!(
        err.top[1],
        ("HashJoinInput[7]".to_string(), 1 << 20, 6 << 20)
    );
    drop(hog_data);
}

#[test]
fn a_refusal_names_only_the_consumers_of_its_own_pool() {
    let _s = serial();
    let other: Arc<dyn MemoryPool> = Arc::new(UnboundedPool::new());
    let mut elsewhere = MemoryConsumer::new("OtherQuery[0]").register(&other);
    elsewhere.grow(1 << 30);
    let pool: Arc<dyn MemoryPool> = Arc::new(GreedyPool::new(1000));
    let mut mine = MemoryConsumer::new("MyQuery[0]").register(&pool);
    mine.try_grow(900).unwrap();
    let err = mine.try_grow(200).unwrap_err();
    let names: Vec<&str> = err.top.iter().map(|t| t.0.as_str()).collect();
    assert_eq!(names, ["MyQuery[0]"], "{err}");
    assert_eq!(
        (err.requested, err.reserved, err.limit),
        (200, 900, Some(1000))
    );
    assert!(!err.to_string().contains("OtherQuery"), "{err}");
}

#[test]
fn the_unbounded_pool_grants_everything_and_counts_it() {
    let _s = serial();
    let pool = PoolKind::Unbounded.build(Some(10));
    assert_eq!((pool.name(), pool.limit()), ("unbounded", None));
    let mut a = MemoryConsumer::new("unbounded-a").register(&pool);
    a.try_grow(1 << 40).unwrap();
    let b = a.split(1 << 39);
    assert_eq!(pool.reserved(), 1 << 40, "a split asks nothing of the pool");
    drop(a);
    assert_eq!(pool.reserved(), 1 << 39);
    drop(b);
    assert_eq!(pool.reserved(), 0);
}

#[test]
fn pools_stay_consistent_under_concurrent_reservations() {
    let _s = serial();
    for kind in [PoolKind::Greedy, PoolKind::Fair, PoolKind::Arbiter] {
        let pool = kind.build(Some(100_000));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let pool = Arc::clone(&pool);
                std::thread::spawn(move || {
                    let mut r = MemoryConsumer::new(format!("concurrent-{t}"))
                        .with_can_spill(t % 2 == 0)
                        .register(&pool);
                    let mut granted = 0u64;
                    for i in 0..5_000usize {
                        let n = (i * 7919 + t * 31) % 3_000;
                        if r.try_grow(n).is_ok() {
                            granted += 1;
                        }
                        // DataFusion's fair rule checks a spiller against its
                        // share only: the total may pass the limit.
                        if kind != PoolKind::Fair {
                            assert!(pool.reserved() <= 100_000, "never past the limit");
                        }
                        r.shrink((n / 2 + i % 2).min(r.size()));
                        if i % 100 == 99 {
                            r.free();
                        }
                    }
                    granted
                })
            })
            .collect();
        let granted: u64 = threads.into_iter().map(|h| h.join().unwrap()).sum();
        assert!(granted > 1_000, "{kind:?}: {granted} grants");
        assert_eq!(pool.reserved(), 0, "{kind:?}: every reservation dropped");
    }
}

/// The message of a panic caught from `f`.
fn panic_text(f: impl FnOnce() + std::panic::UnwindSafe) -> String {
    let payload = std::panic::catch_unwind(f).expect_err("expected a panic");
    match payload.downcast::<String>() {
        Ok(text) => *text,
        Err(payload) => payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .unwrap_or_default(),
    }
}

#[test]
fn over_release_and_over_split_are_errors_never_clamps() {
    let _s = serial();
    for kind in [
        PoolKind::Unbounded,
        PoolKind::Greedy,
        PoolKind::Fair,
        PoolKind::Arbiter,
    ] {
        let pool = kind.build(Some(10_000));
        let mut r = MemoryConsumer::new("over-release").register(&pool);
        r.try_grow(300).unwrap();
        let refused = ReleaseError {
            consumer: "over-release".into(),
            requested: 301,
            size: 300,
        };
        assert_eq!(r.try_shrink(301), Err(refused.clone()), "{kind:?}");
        assert!(r.try_split(301).is_err(), "{kind:?}");
        assert_eq!(
            (r.size(), pool.reserved()),
            (300, 300),
            "{kind:?}: unchanged"
        );
        assert_eq!(r.try_shrink(100), Ok(200), "{kind:?}");
        assert_eq!(pool.reserved(), 200, "{kind:?}");
        let text = panic_text(std::panic::AssertUnwindSafe(|| r.shrink(201)));
        assert_eq!(
            text,
            "Cannot free the capacity 201 out of allocated size 200 of over-release"
        );
        let text = panic_text(std::panic::AssertUnwindSafe(|| drop(r.split(500))));
        assert!(text.starts_with("Cannot free the capacity 500"), "{text}");
        assert_eq!(
            (r.size(), pool.reserved()),
            (200, 200),
            "{kind:?}: unchanged"
        );
        // Every pool refuses to go below zero the same way, whoever calls it.
        let text = panic_text(std::panic::AssertUnwindSafe(|| pool.shrink(&r, 201)));
        assert!(
            text.ends_with("pool: cannot release 201 bytes out of 200 reserved"),
            "{kind:?}: {text}"
        );
        assert_eq!(pool.reserved(), 200, "{kind:?}: unchanged");
        let c = ledger()
            .consumers()
            .into_iter()
            .rev()
            .find(|c| c.name == "over-release" && c.live)
            .unwrap();
        assert_eq!((c.reserved, c.reserved_peak), (200, 300), "{kind:?}");
    }
}

#[test]
fn a_request_past_u64_is_refused_and_nothing_wraps() {
    let _s = serial();
    for kind in [
        PoolKind::Unbounded,
        PoolKind::Greedy,
        PoolKind::Fair,
        PoolKind::Arbiter,
    ] {
        let pool = kind.build(Some(u64::MAX));
        let mut a = MemoryConsumer::new("past-u64-a").register(&pool);
        let mut b = MemoryConsumer::new("past-u64-b")
            .with_can_spill(true)
            .register(&pool);
        a.try_grow(1000).unwrap();
        b.try_grow(10).unwrap();
        let ledger_before = ledger().reserved();
        assert!(a.try_grow(usize::MAX).is_err(), "{kind:?}");
        assert!(b.try_grow(usize::MAX).is_err(), "{kind:?}");
        assert_eq!((a.size(), b.size()), (1000, 10), "{kind:?}");
        assert_eq!(pool.reserved(), 1010, "{kind:?}: reserved never goes down");
        assert_eq!(ledger().reserved(), ledger_before, "{kind:?}");
        // An infallible grow that would wrap panics instead.
        let text = panic_text(std::panic::AssertUnwindSafe(|| a.grow(usize::MAX)));
        assert!(text.contains("overflows u64"), "{kind:?}: {text}");
        assert_eq!(pool.reserved(), 1010, "{kind:?}");
    }
}

#[test]
fn fair_pool_counts_the_asking_reservation_not_the_consumer() {
    let _s = serial();
    // DataFusion's rule: a spiller's share is checked against the size of
    // the reservation that asks; a split-off part counts apart.
    let pool: Arc<dyn MemoryPool> = Arc::new(FairSpillPool::new(1000));
    let mut s1 = MemoryConsumer::new("fair-split-s1")
        .with_can_spill(true)
        .register(&pool);
    let _s2 = MemoryConsumer::new("fair-split-s2")
        .with_can_spill(true)
        .register(&pool);
    s1.try_grow(500).unwrap();
    assert!(s1.try_grow(1).is_err(), "500 is the share of each of two");
    let mut part = s1.split(200);
    part.try_grow(300).unwrap();
    assert_eq!((s1.size(), part.size(), pool.reserved()), (300, 500, 800));
}

/// An operator whose state (and reservation) sits behind a lock that its
/// own thread holds while it asks the pool, with a callback that blocks on
/// that lock: the arrangement that deadlocks when two such operators ask
/// at once and each pool request calls the other's callback.
struct LockedOperator {
    state: Mutex<Option<MemoryReservation>>,
}

fn locked_operator(pool: &Arc<dyn MemoryPool>, name: &str, bytes: usize) -> Arc<LockedOperator> {
    let op = Arc::new(LockedOperator {
        state: Mutex::new(None),
    });
    let weak = Arc::downgrade(&op);
    let mut r = MemoryConsumer::new(name)
        .with_spill(Arc::new(move |_wanted| {
            let Some(op) = weak.upgrade() else { return 0 };
            // Blocking on purpose: the pool must not depend on callbacks
            // being polite to stay deadlock-free.
            let mut state = op.state.lock().unwrap_or_else(|e| e.into_inner());
            state.as_mut().map_or(0, MemoryReservation::free)
        }))
        .register(pool);
    r.try_grow(bytes).unwrap();
    *op.state.lock().unwrap() = Some(r);
    op
}

#[test]
fn two_spillers_asking_while_holding_their_own_locks_make_progress() {
    let _s = serial();
    for round in 0..20 {
        let pool: Arc<dyn MemoryPool> = Arc::new(ArbiterPool::new(1000));
        let ops = [
            locked_operator(&pool, "locked-a", 500),
            locked_operator(&pool, "locked-b", 500),
        ];
        let both_locked = Arc::new(Barrier::new(2));
        let (done, finished) = mpsc::channel();
        for (i, op) in ops.iter().enumerate() {
            let (op, both_locked, done) = (Arc::clone(op), Arc::clone(&both_locked), done.clone());
            std::thread::spawn(move || {
                let mut state = op.state.lock().unwrap();
                // Both hold their own lock before either asks.
                both_locked.wait();
                let granted = state.as_mut().map(|r| r.try_grow(100).is_ok());
                drop(state);
                let _ = done.send((i, granted));
            });
        }
        let mut outcomes = [None, None];
        for _ in 0..2 {
            // A bounded wait: a deadlock fails the test instead of hanging it.
            let (i, granted) = finished
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("round {round}: the two spillers deadlocked"));
            outcomes[i] = granted;
        }
        let sizes: Vec<usize> = ops
            .iter()
            .map(|op| {
                op.state
                    .lock()
                    .unwrap()
                    .as_ref()
                    .map_or(0, MemoryReservation::size)
            })
            .collect();
        assert_eq!(
            pool.reserved(),
            (sizes[0] + sizes[1]) as u64,
            "round {round}"
        );
        // Either both were refused (each saw the other busy), or one was
        // granted after the other spilled everything.
        match outcomes {
            [Some(false), Some(false)] => assert_eq!(sizes, [500, 500], "round {round}"),
            [Some(true), Some(false)] => assert_eq!(sizes, [600, 0], "round {round}"),
            [Some(false), Some(true)] => assert_eq!(sizes, [0, 600], "round {round}"),
            other => panic!("round {round}: {other:?} with sizes {sizes:?}"),
        }
    }
}

#[test]
fn a_callback_is_never_called_for_a_busy_consumer() {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    let _s = serial();
    let pool: Arc<dyn MemoryPool> = Arc::new(ArbiterPool::new(1000));
    // B asks; the pool asks C to spill; C's callback, still inside B's
    // request, makes D ask for more than is free. B holds the most, but it
    // is asking, and C is spilling: D's request calls neither callback.
    let b_called = Arc::new(AtomicU64::new(0));
    let mut b = MemoryConsumer::new("asking-b")
        .with_spill({
            let b_called = Arc::clone(&b_called);
            Arc::new(move |_| {
                b_called.fetch_add(1, Relaxed);
                0
            })
        })
        .register(&pool);
    b.try_grow(500).unwrap();
    let d = Arc::new(Mutex::new(MemoryConsumer::new("asking-d").register(&pool)));
    let d_granted = Arc::new(Mutex::new(Vec::new()));
    let c_slot: Arc<Mutex<Option<MemoryReservation>>> = Arc::new(Mutex::new(None));
    let mut c = MemoryConsumer::new("asking-c")
        .with_spill({
            let (c_slot, d, d_granted) = (
                Arc::downgrade(&c_slot),
                Arc::clone(&d),
                Arc::clone(&d_granted),
            );
            Arc::new(move |_| {
                let nested = d.lock().unwrap().try_grow(600).is_ok();
                d_granted.lock().unwrap().push(nested);
                c_slot
                    .upgrade()
                    .and_then(|slot| slot.lock().unwrap().as_mut().map(MemoryReservation::free))
                    .unwrap_or(0)
            })
        })
        .register(&pool);
    c.try_grow(400).unwrap();
    *c_slot.lock().unwrap() = Some(c);
    // 900 + 200 > 1000: C is asked and frees its 400; D's nested 600 did not fit.
    b.try_grow(200).unwrap();
    assert_eq!(b_called.load(Relaxed), 0, "B was asking");
    assert_eq!(*d_granted.lock().unwrap(), vec![false], "C was asked once");
    assert_eq!((b.size(), pool.reserved()), (700, 700));
    assert!(!b.consumer().is_busy(), "the mark ends with the request");
}

#[test]
fn the_ledger_stays_bounded_while_consumers_come_and_go() {
    let _s = serial();
    let pool: Arc<dyn MemoryPool> = Arc::new(UnboundedPool::new());
    let scope = Scope::new("ComeAndGo");
    let rows_before = ledger().rows();
    let internal = memledger_profiler::internal::internal_live();
    for i in 0..100_000u64 {
        // Distinct names: the folding must not keep one row per name.
        let mut r = MemoryConsumer::new(format!("ComeAndGo[{i}]"))
            .with_scope(scope)
            .register(&pool);
        r.try_grow(1 + (i % 1000) as usize).unwrap();
    }
    let rows = ledger().rows();
    assert!(
        rows <= rows_before + MAX_FINISHED_ROWS + 2,
        "{rows} rows after 100 000 consumers (from {rows_before})"
    );
    let grown = memledger_profiler::internal::internal_live() - internal;
    assert!(
        grown < (MAX_FINISHED_ROWS as i64) * 512,
        "the ledger's own memory grew by {grown} bytes"
    );
    let finished: Vec<_> = ledger()
        .consumers()
        .into_iter()
        .filter(|c| c.scope == scope)
        .collect();
    let registrations: u64 = finished.iter().map(|c| c.registrations).sum();
    assert_eq!(registrations, 100_000, "every consumer is counted once");
    let peak = finished.iter().map(|c| c.reserved_peak).max();
    assert_eq!(peak, Some(1000));
    assert!(finished.iter().all(|c| !c.live && c.reserved == 0));
    assert!(finished.iter().any(|c| c.name == OTHERS));
    assert_eq!(ledger().reserved_in(scope), (0, 1000));
}
