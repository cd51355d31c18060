//! The `main` of every allocator's binary: runs the workloads the driver
//! asked for under whatever `#[global_allocator]` the binary installed, and
//! prints a [`ChildReport`] on stdout.

use std::process::ExitCode;

use memledger_alloc::Scope;

use crate::footprint::{self, Pattern};
use crate::protocol::{ChildReport, Plan};
use crate::workload::Workload;

/// What the binary's global allocator is, as far as the extra measurements go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    /// memledger's `Tracked`: the workloads run inside an entered scope (as
    /// memledger's users run them), and the scope pair and the footprint
    /// patterns are measured too.
    Memledger,
    /// Anything else: the allocation workloads only.
    Other,
}

/// Runs the plan given as arguments (see [`Plan::from_args`]; none: every
/// workload at its defaults) and prints the report. Exit code 2 on bad
/// arguments or when `installed` does not match the binary.
pub fn child_main(installed: Installed) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let plan = match Plan::from_args(&args) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let memledger = installed == Installed::Memledger;
    if memledger != memledger_alloc::is_installed() {
        eprintln!("error: this binary's global allocator is not what it declares ({installed:?})");
        return ExitCode::from(2);
    }
    let scope = memledger.then(|| Scope::new("benchmark"));
    // Untimed: the first page faults, mimalloc's and memledger's thread set-up.
    Workload::Pairs.run(100_000, 1, scope);
    Workload::Churn.run(100_000, 1, scope);

    let mut report = ChildReport::default();
    for &(workload, iterations) in &plan.iterations {
        if workload.memledger_only() && !memledger {
            continue;
        }
        let ns = workload.run(iterations, plan.threads, scope);
        report.ns_per_op.push((workload, ns));
    }
    if memledger {
        for pattern in Pattern::ALL {
            report
                .footprints
                .push((pattern, footprint::measure(pattern)));
        }
    }
    print!("{}", report.to_lines());
    ExitCode::SUCCESS
}
