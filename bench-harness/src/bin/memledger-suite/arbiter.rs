//! `arbiter`: three operators share one `ArbiterPool` on three threads at
//! once: a spillable sort (`ExternalSorter[0]`), a spillable hash
//! aggregation (`GroupedHashAggregate[0]`) and a hash join whose build side
//! (`HashJoinBuild[0]`) cannot spill.
//!
//! Each spillable operator registers a callback. When a request would pass
//! the limit, the pool calls the callbacks of the other spillable
//! consumers, largest reservation first, from the asking thread; a callback
//! spills what its operator holds and frees its reservation before it
//! returns. An operator that is refused all the same spills itself (if it
//! can) and asks again, a few times; the join build, which cannot spill,
//! fails the query when it is still refused.
//!
//! Each operator's state sits behind a mutex that its own thread never
//! holds while asking the pool: reservations are asked for through an
//! empty reservation of the same consumer, outside the lock, and merged
//! into the state's reservation under the lock together with the rows they
//! pay for. So a callback running on another thread can always take the
//! lock, and a spill never frees bytes for rows not yet buffered. The
//! callback enters its operator's scope, so what a spill allocates and
//! frees is charged to the operator, not to the thread that asked.

use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use memledger_alloc::Scope;
use memledger_profiler::{MemoryConsumer, MemoryPool, MemoryReservation, SpillFn};

use crate::aggregate::{AGGREGATE, HashAggregator, group_key};
use crate::data::{Rows, estimate, mix};
use crate::join::{BUILD, build_and_probe};
use crate::retry;
use crate::sort::{ExternalSorter, SORTER};
use crate::{BATCH, Outcome, QueryError};

/// How many rows each operator gets.
pub struct Sizes {
    /// Rows sorted.
    pub sort: u64,
    /// Rows aggregated.
    pub aggregate: u64,
    /// Their key space (about that many groups).
    pub distinct: u64,
    /// Rows of the join's build side.
    pub build: u64,
    /// Rows of the join's probe side.
    pub probe: u64,
}

/// An operator's state, shared with its spill callback. `None` once the
/// operator took it back to produce its output.
type Shared<T> = Arc<Mutex<Option<T>>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What the callback needs of an operator.
trait Spillable: Send + 'static {
    /// Spills everything and frees the reservation; returns the bytes freed.
    fn spill_on_request(&mut self) -> usize;
    /// Spills everything (when its own request was refused).
    fn spill(&mut self) -> Result<usize, QueryError>;
}

impl Spillable for ExternalSorter {
    fn spill_on_request(&mut self) -> usize {
        ExternalSorter::spill_on_request(self)
    }
    fn spill(&mut self) -> Result<usize, QueryError> {
        Ok(ExternalSorter::spill(self)?)
    }
}

impl Spillable for HashAggregator {
    fn spill_on_request(&mut self) -> usize {
        HashAggregator::spill_on_request(self)
    }
    fn spill(&mut self) -> Result<usize, QueryError> {
        Ok(HashAggregator::spill(self)?)
    }
}

/// Registers the consumer `name` (scope of the same name) with a spill
/// callback over the state `make` builds. Returns the shared state and an
/// empty reservation of the same consumer to ask the pool through.
fn register<T: Spillable>(
    pool: &Arc<dyn MemoryPool>,
    name: &str,
    make: impl FnOnce(MemoryReservation) -> T,
) -> (Shared<T>, MemoryReservation) {
    let scope = Scope::new(name);
    let state: Shared<T> = Arc::new(Mutex::new(None));
    let weak = Arc::downgrade(&state);
    let spill: SpillFn = Arc::new(move |_wanted| {
        let Some(state) = weak.upgrade() else {
            return 0;
        };
        scope.in_scope(|| lock(&state).as_mut().map_or(0, T::spill_on_request))
    });
    let reservation = MemoryConsumer::new(name)
        .with_spill(spill)
        .with_scope(scope)
        .register(pool);
    let asker = reservation.new_empty();
    *lock(&state) = Some(make(reservation));
    (state, asker)
}

/// How many rounds the aggregation re-estimates a batch's new groups.
const TRIES: usize = 32;

/// How long an operator keeps asking before it gives up. The pool does not
/// keep what a spill frees for the thread that asked, so another thread can
/// take it first; it skips a consumer that is itself asking at that moment
/// (its operator may hold its own lock); and a sort that is merging holds
/// a reservation it cannot spill until the merge ends. So the room may come
/// later. Between two tries a spillable operator spills itself, and every
/// operator lets the other threads run, then waits a little longer each
/// time ([`retry::pause`]).
const PATIENCE: Duration = Duration::from_secs(10);

/// Asks for `bytes` through `asker` without holding the state's lock;
/// when refused, spills the operator and asks again. Returns the grant, to
/// be merged into the state's reservation with the rows it pays for.
fn reserve<T: Spillable>(
    state: &Shared<T>,
    asker: &MemoryReservation,
    bytes: usize,
) -> Result<MemoryReservation, QueryError> {
    let mut grant = asker.new_empty();
    let deadline = Instant::now() + PATIENCE;
    let mut tries: u32 = 1;
    while let Err(refused) = grant.try_grow(bytes) {
        if Instant::now() >= deadline {
            return Err(refused.into());
        }
        if let Some(op) = lock(state).as_mut() {
            op.spill()?;
        }
        retry::pause(tries);
        tries = tries.saturating_add(1);
    }
    Ok(grant)
}

