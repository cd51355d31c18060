//! memledger's `FairSpillPool` follows DataFusion's own rule for rule: the
//! same scripted and generated sequences of register, grow, try_grow,
//! shrink, split and unregister over spillable and unspillable consumers
//! get the same grants and refusals, and the same reserved bytes after
//! every step, from both pools.

use std::sync::Arc;

use datafusion::execution::memory_pool as df;
use memledger_profiler as ml;

/// One step over numbered reservation slots.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Step {
    /// A new consumer (spillable or not) registers into a slot.
    Register {
        slot: usize,
        can_spill: bool,
    },
    TryGrow(usize, usize),
    Grow(usize, usize),
    /// Releases bytes (never more than the slot holds).
    Shrink(usize, usize),
    /// Moves bytes of a slot into a new reservation of the same consumer in another slot.
    Split {
        from: usize,
        to: usize,
        bytes: usize,
    },
    /// Drops a slot's reservation (the consumer unregisters with its last one).
    Drop(usize),
}

/// One pool under test, behind the same few operations.
trait Pool {
    type Reservation;
    fn register(&self, name: &str, can_spill: bool) -> Self::Reservation;
    fn try_grow(r: &mut Self::Reservation, bytes: usize) -> bool;
    fn grow(r: &mut Self::Reservation, bytes: usize);
    fn shrink(r: &mut Self::Reservation, bytes: usize);
    fn split(r: &mut Self::Reservation, bytes: usize) -> Self::Reservation;
    fn size(r: &Self::Reservation) -> usize;
    fn reserved(&self) -> u64;
}

struct DataFusion(Arc<dyn df::MemoryPool>);

impl Pool for DataFusion {
    type Reservation = df::MemoryReservation;
    fn register(&self, name: &str, can_spill: bool) -> df::MemoryReservation {
        df::MemoryConsumer::new(name)
            .with_can_spill(can_spill)
            .register(&self.0)
    }
    fn try_grow(r: &mut df::MemoryReservation, bytes: usize) -> bool {
        r.try_grow(bytes).is_ok()
    }
    fn grow(r: &mut df::MemoryReservation, bytes: usize) {
        r.grow(bytes)
    }
    fn shrink(r: &mut df::MemoryReservation, bytes: usize) {
        r.shrink(bytes)
    }
    fn split(r: &mut df::MemoryReservation, bytes: usize) -> df::MemoryReservation {
        r.split(bytes)
    }
    fn size(r: &df::MemoryReservation) -> usize {
        r.size()
    }
    fn reserved(&self) -> u64 {
        self.0.reserved() as u64
    }
}

struct Memledger(Arc<dyn ml::MemoryPool>);

impl Pool for Memledger {
    type Reservation = ml::MemoryReservation;
    fn register(&self, name: &str, can_spill: bool) -> ml::MemoryReservation {
        ml::MemoryConsumer::new(name)
            .with_can_spill(can_spill)
            .register(&self.0)
    }
    fn try_grow(r: &mut ml::MemoryReservation, bytes: usize) -> bool {
        r.try_grow(bytes).is_ok()
    }
    fn grow(r: &mut ml::MemoryReservation, bytes: usize) {
        r.grow(bytes)
    }
    fn shrink(r: &mut ml::MemoryReservation, bytes: usize) {
        r.shrink(bytes)
    }
    fn split(r: &mut ml::MemoryReservation, bytes: usize) -> ml::MemoryReservation {
        r.split(bytes)
    }
    fn size(r: &ml::MemoryReservation) -> usize {
        r.size()
    }
    fn reserved(&self) -> u64 {
        self.0.reserved()
    }
}

/// After each step: whether it was granted (`try_grow` only; the others
/// always are), the pool's reserved bytes and every slot's size.
type Trace = Vec<(Step, bool, u64, Vec<Option<usize>>)>;

/// Plays `steps`; steps on empty slots, shrinks and splits beyond a slot's
/// size are clipped to what the slot holds, identically for both pools.
fn play<P: Pool>(pool: &P, slots: usize, steps: &[Step]) -> Trace {
    let mut held: Vec<Option<P::Reservation>> = (0..slots).map(|_| None).collect();
    let mut trace = Vec::new();
    for (i, &step) in steps.iter().enumerate() {
        let mut granted = true;
        match step {
            Step::Register { slot, can_spill } => {
                held[slot] = Some(pool.register(&format!("Differential[{i}]"), can_spill));
            }
            Step::TryGrow(s, n) => {
                if let Some(r) = held[s].as_mut() {
                    granted = P::try_grow(r, n);
                }
            }
            Step::Grow(s, n) => {
                if let Some(r) = held[s].as_mut() {
                    P::grow(r, n);
                }
            }
            Step::Shrink(s, n) => {
                if let Some(r) = held[s].as_mut() {
                    let n = n.min(P::size(r));
                    P::shrink(r, n);
                }
            }
            Step::Split { from, to, bytes } => {
                if from != to
                    && let Some(r) = held[from].as_mut()
                {
                    let bytes = bytes.min(P::size(r));
                    held[to] = Some(P::split(r, bytes));
                }
            }
            Step::Drop(s) => held[s] = None,
        }
        let sizes = held.iter().map(|r| r.as_ref().map(P::size)).collect();
        trace.push((step, granted, pool.reserved(), sizes));
    }
    trace
}

