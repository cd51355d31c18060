//! Set-up shared by the integration tests.

#![allow(dead_code)] // each test binary uses its own part

use std::sync::Arc;

use datafusion::execution::memory_pool::{MemoryPool, UnboundedMemoryPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use memledger_datafusion::AuditedPool;

/// A session whose pool is an [`AuditedPool`] around DataFusion's unbounded
/// pool, planning `partitions` partitions of `batch_size` rows per batch.
pub fn audited_context(partitions: usize, batch_size: usize) -> (SessionContext, Arc<AuditedPool>) {
    let pool = Arc::new(AuditedPool::new(Arc::new(UnboundedMemoryPool::default())));
    let env = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::clone(&pool) as Arc<dyn MemoryPool>)
        .build_arc()
        .unwrap();
    let config = SessionConfig::new()
        .with_target_partitions(partitions)
        .with_batch_size(batch_size);
    (SessionContext::new_with_config_rt(config, env), pool)
}

/// A multi-threaded tokio runtime with `workers` workers.
pub fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}
