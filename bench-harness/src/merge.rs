//! `mem_profile merge`: several runs as one, such as the shards of a suite
//! run on parallel CI jobs (`mem_profile run --shard K/N`).
//!
//! The merged run is an ordinary run (`compare`, `bless`, `show` and
//! `export` take it): the first run's context without its shard, every
//! run's queries in the order the runs were given, and `merged_from`
//! listing where and when each part was made. Refused, with the reason:
//!
//! - a query id in two runs (which row is the query's is unknown);
//! - runs made under different memory limits (different experiments);
//! - unless mixed contexts are allowed: runs made on different machines,
//!   from different revisions or commands, or with different settings
//!   (sampling, repeats, timeout) or shard counts, whose figures do not
//!   belong in one table.
//!
//! Runs of an unknown major schema are refused when read ([`Run::read`]).

use crate::run::{Context, MergedPart, Run};

/// The first fact on which two contexts differ in a way that makes their
/// figures incomparable: `(what, in a, in b)`.
fn difference(a: &Context, b: &Context) -> Option<(&'static str, String, String)> {
    let shown = |v: &dyn std::fmt::Debug| format!("{v:?}");
    let machine = |c: &Context| {
        let m = &c.machine;
        format!(
            "{}: {} CPUs, {} bytes, kernel {}",
            m.hostname, m.cpus, m.memory_bytes, m.kernel
        )
    };
    let checks: [(&'static str, String, String); 8] = [
        ("machines", machine(a), machine(b)),
        (
            "git revisions",
            shown(&a.git_revision),
            shown(&b.git_revision),
        ),
        ("commands", a.command.clone(), b.command.clone()),
        ("tools", a.tool.clone(), b.tool.clone()),
        (
            "sampling intervals",
            a.sample_ms.to_string(),
            b.sample_ms.to_string(),
        ),
        ("repeat counts", a.repeat.to_string(), b.repeat.to_string()),
        ("timeouts", shown(&a.timeout_ms), shown(&b.timeout_ms)),
        (
            "shard counts",
            shown(&a.shard.map(|s| s.count)),
            shown(&b.shard.map(|s| s.count)),
        ),
    ];
    checks.into_iter().find(|(_, x, y)| x != y)
}

/// The parts a run stands for: itself, or the parts it was merged from.
fn parts_of(run: &Run) -> Vec<MergedPart> {
    if !run.context.merged_from.is_empty() {
        return run.context.merged_from.clone();
    }
    vec![MergedPart {
        date: run.context.date.clone(),
        git_revision: run.context.git_revision.clone(),
        machine: run.context.machine.clone(),
        shard: run.context.shard,
        queries: run.queries.len(),
    }]
}

/// Merges `runs` (each labelled by its path) into one run; the error is
/// one line naming the runs at fault.
pub fn merge(runs: &[(String, Run)], allow_mixed_contexts: bool) -> Result<Run, String> {
    let Some((first_path, first)) = runs.first() else {
        return Err("nothing to merge".to_string());
    };
    let limit = |l: Option<u64>| l.map_or("unbounded".to_string(), crate::units::format_mib);
    let mut merged = Run::new(Context {
        shard: None,
        merged_from: Vec::new(),
        ..first.context.clone()
    });
    for (path, run) in runs {
        if run.context.memory_limit_bytes != first.context.memory_limit_bytes {
            return Err(format!(
                "cannot merge {first_path} and {path}: they were made under different memory \
                 limits ({} and {})",
                limit(first.context.memory_limit_bytes),
                limit(run.context.memory_limit_bytes)
            ));
        }
        if !allow_mixed_contexts {
            if let Some((what, a, b)) = difference(&first.context, &run.context) {
                return Err(format!(
                    "cannot merge {first_path} and {path}: different {what} ({a} and {b}); \
                     pass --allow-mixed-contexts to merge them anyway"
                ));
            }
        }
        for query in &run.queries {
            if merged.query(&query.id).is_some() {
                let other = runs
                    .iter()
                    .find(|(_, r)| r.query(&query.id).is_some())
                    .map_or(first_path, |(p, _)| p);
                return Err(format!(
                    "cannot merge: the query `{}` is in both {other} and {path}",
                    query.id
                ));
            }
            merged.queries.push(query.clone());
        }
        merged.interrupted |= run.interrupted;
        merged.context.merged_from.extend(parts_of(run));
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::tests::{query, run};
    use crate::run::{Shard, Status};
    use crate::units::MIB;

    fn shard(index: u32, ids: &[&str]) -> (String, Run) {
        let mut r = run(ids.iter().map(|id| query(id, Status::Ok, MIB)).collect());
        r.context.shard = Some(Shard { index, count: 2 });
        r.context.machine.hostname = format!("runner-{index}");
        (format!("shard-{index}"), r)
    }

    #[test]
    fn shards_merge_into_one_run() {
        let parts = [shard(1, &["q1", "q3"]), shard(2, &["q2"])];
        let err = merge(&parts, false).unwrap_err();
        assert_eq!(
            err,
            "cannot merge shard-1 and shard-2: different machines (runner-1: 0 CPUs, 0 bytes, \
             kernel  and runner-2: 0 CPUs, 0 bytes, kernel ); pass --allow-mixed-contexts to \
             merge them anyway"
        );
        let merged = merge(&parts, true).unwrap();
        let ids: Vec<&str> = merged.queries.iter().map(|q| q.id.as_str()).collect();
        assert_eq!(ids, ["q1", "q3", "q2"]);
        assert_eq!(merged.context.shard, None);
        assert_eq!(merged.context.merged_from.len(), 2);
        assert_eq!(
            merged.context.merged_from[1].shard,
            Some(Shard { index: 2, count: 2 })
        );
        assert_eq!(merged.context.merged_from[0].queries, 2);
        // A merged run merges again as its parts.
        let again = merge(&[("m".to_string(), merged)], false).unwrap();
        assert_eq!(again.context.merged_from.len(), 2);
    }

    #[test]
    fn duplicates_and_other_limits_are_refused() {
        let (_, mut b) = shard(1, &["q2", "q1"]);
        b.context.shard = Some(Shard { index: 2, count: 2 });
        let parts = [shard(1, &["q1"]), ("again".to_string(), b)];
        let err = merge(&parts, false).unwrap_err();
        assert_eq!(
            err,
            "cannot merge: the query `q1` is in both shard-1 and again"
        );
        let (_, mut limited) = shard(1, &["q9"]);
        limited.context.memory_limit_bytes = Some(64 * MIB);
        let err = merge(&[shard(1, &["q1"]), ("limited".to_string(), limited)], true).unwrap_err();
        assert!(
            err.contains("different memory limits (unbounded and 64.0 MiB)"),
            "{err}"
        );
    }
}
