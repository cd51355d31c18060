//! The allocator binaries and the driver, run for real with tiny iterations.

use memledger_alloc_bench::footprint::Pattern;
use memledger_alloc_bench::options::Options;
use memledger_alloc_bench::{Contender, Role, Workload, driver, report};

fn contenders() -> [Contender; 4] {
    [
        Contender::new(
            "mimalloc (bare)",
            env!("CARGO_BIN_EXE_mimalloc-bare"),
            Role::Baseline,
        ),
        Contender::new(
            "memledger counting",
            env!("CARGO_BIN_EXE_memledger-counting"),
            Role::Counting,
        ),
        Contender::new(
            "memledger owner",
            env!("CARGO_BIN_EXE_memledger-owner"),
            Role::Owner,
        ),
        Contender::new(
            "cap<mimalloc>",
            env!("CARGO_BIN_EXE_cap-mimalloc"),
            Role::Peer,
        ),
    ]
}

fn tiny(rounds: usize) -> Options {
    Options {
        rounds,
        scale: 0.001,
        threads: 2,
        ..Options::default()
    }
}

#[test]
fn every_binary_reports_what_it_ran() {
    let contenders = contenders();
    let rounds = driver::run_rounds(&contenders, &tiny(2)).unwrap();
    for (index, contender) in contenders.iter().enumerate() {
        let reports = &rounds.reports[index];
        assert_eq!(reports.len(), 2);
        for r in reports {
            for w in Workload::ALL {
                let ns = r.ns(w);
                if w.memledger_only() && !contender.role.is_memledger() {
                    assert_eq!(ns, None, "{} ran {w:?}", contender.name);
                } else {
                    let ns = ns.unwrap_or_else(|| panic!("{} skipped {w:?}", contender.name));
                    assert!(ns > 0.0 && ns < 1e6, "{} on {w:?}: {ns} ns", contender.name);
                }
            }
        }
    }
    // The baseline's own ratio is exactly 1 in every round.
    let base = rounds.cell(0, Workload::Pairs).unwrap().ratio.unwrap();
    assert_eq!((base.min, base.max), (1.0, 1.0));
}

#[test]
fn footprints_count_whole_size_classes() {
    let contenders = contenders();
    let rounds = driver::run_rounds(&contenders, &tiny(1)).unwrap();
    for pattern in Pattern::ALL {
        let counting = rounds.footprint(1, pattern).unwrap();
        let owner = rounds.footprint(2, pattern).unwrap();
        let layouts = pattern.layouts();
        let requested: usize = layouts.iter().map(|l| l.size()).sum();
        assert_eq!(counting.blocks, layouts.len() as u64);
        assert_eq!(counting.requested, requested as u64);
        // Usable bytes are whole size classes: never below the request.
        assert!(
            counting.usable >= counting.requested as i64,
            "{pattern:?}: {counting:?}"
        );
        assert!(
            owner.usable >= counting.usable,
            "{pattern:?}: {owner:?} vs {counting:?}"
        );
        assert_eq!(rounds.footprint(0, pattern), None);
    }
    let text = report::render(&contenders, &rounds, &tiny(1));
    assert!(text.contains("owner mode's memory cost"), "{text}");
    assert!(text.contains("| memledger counting |"), "{text}");
}

#[test]
fn a_binary_rejects_bad_arguments() {
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_mimalloc-bare"))
        .arg("pairs=lots")
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(2));
}
