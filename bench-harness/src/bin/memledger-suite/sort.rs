//! `sort`: an external sort. Rows are buffered under the reservation of
//! `ExternalSorter[0]`; when the pool refuses, the buffer is sorted and
//! spilled as a run; at the end the runs are merged under `SortMerge[0]`.
//!
//! The estimates are the ones engines make: a row costs its fixed fields and
//! its text's length (not the `String` header or spare capacity); sorting
//! makes a sorted copy while the input is still alive (the 2x nobody
//! reserves); a merge cursor is guessed at 2 × 8 KiB while its read buffer
//! alone is 64 KiB.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use memledger_alloc::Scope;
use memledger_profiler::{MemoryConsumer, MemoryPool};

use crate::data::{Row, Rows, checksum};
use crate::spill::{Run, write_run};
use crate::{BATCH, Outcome, QueryError};

/// Sorts `rows` rows; returns the checksum of the sorted output.
pub fn run(pool: &Arc<dyn MemoryPool>, rows: u64) -> Result<Outcome, QueryError> {
    let _scope = Scope::new("ExternalSorter[0]").enter();
    let mut reservation = MemoryConsumer::new("ExternalSorter[0]")
        .with_can_spill(true)
        .register(pool);
    let mut input = Rows::new(0x5EED_0001, rows);
    let mut buffer: Vec<Row> = Vec::new();
    let mut runs: Vec<Run> = Vec::new();
    loop {
        let batch = input.batch(BATCH);
        if batch.is_empty() {
            break;
        }
        let estimate: usize = batch.iter().map(Row::estimate).sum();
        if reservation.try_grow(estimate).is_err() {
            runs.push(spill(&mut buffer)?);
            reservation.free();
            reservation.try_grow(estimate)?;
        }
        buffer.extend(batch);
    }
    let mut sum = 0;
    if runs.is_empty() {
        // In memory: a sorted copy while the input is still alive.
        let mut sorted: Vec<Row> = buffer.to_vec();
        sorted.sort_unstable_by_key(|r| r.key);
        drop(buffer);
        sum = sorted.iter().fold(sum, checksum);
        return Ok(Outcome {
            checksum: sum,
            spills: 0,
        });
    }
    runs.push(spill(&mut buffer)?);
    reservation.free();
    drop(_scope);
    let spills = runs.len() as u64;
    let _merge_scope = Scope::new("SortMerge[0]").enter();
    let mut merge = MemoryConsumer::new("SortMerge[0]").register(pool);
    merge.try_grow(runs.len() * 2 * 8 * 1024)?;
    let mut cursors = runs
        .iter()
        .map(Run::cursor)
        .collect::<Result<Vec<_>, _>>()?;
    let mut heads: Vec<Option<Row>> = Vec::with_capacity(cursors.len());
    let mut heap = BinaryHeap::new();
    for (i, c) in cursors.iter_mut().enumerate() {
        let head = c.next_row()?;
        if let Some(row) = &head {
            heap.push(Reverse((row.key, i)));
        }
        heads.push(head);
    }
    while let Some(Reverse((_, i))) = heap.pop() {
        if let Some(row) = heads[i].take() {
            sum = checksum(sum, &row);
        }
        heads[i] = cursors[i].next_row()?;
        if let Some(row) = &heads[i] {
            heap.push(Reverse((row.key, i)));
        }
    }
    Ok(Outcome {
        checksum: sum,
        spills,
    })
}

/// Sorts the buffer in place and writes it as a run; the buffer is emptied.
fn spill(buffer: &mut Vec<Row>) -> std::io::Result<Run> {
    buffer.sort_unstable_by_key(|r| r.key);
    let run = write_run(buffer.iter())?;
    *buffer = Vec::new();
    Ok(run)
}
