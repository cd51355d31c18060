//! `aggregate`: hash aggregation (`sum` and `count` per group) over
//! high-cardinality string keys, in a `HashMap<String, (u64, u64)>` under
//! `GroupedHashAggregate[0]` (spillable).
//!
//! Each new group reserves its key's length plus 16 bytes: no hash-table
//! buckets or control bytes, no `String` header, no capacity doubling when
//! the table grows. When the pool refuses, the groups are spilled as a run
//! sorted by key and the reservation freed; at the end the runs are merged,
//! equal keys combined, and the groups come out in key order.

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::Arc;

use memledger_alloc::Scope;
use memledger_profiler::{MemoryConsumer, MemoryPool, MemoryReservation};

use crate::data::{Row, Rows, mix};
use crate::spill::{self, MAX_FAN_IN, Order, Run, merge, merge_down, write_run};
use crate::{BATCH, Outcome, QueryError};

/// The operator's consumer and scope.
pub const AGGREGATE: &str = "GroupedHashAggregate[0]";

/// The group key of a row: one of the customers' names.
pub fn group_key(key: u64) -> String {
    format!("customer-{key:010}-{}", "x".repeat((key % 17) as usize))
}

/// What a new group reserves.
pub fn group_estimate(key: &str) -> usize {
    key.len() + 16
}

/// Aggregates `rows` rows over about `distinct` keys; the checksum covers
/// every group's key, sum and count, in key order.
pub fn run(pool: &Arc<dyn MemoryPool>, rows: u64, distinct: u64) -> Result<Outcome, QueryError> {
    let scope = Scope::new(AGGREGATE);
    let _entered = scope.enter();
    let reservation = MemoryConsumer::new(AGGREGATE)
        .with_can_spill(true)
        .with_scope(scope)
        .register(pool);
    let mut agg = HashAggregator::new(reservation);
    let mut input = Rows::new(0x5EED_0002, rows).keys_in(distinct);
    loop {
        let batch = input.batch(BATCH);
        if batch.is_empty() {
            break;
        }
        for row in batch {
            let key = group_key(row.key);
            if !agg.add_to_existing(&key, row.value) {
                agg.reserve(group_estimate(&key))?;
                agg.add(key, row.value);
            }
        }
    }
    let spills = agg.spills();
    let checksum = agg.finish()?;
    Ok(Outcome { checksum, spills })
}

/// A hash aggregation's state: the groups, their reservation, the runs.
pub struct HashAggregator {
    groups: HashMap<String, (u64, u64)>,
    runs: Vec<Run>,
    reservation: MemoryReservation,
    spills: u64,
    /// Spills the pool asked for (through a callback).
    asked: u64,
    /// A spill that failed inside a pool's callback, reported by `finish`.
    failed: Option<io::Error>,
}

impl HashAggregator {
    /// An empty aggregation holding (an empty) `reservation`.
    pub fn new(reservation: MemoryReservation) -> Self {
        HashAggregator {
            groups: HashMap::new(),
            runs: Vec::new(),
            reservation,
            spills: 0,
            asked: 0,
            failed: None,
        }
    }

    /// The reservation of the groups.
    pub fn reservation(&mut self) -> &mut MemoryReservation {
        &mut self.reservation
    }

    /// Runs written because memory ran short.
    pub fn spills(&self) -> u64 {
        self.spills
    }

    /// Of those, the ones a pool asked for.
    pub fn asked(&self) -> u64 {
        self.asked
    }

    /// Adds `value` to the group `key` if it exists; returns whether it did.
    pub fn add_to_existing(&mut self, key: &str, value: u64) -> bool {
        match self.groups.get_mut(key) {
            Some(g) => {
                g.0 = g.0.wrapping_add(value);
                g.1 += 1;
                true
            }
            None => false,
        }
    }

    /// Adds `value` to the group `key`, creating it if needed.
    pub fn add(&mut self, key: String, value: u64) {
        let g = self.groups.entry(key).or_insert((0, 0));
        g.0 = g.0.wrapping_add(value);
        g.1 += 1;
    }

