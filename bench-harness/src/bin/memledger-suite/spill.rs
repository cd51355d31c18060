//! Sorted runs on disk: written when a pool refuses, merged at the end.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};

use crate::data::Row;

/// One sorted run in a temporary file (removed when dropped).
pub struct Run {
    file: tempfile::NamedTempFile,
}

/// Writes `rows` (already in order) to a new run.
pub fn write_run<'a>(rows: impl IntoIterator<Item = &'a Row>) -> io::Result<Run> {
    let file = tempfile::NamedTempFile::new()?;
    let mut w = BufWriter::new(file.reopen()?);
    for row in rows {
        w.write_all(&row.key.to_le_bytes())?;
        w.write_all(&row.value.to_le_bytes())?;
        w.write_all(&(row.name.len() as u32).to_le_bytes())?;
        w.write_all(row.name.as_bytes())?;
    }
    w.flush()?;
    Ok(Run { file })
}

/// Reads a run back, row by row.
pub struct Cursor {
    reader: BufReader<File>,
}

impl Run {
    /// A cursor over the run, with a 64 KiB read buffer.
    pub fn cursor(&self) -> io::Result<Cursor> {
        Ok(Cursor {
            reader: BufReader::with_capacity(64 * 1024, self.file.reopen()?),
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
