//! Turns what the harness measured and what the child reported into a
//! status and an error text.
//!
//! The rules, first match wins:
//!
//! | what happened | status |
//! |---|---|
//! | the harness was interrupted (Ctrl-C, `SIGTERM`) while it ran | `interrupted` |
//! | the harness killed it after `--timeout` | `timeout` |
//! | `SIGKILL` the harness did not send | `oom` (see below) |
//! | `SIGABRT`, or exit code 134 (a shell's report of it), after Rust's `memory allocation of N bytes failed` | `oom` |
//! | any other signal | `signal` |
//! | exit code not 0, or the program could not be executed | `failed` |
//! | exit 0 but a report that cannot be read, or one whose `error` is set | `failed` |
//! | exit 0 but it left processes running, which were killed | `failed` |
//! | exit 0 | `ok` |
//!
//! A `SIGKILL` the harness did not send is counted as `oom`: the kernel's OOM
//! killer and memory cgroups end a process with `SIGKILL`, and nothing else
//! in a benchmark normally does. The kernel log, which would say for sure,
//! is usually not readable by an unprivileged harness.
//!
//! The error text prefers the child's own words: a report's `error` (a pool
//! refusal, verbatim) comes before what the harness saw.

use memledger_profiler::report::Report;

use crate::files::{ReadError, read_limited};
use crate::run::Status;
use crate::runner::{Ending, Measurement, signal_name};

/// The child's report, as found after it ended.
#[derive(Debug, Clone, PartialEq)]
pub enum ReportState {
    /// It wrote none (any command may; only memledger-aware ones write one).
    Absent,
    /// A readable report.
    Read(Box<Report>),
    /// A file that is not a readable report; the text says why.
    Broken(String),
}

impl ReportState {
    /// The report, when one was read.
    pub fn report(&self) -> Option<&Report> {
        match self {
            ReportState::Read(report) => Some(report),
            _ => None,
        }
    }

    /// Reads the report the child was asked to write at `path`: a regular
    /// file only (never a link, FIFO or device), without blocking, and at
    /// most `cap` bytes; anything else is [`ReportState::Broken`] with the
    /// reason.
    pub fn load(path: &std::path::Path, cap: u64) -> ReportState {
        match read_limited(path, cap, false) {
            Err(ReadError::NotFound) => ReportState::Absent,
            Err(ReadError::NotRegular(what)) => ReportState::Broken(format!(
                "the report is {what}, not a regular file; it was not read"
            )),
            Err(ReadError::TooLarge { size, cap }) => ReportState::Broken(format!(
                "the report holds {size} bytes or more, over the cap of {cap} bytes \
                 (--max-report-size); it was not read"
            )),
            Err(ReadError::Io(e)) => ReportState::Broken(format!("cannot read the report: {e}")),
            Ok(text) => match Report::from_json(&text) {
                Ok(report) => ReportState::Read(Box::new(report)),
                Err(e) => ReportState::Broken(e.to_string()),
            },
        }
    }
}

/// A query's status and what explains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The status (see the rules in the module docs).
    pub status: Status,
    /// The exit code when it exited (127 when it could not be executed).
    pub exit_code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
    /// `None` exactly when the status is `ok`.
    pub error: Option<String>,
}