/// Ends the operator's input under its lock (so that a callback arriving
/// meanwhile waits, then finds the reservation freed) and takes the
/// operator back. `end` either produces the output from memory or writes
/// what is left as a run, and frees the reservation either way; what is
/// then merged from disk is done outside the lock.
fn end_input<T, R>(
    state: &Shared<T>,
    end: impl FnOnce(&mut T) -> Result<R, QueryError>,
) -> Result<(R, T), QueryError> {
    let mut guard = lock(state);
    let Some(op) = guard.as_mut() else {
        return Err(QueryError::Other(
            "an operator's state was taken twice".to_string(),
        ));
    };
    let ended = end(op)?;
    match guard.take() {
        Some(op) => Ok((ended, op)),
        None => Err(QueryError::Other(
            "an operator's state was taken twice".to_string(),
        )),
    }
}

/// What one operator did.
struct Done {
    checksum: u64,
    spills: u64,
    asked: u64,
}

fn sort(pool: &Arc<dyn MemoryPool>, rows: u64) -> Result<Done, QueryError> {
    let _entered = Scope::new(SORTER).enter();
    let (state, asker) = register(pool, SORTER, ExternalSorter::new);
    let mut input = Rows::new(0x5EED_0006, rows);
    loop {
        let batch = input.batch(BATCH);
        if batch.is_empty() {
            break;
        }
        let grant = reserve(&state, &asker, estimate(&batch))?;
        if let Some(sorter) = lock(&state).as_mut() {
            sorter.reservation().merge(grant);
            sorter.push(batch);
        }
    }
    let (ended, sorter) = end_input(&state, ExternalSorter::end_input)?;
    let (spills, asked) = (sorter.spills(), sorter.asked());
    let checksum = match ended {
        Some(sum) => sum,
        None => sorter.merge_runs(pool)?,
    };
    Ok(Done {
        checksum,
        spills,
        asked,
    })
}

fn aggregate(pool: &Arc<dyn MemoryPool>, rows: u64, distinct: u64) -> Result<Done, QueryError> {
    let _entered = Scope::new(AGGREGATE).enter();
    let (state, asker) = register(pool, AGGREGATE, HashAggregator::new);
    let mut input = Rows::new(0x5EED_0007, rows).keys_in(distinct);
    loop {
        let batch = input.batch(BATCH);
        if batch.is_empty() {
            break;
        }
        let keys: Vec<(String, u64)> = batch.iter().map(|r| (group_key(r.key), r.value)).collect();
        drop(batch);
        // Reserve for the groups the batch creates, then add it under the
        // lock. A spill between the two (the table emptied, so more groups
        // are new than were reserved for) sends the grant back to ask again.
        let mut round = 1;
        loop {
            let wanted = lock(&state).as_ref().map_or(0, |agg| {
                agg.new_groups_estimate(keys.iter().map(|k| k.0.as_str()))
            });
            let mut grant = reserve(&state, &asker, wanted)?;
            let mut guard = lock(&state);
            let Some(agg) = guard.as_mut() else {
                break;
            };
            let now = agg.new_groups_estimate(keys.iter().map(|k| k.0.as_str()));
            if now > wanted {
                if round < TRIES {
                    drop(guard);
                    drop(grant);
                    round += 1;
                    continue;
                }
                // Out of rounds: these groups go into memory anyway.
                grant.grow(now - wanted);
            }
            agg.reservation().merge(grant);
            for (key, value) in keys {
                if !agg.add_to_existing(&key, value) {
                    agg.add(key, value);
                }
            }
            break;
        }
    }
    let (ended, agg) = end_input(&state, HashAggregator::end_input)?;
    let (spills, asked) = (agg.spills(), agg.asked());
    let checksum = match ended {
        Some(sum) => sum,
        None => agg.merge_runs()?,
    };
    Ok(Done {
        checksum,
        spills,
        asked,
    })
}

/// Runs the three operators at once on `pool` (an arbiter pool).
pub fn run(pool: &Arc<dyn MemoryPool>, sizes: &Sizes) -> Result<Outcome, QueryError> {
    let spawn = |name: &str| thread::Builder::new().name(format!("arbiter-{name}"));
    let (sorted, aggregated, joined) = thread::scope(|s| {
        let sorted = spawn("sort").spawn_scoped(s, || sort(pool, sizes.sort))?;
        let aggregated = spawn("aggregate")
            .spawn_scoped(s, || aggregate(pool, sizes.aggregate, sizes.distinct))?;
        let joined = spawn("join").spawn_scoped(s, || {
            build_and_probe(
                pool,
                (0x5EED_0008, sizes.build),
                (0x5EED_0009, sizes.probe),
                PATIENCE,
            )
        })?;
        // Every thread is joined before any result is looked at.
        let (sorted, aggregated, joined) = (sorted.join(), aggregated.join(), joined.join());
        let panicked = |name: &str| QueryError::Other(format!("the {name} thread panicked"));
        Ok::<_, QueryError>((
            sorted.map_err(|_| panicked("sort"))?,
            aggregated.map_err(|_| panicked("aggregate"))?,
            joined.map_err(|_| panicked("join"))?,
        ))
    })?;
    // The join's refusal first: it is the one the pool could not avoid.
    let joined = joined?;
    let (sorted, aggregated) = (sorted?, aggregated?);
    println!(
        "arbiter: {SORTER} spilled {} times ({} asked by the pool), \
         {AGGREGATE} spilled {} times ({} asked by the pool), \
         {BUILD} joined {} rows",
        sorted.spills, sorted.asked, aggregated.spills, aggregated.asked, joined.matches
    );
    Ok(Outcome {
        checksum: mix(mix(sorted.checksum, aggregated.checksum), joined.checksum),
        spills: sorted.spills + aggregated.spills,
    })
}
