//! The inherited high-water mark.
//!
//! At exec, Linux folds the replaced address space's peak RSS into the
//! process's `ru_maxrss`, so a child spawned straight from a big process
//! reports at least that process's size. This test makes this process big
//! (300 MiB, kept resident), shows the trap with a naive spawn, then shows
//! that the harness measures a 20 MiB child as about 20 MiB.

mod common;

use std::time::Duration;

use memledger_harness::runner::{ChildSpec, Ending, Launcher, MeasureOptions, measure, procfs};

const MIB: u64 = common::MIB;

/// `ru_maxrss` in bytes of a child spawned directly with std's `Command`.
// Reaped by the `wait4` below, which `Child::wait` cannot replace: it gives no rusage.
#[allow(clippy::zombie_processes)]
fn naive_max_rss(args: &[&str]) -> u64 {
    let child = std::process::Command::new(common::exe())
        .args(args)
        .spawn()
        .expect("spawn");
    let mut status = 0;
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: both out-pointers are valid for the call; the pid is our child.
    let reaped = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(reaped, child.id() as i32);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    usage.ru_maxrss as u64 * 1024
}

#[test]
fn a_20_mib_child_of_a_300_mib_harness_reports_about_20_mib() {
    let mut ballast = vec![0u8; 300 * MIB as usize];
    for i in (0..ballast.len()).step_by(4096) {
        ballast[i] = 1;
    }
    let me = std::process::id() as i32;
    let own_rss = procfs::resident_bytes(me).unwrap();
    assert!(own_rss >= 300 * MIB, "this process holds {own_rss} bytes");

    // The trap: a direct spawn inherits this process's mark.
    let naive = naive_max_rss(&["__child", "touch=20M"]);
    assert!(
        naive >= 300 * MIB,
        "a direct spawn should report at least 300 MiB, got {:.1} MiB",
        naive as f64 / MIB as f64
    );

    // The harness: the same child, through the launcher.
    let exe = common::exe();
    let spec = ChildSpec {
        program: exe.clone(),
        argv: vec![exe.clone().into(), "__child".into(), "touch=20M".into()],
        ..ChildSpec::default()
    };
    let options = MeasureOptions {
        timeout: Some(Duration::from_secs(60)),
        sample_interval: Duration::from_millis(5),
    };
    let measured = measure(&Launcher::new(&exe), &spec, &options).unwrap();
    assert_eq!(measured.ending, Ending::Exited(0));
    let peak = measured.peak_rss_bytes.unwrap();
    eprintln!(
        "harness RSS {:.1} MiB; naive ru_maxrss {:.1} MiB; measured peak {:.1} MiB",
        own_rss as f64 / MIB as f64,
        naive as f64 / MIB as f64,
        peak as f64 / MIB as f64
    );
    assert!(
        (18 * MIB..=40 * MIB).contains(&peak),
        "expected about 20 MiB, got {:.1} MiB",
        peak as f64 / MIB as f64
    );
    // The timeline saw the child, not the harness. The kernel keeps RSS in
    // per-CPU counters that it sums approximately (up to a batch of
    // max(32, 2 x CPUs) pages per CPU), so a statm sample may read a little
    // above the high-water mark.
    let sampled = measured.timeline.iter().map(|&(_, rss)| rss).max().unwrap();
    // SAFETY: sysconf has no preconditions.
    let (cpus, page) = unsafe {
        (
            libc::sysconf(libc::_SC_NPROCESSORS_CONF).max(1) as u64,
            libc::sysconf(libc::_SC_PAGESIZE).max(4096) as u64,
        )
    };
    let slack = MIB.max(cpus * 32.max(2 * cpus) * page);
    assert!(
        sampled <= peak + slack,
        "a sample ({sampled}) above the peak ({peak}) by more than the kernel's counter slack ({slack})"
    );

    std::hint::black_box(&ballast);
}
