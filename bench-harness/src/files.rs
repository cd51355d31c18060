//! Reading and writing the files a run touches, safely against what a
//! hostile child or a careless caller may have put in their place.
//!
//! - [`write_atomic`] writes through a unique temporary file created beside
//!   the target with `O_CREAT | O_EXCL | O_NOFOLLOW` (a planted symlink or
//!   file at that name makes the open fail instead of being followed), then
//!   renames it over the target. It refuses to replace anything that is not
//!   a regular file: a symlink, a device node, a FIFO or a directory stays
//!   as it was.
//! - [`read_limited`] reads a regular file only, without ever blocking (a
//!   FIFO is refused, never opened for a blocking read), and up to a size
//!   cap: a file linked to `/dev/zero` or grown without bound is an error,
//!   not an allocation that ends the harness.
//! - [`DirLock`] is an exclusive `flock` on a file inside an output
//!   directory, held for as long as a run writes there.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// How many unique temporary names are tried before giving up.
const TEMPORARY_ATTEMPTS: u32 = 64;

/// What kind of thing a file type is, in words: `a symbolic link`, `a FIFO`.
pub fn describe_type(file_type: fs::FileType) -> &'static str {
    if file_type.is_file() {
        "a regular file"
    } else if file_type.is_dir() {
        "a directory"
    } else if file_type.is_symlink() {
        "a symbolic link"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Fails unless `path` is absent or a regular file (not followed if it is a
/// symlink): the check [`write_atomic`] makes before it writes anything.
pub fn check_replaceable(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_file() => Ok(()),
        Ok(meta) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "refusing to replace {}: it is {}, not a regular file",
                path.display(),
                describe_type(meta.file_type())
            ),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// An id made fit for a file name: its first 64 characters, those other
/// than ASCII letters, digits, `-`, `_` and `.` replaced by `_`. Two ids may
/// give the same text: callers that need unique names add an index.
pub fn file_name_part(id: &str) -> String {
    id.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A temporary name beside `path` that no other writer uses:
/// `.NAME.PID.N.tmp`, `N` unique within this process and mixed with the clock.
fn temporary_path(path: &Path, name: &std::ffi::OsStr) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut temporary = OsString::from(".");
    temporary.push(name);
    temporary.push(format!(".{}.{n}{nanos:09}.tmp", std::process::id()));
    path.with_file_name(temporary)
}

/// Writes `contents` to `path` so that a reader sees the old file or the new
/// one, never a part, and nothing else is touched (see the module docs).
///
/// Errors when `path` exists and is not a regular file, or when no unique
/// temporary file can be created beside it.
pub fn write_atomic(path: &Path, contents: &str) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file path"))?;
    check_replaceable(path)?;
    let mut attempts = 0;
    let (temporary, mut file) = loop {
        let candidate = temporary_path(path, name);
        let opened = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o666)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&candidate);
        match opened {
            Ok(file) => break (candidate, file),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < TEMPORARY_ATTEMPTS => {
                attempts += 1;
            }
            Err(e) => return Err(e),
        }
    };
    let written = file
        .write_all(contents.as_bytes())
        .and_then(|_| file.sync_all())
        // Checked again just before the rename: the target may have been
        // swapped for something else while the contents were written.
        .and_then(|_| check_replaceable(path))
        .and_then(|_| fs::rename(&temporary, path));
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written
}

