//! The output directory of a sweep: `sweep.json`, `summary.md`, and one
//! SVG plot per query, all rewritten (atomically, see
//! [`write_atomic`]) after every run, so that an
//! interrupted sweep leaves every finished run on disk. The directory is
//! locked for as long as the sweep writes there, as for `run`.

use std::io;
use std::path::{Path, PathBuf};

use super::results::{QuerySweep, SWEEP_FILE, Sweep, SweepContext};
use super::{summary, svg};
use crate::files::{DirLock, check_replaceable, file_name_part, write_atomic};
use crate::output::SUMMARY_FILE;

/// A sweep being written as it happens.
pub struct SweepWriter {
    dir: PathBuf,
    sweep: Sweep,
    _lock: DirLock,
}

/// The plot's file name for the query at `index` of the suite: the index
/// keeps names unique, the id (see [`file_name_part`]) keeps them readable.
pub fn plot_name(index: usize, id: &str) -> String {
    format!("{:02}-{}.svg", index + 1, file_name_part(id))
}

impl SweepWriter {
    /// Writes an empty sweep into the locked `dir`.
    pub fn create(dir: &Path, lock: DirLock, context: SweepContext) -> io::Result<SweepWriter> {
        check_replaceable(&dir.join(SWEEP_FILE))?;
        check_replaceable(&dir.join(SUMMARY_FILE))?;
        let writer = SweepWriter {
            dir: dir.to_path_buf(),
            sweep: Sweep::new(context),
            _lock: lock,
        };
        writer.write(None)?;
        Ok(writer)
    }

    /// Adds a query or replaces the one with the same id, keeping suite
    /// order (`order` lists the ids), and rewrites the files and its plot.
    pub fn record(&mut self, query: QuerySweep, order: &[String], wall_ms: u64) -> io::Result<()> {
        let id = query.id.clone();
        self.sweep.context.wall_ms = wall_ms;
        match self.sweep.queries.iter_mut().find(|q| q.id == query.id) {
            Some(existing) => *existing = query,
            None => self.sweep.queries.push(query),
        }
        let rank = |id: &str| order.iter().position(|o| o == id).unwrap_or(usize::MAX);
        self.sweep.queries.sort_by_key(|q| rank(&q.id));
        self.write(Some(&id))
    }

    /// Marks the sweep as interrupted and rewrites the files.
    pub fn mark_interrupted(&mut self, wall_ms: u64) -> io::Result<()> {
        self.sweep.interrupted = true;
        self.sweep.context.wall_ms = wall_ms;
        self.write(None)
    }

    /// The sweep so far.
    pub fn sweep(&self) -> &Sweep {
        &self.sweep
    }

    /// Where `sweep.json` is.
    pub fn sweep_path(&self) -> PathBuf {
        self.dir.join(SWEEP_FILE)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn write(&self, plot: Option<&str>) -> io::Result<()> {
        if let Some(q) = plot.and_then(|id| self.sweep.query(id)) {
            if let Some(name) = &q.plot {
                write_atomic(&self.dir.join(name), &svg::plot(q))?;
            }
        }
        write_atomic(&self.sweep_path(), &self.sweep.to_json())?;
        write_atomic(
            &self.dir.join(SUMMARY_FILE),
            &summary::markdown(&self.sweep),
        )
    }
}
