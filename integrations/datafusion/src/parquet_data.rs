//! TPC-H as Parquet files: generated once, scanned by every query.
//!
//! ```text
//!   DIR/
//!     tpch.json                 {"scale": 1.0, "parts": 4}
//!     lineitem/part-1.parquet … part-N.parquet
//!     orders/   customer/   part/   partsupp/   supplier/   (N files each)
//!     nation/part-1.parquet     region/part-1.parquet
//! ```
//!
//! [`write_tables`] streams `tpchgen-arrow` batches into parquet's
//! `ArrowWriter` (Snappy), one file per part, the parts written in parallel;
//! memory stays at a few batches per writer whatever the scale. The files go
//! to a hidden temporary folder next to `DIR`, each is synced, and the folder
//! is renamed to `DIR` only when every table is complete: a `DIR` that exists
//! holds a whole data set, and an interrupted generation leaves only the
//! temporary folder, which is never read.
//!
//! [`register_tables`] registers each table folder as a Parquet listing
//! table, the way DataFusion's own TPC-H benchmark reads its data.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use datafusion::arrow::record_batch::RecordBatchReader;
use datafusion::common::{DataFusionError, Result};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::prelude::{ParquetReadOptions, SessionContext};

use crate::tpch::{TABLES, readers};

/// The manifest every data folder holds.
pub const MANIFEST: &str = "tpch.json";

/// Rows per batch handed to the writer while generating.
const GENERATE_BATCH_ROWS: usize = 8192;

/// What [`write_tables`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Generated {
    /// The data set was written to the folder.
    Written {
        /// Parquet files written.
        files: usize,
    },
    /// Another generation finished first; its (complete) data set is kept.
    AlreadyThere,
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> DataFusionError {
    DataFusionError::Execution(format!("{what} {}: {e}", path.display()))
}

/// Writes the eight TPC-H tables at `scale` as Parquet under `dir`, the six
/// scaled tables in `parts` files each (see the module docs for the layout
/// and why a present `dir` is always complete).
///
/// Fails when `dir` already exists (a data set is never overwritten) or on
/// any I/O or encoding error; the temporary folder is removed then. Uses up
/// to `threads` writer threads (at least one).
pub fn write_tables(dir: &Path, scale: f64, parts: usize, threads: usize) -> Result<Generated> {
    if !(scale.is_finite() && scale > 0.0) || parts == 0 {
        return Err(DataFusionError::Plan(
            "the scale must be positive and at least one part is needed".to_string(),
        ));
    }
    if dir.exists() {
        return Err(DataFusionError::Plan(format!(
            "{} already exists; remove it to generate again",
            dir.display()
        )));
    }
    let name = dir
        .file_name()
        .ok_or_else(|| DataFusionError::Plan(format!("{} names no folder", dir.display())))?;
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| io_error("cannot create", parent, e))?;
    let tmp = parent.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = write_into(&tmp, scale, parts, threads);
    let files = match written {
        Ok(files) => files,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    match std::fs::rename(&tmp, dir) {
        Ok(()) => Ok(Generated::Written { files }),
        // A concurrent generation renamed its complete folder first.
        Err(_) if dir.join(MANIFEST).is_file() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(Generated::AlreadyThere)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(io_error("cannot rename the generated data to", dir, e))
        }
    }
}

/// One file to write: its path and the generator of its rows.
struct Job {
    path: PathBuf,
    reader: Box<dyn RecordBatchReader + Send>,
}

fn write_into(tmp: &Path, scale: f64, parts: usize, threads: usize) -> Result<usize> {
    if tmp.exists() {
        std::fs::remove_dir_all(tmp).map_err(|e| io_error("cannot remove", tmp, e))?;
    }
    let mut jobs = Vec::new();
    for table in TABLES {
        let folder = tmp.join(table);
        std::fs::create_dir_all(&folder).map_err(|e| io_error("cannot create", &folder, e))?;
        for (i, reader) in readers(table, scale, parts, GENERATE_BATCH_ROWS)?
            .into_iter()
            .enumerate()
        {
            jobs.push(Job {
                path: folder.join(format!("part-{}.parquet", i + 1)),
                reader,
            });
        }
    }
    let files = jobs.len();
    // Biggest tables first, so the last thread to finish is not the one
    // that drew a lineitem part at the end.
    jobs.reverse();
    let queue = Mutex::new(jobs);
    let next = || match queue.lock() {
        Ok(mut q) => q.pop(),
        Err(poisoned) => poisoned.into_inner().pop(),
    };
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads.clamp(1, files.max(1)))
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    while let Some(job) = next() {
                        write_file(job)?;
                    }
                    Ok(())
                })
            })
            .collect();
        workers.into_iter().try_for_each(|w| {
            w.join().unwrap_or_else(|_| {
                Err(DataFusionError::Execution(
                    "a Parquet writer thread panicked".to_string(),
                ))
            })
        })
    })?;
    let manifest = tmp.join(MANIFEST);
    let text = serde_json::json!({ "scale": scale, "parts": parts }).to_string();
    std::fs::write(&manifest, text).map_err(|e| io_error("cannot write", &manifest, e))?;
    Ok(files)
}

fn write_file(job: Job) -> Result<()> {
    let file = File::create(&job.path).map_err(|e| io_error("cannot create", &job.path, e))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer = ArrowWriter::try_new(file, job.reader.schema(), Some(props))?;
    for batch in job.reader {
        writer.write(&batch?)?;
    }
    let file = writer.into_inner()?;
    file.sync_all()
        .map_err(|e| io_error("cannot sync", &job.path, e))
}

/// The scale factor recorded in the data folder `dir`, or an error when
/// `dir` holds no complete data set.
pub fn scale_of(dir: &Path) -> Result<f64> {
    let manifest = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&manifest).map_err(|e| {
        io_error(
            "not a TPC-H data folder (run `memledger-tpch gen`): cannot read",
            &manifest,
            e,
        )
    })?;
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("scale").and_then(|s| s.as_f64()))
        .ok_or_else(|| DataFusionError::Plan(format!("{} has no scale", manifest.display())))
}

/// Registers every table of the data folder `dir` in `ctx` as a Parquet
/// listing table (`dir/<table>/*.parquet`).
pub async fn register_tables(ctx: &SessionContext, dir: &Path) -> Result<()> {
    scale_of(dir)?;
    let dir = std::fs::canonicalize(dir).map_err(|e| io_error("cannot resolve", dir, e))?;
    for table in TABLES {
        let folder = dir.join(table);
        let url = format!("{}/", folder.display());
        ctx.register_parquet(table, &url, ParquetReadOptions::default())
            .await?;
    }
    Ok(())
}
