//! The output directory of a run: `run.json` and `summary.md`.
//!
//! Both are rewritten after every repeat, atomically (a temporary file in
//! the same directory, then a rename), so an interrupted or crashed harness
//! leaves every finished measurement on disk and never a half-written file.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::export::{Export, markdown::Markdown};
use crate::run::{Context, QueryResult, RUN_FILE, Run};

/// The Markdown summary next to `run.json`.
pub const SUMMARY_FILE: &str = "summary.md";

/// A run being written as it happens.
pub struct RunWriter {
    dir: PathBuf,
    run: Run,
}

impl RunWriter {
    /// Creates `dir` if needed and writes an empty run there (replacing a
    /// previous run in the same directory).
    pub fn create(dir: &Path, context: Context) -> io::Result<RunWriter> {
        fs::create_dir_all(dir)?;
        let writer = RunWriter {
            dir: dir.to_path_buf(),
            run: Run::new(context),
        };
        writer.write()?;
        Ok(writer)
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

/// Writes `contents` to `path` through a temporary file and a rename, so a
/// reader sees the old file or the new one, never a part.
pub fn write_atomic(path: &Path, contents: &str) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file path"))?;
    let mut temporary_name = std::ffi::OsString::from(".");
    temporary_name.push(name);
    temporary_name.push(".tmp");
    let temporary = path.with_file_name(temporary_name);
    let mut file = fs::File::create(&temporary)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    fs::rename(&temporary, path)
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
        let mut writer = RunWriter::create(&out, Context::default()).unwrap();
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
