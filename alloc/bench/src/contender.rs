//! The allocators compared, and the performance contract's targets for each.

use std::fmt;

use crate::workload::Workload;

/// What an allocator is in the comparison, which sets its targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Bare mimalloc: every ratio is to it, measured in the same round.
    Baseline,
    /// memledger in counting mode.
    Counting,
    /// memledger in owner mode.
    Owner,
    /// memledger in counting mode with allocation stacks sampled at the
    /// default mean.
    Sampling,
    /// Anything else: shown for comparison, no target.
    Peer,
}

impl Role {
    /// Whether the binary runs memledger (and so reports the scope pair and
    /// the footprint patterns).
    pub fn is_memledger(self) -> bool {
        matches!(self, Role::Counting | Role::Owner | Role::Sampling)
    }

    /// The performance contract's target for this role on `workload`, if any.
    pub fn target(self, workload: Workload) -> Option<Target> {
        match (self, workload) {
            (Role::Counting | Role::Owner, Workload::ScopePair) => Some(Target::Nanos(5.0)),
            (Role::Counting, Workload::Pairs) => Some(Target::Ratio(1.15)),
            (Role::Counting, Workload::Churn | Workload::ChurnAllCores) => {
                Some(Target::Ratio(1.10))
            }
            (Role::Owner, Workload::Pairs | Workload::Churn | Workload::ChurnAllCores) => {
                Some(Target::Ratio(1.30))
            }
            (Role::Sampling, Workload::Churn | Workload::ChurnAllCores) => {
                Some(Target::Ratio(1.30))
            }
            _ => None,
        }
    }
}

/// An upper bound from the performance contract.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// At most this ratio to bare mimalloc.
    Ratio(f64),
    /// At most this many nanoseconds per operation, absolute.
    Nanos(f64),
}

impl Target {
    /// Whether `value` (a ratio or ns, as the target is) meets the target.
    pub fn is_met_by(self, value: f64) -> bool {
        match self {
            Target::Ratio(bound) | Target::Nanos(bound) => value <= bound,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Ratio(r) => write!(f, "≤ {r:.2}x"),
            Target::Nanos(ns) => write!(f, "≤ {ns} ns"),
        }
    }
}

/// One allocator in the comparison: its binary and its place in the tables.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Contender {
    /// The name in the tables (`"memledger counting"`).
    pub name: &'static str,
    /// The binary that installs it as `#[global_allocator]`.
    pub binary: &'static str,
    /// Its role, which sets its targets.
    pub role: Role,
    /// Its iterations as a fraction of the others' (very slow peers run fewer).
    pub scale: f64,
}

impl Contender {
    /// A contender that runs the full iterations.
    pub const fn new(name: &'static str, binary: &'static str, role: Role) -> Contender {
        Contender {
            name,
            binary,
            role,
            scale: 1.0,
        }
    }

    /// The same contender running `scale` times the iterations.
    pub const fn with_scale(self, scale: f64) -> Contender {
        Contender { scale, ..self }
    }

    /// The binary's file name, which `--allocators` matches.
    pub fn binary_name(&self) -> &str {
        std::path::Path::new(self.binary)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(self.binary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_follow_the_contract() {
        assert_eq!(
            Role::Counting.target(Workload::Pairs),
            Some(Target::Ratio(1.15))
        );
        assert_eq!(
            Role::Counting.target(Workload::ChurnAllCores),
            Some(Target::Ratio(1.10))
        );
        assert_eq!(
            Role::Owner.target(Workload::Churn),
            Some(Target::Ratio(1.30))
        );
        assert_eq!(
            Role::Owner.target(Workload::ScopePair),
            Some(Target::Nanos(5.0))
        );
        assert_eq!(Role::Counting.target(Workload::Realloc), None);
        assert_eq!(
            Role::Sampling.target(Workload::Churn),
            Some(Target::Ratio(1.30))
        );
        assert_eq!(Role::Sampling.target(Workload::Pairs), None);
        assert_eq!(Role::Peer.target(Workload::Pairs), None);
        assert!(Target::Ratio(1.15).is_met_by(1.15));
        assert!(!Target::Ratio(1.15).is_met_by(1.151));
    }

    #[test]
    fn binary_name_is_the_file_name() {
        let c = Contender::new("x", "/some/where/memledger-owner", Role::Owner);
        assert_eq!(c.binary_name(), "memledger-owner");
        assert_eq!(c.with_scale(0.5).scale, 0.5);
    }
}
