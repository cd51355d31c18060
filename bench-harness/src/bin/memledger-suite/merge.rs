//! `merge`: an external sort whose pass or failure is not monotonic in the
//! pool's limit, the way DataFusion's sort is not (a query that fails at
//! 100 MB and passes at 30 MB, apache/datafusion#14143).
//!
//! Rows are buffered under `MergeSorter[0]` (spillable, reserving the same
//! estimate as `sort`), and spilled as a sorted run whenever the pool
//! refuses the next batch. At the end of the input there are two paths:
//!
//! - **nothing spilled**: the buffer is sorted in memory, and the sorted
//!   copy is reserved first, as much again as the input. When the pool
//!   refuses that, the query fails: the input is already in memory and
//!   this sort has no way back to spilling.
//! - **runs spilled**: what is buffered becomes one more run, and the runs
//!   are merged in one pass under `SpillMerge[0]` (not spillable), which
//!   reserves one read buffer per run. The fan-in is the number of runs
//!   that spilled, and there is no multi-pass merge: when the pool refuses
//!   the cursors, the query fails.
//!
//! With `T` the input's estimate, a limit of `T` or more (below `2T`) lets
//! the whole input in and then refuses the copy: **it fails**. A smaller
//! limit spills, and passes once the cursors of `T / limit` runs fit
//! (about `sqrt(T × 64 KiB)`); `2T` and more pass without spilling. The
//! checksum is the one `sort` prints for the same number of rows.

use std::sync::Arc;

use memledger_alloc::Scope;
use memledger_profiler::{MemoryConsumer, MemoryPool, MemoryReservation};

use crate::data::{Row, Rows, checksum, estimate};
use crate::spill::{MAX_FAN_IN, Order, READ_BUFFER, Run, merge, merge_down, write_run};
use crate::{BATCH, Outcome, QueryError};

/// The sorting operator's consumer and scope.
pub const SORTER: &str = "MergeSorter[0]";
/// The single-pass merge's consumer and scope.
pub const MERGE: &str = "SpillMerge[0]";

/// Sorts `rows` rows (the rows of `sort`); the checksum covers the sorted output.
pub fn run(pool: &Arc<dyn MemoryPool>, rows: u64) -> Result<Outcome, QueryError> {
    let scope = Scope::new(SORTER);
    let _entered = scope.enter();
    let mut reservation = MemoryConsumer::new(SORTER)
        .with_can_spill(true)
        .with_scope(scope)
        .register(pool);
    let mut buffer: Vec<Row> = Vec::new();
    let mut runs: Vec<Run> = Vec::new();
    let mut input = Rows::new(0x5EED_0001, rows);
    loop {
        let batch = input.batch(BATCH);
        if batch.is_empty() {
            break;
        }
        let bytes = estimate(&batch);
        if reservation.try_grow(bytes).is_err() {
            spill(&mut buffer, &mut runs, &mut reservation)?;
            reservation.try_grow(bytes)?;
        }
        buffer.extend(batch);
    }
    let spills = runs.len() as u64;
    if runs.is_empty() {
        // The sorted copy is reserved before it is made.
        reservation.try_grow(reservation.size())?;
        let mut sorted = buffer.clone();
        drop(buffer);
        sorted.sort_unstable_by(|a, b| Order::Key.cmp(a, b));
        let sum = sorted.iter().fold(0, checksum);
        return Ok(Outcome {
            checksum: sum,
            spills,
        });
    }
    spill(&mut buffer, &mut runs, &mut reservation)?;
    let merge_scope = Scope::new(MERGE);
    let _merging = merge_scope.enter();
    let mut cursors = MemoryConsumer::new(MERGE)
        .with_scope(merge_scope)
        .register(pool);
    cursors.try_grow(runs.len() * READ_BUFFER)?;
    // Open files, not memory, bound the fan-in here.
    merge_down(&mut runs, MAX_FAN_IN, Order::Key)?;
    let mut sum = 0;
    merge(&runs, Order::Key, |row| {
        sum = checksum(sum, &row);
        Ok(())
    })?;
    Ok(Outcome {
        checksum: sum,
        spills,
    })
}

/// Writes the buffer, sorted, as a run and frees its reservation.
fn spill(
    buffer: &mut Vec<Row>,
    runs: &mut Vec<Run>,
    reservation: &mut MemoryReservation,
) -> Result<(), QueryError> {
    if buffer.is_empty() {
        return Ok(());
    }
    buffer.sort_unstable_by(|a, b| Order::Key.cmp(a, b));
    runs.push(write_run(buffer.iter())?);
    *buffer = Vec::new();
    reservation.free();
    Ok(())
}