fn both(limit: usize, slots: usize, steps: &[Step]) -> (Trace, Trace) {
    let theirs = play(
        &DataFusion(Arc::new(df::FairSpillPool::new(limit))),
        slots,
        steps,
    );
    let ours = play(
        &Memledger(Arc::new(ml::FairSpillPool::new(limit as u64))),
        slots,
        steps,
    );
    (theirs, ours)
}

fn assert_same(theirs: &Trace, ours: &Trace) {
    assert_eq!(theirs.len(), ours.len());
    for (t, o) in theirs.iter().zip(ours) {
        assert_eq!(t, o, "first step where the pools differ");
    }
}

use Step::*;

#[test]
fn a_scripted_sequence_gets_the_same_answers_from_both_fair_pools() {
    let steps = [
        Register {
            slot: 0,
            can_spill: false,
        },
        TryGrow(0, 300),
        Register {
            slot: 1,
            can_spill: true,
        },
        Register {
            slot: 2,
            can_spill: true,
        },
        // 700 for two spillers: 350 each, exactly.
        TryGrow(1, 350),
        TryGrow(1, 1),
        TryGrow(2, 351),
        TryGrow(2, 200),
        // An unspillable consumer takes what is left overall, first come first served.
        Register {
            slot: 3,
            can_spill: false,
        },
        TryGrow(3, 151),
        TryGrow(3, 150),
        TryGrow(2, 150),
        // Past the limit: the spiller is held to its share only.
        Grow(3, 200),
        TryGrow(0, 1),
        Shrink(3, 350),
        // A split-off part counts apart against the share.
        Split {
            from: 1,
            to: 4,
            bytes: 300,
        },
        TryGrow(4, 50),
        TryGrow(4, 1),
        TryGrow(1, 300),
        TryGrow(1, 1),
        // One spiller gone: the other's share doubles.
        Drop(2),
        TryGrow(4, 300),
        Drop(1),
        Drop(4),
        // No spiller left, then a new one: all that unspillable ones leave.
        Register {
            slot: 1,
            can_spill: true,
        },
        TryGrow(1, 700),
        TryGrow(1, 1),
        Shrink(1, 700),
        Shrink(0, 300),
        TryGrow(0, 1000),
        TryGrow(1, 1),
        Drop(0),
        Drop(3),
        TryGrow(1, 1000),
        TryGrow(1, 1),
    ];
    let (theirs, ours) = both(1000, 5, &steps);
    assert_same(&theirs, &ours);
    let refusals = theirs.iter().filter(|t| !t.1).count();
    assert!(refusals >= 8, "the script exercises refusals: {refusals}");
    assert_eq!(theirs.last().map(|t| t.2), Some(1000));
}

/// A small deterministic generator (64-bit LCG), so a failure replays.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % below as u64) as usize
    }
}

#[test]
fn generated_sequences_get_the_same_answers_from_both_fair_pools() {
    for seed in 0..20u64 {
        let mut rng = Lcg(seed);
        let slots = 6;
        let steps: Vec<Step> = (0..1500)
            .map(|_| {
                let slot = rng.next(slots);
                let bytes = rng.next(400);
                match rng.next(12) {
                    0 => Register {
                        slot,
                        can_spill: rng.next(3) != 0,
                    },
                    1 => Drop(slot),
                    2 => Grow(slot, bytes / 4),
                    3 | 4 => Shrink(slot, bytes),
                    5 => Split {
                        from: slot,
                        to: rng.next(slots),
                        bytes,
                    },
                    _ => TryGrow(slot, bytes),
                }
            })
            .collect();
        let (theirs, ours) = both(2000, slots, &steps);
        assert_same(&theirs, &ours);
        let tries = theirs.iter().filter(|t| matches!(t.0, TryGrow(..))).count();
        let refused = theirs.iter().filter(|t| !t.1).count();
        assert!(
            refused > 0 && refused < tries,
            "seed {seed}: {refused} of {tries} refused"
        );
    }
}
