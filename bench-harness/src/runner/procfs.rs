//! What `/proc` says about a running process, and the bounded RSS timeline.
//!
//! Only used while the query runs: `statm` for the timeline, `VmHWM` as the
//! last-resort peak when the launcher cannot report `ru_maxrss`. Both vanish
//! the moment the process exits, which is why the peak normally comes from
//! `wait4` instead.

use std::sync::OnceLock;

/// The most samples a timeline keeps; past it, neighbours are merged.
pub const TIMELINE_CAPACITY: usize = 2048;

/// The page size in bytes (`statm` counts pages).
fn page_size() -> u64 {
    static PAGE: OnceLock<u64> = OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf has no preconditions.
        let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if size > 0 { size as u64 } else { 4096 }
    })
}

/// Resident bytes of `pid` now (`/proc/<pid>/statm`, second field), or
/// `None` when the process is gone or unreadable.
pub fn resident_bytes(pid: i32) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_ascii_whitespace().nth(1)?.parse().ok()?;
    pages.checked_mul(page_size())
}

/// `VmHWM` of `pid` in bytes (the peak resident size of its current
/// address space), or `None` when the process is gone or has no memory map.
pub fn vm_hwm_bytes(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

/// An RSS timeline of `[t_ms, rss_bytes]` pairs with bounded length.
///
/// When it would pass [`TIMELINE_CAPACITY`], pairs of neighbours are merged
/// (the earlier time, the larger RSS) and from then on each kept sample
/// stands for twice as many raw ones, so the peak is never lost and the
/// spacing stays even.
#[derive(Debug, Default)]
pub struct Timeline {
    samples: Vec<(u64, u64)>,
    /// Raw samples per kept sample (a power of two, at least 1).
    stride: usize,
    /// The merge of the raw samples not yet kept, and how many there are.
    pending: Option<(u64, u64)>,
    pending_count: usize,
}

impl Timeline {
    /// An empty timeline.
    pub fn new() -> Timeline {
        Timeline {
            stride: 1,
            ..Timeline::default()
        }
    }

    /// Adds one raw sample.
    pub fn push(&mut self, t_ms: u64, rss_bytes: u64) {
        self.pending = Some(merge(self.pending, (t_ms, rss_bytes)));
        self.pending_count += 1;
        if self.pending_count < self.stride {
            return;
        }
        self.samples.extend(self.pending.take());
        self.pending_count = 0;
        if self.samples.len() >= TIMELINE_CAPACITY {
            self.samples = self
                .samples
                .chunks(2)
                .map(|pair| {
                    pair.iter()
                        .copied()
                        .fold(None, |acc, s| Some(merge(acc, s)))
                })
                .map(|merged| merged.unwrap_or_default())
                .collect();
            self.stride *= 2;
        }
    }

    /// The largest RSS seen, if any sample was taken.
    pub fn max_rss(&self) -> Option<u64> {
        self.samples
            .iter()
            .chain(self.pending.iter())
            .map(|&(_, rss)| rss)
            .max()
    }

    /// The kept samples, the unfinished merge included.
    pub fn finish(mut self) -> Vec<(u64, u64)> {
        self.samples.extend(self.pending.take());
        self.samples
    }
}

/// The earlier time and the larger RSS of two samples.
fn merge(acc: Option<(u64, u64)>, sample: (u64, u64)) -> (u64, u64) {
    match acc {
        None => sample,
        Some((t, rss)) => (t.min(sample.0), rss.max(sample.1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_readable() {
        let me = std::process::id() as i32;
        let rss = resident_bytes(me).unwrap();
        let hwm = vm_hwm_bytes(me).unwrap();
        assert!(rss > 100 * 1024, "rss {rss}");
        assert!(hwm >= rss / 2, "hwm {hwm} rss {rss}");
        assert_eq!(resident_bytes(i32::MAX), None);
    }

    #[test]
    fn timeline_is_bounded_and_keeps_the_peak() {
        let mut timeline = Timeline::new();
        let total = TIMELINE_CAPACITY as u64 * 5 + 3;
        for t in 0..total {
            let rss = if t == 7777 { 999_999 } else { t };
            timeline.push(t, rss);
        }
        assert_eq!(timeline.max_rss(), Some(999_999));
        let samples = timeline.finish();
        assert!(samples.len() < TIMELINE_CAPACITY, "{}", samples.len());
        assert!(samples.len() > TIMELINE_CAPACITY / 4, "{}", samples.len());
        assert!(
            samples.windows(2).all(|w| w[0].0 < w[1].0),
            "time increases"
        );
        assert_eq!(samples[0].0, 0);
        assert!(samples.iter().any(|&(_, rss)| rss == 999_999));
        assert_eq!(samples.last().unwrap().1, total - 1);
    }

    #[test]
    fn short_timelines_are_kept_as_is() {
        let mut timeline = Timeline::new();
        timeline.push(0, 10);
        timeline.push(20, 30);
        assert_eq!(timeline.finish(), vec![(0, 10), (20, 30)]);
    }
}
