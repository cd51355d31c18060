//! The driver: runs every allocator's binary as a subprocess, round after
//! round, and hands the reports to [`crate::report`].
//!
//! A round runs each binary once; the order rotates by one each round, so no
//! binary always runs first (or right after the noisiest neighbour). The
//! baseline (bare mimalloc) runs in every round, so each round yields its own
//! ratios, and drift of the machine over the run cancels out.

use std::io::Write as _;
use std::process::{Command, ExitCode, Stdio};

use crate::contender::{Contender, Role};
use crate::options::{Options, USAGE};
use crate::protocol::{ChildReport, Plan};
use crate::report;
use crate::results::Rounds;

/// The benchmark's `main`: reads the options, runs the rounds and prints the
/// Markdown tables on stdout (progress on stderr). `contenders[0]` must be the
/// baseline. Exit code 2 on bad options, 1 when a binary fails.
pub fn driver_main(contenders: &[Contender]) -> ExitCode {
    let options = match Options::parse(std::env::args().skip(1), |v| std::env::var(v).ok()) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if options.help {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let contenders = select(contenders, &options);
    match run_rounds(&contenders, &options) {
        Ok(rounds) => {
            print!("{}", report::render(&contenders, &rounds, &options));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// The baseline and the contenders `--allocators` names (all by default).
fn select(contenders: &[Contender], options: &Options) -> Vec<Contender> {
    contenders
        .iter()
        .filter(|c| {
            c.role == Role::Baseline
                || options
                    .allocators
                    .as_ref()
                    .is_none_or(|names| names.iter().any(|n| n == c.binary_name()))
        })
        .copied()
        .collect()
}

/// Runs `options.rounds` rounds of every contender, order rotated each round.
pub fn run_rounds(contenders: &[Contender], options: &Options) -> Result<Rounds, String> {
    if contenders.first().map(|c| c.role) != Some(Role::Baseline) {
        return Err("the first allocator must be the baseline (bare mimalloc)".into());
    }
    let n = contenders.len();
    let mut rounds = Rounds {
        reports: vec![Vec::with_capacity(options.rounds); n],
    };
    for round in 0..options.rounds {
        eprint!("round {}/{}:", round + 1, options.rounds);
        for k in 0..n {
            let index = (k + round) % n;
            let contender = &contenders[index];
            eprint!(" {}", contender.binary_name());
            let _ = std::io::stderr().flush();
            rounds.reports[index].push(run_child(contender, options)?);
        }
        eprintln!();
    }
    Ok(rounds)
}

/// Runs one binary once and reads its report.
fn run_child(contender: &Contender, options: &Options) -> Result<ChildReport, String> {
    let workloads: Vec<_> = options
        .workloads
        .iter()
        .copied()
        .filter(|w| contender.role.is_memledger() || !w.memledger_only())
        .collect();
    let plan = Plan::scaled(&workloads, options.scale * contender.scale, options.threads);
    let output = Command::new(contender.binary)
        .args(plan.to_args())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("{}: cannot run {}: {e}", contender.name, contender.binary))?;
    if !output.status.success() {
        return Err(format!(
            "{}: {} {}",
            contender.name, contender.binary, output.status
        ));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    ChildReport::parse(&text).map_err(|e| format!("{}: {e}", contender.name))
}
