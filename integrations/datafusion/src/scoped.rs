//! Operator scopes: every node of a physical plan polled inside a memledger
//! scope named after the operator and the partition.
//!
//! [`instrument_plan`] rewrites a plan bottom-up, wrapping each node in a
//! [`ScopedExec`]. The wrapper is invisible: it reports its inner node's
//! name, properties, children, expressions, metrics and display, and
//! delegates downcasting to it (`ExecutionPlan::downcast_delegate`), so
//! `EXPLAIN` output, metrics and type checks see the original plan. Only
//! `execute` differs: it runs the inner `execute` inside the scope
//! `"{Operator}[{partition}]"` (for example `SortExec[3]`) and wraps the
//! returned stream so that every `poll_next` enters that scope too, on
//! whichever tokio worker polls it. Allocations made by the operator's code
//! are therefore charged to it; its children's polls enter their own scopes.
//! Reservations registered while the scope is entered (DataFusion operators
//! register their consumers in `execute` or on first poll) are tied to it by
//! [`AuditedPool`](crate::AuditedPool).
//!
//! When a plan holds the same operator type more than once, the second and
//! later ones are numbered: `HashJoinExec#2[0]`.
//!
//! ## Two views of the same bytes
//!
//! - [`View::Allocated`] (what [`instrument_plan`] does): a block is charged
//!   to the operator whose code allocated it. In owner mode its free is
//!   charged back there, so a batch that a scan builds and a sort buffers
//!   counts as the scan's live bytes until the sort drops it.
//! - [`View::Held`] ([`instrument_plan_with`]): every batch an operator
//!   receives from a child is re-charged to the receiving operator (each of
//!   its buffers [adopted](memledger_alloc::Scope::adopt_from) by the scope
//!   of the operator that polled it). Bytes are then charged to the
//!   operator that last received them, the one whose reservation should
//!   cover them: a buffering sort holds its whole input. Only buffers
//!   charged to an operator of the same plan move: data the plan shares
//!   with the rest of the program (an in-memory table's batches, which the
//!   table keeps) stays where it is charged. Needs owner mode; buffers
//!   smaller than [`OWNER_SIDE_TABLE_ALWAYS`](memledger_alloc::OWNER_SIDE_TABLE_ALWAYS)
//!   stay where they were allocated. A buffer shared by two batches (a
//!   slice, a passed-through column) is charged to whichever operator
//!   received it last.
//!
//! Work an operator hands to a task DataFusion spawns (RepartitionExec's
//! input drivers, for one) runs outside any poll of a wrapped stream; with
//! [`install_scope_tracer`](crate::install_scope_tracer) called once, such a
//! task runs in the scope that spawned it (see [`spawn`](crate::spawn)).
//! Without it, that work lands in `unscoped`.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use datafusion::arrow::array::{Array, ArrayData, RecordBatch};
use datafusion::common::Result;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::OrderingRequirements;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::execution_plan::ReplaceChildrenOptions;
use datafusion::physical_plan::metrics::MetricsSet;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, InputDistributionRequirements, PlanProperties,
};
use futures::TryStreamExt;
use memledger_alloc::{MAX_SCOPES, Scope};

/// Which operator a batch's bytes are charged to (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum View {
    /// The operator whose code allocated them.
    #[default]
    Allocated,
    /// The operator that last received them in a batch.
    Held,
}

impl View {
    /// `allocated` or `held`.
    pub fn name(self) -> &'static str {
        match self {
            View::Allocated => "allocated",
            View::Held => "held",
        }
    }

    /// What the view charges an operator with, in a few words.
    pub fn describe(self) -> &'static str {
        match self {
            View::Allocated => "bytes charged to the operator that allocated them",
            View::Held => "bytes charged to the operator that last received them in a batch",
        }
    }
}

/// Wraps every node of `plan` in a [`ScopedExec`], in the
/// [allocated](View::Allocated) view.
pub fn instrument_plan(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    instrument_plan_with(plan, View::Allocated)
}

/// Wraps every node of `plan` in a [`ScopedExec`] charging bytes as `view`
/// says.
pub fn instrument_plan_with(
    plan: Arc<dyn ExecutionPlan>,
    view: View,
) -> Result<Arc<dyn ExecutionPlan>> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let scopes = Arc::new(PlanScopes::new());
    wrap(plan, view, &scopes, &mut seen)
}

fn wrap(
    plan: Arc<dyn ExecutionPlan>,
    view: View,
    scopes: &Arc<PlanScopes>,
    seen: &mut HashMap<String, usize>,
) -> Result<Arc<dyn ExecutionPlan>> {
    // Number nodes top-down so the root keeps the plain name.
    let count = seen.entry(plan.name().to_string()).or_insert(0);
    *count += 1;
    let label = if *count == 1 {
        plan.name().to_string()
    } else {
        format!("{}#{}", plan.name(), count)
    };
    let children = plan
        .children()
        .into_iter()
        .map(|child| wrap(Arc::clone(child), view, scopes, seen))
        .collect::<Result<Vec<_>>>()?;
    let inner = if children.is_empty() {
        plan
    } else {
        #[allow(deprecated)]
        plan.with_new_children(children)?
    };
    Ok(Arc::new(ScopedExec {
        inner,
        label,
        view,
        scopes: Arc::clone(scopes),
    }))
}

