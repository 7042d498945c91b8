//! The last physical optimizer rule of every session: a result that is ordered leaves the
//! engine as one ordered stream.
//!
//! DataFusion 55 can end a plan with more than one partition even though the query has an
//! `ORDER BY`: when a projection sits above the sort (the casts to the types clients read,
//! [`normalize_output`](super::query)), `EnforceDistribution` splits the sorted stream
//! round-robin so the projection runs on both cores
//! (`RepartitionExec: RoundRobinBatch(2) … maintains_sort_order=true` over the
//! `SortPreservingMergeExec`). Each partition is still sorted, but whoever executes the plan
//! (`execute_stream`, `collect`) coalesces the partitions in arrival order, so the rows come
//! out in an order that changes from run to run. This rule puts a `SortPreservingMergeExec`
//! over such a plan, so the partitions are merged by the plan's own ordering.
//!
//! Seen with `benches/adhoc.py` `q1_won_deals` (an `ORDER BY` over three joins, strings
//! read as `Utf8View` and cast to `Utf8` at the edge); reproduced with DataFusion 55.0 from
//! PyPI by `df.select()` of a cast over an ordered query.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::error::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;

/// Merges an ordered plan's partitions by its ordering (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct MergeOrderedPartitions;

impl PhysicalOptimizerRule for MergeOrderedPartitions {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
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

/// A session over `config` and `runtime` with DataFusion's default rules and
/// [`MergeOrderedPartitions`] last.
pub(crate) fn session_context(config: datafusion::prelude::SessionConfig, runtime: Arc<datafusion::execution::runtime_env::RuntimeEnv>) -> datafusion::prelude::SessionContext {
    let state = datafusion::execution::SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .with_physical_optimizer_rule(Arc::new(MergeOrderedPartitions))
        .build();
    datafusion::prelude::SessionContext::new_with_state(state)
}
