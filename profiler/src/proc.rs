//! What the kernel says about this process: `/proc/self/statm` and `status`.
//!
//! A figure that cannot be read (no `/proc`, an unexpected format) is
//! `None`, never 0: the report writes it as `null`.

/// Bytes per page.
fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 { size as u64 } else { 4096 }
}

/// Resident set size now, from `/proc/self/statm` (`None` if unreadable).
pub fn rss_bytes() -> Option<u64> {
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
    /// Opens `/proc/self/statm` (readings are `None` if it cannot be opened).
    pub fn open() -> Statm {
        Statm {
            file: std::fs::File::open("/proc/self/statm").ok(),
            page: page_size(),
            buf: [0; 128],
        }
    }

    /// Resident set size now, in bytes (`None` if unreadable).
    pub fn rss_bytes(&mut self) -> Option<u64> {
        use std::os::unix::fs::FileExt;
        let file = self.file.as_ref()?;
        let n = file.read_at(&mut self.buf, 0).ok()?;
        let pages = std::str::from_utf8(&self.buf[..n])
            .ok()?
            .split_whitespace()
            .nth(1)?
            .parse::<u64>()
            .ok()?;
        pages.checked_mul(self.page)
    }
}

/// `VmRSS` and `VmHWM` from `/proc/self/status`, in bytes (`None` if
/// unreadable).
pub fn status_rss_hwm() -> (Option<u64>, Option<u64>) {
    match std::fs::read_to_string("/proc/self/status") {
        Ok(text) => status_fields(&text),
        Err(_) => (None, None),
    }
}

/// `VmRSS` and `VmHWM` from the text of a `status` file, in bytes.
fn status_fields(text: &str) -> (Option<u64>, Option<u64>) {
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .and_then(|kib| kib.checked_mul(1024))
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
    fn unreadable_figures_are_none_not_zero() {
        let mut missing = Statm {
            file: None,
            page: 4096,
            buf: [0; 128],
        };
        assert_eq!(missing.rss_bytes(), None);
        assert_eq!(
            status_fields("Name:\tx\nVmHWM:\t12 kB\n"),
            (None, Some(12 * 1024))
        );
        assert_eq!(status_fields("VmRSS: lots\n"), (None, None));
    }

    #[test]
    fn rss_readings_are_plausible_and_agree() {
        let rss = rss_bytes().unwrap();
        let (vm_rss, hwm) = status_rss_hwm();
        let (vm_rss, hwm) = (vm_rss.unwrap(), hwm.unwrap());
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
        let again = Statm::open().rss_bytes().unwrap();
        assert!(
            again.abs_diff(rss) < 16 << 20,
            "pread statm {again} vs {rss}"
        );
    }
}
