//! The audited pool changes no decision: same grants, same errors, same
//! reserved figures as the pool it wraps; per-consumer figures agree with
//! TrackConsumersPool's own.

use std::num::NonZeroUsize;
use std::sync::Arc;

use datafusion::execution::memory_pool::{
    FairSpillPool, GreedyMemoryPool, MemoryConsumer, MemoryPool, MemoryReservation,
    TrackConsumersPool,
};
use memledger_datafusion::AuditedPool;

/// One step of a scripted sequence over three consumers.
#[derive(Clone, Copy, Debug)]
enum Step {
    TryGrow(usize, usize),
    Grow(usize, usize),
    Shrink(usize, usize),
    Free(usize),
}

const SCRIPT: [Step; 12] = [
    Step::TryGrow(0, 300),
    Step::TryGrow(1, 500),
    Step::TryGrow(2, 400), // refused by a 1000-byte greedy pool
    Step::Grow(2, 100),
    Step::Shrink(1, 200),
    Step::TryGrow(2, 250),
    Step::TryGrow(0, 1000), // refused
    Step::Free(1),
    Step::TryGrow(0, 400),
    Step::Shrink(0, 100),
    Step::TryGrow(1, 10_000), // refused
    Step::Grow(1, 50),
];

/// Runs the script; returns, per step, the outcome (error text or "ok") and the pool's reserved bytes.
fn play(pool: Arc<dyn MemoryPool>) -> Vec<(String, usize)> {
    let reservations: Vec<MemoryReservation> = [
        "ExternalSorter[0]",
        "HashJoinInput[0]",
        "RepartitionExec[1]",
    ]
    .iter()
    .enumerate()
    .map(|(i, name)| {
        MemoryConsumer::new(*name)
            .with_can_spill(i != 1)
            .register(&pool)
    })
    .collect();
    SCRIPT
        .iter()
        .map(|step| {
            let outcome = match *step {
                Step::TryGrow(c, n) => match reservations[c].try_grow(n) {
                    Ok(()) => "ok".to_string(),
                    Err(e) => e.to_string(),
                },
                Step::Grow(c, n) => {
                    reservations[c].grow(n);
                    "ok".into()
                }
                Step::Shrink(c, n) => {
                    reservations[c].shrink(n);
                    "ok".into()
                }
                Step::Free(c) => format!("freed {}", reservations[c].free()),
            };
            (outcome, pool.reserved())
        })
        .collect()
}

#[test]
fn grants_and_errors_equal_the_inner_pools() {
    let bare = play(Arc::new(GreedyMemoryPool::new(1000)));
    let audited = play(Arc::new(AuditedPool::new(Arc::new(GreedyMemoryPool::new(
        1000,
    )))));
    assert_eq!(audited, bare);
    let refusals = bare
        .iter()
        .filter(|(o, _)| o.contains("Resources exhausted"))
        .count();
    assert_eq!(refusals, 4, "the script exercises refusals: {bare:?}");

    let bare = play(Arc::new(FairSpillPool::new(1200)));
    let audited = play(Arc::new(AuditedPool::new(Arc::new(FairSpillPool::new(
        1200,
    )))));
    assert_eq!(audited, bare);
}

#[test]
fn per_consumer_figures_equal_track_consumers_pool() {
    let top = NonZeroUsize::new(5).unwrap();
    let tracked = Arc::new(TrackConsumersPool::new(GreedyMemoryPool::new(1000), top));
    let audited = Arc::new(AuditedPool::new(Arc::clone(&tracked) as Arc<dyn MemoryPool>));
    let pool: Arc<dyn MemoryPool> = Arc::clone(&audited) as Arc<dyn MemoryPool>;
    let a = MemoryConsumer::new("ExternalSorter[0]")
        .with_can_spill(true)
        .register(&pool);
    let b = MemoryConsumer::new("HashJoinInput[0]").register(&pool);
    a.try_grow(300).unwrap();
    b.try_grow(600).unwrap();
    assert!(a.try_grow(500).is_err());
    a.shrink(100);
    b.grow(150);
    b.shrink(400);

    let mut theirs: Vec<(String, usize, usize)> = tracked
        .metrics()
        .into_iter()
        .map(|m| (m.name, m.reserved, m.peak))
        .collect();
    theirs.sort();
    let mut ours: Vec<(String, usize, usize)> = audited
        .consumers()
        .into_iter()
        .map(|c| {
            (
                c.name.clone(),
                c.reserved as usize,
                c.reserved_peak as usize,
            )
        })
        .collect();
    ours.sort();
    assert_eq!(ours, theirs);
    assert_eq!(
        ours,
        vec![
            ("ExternalSorter[0]".to_string(), 200, 300),
            ("HashJoinInput[0]".to_string(), 350, 750),
        ]
    );
    let refused = audited
        .consumers()
        .iter()
        .find(|c| c.name == "ExternalSorter[0]")
        .map(|c| c.refusals);
    assert_eq!(refused, Some(1));
}