/// The scopes one instrumented plan's operators have run in: a bit per
/// scope id.
struct PlanScopes(Box<[AtomicU64]>);

impl PlanScopes {
    fn new() -> Self {
        PlanScopes(
            (0..MAX_SCOPES.div_ceil(64))
                .map(|_| AtomicU64::new(0))
                .collect(),
        )
    }

    fn insert(&self, scope: Scope) {
        let id = scope.id() as usize;
        self.0[id / 64 % self.0.len()].fetch_or(1 << (id % 64), Relaxed);
    }

    fn contains(&self, scope: Scope) -> bool {
        let id = scope.id() as usize;
        self.0[id / 64 % self.0.len()].load(Relaxed) & (1 << (id % 64)) != 0
    }
}

impl fmt::Debug for PlanScopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count: u32 = self.0.iter().map(|w| w.load(Relaxed).count_ones()).sum();
        write!(f, "PlanScopes({count} scopes)")
    }
}

/// An invisible wrapper that polls its inner node inside the scope
/// `"{label}[{partition}]"`.
#[derive(Debug)]
pub struct ScopedExec {
    inner: Arc<dyn ExecutionPlan>,
    label: String,
    view: View,
    /// Shared by every wrapper of the plan.
    scopes: Arc<PlanScopes>,
}

impl ScopedExec {
    /// The wrapped node.
    pub fn inner(&self) -> &Arc<dyn ExecutionPlan> {
        &self.inner
    }

    /// The operator label scopes are named after (`SortExec`, `HashJoinExec#2`).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// This wrapper (label, view, plan) around another node.
    fn around(&self, inner: Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
        Arc::new(ScopedExec {
            inner,
            label: self.label.clone(),
            view: self.view,
            scopes: Arc::clone(&self.scopes),
        })
    }

    /// The view this wrapper charges bytes in.
    pub fn view(&self) -> View {
        self.view
    }

    /// The scope for one partition.
    pub fn scope(&self, partition: usize) -> Scope {
        Scope::new(&format!("{}[{partition}]", self.label))
    }
}

impl DisplayAs for ScopedExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        self.inner.fmt_as(t, f)
    }
}

impl ExecutionPlan for ScopedExec {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn downcast_delegate(&self) -> Option<&dyn ExecutionPlan> {
        Some(self.inner.as_ref())
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.inner.properties()
    }

    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        self.inner.input_distribution_requirements()
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        self.inner.required_input_ordering()
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        self.inner.maintains_input_order()
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        self.inner.benefits_from_input_partitioning()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        self.inner.children()
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        self.inner.apply_expressions(f)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        #[allow(deprecated)]
        let inner = Arc::clone(&self.inner).with_new_children(children)?;
        Ok(self.around(inner))
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let inner = Arc::clone(&self.inner).replace_children(children, options)?;
        Ok(self.around(inner))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let scope = self.scope(partition);
        self.scopes.insert(scope);
        let stream = scope.in_scope(|| self.inner.execute(partition, context))?;
        let schema = stream.schema();
        let stream = scope.instrument(stream);
        Ok(match self.view {
            View::Allocated => Box::pin(RecordBatchStreamAdapter::new(schema, stream)),
            // The caller of `poll_next`, outside this operator's scope, is
            // the operator receiving the batch (or the task it spawned).
            View::Held => {
                let scopes = Arc::clone(&self.scopes);
                Box::pin(RecordBatchStreamAdapter::new(
                    schema,
                    stream.inspect_ok(move |batch| {
                        adopt_batch(Scope::current(), batch, &|from| scopes.contains(from));
                    }),
                ))
            }
        })
    }

    fn metrics(&self) -> Option<MetricsSet> {
        self.inner.metrics()
    }
}

/// Charges to `scope` every buffer of `batch` that memledger can find by
/// address and that belongs to a scope `from` accepts
/// ([`Scope::adopt_from`]); returns the usable bytes of the buffers now
/// charged to `scope` (a buffer shared by two columns counted each time).
pub fn adopt_batch(scope: Scope, batch: &RecordBatch, from: &dyn Fn(Scope) -> bool) -> usize {
    batch
        .columns()
        .iter()
        .map(|column| adopt_data(scope, &column.to_data(), from))
        .sum()
}

fn adopt_data(scope: Scope, data: &ArrayData, from: &dyn Fn(Scope) -> bool) -> usize {
    let buffers = data
        .buffers()
        .iter()
        .chain(data.nulls().map(|nulls| nulls.buffer()));
    let own: usize = buffers
        .filter_map(|buffer| scope.adopt_from(buffer.data_ptr().as_ptr(), from))
        .sum();
    own + data
        .child_data()
        .iter()
        .map(|child| adopt_data(scope, child, from))
        .sum::<usize>()
}
