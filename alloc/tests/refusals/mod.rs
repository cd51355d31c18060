//! Shared by `refused.rs` and `refused_owner.rs`: mimalloc refuses small
//! blocks once the address space is used up, and the figures stay exact.
//!
//! The work runs in a child process (this test binary again), so that its
//! address-space limit and mimalloc's settings touch nothing else. mimalloc
//! reserves no arena ahead there (`MIMALLOC_ARENA_RESERVE=0`), so the limit
//! is reached after a few dozen MiB.

use std::alloc::{Layout, alloc, dealloc};
use std::process::Command;

use memledger_alloc::this_thread;

/// Set in the child's environment.
const CHILD: &str = "MEMLEDGER_REFUSALS_CHILD";

/// Address space the child may add once its limit is set.
const ROOM: u64 = 64 << 20;

/// Nulls the child collects before it stops.
const NULLS: usize = 64;

/// Runs test `name` (this function's caller) again in a child process that
/// allocates blocks of `sizes` in turn until mimalloc refuses them, and
/// checks the child's figures there.
pub fn run(name: &str, sizes: &[usize]) {
    if std::env::var_os(CHILD).is_some() {
        child(sizes);
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("MIMALLOC_ARENA_RESERVE", "0")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("refused ").map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("the child printed no result:\n{stdout}"));
    let refused: usize = line.split_whitespace().next().unwrap().parse().unwrap();
    assert_eq!(refused, NULLS, "{line}");
}

fn child(sizes: &[usize]) {
    // Room for every block, reserved before the limit.
    let mut blocks: Vec<(*mut u8, Layout)> = Vec::with_capacity(ROOM as usize / 8);
    let vm_bytes = {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: u64 = statm.split_whitespace().next().unwrap().parse().unwrap();
        // SAFETY: sysconf has no preconditions.
        pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64
    };
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `old` is a valid rlimit to write to.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut old) }, 0);
    let limited = libc::rlimit {
        rlim_cur: vm_bytes + ROOM,
        rlim_max: old.rlim_max,
    };

    let before = this_thread();
    // SAFETY: a valid rlimit; the soft limit stays below the hard one.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &limited) }, 0);
    let (mut nulls, mut requested, mut usable) = (0, 0i64, 0i64);
    for &size in sizes.iter().cycle() {
        if nulls == NULLS || blocks.len() == blocks.capacity() {
            break;
        }
        let layout = Layout::from_size_align(size, 8).unwrap();
        // SAFETY: a non-zero size.
        let ptr = unsafe { alloc(layout) };
        if ptr.is_null() {
            nulls += 1;
            continue;
        }
        requested += size as i64;
        // SAFETY: a live block of the global allocator, which is mimalloc.
        usable += unsafe { libmimalloc_sys::mi_usable_size(ptr.cast()) } as i64;
        blocks.push((ptr, layout));
    }
    // SAFETY: the limit the process had.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &old) }, 0);
    let after = this_thread();

    assert_eq!(nulls, NULLS, "mimalloc refused too few requests");
    assert_eq!(
        after.live_requested - before.live_requested,
        requested,
        "live requested bytes"
    );
    assert_eq!(
        after.live_usable - before.live_usable,
        usable,
        "live usable bytes"
    );
    assert_eq!(
        (after.allocations - before.allocations) - (after.deallocations - before.deallocations),
        blocks.len() as u64,
        "live blocks"
    );
    assert!(after.total_requested >= before.total_requested);

    for &(ptr, layout) in &blocks {
        // SAFETY: allocated above with `layout`, freed once.
        unsafe { dealloc(ptr, layout) };
    }
    let end = this_thread();
    assert_eq!(end.live_requested, before.live_requested);
    assert_eq!(end.live_usable, before.live_usable);
    println!("refused {nulls} of {} requests", blocks.len() + nulls);
}
