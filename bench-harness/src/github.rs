//! GitHub Actions: the job summary.
//!
//! When `GITHUB_STEP_SUMMARY` names a file (GitHub sets it in every step),
//! `mem_profile run` and `mem_profile compare` append their Markdown to it,
//! so the results show on the workflow run's page without a step of its
//! own. GitHub shows at most [`STEP_SUMMARY_MAX_BYTES`] of a step's summary:
//! what is appended is cut to fit beside what the file already holds, with
//! a note. The summary is a courtesy: a failure to write it is a warning on
//! stderr, never a failed run.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::app::note;
use crate::export::markdown::fit;
use crate::files::describe_type;

/// The variable GitHub Actions sets to the step's summary file.
pub const STEP_SUMMARY_ENV: &str = "GITHUB_STEP_SUMMARY";

/// GitHub's limit on one step's summary.
pub const STEP_SUMMARY_MAX_BYTES: u64 = 1024 * 1024;

/// The note that ends a run's summary cut to fit.
pub const RUN_NOTE: &str =
    "_Cut to fit GitHub's 1 MiB job summary limit: every row is in the run's summary.md._";

/// The note that ends a comparison cut to fit.
pub const COMPARE_NOTE: &str = "_Cut to fit GitHub's 1 MiB job summary limit: run \
     `mem_profile compare` for every row._";

/// Appends `markdown` to the file `GITHUB_STEP_SUMMARY` names, if it is set
/// and not empty, cut to fit (ending in `note` when cut). Problems are one
/// warning line on stderr.
pub fn append_step_summary(markdown: &str, note_text: &str) {
    let Some(path) = std::env::var_os(STEP_SUMMARY_ENV).filter(|p| !p.is_empty()) else {
        return;
    };
    let path = Path::new(&path);
    if let Err(e) = append(path, markdown, note_text) {
        note(&format!(
            "mem_profile: warning: cannot append to the job summary {} ({STEP_SUMMARY_ENV}): {e}",
            path.display()
        ));
    }
}

/// Appends to `path` (a regular file, created if absent), keeping the whole
/// file within [`STEP_SUMMARY_MAX_BYTES`].
fn append(path: &Path, markdown: &str, note_text: &str) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o666)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "it is {}, not a regular file",
                describe_type(meta.file_type())
            ),
        ));
    }
    // A blank line keeps the new Markdown apart from what came before.
    let separator = if meta.len() > 0 { "\n" } else { "" };
    let room = STEP_SUMMARY_MAX_BYTES.saturating_sub(meta.len() + separator.len() as u64);
    let room = usize::try_from(room).unwrap_or(usize::MAX);
    // Less room than the note itself: nothing worth appending fits.
    if room < note_text.len() + 2 {
        return Err(io::Error::other(format!(
            "it already holds {} bytes, at GitHub's limit of {STEP_SUMMARY_MAX_BYTES}",
            meta.len()
        )));
    }
    let text = format!("{separator}{}", fit(markdown, room, note_text));
    file.write_all(text.as_bytes())
}
