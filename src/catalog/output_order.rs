//! The last physical optimizer rule of every session: a result that is ordered leaves the
//! engine as one ordered stream.
//!
//! DataFusion 55 can end a plan with more than one partition even though the query has an
//! `ORDER BY`: when a projection sits above the sort (the casts to the types clients read,
//! `catalog::query::normalize_output`), `EnforceDistribution` splits the sorted stream
//! round-robin so the projection runs on both cores
//! (`RepartitionExec: RoundRobinBatch(2) … maintains_sort_order=true` over the
//! `SortPreservingMergeExec`). Each partition is still sorted, but whoever executes the plan
//! (`execute_stream`, `collect`) coalesces the partitions in arrival order, so the rows come
//! out in an order that changes from run to run. The same family is apache/datafusion#15833
//! (a round-robin split after a window function).
//!
//! - **The split is taken out.** A round-robin repartition of one ordered partition, on the
//!   chain of projections and filters that ends the plan (through a scalar subquery's main
//!   input and `EXPLAIN ANALYZE`), is replaced by
//!   its input: the casts run on one core, and the order is the sort's, exactly. Merging the
//!   split back by the plan's reported ordering is not enough: a cast from `Utf8View` to
//!   `Utf8` is not known to keep order, so the reported ordering loses the columns after it
//!   and ties come back in any order.
//! - **Anything else** that still ends in several partitions with an ordering is merged by
//!   it (`SortPreservingMergeExec`).
//!
//! Seen with `benches/adhoc.py` `q1_won_deals` (an `ORDER BY` over three joins, strings
//! read as `Utf8View` and cast to `Utf8` at the edge); reproduced with DataFusion 55.0 from
//! PyPI by `df.select()` of a cast over an ordered query.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::error::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};
use datafusion::physical_plan::Partitioning;
use datafusion::physical_plan::execution_plan::replace_children_if_necessary;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::analyze::AnalyzeExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::scalar_subquery::ScalarSubqueryExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;

/// Keeps an ordered result one stream in its order (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct MergeOrderedPartitions;

impl PhysicalOptimizerRule for MergeOrderedPartitions {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        let plan = without_split_of_ordered_stream(plan)?;
        if plan.output_partitioning().partition_count() <= 1 {
            return Ok(plan);
        }
        match plan.output_ordering() {
            Some(ordering) => Ok(Arc::new(SortPreservingMergeExec::new(ordering.clone(), plan))),
            None => Ok(plan),
        }
    }

    fn name(&self) -> &str {
        "merge_ordered_partitions"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `plan` without a round-robin split of one ordered partition on its last chain of
/// projections and filters (see the module docs).
fn without_split_of_ordered_stream(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    if let Some(repartition) = plan.downcast_ref::<RepartitionExec>() {
        let input = repartition.input();
        let splits_one_ordered_stream = matches!(repartition.partitioning(), Partitioning::RoundRobinBatch(_))
            && input.output_partitioning().partition_count() == 1
            && input.output_ordering().is_some();
        return Ok(if splits_one_ordered_stream { Arc::clone(input) } else { plan });
    }
    // Nodes whose first child is the stream they pass on, in its order: a scalar subquery's
    // main input (its other children are the subqueries), and `EXPLAIN ANALYZE`'s plan.
    let passes_order_through = plan.is::<ProjectionExec>() || plan.is::<FilterExec>() || plan.is::<ScalarSubqueryExec>() || plan.is::<AnalyzeExec>();
    if !passes_order_through {
        return Ok(plan);
    }
    let children: Vec<Arc<dyn ExecutionPlan>> = plan.children().into_iter().cloned().collect();
    let Some(first) = children.first() else { return Ok(plan) };
    let new_first = without_split_of_ordered_stream(Arc::clone(first))?;
    if Arc::ptr_eq(&new_first, first) {
        return Ok(plan);
    }
    let mut new_children = children;
    new_children[0] = new_first;
    replace_children_if_necessary(plan, new_children)
}

/// A session over `config` and `runtime` with DataFusion's default rules, then
/// [`super::shift_window::SortedShiftWindows`], and [`MergeOrderedPartitions`] last.
pub(crate) fn session_context(config: datafusion::prelude::SessionConfig, runtime: Arc<datafusion::execution::runtime_env::RuntimeEnv>) -> datafusion::prelude::SessionContext {
    let state = datafusion::execution::SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .with_physical_optimizer_rule(Arc::new(super::shift_window::SortedShiftWindows))
        .with_physical_optimizer_rule(Arc::new(MergeOrderedPartitions))
        .build();
    datafusion::prelude::SessionContext::new_with_state(state)
}
