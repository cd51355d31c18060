//! `join`: a hash join. The build side goes into a
//! `HashMap<u64, Vec<(u64, String)>>` under `HashJoinBuild[0]`, which cannot
//! spill: each row reserves its fixed fields and its text's length (the
//! table's buckets, the per-key `Vec`s and the `String` headers are left
//! out). A refused reservation fails the query, as in real engines. The
//! probe side streams through in `HashJoinProbe[0]` and materializes each
//! match as an output row, one at a time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use memledger_alloc::Scope;
use memledger_profiler::{MemoryConsumer, MemoryPool};

use crate::data::{Row, Rows, checksum, estimate};
use crate::retry;
use crate::{BATCH, Outcome, QueryError};

/// The build side's consumer and scope.
pub const BUILD: &str = "HashJoinBuild[0]";
/// The probe side's scope.
pub const PROBE: &str = "HashJoinProbe[0]";

/// Builds on `build` rows and probes with `probe` rows.
pub fn run(pool: &Arc<dyn MemoryPool>, build: u64, probe: u64) -> Result<Outcome, QueryError> {
    let joined = build_and_probe(
        pool,
        (0x5EED_0003, build),
        (0x5EED_0004, probe),
        Duration::ZERO,
    )?;
    println!("join: {} matches", joined.matches);
    Ok(Outcome {
        checksum: joined.checksum,
        spills: 0,
    })
}

/// What a join produced.
pub struct Joined {
    /// Over the output rows, in output order.
    pub checksum: u64,
    /// Output rows.
    pub matches: u64,
}

/// Builds on `(seed, rows)` and probes with `(seed, rows)`; half of the
/// probe keys find partners. The table and its reservation live until the
/// probe ends. The build keeps asking the pool for up to `patience` per
/// batch (a pool shared with spilling operators can refuse a request whose
/// room another thread took between a spill and the grant, or that a
/// merging sort holds for a while) and fails on the last refusal.
pub fn build_and_probe(
    pool: &Arc<dyn MemoryPool>,
    (build_seed, build_rows): (u64, u64),
    (probe_seed, probe_rows): (u64, u64),
    patience: Duration,
) -> Result<Joined, QueryError> {
    let key_space = (build_rows / 2).max(1);
    let build_scope = Scope::new(BUILD);
    let entered = build_scope.enter();
    let mut reservation = MemoryConsumer::new(BUILD)
        .with_scope(build_scope)
        .register(pool);
    let mut table: HashMap<u64, Vec<(u64, String)>> = HashMap::new();
    let mut input = Rows::new(build_seed, build_rows).keys_in(key_space);
    loop {
        let batch = input.batch(BATCH);
        if batch.is_empty() {
            break;
        }
        let bytes = estimate(&batch);
        let deadline = Instant::now() + patience;
        let mut tried: u32 = 1;
        while let Err(refused) = reservation.try_grow(bytes) {
            if Instant::now() >= deadline {
                return Err(refused.into());
            }
            retry::pause(tried);
            tried = tried.saturating_add(1);
        }
        for row in batch {
            table
                .entry(row.key)
                .or_default()
                .push((row.value, row.name));
        }
    }
    drop(entered);

    let probing = Scope::new(PROBE).enter();
    let mut input = Rows::new(probe_seed, probe_rows).keys_in(key_space * 2);
    let mut joined = Joined {
        checksum: 0,
        matches: 0,
    };
    loop {
        let batch = input.batch(BATCH);
        if batch.is_empty() {
            break;
        }
        for row in &batch {
            let Some(hits) = table.get(&row.key) else {
                continue;
            };
            for (value, name) in hits {
                let output = Row {
                    key: row.key,
                    name: name.clone(),
                    value: *value,
                };
                joined.matches += 1;
                joined.checksum = checksum(joined.checksum, &output);
            }
        }
    }
    drop(probing);
    // The table is freed in the scope that built it.
    build_scope.in_scope(|| drop((table, reservation)));
    joined.checksum ^= joined.matches;
    Ok(joined)
}
