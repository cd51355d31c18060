//! Scopes that follow spawned tasks.
//!
//! DataFusion hands work to tokio tasks of its own: RepartitionExec's input
//! distribution, CoalescePartitionsExec's per-partition drivers, spill
//! writers on the blocking pool. A tokio worker runs such a task outside any
//! poll of a wrapped stream, so without help its allocations land in
//! `unscoped`. DataFusion routes every `SpawnedTask` and `JoinSet` spawn
//! through one process-wide hook, `set_join_set_tracer`; [`ScopeTracer`] is
//! that hook for memledger:
//!
//! ```text
//!   RepartitionExec[2] polled ──► SpawnedTask::spawn(fut) ──► ScopeTracer
//!        (scope entered)              on the same thread      reads Scope::current()
//!                                                              └─► RepartitionExec[2].instrument(fut)
//!   tokio worker polls the task ──► every poll (and its drop) in RepartitionExec[2]
//! ```
//!
//! A blocking closure (`spawn_blocking`) runs inside the spawning scope the
//! same way. A task spawned outside any scope is passed through untouched.

use std::any::Any;

use datafusion::common::runtime::{JoinSetTracer, set_join_set_tracer};
use futures::future::BoxFuture;
use memledger_alloc::Scope;

/// Carries the spawning thread's current scope into every task DataFusion
/// spawns. Install it with [`install_scope_tracer`].
#[derive(Debug, Default, Clone, Copy)]
pub struct ScopeTracer;

impl JoinSetTracer for ScopeTracer {
    fn trace_future(
        &self,
        fut: BoxFuture<'static, Box<dyn Any + Send>>,
    ) -> BoxFuture<'static, Box<dyn Any + Send>> {
        let scope = Scope::current();
        if scope == Scope::UNSCOPED {
            return fut;
        }
        Box::pin(scope.instrument(fut))
    }

    fn trace_block(
        &self,
        f: Box<dyn FnOnce() -> Box<dyn Any + Send> + Send>,
    ) -> Box<dyn FnOnce() -> Box<dyn Any + Send> + Send> {
        let scope = Scope::current();
        if scope == Scope::UNSCOPED {
            return f;
        }
        Box::new(move || scope.in_scope(f))
    }
}

static TRACER: ScopeTracer = ScopeTracer;

/// Installs [`ScopeTracer`] as DataFusion's process-wide join-set tracer.
///
/// Returns `true` when memledger's tracer is in place after the call (it was
/// installed now or by an earlier call), `false` when another tracer had
/// been installed first: DataFusion allows one per process, and spawned
/// tasks then keep running in `unscoped`.
pub fn install_scope_tracer() -> bool {
    static INSTALLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *INSTALLED.get_or_init(|| set_join_set_tracer(&TRACER).is_ok())
}