/// Why [`read_limited`] refused a file.
#[derive(Debug)]
pub enum ReadError {
    /// There is nothing at the path.
    NotFound,
    /// It is not a regular file; the text says what it is.
    NotRegular(&'static str),
    /// It holds more than the cap (its size, or at least `cap + 1`).
    TooLarge {
        /// The bytes it has (at least).
        size: u64,
        /// The cap it passed.
        cap: u64,
    },
    /// Reading failed.
    Io(io::Error),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::NotFound => f.write_str("no such file"),
            ReadError::NotRegular(what) => write!(f, "it is {what}, not a regular file"),
            ReadError::TooLarge { size, cap } => write!(
                f,
                "it holds {size} bytes or more, over the cap of {cap} bytes"
            ),
            ReadError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// Reads `path` as text if it is a regular file of at most `cap` bytes.
///
/// A symlink is followed only when `follow` is true (the caller's own input);
/// the file is opened with `O_NONBLOCK` and checked with `fstat` before any
/// read, so a FIFO or device never blocks or streams. Invalid UTF-8 is
/// replaced.
pub fn read_limited(path: &Path, cap: u64, follow: bool) -> Result<String, ReadError> {
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY;
    if !follow {
        flags |= libc::O_NOFOLLOW;
        match fs::symlink_metadata(path) {
            Ok(meta) if !meta.file_type().is_file() => {
                return Err(ReadError::NotRegular(describe_type(meta.file_type())));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(ReadError::NotFound),
            Err(e) => return Err(ReadError::Io(e)),
        }
    } else {
        match fs::metadata(path) {
            Ok(meta) if !meta.file_type().is_file() => {
                return Err(ReadError::NotRegular(describe_type(meta.file_type())));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(ReadError::NotFound),
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => ReadError::NotRegular("a symbolic link"),
            Some(libc::ENOENT) => ReadError::NotFound,
            _ => ReadError::Io(e),
        })?;
    // Checked on the open file: the path may have been swapped since.
    let meta = file.metadata().map_err(ReadError::Io)?;
    if !meta.file_type().is_file() {
        return Err(ReadError::NotRegular(describe_type(meta.file_type())));
    }
    if meta.size() > cap {
        return Err(ReadError::TooLarge {
            size: meta.size(),
            cap,
        });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.size()).unwrap_or(0));
    // One byte past the cap tells a file that grew while being read.
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    let read = bytes.len() as u64;
    if read > cap {
        return Err(ReadError::TooLarge { size: read, cap });
    }
    Ok(match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// The name of the lock file inside a locked output directory.
pub const LOCK_FILE: &str = ".mem_profile.lock";

/// An exclusive lock on an output directory, released when dropped or when
/// the process ends in any way (it is an `flock`, which the kernel drops
/// with the last descriptor; a `SIGKILL`ed run leaves no stale lock).
///
/// The lock file holds the pid, start date and command of the run that
/// holds it, so that a second run can name it.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Locks `dir` (which must exist), or fails at once, naming the run
    /// that holds it. `holder` is written into the lock file.
    pub fn acquire(dir: &Path, holder: &str) -> Result<DirLock, String> {
        let path = dir.join(LOCK_FILE);
        check_replaceable(&path).map_err(|e| e.to_string())?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o666)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| format!("cannot create the lock {}: {e}", path.display()))?;
        // SAFETY: flock on a descriptor this function owns.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let error = io::Error::last_os_error();
            if error.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(format!("cannot lock {}: {error}", path.display()));
            }
            let mut text = String::new();
            let _ = (&file).take(4096).read_to_string(&mut text);
            let holder = text.split_whitespace().collect::<Vec<_>>().join(" ");
            let holder = if holder.is_empty() {
                "another mem_profile run".to_string()
            } else {
                holder
            };
            return Err(format!(
                "{} is in use by another run ({holder}); wait for it or choose another --out",
                dir.display()
            ));
        }
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = file.write_all(holder.as_bytes());
        Ok(DirLock { _file: file })
    }
}

/// True when `a` and `b` name the same existing file (same device and inode).
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn writes_replace_regular_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.json");
        write_atomic(&target, "one").unwrap();
        write_atomic(&target, "two").unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "two");

        let victim = dir.path().join("victim");
        fs::write(&victim, "keep").unwrap();
        let link = dir.path().join("link.json");
        symlink(&victim, &link).unwrap();
        let err = write_atomic(&link, "evil").unwrap_err();
        assert!(err.to_string().contains("a symbolic link"), "{err}");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );

        let err = write_atomic(Path::new("/dev/null"), "x").unwrap_err();
        assert!(err.to_string().contains("a character device"), "{err}");
        assert!(
            fs::metadata("/dev/null")
                .unwrap()
                .file_type()
                .is_char_device()
        );
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
    }

    #[test]
    fn a_planted_temporary_name_is_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "keep").unwrap();
        // Plant links at the names the old fixed scheme and a guess at the
        // new one would use.
        symlink(&victim, dir.path().join(".out.json.tmp")).unwrap();
        let guess = temporary_path(&dir.path().join("out.json"), "out.json".as_ref());
        symlink(&victim, &guess).unwrap();
        write_atomic(&dir.path().join("out.json"), "new").unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(
            fs::read_to_string(dir.path().join("out.json")).unwrap(),
            "new"
        );
    }

    #[test]
    fn reads_refuse_fifos_devices_links_and_oversize_files() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo on a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(matches!(
            read_limited(&fifo, 100, false),
            Err(ReadError::NotRegular("a FIFO"))
        ));
        assert!(matches!(
            read_limited(&fifo, 100, true),
            Err(ReadError::NotRegular("a FIFO"))
        ));
        let zero = dir.path().join("zero");
        symlink("/dev/zero", &zero).unwrap();
        assert!(matches!(
            read_limited(&zero, 100, false),
            Err(ReadError::NotRegular("a symbolic link"))
        ));
        assert!(matches!(
            read_limited(&zero, 100, true),
            Err(ReadError::NotRegular("a character device"))
        ));
        let big = dir.path().join("big");
        fs::write(&big, vec![b'x'; 101]).unwrap();
        assert!(matches!(
            read_limited(&big, 100, false),
            Err(ReadError::TooLarge {
                size: 101,
                cap: 100
            })
        ));
        assert_eq!(read_limited(&big, 101, false).unwrap().len(), 101);
        assert!(matches!(
            read_limited(&dir.path().join("none"), 1, false),
            Err(ReadError::NotFound)
        ));
    }

    #[test]
    fn a_locked_directory_names_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let held = DirLock::acquire(dir.path(), "pid 1 started now").unwrap();
        let err = DirLock::acquire(dir.path(), "pid 2").unwrap_err();
        assert!(
            err.contains("in use by another run (pid 1 started now)"),
            "{err}"
        );
        drop(held);
        DirLock::acquire(dir.path(), "pid 3").unwrap();
    }
}
