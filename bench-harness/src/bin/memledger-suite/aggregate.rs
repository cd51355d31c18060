//! `aggregate`: hash aggregation over high-cardinality string keys under
//! `GroupedHashAggregate[0]`. Each new group reserves its key's length plus
//! 16 bytes — no hash-table buckets, no `String` header, no capacity
//! doubling. When the pool refuses, the groups are spilled as a run sorted by
//! key; at the end the runs and what is left are merged.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use memledger_alloc::Scope;
use memledger_profiler::{MemoryConsumer, MemoryPool};

use crate::data::{Row, Rows};
use crate::spill::{Run, write_run};
use crate::{BATCH, Outcome, QueryError};

/// The group key of a row: one of `distinct` customer names.
fn group_key(key: u64) -> String {
    format!("customer-{key:010}-{}", "x".repeat((key % 17) as usize))
}

/// Aggregates `rows` rows over `distinct` keys; the checksum covers every
/// group's key, sum and count, in key order.
pub fn run(pool: &Arc<dyn MemoryPool>, rows: u64, distinct: u64) -> Result<Outcome, QueryError> {
    let _scope = Scope::new("GroupedHashAggregate[0]").enter();
    let mut reservation = MemoryConsumer::new("GroupedHashAggregate[0]")
        .with_can_spill(true)
        .register(pool);
    let mut input = Rows::new(0x5EED_0002, rows).keys_in(distinct);
    let mut groups: HashMap<String, (u64, u64)> = HashMap::new();
    let mut runs: Vec<Run> = Vec::new();
    loop {
        let batch = input.batch(BATCH);
        if batch.is_empty() {
            break;
        }
        for row in batch {
            let key = group_key(row.key);
            if let Some(g) = groups.get_mut(&key) {
                g.0 = g.0.wrapping_add(row.value);
                g.1 += 1;
                continue;
            }
            if reservation.try_grow(key.len() + 16).is_err() {
                runs.push(spill(&mut groups)?);
                reservation.free();
                reservation.try_grow(key.len() + 16)?;
            }
            groups.insert(key, (row.value, 1));
        }
    }
    let spills = runs.len() as u64;
    if !groups.is_empty() {
        runs.push(spill(&mut groups)?);
    }
    reservation.free();
    // Merge the runs (sorted by group key), combining equal keys.
    let mut cursors = runs
        .iter()
        .map(Run::cursor)
        .collect::<Result<Vec<_>, _>>()?;
    let mut heads: Vec<Option<Row>> = Vec::new();
    let mut heap = BinaryHeap::new();
    for (i, c) in cursors.iter_mut().enumerate() {
        let head = c.next_row()?;
        if let Some(row) = &head {
            heap.push(Reverse((row.name.clone(), i)));
        }
        heads.push(head);
    }
    let mut sum = 0u64;
    let mut current: Option<(String, u64, u64)> = None;
    while let Some(Reverse((_, i))) = heap.pop() {
        let Some(row) = heads[i].take() else { continue };
        current = match current.take() {
            Some((k, s, c)) if k == row.name => Some((k, s.wrapping_add(row.key), c + row.value)),
            Some((k, s, c)) => {
                sum = fold(sum, &k, s, c);
                Some((row.name, row.key, row.value))
            }
            None => Some((row.name, row.key, row.value)),
        };
        heads[i] = cursors[i].next_row()?;
        if let Some(next) = &heads[i] {
            heap.push(Reverse((next.name.clone(), i)));
        }
    }
    if let Some((k, s, c)) = current {
        sum = fold(sum, &k, s, c);
    }
    Ok(Outcome {
        checksum: sum,
        spills,
    })
}

fn fold(acc: u64, key: &str, sum: u64, count: u64) -> u64 {
    acc.wrapping_mul(0x100_0000_01B3) ^ key.len() as u64 ^ sum ^ count.rotate_left(32)
}

/// Writes the groups as a run sorted by key (sum as `key`, count as `value`).
fn spill(groups: &mut HashMap<String, (u64, u64)>) -> std::io::Result<Run> {
    let mut rows: Vec<Row> = groups
        .drain()
        .map(|(name, (sum, count))| Row {
            key: sum,
            name,
            value: count,
        })
        .collect();
    rows.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    *groups = HashMap::new();
    write_run(rows.iter())
}
