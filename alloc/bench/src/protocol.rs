//! What the driver and a child binary say to each other.
//!
//! The driver passes a [`Plan`] as arguments (`pairs=2000000 churn=... threads=2`);
//! the child prints a [`ChildReport`] on stdout, one fact a line:
//!
//! ```text
//! ns pairs 7.913
//! ns scope-pair 1.204
//! footprint pair-sizes 4096 278528 294912
//! ```
//!
//! (`ns <workload> <ns per operation>`, `footprint <pattern> <blocks>
//! <requested> <usable>`). Lines it does not know are an error: both sides are
//! built from this one file.

use std::fmt::Write as _;

use crate::footprint::{Footprint, Pattern};
use crate::workload::Workload;

/// One child run's work: iterations per workload and the all-core thread count.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Workloads to run, with their iterations, in run order.
    pub iterations: Vec<(Workload, u64)>,
    /// Threads for [`Workload::ChurnAllCores`].
    pub threads: usize,
}

impl Plan {
    /// Every workload at `scale` times its default iterations (at least one
    /// each), on `threads` threads.
    pub fn scaled(workloads: &[Workload], scale: f64, threads: usize) -> Plan {
        Plan {
            iterations: workloads
                .iter()
                .map(|&w| (w, ((w.default_iterations() as f64 * scale) as u64).max(1)))
                .collect(),
            threads,
        }
    }

    /// The plan as command-line arguments.
    pub fn to_args(&self) -> Vec<String> {
        let mut args: Vec<String> = self
            .iterations
            .iter()
            .map(|(w, n)| format!("{}={n}", w.key()))
            .collect();
        args.push(format!("threads={}", self.threads));
        args
    }

    /// Parses [`Plan::to_args`]'s output. No arguments: every workload at its
    /// default iterations, on every core.
    pub fn from_args(args: &[String]) -> Result<Plan, String> {
        if args.is_empty() {
            return Ok(Plan::scaled(&Workload::ALL, 1.0, available_cores()));
        }
        let mut plan = Plan {
            iterations: Vec::new(),
            threads: available_cores(),
        };
        for arg in args {
            let (key, value) = arg
                .split_once('=')
                .ok_or_else(|| format!("expected KEY=NUMBER, got `{arg}`"))?;
            let number: u64 = value
                .parse()
                .map_err(|_| format!("`{key}` wants a whole number, got `{value}`"))?;
            if key == "threads" {
                plan.threads = usize::try_from(number).map_err(|e| e.to_string())?.max(1);
            } else {
                let workload =
                    Workload::from_key(key).ok_or_else(|| format!("unknown workload `{key}`"))?;
                plan.iterations.push((workload, number));
            }
        }
        Ok(plan)
    }
}

/// The cores this process may run on (1 when unknown).
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// What one child run measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChildReport {
    /// Nanoseconds per operation, per workload run.
    pub ns_per_op: Vec<(Workload, f64)>,
    /// memledger's count of each footprint pattern (memledger binaries only).
    pub footprints: Vec<(Pattern, Footprint)>,
}

impl ChildReport {
    /// The ns per operation of `workload`, if it ran.
    pub fn ns(&self, workload: Workload) -> Option<f64> {
        self.ns_per_op
            .iter()
            .find(|(w, _)| *w == workload)
            .map(|&(_, ns)| ns)
    }

    /// The footprint of `pattern`, if measured.
    pub fn footprint(&self, pattern: Pattern) -> Option<Footprint> {
        self.footprints
            .iter()
            .find(|(p, _)| *p == pattern)
            .map(|&(_, f)| f)
    }

    /// The report as the lines the child prints.
    pub fn to_lines(&self) -> String {
        let mut out = String::new();
        for (w, ns) in &self.ns_per_op {
            let _ = writeln!(out, "ns {} {ns:.4}", w.key());
        }
        for (p, f) in &self.footprints {
            let _ = writeln!(
                out,
                "footprint {} {} {} {}",
                p.key(),
                f.blocks,
                f.requested,
                f.usable
            );
        }
        out
    }

    /// Parses [`ChildReport::to_lines`]'s output.
    pub fn parse(text: &str) -> Result<ChildReport, String> {
        let mut report = ChildReport::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let bad = || format!("unreadable line from the benchmark binary: `{line}`");
            match fields.as_slice() {
                ["ns", key, value] => {
                    let w = Workload::from_key(key).ok_or_else(bad)?;
                    let ns: f64 = value.parse().map_err(|_| bad())?;
                    report.ns_per_op.push((w, ns));
                }
                ["footprint", key, blocks, requested, usable] => {
                    let p = Pattern::from_key(key).ok_or_else(bad)?;
                    let f = Footprint {
                        blocks: blocks.parse().map_err(|_| bad())?,
                        requested: requested.parse().map_err(|_| bad())?,
                        usable: usable.parse().map_err(|_| bad())?,
                    };
                    report.footprints.push((p, f));
                }
                _ => return Err(bad()),
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_round_trips_through_args() {
        let plan = Plan::scaled(&[Workload::Pairs, Workload::ChurnAllCores], 0.5, 3);
        assert_eq!(plan.iterations[0], (Workload::Pairs, 1_500_000));
        assert_eq!(Plan::from_args(&plan.to_args()), Ok(plan));
    }

    #[test]
    fn plan_rejects_bad_arguments() {
        assert!(Plan::from_args(&["pairs".into()]).is_err());
        assert!(Plan::from_args(&["pairs=x".into()]).is_err());
        assert!(Plan::from_args(&["heap=3".into()]).is_err());
    }

    #[test]
    fn report_round_trips_through_lines() {
        let report = ChildReport {
            ns_per_op: vec![(Workload::Pairs, 7.5), (Workload::ScopePair, 1.25)],
            footprints: vec![(
                Pattern::ChurnSizes,
                Footprint {
                    blocks: 4096,
                    requested: 100,
                    usable: -3,
                },
            )],
        };
        let parsed = ChildReport::parse(&report.to_lines()).unwrap();
        assert_eq!(parsed, report);
        assert_eq!(parsed.ns(Workload::ScopePair), Some(1.25));
        assert_eq!(parsed.ns(Workload::Churn), None);
        assert!(ChildReport::parse("ns pairs").is_err());
    }
}
