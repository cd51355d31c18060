//! Pool semantics, through the public API, with the tracked allocator
//! installed so refusals can name what consumers really allocated. The
//! ledger is process-wide, so tests run one at a time.

use std::sync::{Arc, Mutex};

use memledger_alloc::{MiMalloc, Scope, Tracked};
use memledger_profiler::{
    ArbiterPool, FairSpillPool, GreedyPool, MemoryConsumer, MemoryPool, MemoryReservation,
    PoolKind, UnboundedPool, ledger,
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
            let mut guard = s.reservation.lock().unwrap();
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
                        assert!(pool.reserved() <= 100_000, "never past the limit");
                        r.shrink(n / 2 + i % 2);
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