/// Applies the rules in the module docs.
pub fn classify(measurement: &Measurement, report: &ReportState) -> Verdict {
    let report_error = report.report().and_then(|r| r.error.clone());
    let (exit_code, signal) = match measurement.ending {
        Ending::Exited(code) => (Some(code), None),
        Ending::Signaled(signal) => (None, Some(signal)),
        Ending::ExecFailed(_) => (Some(127), None),
        Ending::Lost(_) => (None, None),
    };
    let verdict = |status, harness_text: String| Verdict {
        status,
        exit_code,
        signal,
        error: Some(report_error.clone().unwrap_or(harness_text)),
    };
    let alloc_failure = measurement.alloc_failure.clone();

    if measurement.interrupted {
        return verdict(
            Status::Interrupted,
            "interrupted (Ctrl-C or SIGTERM) while it ran".to_string(),
        );
    }
    if measurement.timed_out {
        return verdict(
            Status::Timeout,
            format!("timed out after {:.1} s", measurement.wall.as_secs_f64()),
        );
    }
    match &measurement.ending {
        Ending::Signaled(libc::SIGKILL) if !measurement.killed_by_harness() => verdict(
            Status::Oom,
            "killed by SIGKILL that mem_profile did not send (the kernel's OOM killer or a memory cgroup)"
                .to_string(),
        ),
        Ending::Signaled(libc::SIGABRT) | Ending::Exited(134) if alloc_failure.is_some() => {
            verdict(Status::Oom, alloc_failure.unwrap_or_default())
        }
        Ending::Signaled(signal) => verdict(
            Status::Signal,
            format!("killed by {}", signal_name(*signal)),
        ),
        Ending::Exited(0) => match report {
            ReportState::Broken(why) => verdict(Status::Failed, why.clone()),
            _ if report_error.is_some() => verdict(Status::Failed, String::new()),
            _ if measurement.leftover_count > 0 => verdict(
                Status::Failed,
                leftover_text(measurement.leftover_count, &measurement.leftovers),
            ),
            _ => Verdict {
                status: Status::Ok,
                exit_code,
                signal,
                error: None,
            },
        },
        Ending::Exited(code) if measurement.leftover_count > 0 => verdict(
            Status::Failed,
            format!(
                "exited with code {code}, {}",
                leftover_text(measurement.leftover_count, &measurement.leftovers)
                    .trim_start_matches("exited ")
            ),
        ),
        Ending::Exited(code) => verdict(Status::Failed, format!("exited with code {code}")),
        Ending::ExecFailed(why) => verdict(Status::Failed, format!("cannot execute: {why}")),
        Ending::Lost(why) => verdict(Status::Failed, why.clone()),
    }
}

