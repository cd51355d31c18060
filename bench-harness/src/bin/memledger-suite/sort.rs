//! `sort`: an external sort. Rows are buffered under the reservation of
//! `ExternalSorter[0]` (spillable); when the pool refuses, the buffer is
//! sorted and spilled as a run, the reservation freed and the request
//! retried; at the end the runs are merged (k-way) under `SortMerge[0]`.
//!
//! The estimates are the ones engines make, mistakes included:
//!
//! - a row costs its fixed fields and its text's length (8 + 8 +
//!   `name.len()`), not the `String` header, the allocator's size classes
//!   or the buffer's spare capacity;
//! - sorting makes a sorted copy while the input is still alive, and
//!   nothing reserves the copy (the 2x engines forget);
//! - a merge cursor is guessed at 2 × 8 KiB, while its read buffer alone is
//!   64 KiB and the decoded rows come on top.
//!
//! When the pool will not grant the cursors of every run at once, groups of
//! runs that it does grant are merged into longer runs first (at least two
//! at a time), so a tight limit makes the sort slower, not failed.

use std::io;
use std::sync::Arc;

use memledger_alloc::Scope;
use memledger_profiler::{MemoryConsumer, MemoryPool, MemoryReservation, PoolError};

use crate::data::{Row, Rows, checksum, estimate};
use crate::spill::{self, MAX_FAN_IN, Order, Run, merge, merge_some, write_run};
use crate::{BATCH, Outcome, QueryError};

/// The sorting operator's consumer and scope.
pub const SORTER: &str = "ExternalSorter[0]";
/// The merge's consumer and scope.
pub const MERGE: &str = "SortMerge[0]";
/// What the merge reserves per run cursor: a guess.
const CURSOR_GUESS: usize = 2 * 8 * 1024;

/// Sorts `rows` rows; the checksum covers the sorted output.
pub fn run(pool: &Arc<dyn MemoryPool>, rows: u64) -> Result<Outcome, QueryError> {
    let scope = Scope::new(SORTER);
    let _entered = scope.enter();
    let reservation = MemoryConsumer::new(SORTER)
        .with_can_spill(true)
        .with_scope(scope)
        .register(pool);
    let mut sorter = ExternalSorter::new(reservation);
    let mut input = Rows::new(0x5EED_0001, rows);
    loop {
        let batch = input.batch(BATCH);
        if batch.is_empty() {
            break;
        }
        sorter.reserve(estimate(&batch))?;
        sorter.push(batch);
    }
    let spills = sorter.spills();
    let checksum = sorter.finish(pool)?;
    Ok(Outcome { checksum, spills })
}

/// A sort's state: the buffered rows, their reservation, the runs spilled.
pub struct ExternalSorter {
    buffer: Vec<Row>,
    runs: Vec<Run>,
    reservation: MemoryReservation,
    spills: u64,
    /// Spills the pool asked for (through a callback).
    asked: u64,
    /// A spill that failed inside a pool's callback, reported by `finish`.
    failed: Option<io::Error>,
}

impl ExternalSorter {
    /// An empty sorter holding (an empty) `reservation`.
    pub fn new(reservation: MemoryReservation) -> Self {
        ExternalSorter {
            buffer: Vec::new(),
            runs: Vec::new(),
            reservation,
            spills: 0,
            asked: 0,
            failed: None,
        }
    }

    /// The reservation of the buffered rows.
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

    /// Reserves `bytes`; when refused, spills and asks once more. Only for
    /// a sorter that no callback can reach while it asks (see `arbiter`).
    pub fn reserve(&mut self, bytes: usize) -> Result<(), QueryError> {
        if self.reservation.try_grow(bytes).is_ok() {
            return Ok(());
        }
        self.spill()?;
        self.reservation.try_grow(bytes)?;
        Ok(())
    }

    /// Buffers a batch whose estimate was reserved.
    pub fn push(&mut self, batch: Vec<Row>) {
        self.buffer.extend(batch);
    }

    /// Sorts the buffer into a run on disk and frees the reservation;
    /// returns the bytes freed (0 when there was nothing to spill).
    pub fn spill(&mut self) -> io::Result<usize> {
        if self.buffer.is_empty() {
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

    /// Writes the buffer, sorted, as a run.
    fn flush(&mut self) -> io::Result<()> {
        // The sorted copy exists next to the input until the run is written.
        let sorted = sorted_copy(&self.buffer);
        let run = write_run(&sorted)?;
        drop(sorted);
        self.buffer = Vec::new();
        self.runs.push(run);
        Ok(())
    }

    /// Sorts what is buffered and merges it with the runs; returns the
    /// checksum of the sorted output.
    pub fn finish(mut self, pool: &Arc<dyn MemoryPool>) -> Result<u64, QueryError> {
        match self.end_input()? {
            Some(sum) => Ok(sum),
            None => self.merge_runs(pool),
        }
    }

    /// The end of the input. Without runs, sorts in memory and returns the
    /// checksum of the output; otherwise writes what is buffered as one
    /// more run and returns `None` (the runs are for
    /// [`merge_runs`](Self::merge_runs)). Either way the reservation is
    /// free afterwards.
    pub fn end_input(&mut self) -> Result<Option<u64>, QueryError> {
        if let Some(e) = self.failed.take() {
            return Err(e.into());
        }
        if self.runs.is_empty() {
            let sorted = sorted_copy(&self.buffer);
            self.buffer = Vec::new();
            let sum = sorted.iter().fold(0, checksum);
            drop(sorted);
            self.reservation.free();
            return Ok(Some(sum));
        }
        if !self.buffer.is_empty() {
            self.flush()?;
        }
        self.reservation.free();
        Ok(None)
    }

    /// Merges the runs (k-way) in the `SortMerge[0]` scope, under a
    /// consumer of the same name; returns the checksum of the output.
    pub fn merge_runs(mut self, pool: &Arc<dyn MemoryPool>) -> Result<u64, QueryError> {
        let scope = Scope::new(MERGE);
        let _entered = scope.enter();
        let mut reservation = MemoryConsumer::new(MERGE).with_scope(scope).register(pool);
        // All runs at once if the pool grants their cursors; otherwise
        // groups of runs that it does grant, into longer runs, first.
        loop {
            let fan_in = grant_fan_in(&mut reservation, self.runs.len())?;
            if fan_in == self.runs.len() {
                break;
            }
            merge_some(&mut self.runs, fan_in, Order::Key)?;
            reservation.free();
        }
        let mut sum = 0;
        merge(&self.runs, Order::Key, |row| {
            sum = checksum(sum, &row);
            Ok(())
        })?;
        Ok(sum)
    }
}

/// Reserves cursors for as many of `runs` runs as the pool grants (at most
/// [`MAX_FAN_IN`], halving down to 2 on refusals); returns how many.
fn grant_fan_in(reservation: &mut MemoryReservation, runs: usize) -> Result<usize, PoolError> {
    let mut fan_in = runs.min(MAX_FAN_IN);
    loop {
        match reservation.try_grow(fan_in * CURSOR_GUESS) {
            Ok(()) => return Ok(fan_in),
            Err(refused) if fan_in <= 2 => return Err(refused),
            Err(_) => fan_in = (fan_in / 2).max(2),
        }
    }
}

/// A sorted copy of `rows` (the input stays as it is).
fn sorted_copy(rows: &[Row]) -> Vec<Row> {
    let mut sorted = rows.to_vec();
    sorted.sort_unstable_by(|a, b| Order::Key.cmp(a, b));
    sorted
}
