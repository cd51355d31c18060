//! `topk`: the 10 000 rows with the largest keys of a stream, kept in a
//! `BinaryHeap` under `TopK[0]`, which reserves K times the first row's
//! estimate, once. The stream's names lengthen from 8 to 40 characters as
//! it goes on: the reservation is soon too small, and the heap's `String`
//! headers were never in it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use memledger_alloc::Scope;
use memledger_profiler::{MemoryConsumer, MemoryPool};

use crate::data::{Row, Rows, checksum};
use crate::{BATCH, Outcome, QueryError};

/// Rows kept.
pub const K: usize = 10_000;
/// The operator's consumer and scope.
pub const TOPK: &str = "TopK[0]";

/// Keeps the top `K` of `rows` rows by key.
pub fn run(pool: &Arc<dyn MemoryPool>, rows: u64) -> Result<Outcome, QueryError> {
    let scope = Scope::new(TOPK);
    let _entered = scope.enter();
    let mut reservation = MemoryConsumer::new(TOPK).with_scope(scope).register(pool);
    let mut input = Rows::new(0x5EED_0005, rows).growing_names();
    let mut heap: BinaryHeap<Reverse<(u64, String, u64)>> = BinaryHeap::with_capacity(K + 1);
    loop {
        let batch = input.batch(BATCH);
        if batch.is_empty() {
            break;
        }
        if reservation.size() == 0 {
            // `batch` is not empty (checked above).
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
