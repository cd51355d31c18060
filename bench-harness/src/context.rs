//! Facts about where and when a run is made: the machine, the git revision
//! and the date, for the run's [`Context`](crate::run::Context).
//!
//! Each is best effort: a fact that cannot be read is empty (or `None`),
//! never an error that stops a run.

use std::ffi::CStr;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::run::Machine;

/// The machine this process runs on.
pub fn machine() -> Machine {
    // SAFETY: utsname is plain old data; all-zero is a valid value.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `uts` is valid for writes; uname fills NUL-terminated fields.
    let have_uts = unsafe { libc::uname(&mut uts) } == 0;
    let field = |chars: &[libc::c_char]| -> String {
        if !have_uts {
            return String::new();
        }
        // SAFETY: uname NUL-terminates every field within its array.
        unsafe { CStr::from_ptr(chars.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    };
    // SAFETY: sysconf has no preconditions.
    let (pages, page_size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    Machine {
        hostname: field(&uts.nodename),
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get() as u32),
        kernel: field(&uts.release),
        memory_bytes: if pages > 0 && page_size > 0 {
            pages as u64 * page_size as u64
        } else {
            0
        },
    }
}

/// `git rev-parse HEAD` in the current directory, or `None` outside a
/// repository, without git, or before the first commit.
pub fn git_revision() -> Option<String> {
    let output = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let revision = String::from_utf8(output.stdout).ok()?.trim().to_string();
    (output.status.success() && !revision.is_empty()).then_some(revision)
}

/// Now, as RFC 3339 in UTC.
pub fn now() -> String {
    rfc3339_utc(SystemTime::now())
}

/// A time as RFC 3339 in UTC with whole seconds: `2024-02-29T13:05:09Z`.
/// Times before 1970 print as the epoch.
pub fn rfc3339_utc(time: SystemTime) -> String {
    let seconds = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
    let in_day = seconds % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        in_day / 3600,
        in_day % 3600 / 60,
        in_day % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month as u32, day as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(seconds: u64) -> String {
        rfc3339_utc(UNIX_EPOCH + Duration::from_secs(seconds))
    }

    #[test]
    fn dates_are_rfc3339_utc() {
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(at(4_107_542_399), "2100-02-28T23:59:59Z");
        assert_eq!(
            at(4_107_542_400),
            "2100-03-01T00:00:00Z",
            "2100 is no leap year"
        );
    }

    #[test]
    fn machine_facts_are_filled() {
        let m = machine();
        assert!(m.cpus >= 1);
        assert!(m.memory_bytes > 64 * 1024 * 1024);
        assert!(!m.kernel.is_empty());
        assert_eq!(
            m.kernel,
            std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap()
                .trim()
        );
    }
}
