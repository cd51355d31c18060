//! `join`: a hash join. The build side goes into a hash table under
//! `HashJoinBuild[0]`, which cannot spill: each row reserves its fixed
//! fields and text length (the table's buckets and the per-key `Vec`s are
//! left out). A refused reservation fails the query, as in real engines.
//! The probe side streams through and counts matches.

use std::collections::HashMap;
use std::sync::Arc;

use memledger_alloc::Scope;
use memledger_profiler::{MemoryConsumer, MemoryPool};

use crate::data::{Row, Rows, checksum};
use crate::{BATCH, Outcome, QueryError};

/// Builds on `build` rows and probes with `probe` rows.
pub fn run(pool: &Arc<dyn MemoryPool>, build: u64, probe: u64) -> Result<Outcome, QueryError> {
    let key_space = (build / 2).max(1);
    let table = {
        let _scope = Scope::new("HashJoinBuild[0]").enter();
        let mut reservation = MemoryConsumer::new("HashJoinBuild[0]").register(pool);
        let mut table: HashMap<u64, Vec<(u64, String)>> = HashMap::new();
        let mut input = Rows::new(0x5EED_0003, build).keys_in(key_space);
        loop {
            let batch = input.batch(BATCH);
            if batch.is_empty() {
                break;
            }
            reservation.try_grow(batch.iter().map(Row::estimate).sum())?;
            for row in batch {
                table
                    .entry(row.key)
                    .or_default()
                    .push((row.value, row.name));
            }
        }
        (table, reservation)
    };
    let _scope = Scope::new("HashJoinProbe[0]").enter();
    let mut input = Rows::new(0x5EED_0004, probe).keys_in(key_space * 2);
    let mut sum = 0;
    let mut matches = 0u64;
    loop {
        let batch = input.batch(BATCH);
        if batch.is_empty() {
            break;
        }
        for row in &batch {
            if let Some(hits) = table.0.get(&row.key) {
                for (value, name) in hits {
                    matches += 1;
                    sum = checksum(
                        sum,
                        &Row {
                            key: row.key,
                            name: name.clone(),
                            value: *value,
                        },
                    );
                }
            }
        }
    }
    Ok(Outcome {
        checksum: sum ^ matches,
        spills: 0,
    })
}