    /// The estimate of the groups that `keys` would create (each counted once).
    pub fn new_groups_estimate<'a>(&self, keys: impl IntoIterator<Item = &'a str>) -> usize {
        let mut seen = HashSet::new();
        keys.into_iter()
            .filter(|k| !self.groups.contains_key(*k) && seen.insert(*k))
            .map(group_estimate)
            .sum()
    }

    /// Reserves `bytes`; when refused, spills and asks once more. Only for
    /// an aggregation that no callback can reach while it asks.
    pub fn reserve(&mut self, bytes: usize) -> Result<(), QueryError> {
        if self.reservation.try_grow(bytes).is_ok() {
            return Ok(());
        }
        self.spill()?;
        self.reservation.try_grow(bytes)?;
        Ok(())
    }

    /// Writes the groups as a run sorted by key and frees the reservation;
    /// returns the bytes freed (0 when there was nothing to spill).
    pub fn spill(&mut self) -> io::Result<usize> {
        if self.groups.is_empty() {
            return Ok(0);
        }
        self.flush()?;
        self.spills += 1;
        Ok(self.reservation.free())
    }

    /// [`spill`](Self::spill) for a pool's callback, which cannot fail: an
    /// error is kept for [`finish`](Self::finish).
    pub fn spill_on_request(&mut self) -> usize {
        let spilled = self.spill();
        spill::answer_request(spilled, &mut self.asked, &mut self.failed)
    }

    /// Writes the groups as a run (sum as `key`, count as `value`, the group
    /// key as `name`), sorted by group key, and empties the table.
    fn flush(&mut self) -> io::Result<()> {
        let mut rows: Vec<Row> = self
            .groups
            .drain()
            .map(|(name, (sum, count))| Row {
                key: sum,
                name,
                value: count,
            })
            .collect();
        self.groups = HashMap::new();
        rows.sort_unstable_by(|a, b| Order::Name.cmp(a, b));
        self.runs.push(write_run(&rows)?);
        Ok(())
    }

    /// Emits every group in key order, runs and table merged; returns the
    /// checksum of the output.
    pub fn finish(mut self) -> Result<u64, QueryError> {
        match self.end_input()? {
            Some(sum) => Ok(sum),
            None => self.merge_runs(),
        }
    }

    /// The end of the input. Without runs, emits the groups from memory
    /// and returns the checksum of the output; otherwise writes the table
    /// as one more run and returns `None` (the runs are for
    /// [`merge_runs`](Self::merge_runs)). Either way the reservation is
    /// free afterwards.
    pub fn end_input(&mut self) -> Result<Option<u64>, QueryError> {
        if let Some(e) = self.failed.take() {
            return Err(e.into());
        }
        if self.runs.is_empty() {
            let mut groups: Vec<(String, (u64, u64))> = self.groups.drain().collect();
            self.groups = HashMap::new();
            groups.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            let sum = groups
                .iter()
                .fold(0, |acc, (key, (s, c))| fold(acc, key, *s, *c));
            drop(groups);
            self.reservation.free();
            return Ok(Some(sum));
        }
        if !self.groups.is_empty() {
            self.flush()?;
        }
        self.reservation.free();
        Ok(None)
    }

    /// Merges the runs, combining each group's partial sums and counts;
    /// returns the checksum of the output.
    pub fn merge_runs(mut self) -> Result<u64, QueryError> {
        merge_down(&mut self.runs, MAX_FAN_IN, Order::Name)?;
        let mut sum = 0;
        let mut current: Option<(String, u64, u64)> = None;
        merge(&self.runs, Order::Name, |row| {
            current = match current.take() {
                Some((k, s, c)) if k == row.name => {
                    Some((k, s.wrapping_add(row.key), c + row.value))
                }
                Some((k, s, c)) => {
                    sum = fold(sum, &k, s, c);
                    Some((row.name, row.key, row.value))
                }
                None => Some((row.name, row.key, row.value)),
            };
            Ok(())
        })?;
        if let Some((k, s, c)) = current {
            sum = fold(sum, &k, s, c);
        }
        Ok(sum)
    }
}

/// Folds one group into the checksum.
fn fold(acc: u64, key: &str, sum: u64, count: u64) -> u64 {
    mix(acc, key.len() as u64 ^ sum ^ count.rotate_left(32))
}
