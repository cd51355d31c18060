//! The output directory of a run: `run.json` and `summary.md`.
//!
//! Both are rewritten after every repeat, atomically (see
//! [`write_atomic`]), so an interrupted or crashed harness leaves every
//! finished measurement on disk and never a half-written file. The
//! directory is locked ([`DirLock`]) for as long as the run writes there: a
//! second run on the same directory is refused before it measures anything.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::export::{Export, markdown::Markdown};
pub use crate::files::write_atomic;
use crate::files::{DirLock, check_replaceable, describe_type};
use crate::run::{Context, QueryResult, RUN_FILE, Run};

/// The Markdown summary next to `run.json`.
pub const SUMMARY_FILE: &str = "summary.md";

/// A run being written as it happens.
pub struct RunWriter {
    dir: PathBuf,
    run: Run,
    _lock: DirLock,
}

/// Creates `dir` if needed and locks it for one run; the error is one line.
///
/// `holder` describes the run (pid, date, command) for whoever finds the
/// directory locked.
pub fn lock_dir(dir: &Path, holder: &str) -> Result<DirLock, String> {
    match fs::symlink_metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(meta) if meta.file_type().is_symlink() && dir.is_dir() => {}
        Ok(meta) => {
            return Err(format!(
                "--out {} is {}, not a directory",
                dir.display(),
                describe_type(meta.file_type())
            ));
        }
        Err(_) => fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the directory {}: {e}", dir.display()))?,
    }
    DirLock::acquire(dir, holder)
}

impl RunWriter {
    /// Writes an empty run into the locked `dir` (replacing a previous run
    /// in the same directory).
    pub fn create(dir: &Path, lock: DirLock, context: Context) -> io::Result<RunWriter> {
        // Both targets are checked before either is written.
        check_replaceable(&dir.join(RUN_FILE))?;
        check_replaceable(&dir.join(SUMMARY_FILE))?;
        let writer = RunWriter {
            dir: dir.to_path_buf(),
            run: Run::new(context),
            _lock: lock,
        };
        writer.write()?;
        Ok(writer)
    }

    /// Marks the run as interrupted and rewrites both files.
    pub fn mark_interrupted(&mut self) -> io::Result<()> {
        self.run.interrupted = true;
        self.write()
    }

    /// Adds a query, or replaces the one with the same id (a query grows one
    /// repeat at a time), and rewrites both files.
    pub fn record(&mut self, query: QueryResult) -> io::Result<()> {
        match self.run.queries.iter_mut().find(|q| q.id == query.id) {
            Some(existing) => *existing = query,
            None => self.run.queries.push(query),
        }
        self.write()
    }

    /// The run so far.
    pub fn run(&self) -> &Run {
        &self.run
    }

    /// Where `run.json` is.
    pub fn run_path(&self) -> PathBuf {
        self.dir.join(RUN_FILE)
    }

    fn write(&self) -> io::Result<()> {
        write_atomic(&self.run_path(), &self.run.to_json())?;
        write_atomic(&self.dir.join(SUMMARY_FILE), &Markdown.run(&self.run))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::tests::query;
    use crate::run::Status;

    #[test]
    fn every_record_is_on_disk_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let lock = lock_dir(&out, "pid 1").unwrap();
        let mut writer = RunWriter::create(&out, lock, Context::default()).unwrap();
        assert_eq!(Run::read(&out).unwrap().queries.len(), 0);
        writer.record(query("q1", Status::Ok, 1 << 20)).unwrap();
        writer.record(query("q2", Status::Failed, 1 << 20)).unwrap();
        writer.record(query("q1", Status::Oom, 1 << 20)).unwrap();
        let on_disk = Run::read(&out).unwrap();
        let ids: Vec<(&str, Status)> = on_disk
            .queries
            .iter()
            .map(|q| (q.id.as_str(), q.status))
            .collect();
        assert_eq!(ids, [("q1", Status::Oom), ("q2", Status::Failed)]);
        let summary = fs::read_to_string(out.join(SUMMARY_FILE)).unwrap();
        assert!(summary.contains("| q2 | failed (exit 1) |"), "{summary}");
        let leftovers: Vec<_> = fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
