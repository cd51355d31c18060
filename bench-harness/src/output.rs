//! The output directory of a run: `run.json`, `summary.md`, and one SVG
//! timeline per query (`timeline-NN-ID.svg`, linked from `summary.md`, so
//! that a Markdown viewer shows the pictures too).
//!
//! All are rewritten after every repeat (a timeline: its query's), atomically (see
//! [`write_atomic`]), so an interrupted or crashed harness leaves every
//! finished measurement on disk and never a half-written file. The
//! directory is locked ([`DirLock`]) for as long as the run writes there: a
//! second run on the same directory is refused before it measures anything.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::export::timeline::TimelinePlot;
use crate::export::{Export, markdown::Markdown};
pub use crate::files::write_atomic;
use crate::files::{DirLock, check_replaceable, describe_type, file_name_part};
use crate::run::{Context, QueryResult, RUN_FILE, Run};

/// The Markdown summary next to `run.json`.
pub const SUMMARY_FILE: &str = "summary.md";

/// The timeline's file name for the query at `index` of the run: the index
/// keeps names unique, the id (see [`file_name_part`]) keeps them readable.
pub fn timeline_name(index: usize, id: &str) -> String {
    format!("timeline-{:02}-{}.svg", index + 1, file_name_part(id))
}

/// `summary.md`: the run's Markdown, then each query's timeline.
pub fn summary(run: &Run) -> String {
    let mut out = Markdown.run(run);
    if run.queries.is_empty() {
        return out;
    }
    out.push_str("\n### Timelines\n");
    for (index, query) in run.queries.iter().enumerate() {
        let id: String = crate::export::one_line(&query.id)
            .chars()
            .map(|c| match c {
                '[' | ']' | '\\' | '`' | '<' | '>' => ' ',
                c => c,
            })
            .collect();
        let name = timeline_name(index, &query.id);
        out.push_str(&format!("\n[![{id}: memory over time]({name})]({name})\n"));
    }
    out
}

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
        writer.write(None)?;
        Ok(writer)
    }

    /// Marks the run as interrupted and rewrites both files.
    pub fn mark_interrupted(&mut self) -> io::Result<()> {
        self.run.interrupted = true;
        self.write(None)
    }

    /// Adds a query, or replaces the one with the same id (a query grows one
    /// repeat at a time), and rewrites both files.
    pub fn record(&mut self, query: QueryResult) -> io::Result<()> {
        let index = match self.run.queries.iter().position(|q| q.id == query.id) {
            Some(index) => {
                self.run.queries[index] = query;
                index
            }
            None => {
                self.run.queries.push(query);
                self.run.queries.len() - 1
            }
        };
        self.write(Some(index))
    }

    /// The run so far.
    pub fn run(&self) -> &Run {
        &self.run
    }

    /// Where `run.json` is.
    pub fn run_path(&self) -> PathBuf {
        self.dir.join(RUN_FILE)
    }

    /// Rewrites `run.json`, `summary.md` and the timeline of the query at
    /// `timeline` (an index into the run's queries).
    fn write(&self, timeline: Option<usize>) -> io::Result<()> {
        if let Some((index, query)) = timeline.and_then(|i| Some((i, self.run.queries.get(i)?))) {
            write_atomic(
                &self.dir.join(timeline_name(index, &query.id)),
                &TimelinePlot::of(query).svg(&format!("q{}", index + 1)),
            )?;
        }
        write_atomic(&self.run_path(), &self.run.to_json())?;
        write_atomic(&self.dir.join(SUMMARY_FILE), &summary(&self.run))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::tests::query;
    use crate::run::Status;

    #[test]
    fn timeline_names_are_unique_and_safe() {
        assert_eq!(timeline_name(0, "q1"), "timeline-01-q1.svg");
        assert_eq!(timeline_name(11, "a b/../c"), "timeline-12-a_b_.._c.svg");
        assert_ne!(timeline_name(0, "a b"), timeline_name(1, "a/b"));
    }

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
        assert!(
            summary.ends_with(
                "\n[![q1: memory over time](timeline-01-q1.svg)](timeline-01-q1.svg)\n\
                 \n[![q2: memory over time](timeline-02-q2.svg)](timeline-02-q2.svg)\n"
            ),
            "{summary}"
        );
        for name in ["timeline-01-q1.svg", "timeline-02-q2.svg"] {
            let svg = fs::read_to_string(out.join(name)).unwrap();
            roxmltree::Document::parse(&svg).expect("valid XML");
        }
        let leftovers: Vec<_> = fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
