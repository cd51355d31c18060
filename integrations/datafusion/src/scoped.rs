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
//! Work an operator hands to a task DataFusion spawns (RepartitionExec's
//! input drivers, for one) runs outside any poll of a wrapped stream; with
//! [`install_scope_tracer`](crate::install_scope_tracer) called once, such a
//! task runs in the scope that spawned it (see [`spawn`](crate::spawn)).
//! Without it, that work lands in `unscoped`.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

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
use memledger_alloc::Scope;

/// Wraps every node of `plan` in a [`ScopedExec`].
pub fn instrument_plan(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    wrap(plan, &mut seen)
}

fn wrap(
    plan: Arc<dyn ExecutionPlan>,
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
        .map(|child| wrap(Arc::clone(child), seen))
        .collect::<Result<Vec<_>>>()?;
    let inner = if children.is_empty() {
        plan
    } else {
        #[allow(deprecated)]
        plan.with_new_children(children)?
    };
    Ok(Arc::new(ScopedExec { inner, label }))
}

/// An invisible wrapper that polls its inner node inside the scope
/// `"{label}[{partition}]"`.
#[derive(Debug)]
pub struct ScopedExec {
    inner: Arc<dyn ExecutionPlan>,
    label: String,
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
        Ok(Arc::new(ScopedExec {
            inner,
            label: self.label.clone(),
        }))
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let inner = Arc::clone(&self.inner).replace_children(children, options)?;
        Ok(Arc::new(ScopedExec {
            inner,
            label: self.label.clone(),
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let scope = self.scope(partition);
        let stream = scope.in_scope(|| self.inner.execute(partition, context))?;
        let schema = stream.schema();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            scope.instrument(stream),
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        self.inner.metrics()
    }
}
