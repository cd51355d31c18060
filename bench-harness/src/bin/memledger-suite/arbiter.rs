//! `arbiter`: three operators compete for one `ArbiterPool`: a spillable
//! sort buffer, a spillable aggregation and a hash-join build that cannot
//! spill. Each spillable operator registers a callback that spills what it
//! holds and frees its reservation; when the join (or anyone) needs room,
//! the arbiter asks the largest holder first.
//!
//! Each operator keeps its state behind a mutex that it never holds while
//! asking the pool, so the callback, run from the asking thread, can take it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use memledger_alloc::Scope;
use memledger_profiler::{MemoryConsumer, MemoryPool, MemoryReservation, PoolError};

use crate::data::{Row, Rows};
use crate::spill::{Run, write_run};
use crate::{BATCH, Outcome, QueryError};

/// A spillable operator's state: buffered rows, its reservation, its runs.
struct Spillable {
    rows: Vec<Row>,
    groups: HashMap<u64, (u64, u64)>,
    reservation: Option<MemoryReservation>,
    runs: Vec<Run>,
}

fn lock(m: &Mutex<Spillable>) -> MutexGuard<'_, Spillable> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Spillable {
    /// Writes what it holds to a run and frees its reservation; returns the bytes freed.
    fn spill(&mut self) -> usize {
        if self.rows.is_empty() && self.groups.is_empty() {
            return 0;
        }
        let mut rows = std::mem::take(&mut self.rows);
        rows.extend(self.groups.drain().map(|(key, (sum, count))| Row {
            key,
            name: String::new(),
            value: sum ^ count,
        }));
        self.groups = HashMap::new();
        rows.sort_unstable_by_key(|r| r.key);
        if let Ok(run) = write_run(rows.iter()) {
            self.runs.push(run);
        }
        self.reservation.as_mut().map_or(0, MemoryReservation::free)
    }
}

/// Registers a spillable operator named `name` with its callback.
fn spillable(pool: &Arc<dyn MemoryPool>, name: &str) -> Arc<Mutex<Spillable>> {
    let state = Arc::new(Mutex::new(Spillable {
        rows: Vec::new(),
        groups: HashMap::new(),
        reservation: None,
        runs: Vec::new(),
    }));
    let weak = Arc::downgrade(&state);
    let reservation = MemoryConsumer::new(name)
        .with_spill(Arc::new(move |_wanted| {
            weak.upgrade().map_or(0, |s| lock(&s).spill())
        }))
        .register(pool);
    lock(&state).reservation = Some(reservation);
    state
}

/// Asks for `bytes` without holding the state's lock; spills itself once if refused.
fn reserve(state: &Mutex<Spillable>, bytes: usize) -> Result<(), PoolError> {
    let fresh = lock(state)
        .reservation
        .as_ref()
        .map(MemoryReservation::new_empty);
    let Some(mut grant) = fresh else {
        return Ok(());
    };
    if grant.try_grow(bytes).is_err() {
        lock(state).spill();
        grant.try_grow(bytes)?;
    }
    if let Some(r) = lock(state).reservation.as_mut() {
        r.merge(grant);
    }
    Ok(())
}

fn sorter(pool: Arc<dyn MemoryPool>, rows: u64) -> Result<u64, PoolError> {
    let _scope = Scope::new("ArbiterSort[0]").enter();
    let state = spillable(&pool, "ArbiterSort[0]");
    let mut input = Rows::new(0x5EED_0006, rows);
    loop {
        let batch = input.batch(BATCH);
        if batch.is_empty() {
            break;
        }
        reserve(&state, batch.iter().map(Row::estimate).sum())?;
        lock(&state).rows.extend(batch);
    }
    let runs = lock(&state).runs.len() as u64;
    Ok(runs)
}

fn aggregator(pool: Arc<dyn MemoryPool>, rows: u64) -> Result<u64, PoolError> {
    let _scope = Scope::new("ArbiterAggregate[0]").enter();
    let state = spillable(&pool, "ArbiterAggregate[0]");
    let mut input = Rows::new(0x5EED_0007, rows).keys_in(rows / 2 + 1);
    loop {
        let batch = input.batch(BATCH);
        if batch.is_empty() {
            break;
        }
        // New groups cost 32 bytes each in the estimate; the table's real
        // cost per entry is larger.
        let new = {
            let s = lock(&state);
            batch
                .iter()
                .filter(|r| !s.groups.contains_key(&r.key))
                .count()
        };
        reserve(&state, new * 32)?;
        let mut s = lock(&state);
        for row in batch {
            let g = s.groups.entry(row.key).or_insert((0, 0));
            g.0 = g.0.wrapping_add(row.value);
            g.1 += 1;
        }
    }
    let runs = lock(&state).runs.len() as u64;
    Ok(runs)
}

fn join_build(pool: Arc<dyn MemoryPool>, rows: u64) -> Result<u64, PoolError> {
    let _scope = Scope::new("ArbiterJoinBuild[0]").enter();
    let mut reservation = MemoryConsumer::new("ArbiterJoinBuild[0]").register(&pool);
    let mut table: HashMap<u64, Vec<Row>> = HashMap::new();
    let mut input = Rows::new(0x5EED_0008, rows).keys_in(rows / 2 + 1);
    loop {
        let batch = input.batch(BATCH);
        if batch.is_empty() {
            break;
        }
        reservation.try_grow(batch.iter().map(Row::estimate).sum())?;
        for row in batch {
            table.entry(row.key).or_default().push(row);
        }
    }
    Ok(table.len() as u64)
}

/// Runs the three operators at once on `pool` (an arbiter pool).
pub fn run(pool: &Arc<dyn MemoryPool>, rows: u64) -> Result<Outcome, QueryError> {
    let (p1, p2, p3) = (Arc::clone(pool), Arc::clone(pool), Arc::clone(pool));
    let sort = std::thread::spawn(move || sorter(p1, rows));
    let agg = std::thread::spawn(move || aggregator(p2, rows));
    let join = std::thread::spawn(move || join_build(p3, rows / 2));
    let join_keys = join.join().map_err(|_| QueryError::Panic)??;
    let sort_runs = sort.join().map_err(|_| QueryError::Panic)??;
    let agg_runs = agg.join().map_err(|_| QueryError::Panic)??;
    println!(
        "arbiter: sort spilled {sort_runs} runs, aggregate spilled {agg_runs} runs, join built {join_keys} keys"
    );
    Ok(Outcome {
        checksum: join_keys,
        spills: sort_runs + agg_runs,
    })
}
