//! `topk`: the 10 000 rows with the largest keys, kept in a heap under
//! `TopK[0]`, which reserves K times the first row's estimate once. Later
//! names are longer: the reservation is soon too small.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use memledger_alloc::Scope;
use memledger_profiler::{MemoryConsumer, MemoryPool};

use crate::data::{Row, Rows, checksum};
use crate::{BATCH, Outcome, QueryError};

/// Rows kept.
pub const K: usize = 10_000;

/// Keeps the top `K` of `rows` rows by key.
pub fn run(pool: &Arc<dyn MemoryPool>, rows: u64) -> Result<Outcome, QueryError> {
    let _scope = Scope::new("TopK[0]").enter();
    let mut reservation = MemoryConsumer::new("TopK[0]").register(pool);
    let mut input = Rows::new(0x5EED_0005, rows).growing_names();
    let mut heap: BinaryHeap<Reverse<(u64, String, u64)>> = BinaryHeap::with_capacity(K + 1);
    loop {
        let batch = input.batch(BATCH);
        if batch.is_empty() {
            break;
        }
        if reservation.size() == 0 {
            reservation.try_grow(K * batch[0].estimate())?;
        }
        for row in batch {
            if heap.len() < K {
                heap.push(Reverse((row.key, row.name, row.value)));
            } else if heap.peek().is_some_and(|Reverse(min)| row.key > min.0) {
                heap.pop();
                heap.push(Reverse((row.key, row.name, row.value)));
            }
        }
    }
    let sorted = heap.into_sorted_vec();
    let sum = sorted
        .into_iter()
        .map(|Reverse((key, name, value))| Row { key, name, value })
        .fold(0, |acc, r| checksum(acc, &r));
    Ok(Outcome {
        checksum: sum,
        spills: 0,
    })
}
