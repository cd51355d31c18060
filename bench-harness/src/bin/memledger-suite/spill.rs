//! Sorted runs on disk: written when a pool refuses, merged at the end.
//!
//! A run is a temporary file (removed when the [`Run`] drops) of rows in a
//! simple binary format, one record per row, little-endian:
//!
//! ```text
//! key: u64 | value: u64 | name length: u32 | name: UTF-8 bytes
//! ```
//!
//! [`merge`] reads any number of runs back at once (k-way, through a binary
//! heap) and hands out their rows in one order.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::collections::binary_heap::PeekMut;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};

use crate::data::Row;

/// Bytes of the read buffer of each run's cursor.
pub const READ_BUFFER: usize = 64 * 1024;

/// The most runs merged at once (one open file each); more are first
/// merged in groups into longer runs.
pub const MAX_FAN_IN: usize = 128;

/// One sorted run in a temporary file (removed when dropped). No file is
/// kept open between writing and reading.
pub struct Run {
    path: tempfile::TempPath,
}

/// Writes a run, row by row.
pub struct RunWriter {
    out: BufWriter<tempfile::NamedTempFile>,
}

impl RunWriter {
    /// A new, empty run.
    pub fn new() -> io::Result<RunWriter> {
        Ok(RunWriter {
            out: BufWriter::new(tempfile::NamedTempFile::new()?),
        })
    }

    /// Appends one row (rows must come in the run's order).
    pub fn push(&mut self, row: &Row) -> io::Result<()> {
        let len = u32::try_from(row.name.len())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        self.out.write_all(&row.key.to_le_bytes())?;
        self.out.write_all(&row.value.to_le_bytes())?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(row.name.as_bytes())
    }

    /// Flushes and closes the file.
    pub fn finish(self) -> io::Result<Run> {
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        Ok(Run {
            path: file.into_temp_path(),
        })
    }
}

/// Writes `rows` (already in order) to a new run.
pub fn write_run<'a>(rows: impl IntoIterator<Item = &'a Row>) -> io::Result<Run> {
    let mut w = RunWriter::new()?;
    for row in rows {
        w.push(row)?;
    }
    w.finish()
}

/// Reads a run back, row by row.
pub struct Cursor {
    reader: BufReader<File>,
}

impl Run {
    /// A cursor over the run, with a [`READ_BUFFER`] read buffer.
    pub fn cursor(&self) -> io::Result<Cursor> {
        Ok(Cursor {
            reader: BufReader::with_capacity(READ_BUFFER, File::open(&self.path)?),
        })
    }
}

impl Cursor {
    /// The next row, or `None` at the end.
    pub fn next_row(&mut self) -> io::Result<Option<Row>> {
        let mut head = [0u8; 20];
        match self.reader.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let word = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&head[i..i + 8]);
            u64::from_le_bytes(b)
        };
        let len = u32::from_le_bytes([head[16], head[17], head[18], head[19]]) as usize;
        let mut name = vec![0u8; len];
        self.reader.read_exact(&mut name)?;
        let name =
            String::from_utf8(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Ok(Some(Row {
            key: word(0),
            value: word(8),
            name,
        }))
    }
}

/// The order of a run and of its merge.
#[derive(Clone, Copy, Debug)]
pub enum Order {
    /// By key, then value, then name: the sort's order (total, so a spilled
    /// sort and an in-memory one give the same output).
    Key,
    /// By name: the aggregation's group order.
    Name,
}

impl Order {
    /// Compares two rows in this order.
    pub fn cmp(self, a: &Row, b: &Row) -> Ordering {
        match self {
            Order::Key => a
                .key
                .cmp(&b.key)
                .then(a.value.cmp(&b.value))
                .then_with(|| a.name.cmp(&b.name)),
            Order::Name => a.name.cmp(&b.name),
        }
    }
}

/// A run's current row in the merge heap.
struct Head {
    row: Row,
    run: usize,
    order: Order,
}

impl Ord for Head {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the smallest row;
    /// equal rows come out in run order.
    fn cmp(&self, other: &Self) -> Ordering {
        self.order
            .cmp(&other.row, &self.row)
            .then(other.run.cmp(&self.run))
    }
}

impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Head {}

/// Merges `runs` (each sorted in `order`), calling `emit` with every row in
/// that order. One cursor per run is open at once.
pub fn merge(
    runs: &[Run],
    order: Order,
    mut emit: impl FnMut(Row) -> io::Result<()>,
) -> io::Result<()> {
    let mut cursors = runs
        .iter()
        .map(Run::cursor)
        .collect::<io::Result<Vec<_>>>()?;
    let mut heap = BinaryHeap::with_capacity(cursors.len());
    for (run, cursor) in cursors.iter_mut().enumerate() {
        if let Some(row) = cursor.next_row()? {
            heap.push(Head { row, run, order });
        }
    }
    while let Some(mut top) = heap.peek_mut() {
        match cursors[top.run].next_row()? {
            Some(next) => {
                let row = std::mem::replace(&mut top.row, next);
                drop(top);
                emit(row)?;
            }
            None => emit(PeekMut::pop(top).row)?,
        }
    }
    Ok(())
}

/// Merges the first `fan_in` runs into one longer run, put last.
pub fn merge_some(runs: &mut Vec<Run>, fan_in: usize, order: Order) -> io::Result<()> {
    let group: Vec<Run> = runs.drain(..fan_in.min(runs.len())).collect();
    let mut w = RunWriter::new()?;
    merge(&group, order, |row| w.push(&row))?;
    runs.push(w.finish()?);
    Ok(())
}

/// Merges groups of runs until at most `max_fan_in` (at least 2) are left.
pub fn merge_down(runs: &mut Vec<Run>, max_fan_in: usize, order: Order) -> io::Result<()> {
    let max_fan_in = max_fan_in.max(2);
    while runs.len() > max_fan_in {
        merge_some(runs, max_fan_in, order)?;
    }
    Ok(())
}

/// What a spill made at a pool's request returns to the pool, which cannot
/// take an error: the bytes freed (counting the request as answered when
/// something was), or 0 with the error kept in `failed` for the operator's end.
pub fn answer_request(
    spilled: io::Result<usize>,
    asked: &mut u64,
    failed: &mut Option<io::Error>,
) -> usize {
    match spilled {
        Ok(0) => 0,
        Ok(freed) => {
            *asked += 1;
            freed
        }
        Err(e) => {
            failed.get_or_insert(e);
            0
        }
    }
}
