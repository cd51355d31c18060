//! Keeps the last bytes a child wrote to stderr, and the line where it
//! reported an allocation failure, if it did.
//!
//! A thread drains the pipe as fast as the child writes (a full pipe would
//! stall the query and skew its time) and keeps only the tail, which is
//! where a pool's error text usually ends up. Rust's allocation-failure
//! message is caught wherever it appears, because a backtrace printed after
//! it (`RUST_BACKTRACE=1`) can push it out of the tail.

use std::io::Read;
use std::process::ChildStderr;
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// How many bytes of stderr are kept.
pub const TAIL_BYTES: usize = 2048;

/// What Rust's default allocation-error handler prints before aborting:
/// `memory allocation of N bytes failed`.
pub const ALLOC_FAILURE_MARKER: &str = "memory allocation of ";

/// The longest line inspected for the marker; the rest of a longer line is ignored.
const LINE_LIMIT: usize = 4096;

/// What was drained so far.
#[derive(Debug, Default)]
struct Drained {
    tail: Vec<u8>,
    line: Vec<u8>,
    alloc_failure: Option<String>,
}

impl Drained {
    fn push(&mut self, bytes: &[u8]) {
        self.tail.extend_from_slice(bytes);
        if self.tail.len() > 2 * TAIL_BYTES {
            let excess = self.tail.len() - TAIL_BYTES;
            self.tail.drain(..excess);
        }
        for &byte in bytes {
            if byte == b'\n' {
                self.end_line();
            } else if self.line.len() < LINE_LIMIT {
                self.line.push(byte);
            }
        }
    }

    fn end_line(&mut self) {
        if self.alloc_failure.is_none() {
            let line = String::from_utf8_lossy(&self.line);
            if line.contains(ALLOC_FAILURE_MARKER) && line.contains("failed") {
                self.alloc_failure = Some(line.trim().to_string());
            }
        }
        self.line.clear();
    }
}

/// What a child wrote to stderr, as kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StderrSummary {
    /// The last [`TAIL_BYTES`] as text.
    pub tail: String,
    /// The first line that reported an allocation failure.
    pub alloc_failure: Option<String>,
}

/// A running drain of one child's stderr.
pub struct StderrTail {
    drained: Arc<Mutex<Drained>>,
    done: Receiver<()>,
}

impl StderrTail {
    /// Starts draining `stderr` on a thread of its own.
    pub fn start(mut stderr: ChildStderr) -> StderrTail {
        let drained = Arc::new(Mutex::new(Drained::default()));
        let (done_tx, done) = mpsc::channel();
        let shared = Arc::clone(&drained);
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            loop {
                match stderr.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => shared
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(&chunk[..n]),
                }
            }
            shared
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .end_line();
            let _ = done_tx.send(());
        });
        StderrTail { drained, done }
    }

    /// Waits up to `wait` for end of file (a leftover grandchild may hold
    /// the pipe open), then returns what was kept.
    pub fn finish(self, wait: Duration) -> StderrSummary {
        let _ = self.done.recv_timeout(wait);
        let drained = self.drained.lock().unwrap_or_else(PoisonError::into_inner);
        StderrSummary {
            tail: tail_text(&drained.tail),
            alloc_failure: drained.alloc_failure.clone(),
        }
    }
}

/// The last [`TAIL_BYTES`] of `bytes` as text, starting on a character
/// boundary; invalid UTF-8 is replaced.
pub fn tail_text(bytes: &[u8]) -> String {
    let mut start = bytes.len().saturating_sub(TAIL_BYTES);
    // Skip UTF-8 continuation bytes so the first character is whole.
    while start < bytes.len() && bytes[start] & 0xC0 == 0x80 {
        start += 1;
    }
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_end_on_a_char_boundary() {
        let mut bytes = "é".repeat(TAIL_BYTES).into_bytes();
        bytes.extend_from_slice(b"END");
        let tail = tail_text(&bytes);
        assert!(tail.ends_with("END"));
        assert!(tail.len() <= TAIL_BYTES);
        assert!(!tail.contains('\u{FFFD}'), "no broken character");
        assert_eq!(tail_text(b"short"), "short");
    }

    #[test]
    fn the_allocation_failure_survives_a_long_backtrace() {
        let mut drained = Drained::default();
        drained.push(b"starting\nmemory allocation of 4096 by");
        drained.push(b"tes failed\nstack backtrace:\n");
        for _ in 0..200 {
            drained.push(b"   0: some::frame::in::the::backtrace\n");
        }
        let tail = tail_text(&drained.tail);
        assert!(
            !tail.contains(ALLOC_FAILURE_MARKER),
            "scrolled out of the tail"
        );
        assert_eq!(
            drained.alloc_failure.as_deref(),
            Some("memory allocation of 4096 bytes failed")
        );
    }
}