/// `exited leaving 2 processes running (1234 sleep, 1240 sh); ...`.
fn leftover_text(count: u64, leftovers: &[(i32, String)]) -> String {
    const SHOWN: usize = 4;
    let mut listed: Vec<String> = leftovers
        .iter()
        .take(SHOWN)
        .map(|(pid, name)| format!("{pid} {name}"))
        .collect();
    if count > listed.len() as u64 {
        listed.push("...".to_string());
    }
    let processes = if count == 1 { "process" } else { "processes" };
    format!(
        "exited leaving {count} {processes} running ({}); mem_profile killed them: \
         a query must wait for the processes it starts",
        listed.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ended(ending: Ending) -> Measurement {
        Measurement {
            ending,
            timed_out: false,
            interrupted: false,
            wall: Duration::from_millis(1500),
            peak_rss_bytes: Some(1),
            timeline: Vec::new(),
            stderr_tail: String::new(),
            alloc_failure: None,
            leftovers: Vec::new(),
            leftover_count: 0,
        }
    }

    fn with_error(text: &str) -> ReportState {
        ReportState::Read(Box::new(Report {
            error: Some(text.to_string()),
            ..Report::new()
        }))
    }

    #[test]
    fn exit_codes_and_reports() {
        let ok = classify(&ended(Ending::Exited(0)), &ReportState::Absent);
        assert_eq!(ok.status, Status::Ok);
        assert_eq!(ok.error, None);

        let failed = classify(&ended(Ending::Exited(1)), &ReportState::Absent);
        assert_eq!(failed.status, Status::Failed);
        assert_eq!(failed.exit_code, Some(1));
        assert_eq!(failed.error.as_deref(), Some("exited with code 1"));

        let refused = classify(
            &ended(Ending::Exited(1)),
            &with_error("Resources exhausted: ExternalSorter[0] holds 10 MiB"),
        );
        assert_eq!(refused.status, Status::Failed);
        assert_eq!(
            refused.error.as_deref(),
            Some("Resources exhausted: ExternalSorter[0] holds 10 MiB"),
            "the pool's text, verbatim"
        );

        let error_exit_0 = classify(&ended(Ending::Exited(0)), &with_error("refused"));
        assert_eq!(error_exit_0.status, Status::Failed);

        let broken = classify(
            &ended(Ending::Exited(0)),
            &ReportState::Broken("malformed memledger report: EOF".into()),
        );
        assert_eq!(broken.status, Status::Failed);
        assert!(broken.error.unwrap().contains("malformed"));
    }

    #[test]
    fn signals_timeouts_and_oom() {
        let segv = classify(
            &ended(Ending::Signaled(libc::SIGSEGV)),
            &ReportState::Absent,
        );
        assert_eq!((segv.status, segv.signal), (Status::Signal, Some(11)));
        assert_eq!(segv.error.as_deref(), Some("killed by SIGSEGV"));

        let oom_kill = classify(
            &ended(Ending::Signaled(libc::SIGKILL)),
            &ReportState::Absent,
        );
        assert_eq!(oom_kill.status, Status::Oom);

        let mut timed_out = ended(Ending::Signaled(libc::SIGKILL));
        timed_out.timed_out = true;
        let timeout = classify(&timed_out, &ReportState::Absent);
        assert_eq!(timeout.status, Status::Timeout);
        assert_eq!(timeout.error.as_deref(), Some("timed out after 1.5 s"));

        let mut aborted = ended(Ending::Signaled(libc::SIGABRT));
        let plain_abort = classify(&aborted, &ReportState::Absent);
        assert_eq!(
            plain_abort.status,
            Status::Signal,
            "an abort alone is no OOM"
        );
        aborted.alloc_failure = Some("memory allocation of 1099511627776 bytes failed".into());
        let oom = classify(&aborted, &ReportState::Absent);
        assert_eq!(oom.status, Status::Oom);
        assert_eq!(
            oom.error.as_deref(),
            Some("memory allocation of 1099511627776 bytes failed")
        );
        aborted.ending = Ending::Exited(134);
        assert_eq!(classify(&aborted, &ReportState::Absent).status, Status::Oom);
    }

    #[test]
    fn interruptions_and_leftover_processes() {
        let mut interrupted = ended(Ending::Signaled(libc::SIGKILL));
        interrupted.interrupted = true;
        let verdict = classify(&interrupted, &ReportState::Absent);
        assert_eq!(verdict.status, Status::Interrupted);

        let mut left = ended(Ending::Exited(0));
        left.leftovers = vec![(4242, "sleep".to_string())];
        left.leftover_count = 1;
        let verdict = classify(&left, &ReportState::Absent);
        assert_eq!(verdict.status, Status::Failed);
        assert!(
            verdict
                .error
                .unwrap()
                .starts_with("exited leaving 1 process running (4242 sleep)")
        );
        left.ending = Ending::Exited(3);
        let verdict = classify(&left, &ReportState::Absent);
        assert_eq!(verdict.status, Status::Failed);
        assert!(
            verdict
                .error
                .unwrap()
                .starts_with("exited with code 3, leaving 1 process running (4242 sleep)")
        );
    }

    #[test]
    fn launch_problems_are_failures() {
        let exec = classify(
            &ended(Ending::ExecFailed("Permission denied".into())),
            &ReportState::Absent,
        );
        assert_eq!((exec.status, exec.exit_code), (Status::Failed, Some(127)));
        let lost = classify(&ended(Ending::Lost("gone".into())), &ReportState::Absent);
        assert_eq!(lost.status, Status::Failed);
        assert_eq!(lost.error.as_deref(), Some("gone"));
    }

    #[test]
    fn reports_load_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        let load = |p: &std::path::Path| ReportState::load(p, 1 << 20);
        assert_eq!(load(&path), ReportState::Absent);
        std::fs::write(&path, "{\"schema\": \"memledger.report/1\", \"heap\":").unwrap();
        assert!(matches!(load(&path), ReportState::Broken(_)));
        std::fs::write(&path, Report::new().to_json()).unwrap();
        assert!(load(&path).report().is_some());
        let small_cap = ReportState::load(&path, 10);
        match small_cap {
            ReportState::Broken(why) => assert!(why.contains("over the cap of 10 bytes"), "{why}"),
            other => panic!("{other:?}"),
        }
        std::fs::write(&path, r#"{"schema": "memledger.report/9"}"#).unwrap();
        match load(&path) {
            ReportState::Broken(why) => assert!(why.contains("memledger.report/9"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}
