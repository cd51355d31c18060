//! What the kernel says about this process: `/proc/self/statm` and `status`.

/// Bytes per page.
fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 { size as u64 } else { 4096 }
}

/// Resident set size now, from `/proc/self/statm` (0 if unreadable).
pub fn rss_bytes() -> u64 {
    Statm::open().rss_bytes()
}

/// `/proc/self/statm` kept open, read again with `pread` at each sample
/// (no open and close per reading).
pub struct Statm {
    file: Option<std::fs::File>,
    page: u64,
    buf: [u8; 128],
}

impl Statm {
    /// Opens `/proc/self/statm` (readings are 0 if it cannot be opened).
    pub fn open() -> Statm {
        Statm {
            file: std::fs::File::open("/proc/self/statm").ok(),
            page: page_size(),
            buf: [0; 128],
        }
    }

    /// Resident set size now, in bytes.
    pub fn rss_bytes(&mut self) -> u64 {
        use std::os::unix::fs::FileExt;
        let Some(file) = &self.file else {
            return 0;
        };
        let n = file.read_at(&mut self.buf, 0).unwrap_or(0);
        std::str::from_utf8(&self.buf[..n])
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
            .map_or(0, |pages| pages * self.page)
    }
}

/// `VmRSS` and `VmHWM` from `/proc/self/status`, in bytes (0 if unreadable).
pub fn status_rss_hwm() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// mimalloc's own view: (peak RSS, peak commit) in bytes, from `mi_process_info`.
#[cfg(feature = "mimalloc")]
pub fn mimalloc_peaks() -> Option<(u64, u64)> {
    let mut out = [0usize; 8];
    // SAFETY: every pointer refers to a live local.
    unsafe {
        let [
            elapsed,
            user,
            system,
            current_rss,
            peak_rss,
            current_commit,
            peak_commit,
            faults,
        ] = &mut out;
        libmimalloc_sys::mi_process_info(
            elapsed,
            user,
            system,
            current_rss,
            peak_rss,
            current_commit,
            peak_commit,
            faults,
        );
    }
    Some((out[4] as u64, out[6] as u64))
}

/// Without mimalloc there is nothing to ask.
#[cfg(not(feature = "mimalloc"))]
pub fn mimalloc_peaks() -> Option<(u64, u64)> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_readings_are_plausible_and_agree() {
        let rss = rss_bytes();
        let (vm_rss, hwm) = status_rss_hwm();
        assert!(
            rss > 1 << 20,
            "a running test process holds more than 1 MiB: {rss}"
        );
        assert!(hwm >= vm_rss);
        // Readings moments apart: within 16 MiB of each other.
        assert!(
            rss.abs_diff(vm_rss) < 16 << 20,
            "statm {rss} vs status {vm_rss}"
        );
        let again = Statm::open().rss_bytes();
        assert!(
            again.abs_diff(rss) < 16 << 20,
            "pread statm {again} vs {rss}"
        );
    }
}
