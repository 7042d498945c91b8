//! `lead()` and `lag()` over a sorted input, computed a batch at a time.
//!
//! DataFusion 55 runs `lead(x) OVER (PARTITION BY deal ORDER BY at)` in its
//! `BoundedWindowAggExec`, which keeps a state per window partition and evaluates row by row
//! through `ScalarValue`s. Over many small partitions (a deal's stage history: 963 k rows in
//! 260 k partitions at scale 10) that is 0.3 s of CPU where DuckDB takes 0.13 s for the whole
//! query (`benches/adhoc.py` `days_in_stage`; apache/datafusion#23982).
//!
//! With the input already sorted by the partition keys (the operator's `Sorted` mode), a
//! shift is one `take` per batch: row `i` reads row `i + d` when that row is in the same run
//! of equal keys, and the function's default otherwise. [`SortedShiftWindows`] replaces a
//! `BoundedWindowAggExec` by [`SortedShiftWindowExec`] only when *every* function in it is
//! DataFusion's own `lead`/`lag` without `IGNORE NULLS`, not reversed, with an offset of at
//! most [`MAX_OFFSET`] rows, over input ordered on the keys; anything else stays with
//! DataFusion. The offset is the function's literal argument, checked against the row
//! DataFusion's evaluator says it reads; the default is what that evaluator returns when
//! there is no row to read, so it follows DataFusion's coercions.
//!
//! The operator keeps what it needs across batches: copies of the partition keys and
//! arguments of the last `lag` offset rows, and a batch waits until `lead` offset rows have
//! come after it. What it holds is reserved in the query's memory pool
//! (`limits.query_memory`).

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, Scalar, UInt64Array, new_null_array};
use datafusion::arrow::compute::{concat, partition, take};
use datafusion::arrow::compute::kernels::zip::zip;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::ScalarValue;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::functions_window::lead_lag::{WindowShift, WindowShiftKind};
use datafusion::physical_expr::expressions::Literal;
use datafusion::physical_expr::window::StandardWindowExpr;
use datafusion::physical_expr::{OrderingRequirements, PhysicalExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::common::Statistics;
use datafusion::physical_plan::execution_plan::{CardinalityEffect, ReplaceChildrenOptions};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::windows::{BoundedWindowAggExec, WindowUDFExpr};
use datafusion::physical_plan::{
    ChildStats, DisplayAs, DisplayFormatType, ExecutionPlan, InputDistributionRequirements, InputOrderMode, PlanProperties, SendableRecordBatchStream, StatisticsArgs,
};
use futures::StreamExt;

/// The largest `lead`/`lag` offset computed here; larger ones stay with DataFusion.
pub(crate) const MAX_OFFSET: usize = 1 << 16;

/// The physical optimizer rule (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct SortedShiftWindows;

impl PhysicalOptimizerRule for SortedShiftWindows {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(window) = node.downcast_ref::<BoundedWindowAggExec>() else {
                return Ok(Transformed::no(node));
            };
            Ok(match SortedShiftWindowExec::try_new(window)? {
                Some(shifts) => Transformed::yes(Arc::new(shifts) as Arc<dyn ExecutionPlan>),
                None => Transformed::no(node),
            })
        })
        .map(|transformed| transformed.data)
    }

    fn name(&self) -> &str {
        "sorted_shift_windows"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// One `lead`/`lag`: row `i` reads row `i + offset` of its window partition.
#[derive(Debug, Clone)]
struct Shift {
    name: String,
    argument: Arc<dyn PhysicalExpr>,
    offset: i64,
    /// What a row gets when `i + offset` is outside its partition (a null of the result's
    /// type unless the query gave a default).
    default: ScalarValue,
}

/// `BoundedWindowAggExec` for `lead`/`lag` over an input sorted by the partition keys.
#[derive(Debug)]
pub(crate) struct SortedShiftWindowExec {
    /// The operator it stands for: its input, schema, properties and input requirements.
    window: Arc<BoundedWindowAggExec>,
    partition_keys: Vec<Arc<dyn PhysicalExpr>>,
    shifts: Vec<Shift>,
    metrics: ExecutionPlanMetricsSet,
}

/// Where the evaluator is asked which row it reads: far from both ends of a long partition.
const PROBE_ROW: usize = 1 << 40;
const PROBE_ROWS: usize = 1 << 41;

impl SortedShiftWindowExec {
    /// The replacement for `window`, or `None` when something in it is not a plain shift
    /// over sorted input.
    fn try_new(window: &BoundedWindowAggExec) -> Result<Option<Self>> {
        if window.input_order_mode != InputOrderMode::Sorted {
            return Ok(None);
        }
        // `partition_keys()` is empty when the window may not be repartitioned (one target
        // partition): the expression's own keys are the window partitions.
        let Some(first) = window.window_expr().first() else { return Ok(None) };
        let partition_keys = first.partition_by().to_vec();
        // What DataFusion's operator checks when it runs: the input is ordered on the keys.
        if window.partition_by_sort_keys().is_err() {
            return Ok(None);
        }
        let input_schema = window.input().schema();
        let mut shifts = Vec::new();
        for expr in window.window_expr() {
            let Some(standard) = expr.as_any().downcast_ref::<StandardWindowExpr>() else { return Ok(None) };
            let function = standard.get_standard_func_expr();
            let Some(udwf) = function.as_any().downcast_ref::<WindowUDFExpr>() else { return Ok(None) };
            // The two flags are private; `Debug` prints them last, after the name a query
            // chose, so only the real fields can end the text.
            if !format!("{udwf:?}").ends_with("is_reversed: false, ignore_nulls: false }") {
                return Ok(None);
            }
            if expr.partition_by().len() != partition_keys.len()
                || expr.partition_by().iter().zip(&partition_keys).any(|(a, b)| a != b)
            {
                return Ok(None);
            }
            let arguments = function.expressions();
            let [argument] = arguments.as_slice() else { return Ok(None) };
            let result_type = expr.field()?.data_type().clone();
            if argument.data_type(&input_schema)? != result_type {
                return Ok(None);
            }
            let mut evaluator = function.create_evaluator()?;
            if evaluator.uses_window_frame() || evaluator.include_rank() {
                return Ok(None);
            }
            let Some(offset) = shift_offset(udwf) else { return Ok(None) };
            // The row DataFusion's evaluator says it reads must be that one (its answer for
            // an offset of 0 is one row ahead, although it reads the row itself).
            let reads = evaluator.get_range(PROBE_ROW, PROBE_ROWS)?;
            let probed = if reads.start < PROBE_ROW {
                -((PROBE_ROW - reads.start) as i64)
            } else {
                reads.end.saturating_sub(PROBE_ROW) as i64
            };
            if offset != 0 && probed != offset {
                return Ok(None);
            }
            if offset.unsigned_abs() > MAX_OFFSET as u64 {
                return Ok(None);
            }
            // With no row to read, the evaluator answers its default.
            let default = if offset == 0 {
                ScalarValue::try_from(&result_type)?
            } else {
                let nothing = evaluator.evaluate_all(&[new_null_array(&result_type, 1)], 1)?;
                ScalarValue::try_from_array(&nothing, 0)?
            };
            if default.data_type() != result_type {
                return Ok(None);
            }
            shifts.push(Shift { name: expr.name().to_owned(), argument: Arc::clone(argument), offset, default });
        }
        if shifts.is_empty() {
            return Ok(None);
        }
        Ok(Some(Self {
            window: Arc::new(window.clone()),
            partition_keys,
            shifts,
            metrics: ExecutionPlanMetricsSet::new(),
        }))
    }
}

impl DisplayAs for SortedShiftWindowExec {
    fn fmt_as(&self, _format: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let names: Vec<String> = self.shifts.iter().map(|shift| format!("{} (offset {})", shift.name, shift.offset)).collect();
        write!(f, "SortedShiftWindowExec: wdw=[{}]", names.join(", "))
    }
}

impl ExecutionPlan for SortedShiftWindowExec {
    fn name(&self) -> &'static str {
        "SortedShiftWindowExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.window.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![self.window.input()]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        self.window.apply_expressions(f)
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        self.window.required_input_ordering()
    }

    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        self.window.input_distribution_requirements()
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let window = Arc::clone(&self.window).replace_children(children, options)?;
        let Some(bounded) = window.downcast_ref::<BoundedWindowAggExec>() else { return Ok(window) };
        Ok(match Self::try_new(bounded)? {
            Some(shifts) => Arc::new(shifts),
            None => window,
        })
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(datafusion::physical_plan::execution_plan::ChildrenPropertiesMode::Recompute),
        )
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let input = self.window.input().execute(partition, Arc::clone(&context))?;
        let reservation = MemoryConsumer::new(format!("SortedShiftWindowExec[{partition}]")).register(context.memory_pool());
        let state = ShiftState {
            input,
            input_done: false,
            schema: self.schema(),
            partition_keys: self.partition_keys.clone(),
            shifts: self.shifts.clone(),
            behind: self.shifts.iter().map(|s| (-s.offset).max(0) as usize).max().unwrap_or(0),
            ahead: self.shifts.iter().map(|s| s.offset.max(0) as usize).max().unwrap_or(0),
            previous: Vec::new(),
            previous_rows: 0,
            waiting: VecDeque::new(),
            reservation,
            metrics: BaselineMetrics::new(&self.metrics, partition),
        };
        let stream = futures::stream::unfold(state, |mut state| async move {
            match state.next_batch().await {
                Ok(Some(batch)) => Some((Ok(batch), state)),
                Ok(None) => None,
                Err(error) => {
                    state.input_done = true;
                    state.waiting.clear();
                    Some((Err(error), state))
                }
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema(), stream)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn child_stats_requests(&self, partition: Option<usize>) -> Vec<ChildStats> {
        self.window.child_stats_requests(partition)
    }

    fn statistics_from_inputs(&self, input_stats: &[Arc<Statistics>], args: &StatisticsArgs) -> Result<Arc<Statistics>> {
        self.window.statistics_from_inputs(input_stats, args)
    }

    fn cardinality_effect(&self) -> CardinalityEffect {
        self.window.cardinality_effect()
    }
}

/// One partition's stream: input batches wait in `waiting` until `ahead` rows follow the
/// first; `previous` keeps the partition keys and shifted arguments of the last `behind`
/// rows already sent (copies: no input buffer stays alive through them).
struct ShiftState {
    input: SendableRecordBatchStream,
    input_done: bool,
    schema: SchemaRef,
    partition_keys: Vec<Arc<dyn PhysicalExpr>>,
    shifts: Vec<Shift>,
    behind: usize,
    ahead: usize,
    previous: Vec<ArrayRef>,
    previous_rows: usize,
    waiting: VecDeque<RecordBatch>,
    reservation: MemoryReservation,
    metrics: BaselineMetrics,
}

impl ShiftState {
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            let rows_after_first: usize = self.waiting.iter().skip(1).map(RecordBatch::num_rows).sum();
            if !self.waiting.is_empty() && (self.input_done || rows_after_first >= self.ahead) {
                let elapsed_compute = self.metrics.elapsed_compute().clone();
                let timer = elapsed_compute.timer();
                let batch = self.compute_first()?;
                timer.done();
                self.resize_reservation()?;
                self.metrics.record_output(batch.num_rows());
                return Ok(Some(batch));
            }
            if self.input_done {
                return Ok(None);
            }
            match self.input.next().await {
                Some(batch) => {
                    let batch = batch?;
                    if batch.num_rows() > 0 {
                        self.waiting.push_back(batch);
                        self.resize_reservation()?;
                    }
                }
                None => self.input_done = true,
            }
        }
    }

    fn resize_reservation(&mut self) -> Result<()> {
        let held = self.waiting.iter().map(RecordBatch::get_array_memory_size).sum::<usize>()
            + self.previous.iter().map(|array| array.get_array_memory_size()).sum::<usize>();
        self.reservation.try_resize(held)
    }

    /// Sends the first waiting batch with its shifted columns.
    fn compute_first(&mut self) -> Result<RecordBatch> {
        let Some(current) = self.waiting.pop_front() else {
            return Err(DataFusionError::Internal("no waiting batch to compute".to_owned()));
        };
        // The batch and the `ahead` rows after it; the `behind` rows before it are in
        // `previous`, already evaluated.
        let mut pieces: Vec<RecordBatch> = vec![current.clone()];
        let mut still_needed = self.ahead;
        for next in &self.waiting {
            if still_needed == 0 {
                break;
            }
            let rows = next.num_rows().min(still_needed);
            pieces.push(next.slice(0, rows));
            still_needed -= rows;
        }
        let before = self.previous_rows;
        let rows = current.num_rows();
        let total = before + pieces.iter().map(RecordBatch::num_rows).sum::<usize>();
        // Partition keys, then each shift's argument, over `previous` and the pieces.
        let expressions = self.partition_keys.iter().chain(self.shifts.iter().map(|shift| &shift.argument));
        let arrays = expressions
            .enumerate()
            .map(|(i, expression)| {
                let mut parts: Vec<ArrayRef> = self.previous.get(i).cloned().into_iter().collect();
                for piece in &pieces {
                    parts.push(expression.evaluate(piece)?.into_array(piece.num_rows())?);
                }
                let refs: Vec<&dyn Array> = parts.iter().map(|array| array.as_ref()).collect();
                Ok(concat(&refs)?)
            })
            .collect::<Result<Vec<ArrayRef>>>()?;
        let (keys, arguments) = arrays.split_at(self.partition_keys.len());
        // The window partitions: runs of equal keys (the input is sorted by them).
        let runs: Vec<std::ops::Range<usize>> = if keys.is_empty() {
            std::iter::once(0..total).collect()
        } else {
            partition(keys)?.ranges()
        };
        let mut columns = current.columns().to_vec();
        for (shift, values) in self.shifts.iter().zip(arguments) {
            let mut reads: Vec<Option<u64>> = Vec::with_capacity(rows);
            for run in &runs {
                let start = run.start.max(before);
                let end = run.end.min(before + rows);
                for row in start..end {
                    let target = row as i64 + shift.offset;
                    reads.push(
                        (target >= run.start as i64 && target < run.end as i64).then_some(target as u64),
                    );
                }
            }
            let missing: BooleanArray = reads.iter().map(|read| Some(read.is_none())).collect();
            let shifted = take(values.as_ref(), &UInt64Array::from(reads), None)?;
            let column = if shift.default.is_null() {
                shifted
            } else {
                let default = Scalar::new(shift.default.to_array_of_size(1)?);
                zip(&missing, &default, &shifted)?
            };
            columns.push(column);
        }
        if self.behind > 0 {
            let keep = self.behind.min(before + rows);
            let from = before + rows - keep;
            self.previous = arrays
                .iter()
                .map(|array| crate::model::owned_array(array.slice(from, keep).as_ref()))
                .collect::<std::result::Result<Vec<ArrayRef>, _>>()?;
            self.previous_rows = keep;
        }
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }
}

/// The row `lead`/`lag` reads, relative to the current one: `lead(x, n)` reads `n` rows ahead,
/// `lag(x, n)` `n` rows back (`n` is 1 when not given; a negative `n` turns one into the
/// other). `None` when the offset is not an integer literal.
fn shift_offset(udwf: &WindowUDFExpr) -> Option<i64> {
    let kind = udwf.fun().inner().downcast_ref::<WindowShift>()?.kind();
    let n = match udwf.args().get(1) {
        None => 1,
        Some(argument) => match argument.downcast_ref::<Literal>()?.value() {
            ScalarValue::Int8(Some(n)) => i64::from(*n),
            ScalarValue::Int16(Some(n)) => i64::from(*n),
            ScalarValue::Int32(Some(n)) => i64::from(*n),
            ScalarValue::Int64(Some(n)) => *n,
            ScalarValue::UInt8(Some(n)) => i64::from(*n),
            ScalarValue::UInt16(Some(n)) => i64::from(*n),
            ScalarValue::UInt32(Some(n)) => i64::from(*n),
            ScalarValue::UInt64(Some(n)) => i64::try_from(*n).ok()?,
            _ => return None,
        },
    };
    match kind {
        WindowShiftKind::Lead => Some(n),
        WindowShiftKind::Lag => n.checked_neg(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use datafusion::arrow::array::{Float64Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::execution::runtime_env::RuntimeEnv;
    use datafusion::prelude::{SessionConfig, SessionContext};

    /// 400 rows in runs of 1 to 7 equal keys (some keys null, some values null), split
    /// into batches of 3 rows so partitions and offsets cross batch boundaries.
    fn table() -> Arc<MemTable> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("k", DataType::Int64, true),
            Field::new("g", DataType::Utf8, true),
            Field::new("at", DataType::Int64, false),
            Field::new("x", DataType::Float64, true),
        ]));
        let (mut id, mut k, mut g, mut at, mut x) = (vec![], vec![], vec![], vec![], vec![]);
        let mut key = 0_i64;
        let mut row = 0_i64;
        while row < 400 {
            let run = 1 + (key * 5 + 3) % 7;
            for step in 0..run {
                id.push(row);
                k.push((key % 11 != 4).then_some(key / 2));
                g.push(Some(if step % 3 == 0 { "a" } else { "b" }));
                at.push((row * 37) % 101 + step * 1000);
                x.push((row % 5 != 2).then_some(row as f64 * 0.5));
                row += 1;
            }
            key += 1;
        }
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from(id)),
                Arc::new(Int64Array::from(k)),
                Arc::new(StringArray::from(g)),
                Arc::new(Int64Array::from(at)),
                Arc::new(Float64Array::from(x)),
            ],
        )
        .expect("test batch");
        let batches: Vec<RecordBatch> = (0..batch.num_rows()).step_by(3).map(|start| batch.slice(start, 3.min(batch.num_rows() - start))).collect();
        Arc::new(MemTable::try_new(schema, vec![batches[..70].to_vec(), batches[70..].to_vec()]).expect("test table"))
    }

    fn session(with_rule: bool) -> SessionContext {
        session_of(with_rule, 2)
    }

    fn session_of(with_rule: bool, target_partitions: usize) -> SessionContext {
        let config = SessionConfig::new().with_batch_size(3).with_target_partitions(target_partitions);
        let context = if with_rule {
            crate::catalog::output_order::session_context(config, Arc::new(RuntimeEnv::default()))
        } else {
            SessionContext::new_with_config(config)
        };
        context.register_table("t", table()).expect("register");
        context
    }

    async fn answer(context: &SessionContext, sql: &str) -> (String, String) {
        let frame = context.sql(sql).await.expect("plan");
        let plan = frame.clone().create_physical_plan().await.expect("physical plan");
        let shown = datafusion::physical_plan::displayable(plan.as_ref()).indent(false).to_string();
        let batches = frame.collect().await.expect("run");
        (pretty_format_batches(&batches).expect("format").to_string(), shown)
    }

    const SHIFTS: &[&str] = &[
        "lead(x) OVER (PARTITION BY k ORDER BY at, id)",
        "lag(x, 2, -1.0) OVER (PARTITION BY k ORDER BY at, id)",
        "lead(g, 3, 'none') OVER (PARTITION BY k, g ORDER BY at, id)",
        "lag(x, 0) OVER (PARTITION BY k ORDER BY at, id)",
        "lead(x, -1) OVER (PARTITION BY k ORDER BY at, id)",
        "lag(at, -2, 7) OVER (PARTITION BY k ORDER BY at DESC, id)",
        "lead(at, 4) OVER (ORDER BY at, id)",
        "lag(id, 5) OVER (PARTITION BY g ORDER BY id)",
    ];

    #[tokio::test]
    async fn shifts_over_sorted_runs_equal_datafusions_own() {
        // One target partition: DataFusion's operator then reports no partition keys of its
        // own, and the expression's keys are the window partitions.
        for partitions in [1, 2] {
            let (ours, theirs) = (session_of(true, partitions), session_of(false, partitions));
            for shift in SHIFTS {
                let sql = format!("SELECT id, k, {shift} AS shifted FROM t ORDER BY id");
                let (expected, _) = answer(&theirs, &sql).await;
                let (got, plan) = answer(&ours, &sql).await;
                assert!(plan.contains("SortedShiftWindowExec"), "{shift} not computed here ({partitions} partitions):\n{plan}");
                assert_eq!(got, expected, "{shift} ({partitions} partitions)");
            }
        }
        let (ours, theirs) = (session(true), session(false));
        // Several shifts in one operator, under a filter on their result.
        let sql = format!(
            "SELECT * FROM (SELECT id, {}, {}, {} FROM t) WHERE id % 3 <> 1 ORDER BY id",
            SHIFTS[0], SHIFTS[1], SHIFTS[3]
        );
        let (expected, _) = answer(&theirs, &sql).await;
        let (got, plan) = answer(&ours, &sql).await;
        assert!(plan.contains("SortedShiftWindowExec"), "{plan}");
        assert_eq!(got, expected);
        // Opposite orders over the same sort (DataFusion may reverse one of them), a shift of
        // a shift, and no rows at all.
        for sql in [
            "SELECT id, lead(x) OVER (PARTITION BY k ORDER BY at, id) AS a, lag(x) OVER (PARTITION BY k ORDER BY at DESC, id DESC) AS b FROM t ORDER BY id",
            "SELECT id, lag(y, 2) OVER (PARTITION BY k ORDER BY id) FROM (SELECT id, k, lead(x) OVER (PARTITION BY k ORDER BY id) AS y FROM t) ORDER BY id",
            "SELECT id, lead(x) OVER (PARTITION BY k ORDER BY at) FROM t WHERE id < 0",
        ] {
            let (expected, _) = answer(&theirs, sql).await;
            let (got, _) = answer(&ours, sql).await;
            assert_eq!(got, expected, "{sql}");
        }
    }

    #[tokio::test]
    async fn what_is_not_a_plain_shift_stays_with_datafusion() {
        let (ours, theirs) = (session(true), session(false));
        for window in [
            "lead(x) IGNORE NULLS OVER (PARTITION BY k ORDER BY at, id)",
            "lag(x) IGNORE NULLS OVER (PARTITION BY k ORDER BY at, id)",
            "lead(x, 100000) OVER (PARTITION BY k ORDER BY at, id)",
            "row_number() OVER (PARTITION BY k ORDER BY at, id)",
        ] {
            let sql = format!("SELECT id, {window} AS w FROM t ORDER BY id");
            let (expected, _) = answer(&theirs, &sql).await;
            let (got, plan) = answer(&ours, &sql).await;
            assert!(!plan.contains("SortedShiftWindowExec"), "{window}:\n{plan}");
            assert_eq!(got, expected, "{window}");
        }
        // A shift beside a running sum in the same window: the operator stays whole.
        let sql = "SELECT id, lead(x) OVER w, sum(x) OVER w FROM t WINDOW w AS (PARTITION BY k ORDER BY at, id) ORDER BY id";
        let (expected, _) = answer(&theirs, sql).await;
        let (got, plan) = answer(&ours, sql).await;
        assert!(!plan.contains("SortedShiftWindowExec"), "{plan}");
        assert_eq!(got, expected);
    }

    /// `lag()` of a `Utf8View` column over many batches: each output batch carries the
    /// string buffers of its own input and of the few rows kept from before, never those of
    /// every batch so far (the rows kept are copies).
    #[tokio::test]
    async fn rows_kept_for_lag_hold_no_earlier_buffers() {
        use datafusion::arrow::array::{AsArray, StringViewArray};
        use datafusion::prelude::col;
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("s", DataType::Utf8View, false),
        ]));
        let batches: Vec<RecordBatch> = (0..200_i64)
            .map(|b| {
                let ids: Vec<i64> = (0..3).map(|i| b * 3 + i).collect();
                let strings: Vec<String> = ids.iter().map(|id| format!("a string longer than twelve bytes {id}")).collect();
                RecordBatch::try_new(
                    Arc::clone(&schema),
                    vec![Arc::new(Int64Array::from(ids)), Arc::new(StringViewArray::from_iter_values(strings))],
                )
                .expect("batch")
            })
            .collect();
        let table = MemTable::try_new(Arc::clone(&schema), vec![batches])
            .expect("table")
            .with_sort_order(vec![vec![col("id").sort(true, false)]]);
        let context = session_of(true, 1);
        context.register_table("v", Arc::new(table)).expect("register");
        let plan = context
            .sql("SELECT id, lag(s) OVER (ORDER BY id) AS previous FROM v")
            .await
            .expect("plan")
            .create_physical_plan()
            .await
            .expect("physical plan");
        let mut nodes = vec![plan];
        let shifts = loop {
            let Some(node) = nodes.pop() else { panic!("no SortedShiftWindowExec in the plan") };
            if node.name() == "SortedShiftWindowExec" {
                break node;
            }
            nodes.extend(node.children().into_iter().cloned());
        };
        let mut stream = shifts.execute(0, context.task_ctx()).expect("execute");
        let mut most_buffers = 0;
        let mut rows = 0;
        while let Some(batch) = stream.next().await {
            let batch = batch.expect("batch");
            rows += batch.num_rows();
            most_buffers = most_buffers.max(batch.column(2).as_string_view().data_buffers().len());
        }
        assert_eq!(rows, 600);
        assert!(most_buffers <= 3, "an output batch holds {most_buffers} string buffers");
    }

    /// Rows a large `lead()` offset makes the operator wait for are reserved in the query's
    /// memory pool: over the limit, the query fails with the pool's error instead of holding
    /// them outside it.
    #[tokio::test]
    async fn rows_waiting_for_a_large_offset_count_against_the_memory_limit() {
        use datafusion::execution::memory_pool::FairSpillPool;
        use datafusion::execution::runtime_env::RuntimeEnvBuilder;
        use datafusion::prelude::col;
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false), Field::new("x", DataType::Float64, false)]));
        let batches: Vec<RecordBatch> = (0..100_i64)
            .map(|b| {
                let ids: Vec<i64> = (b * 1000..(b + 1) * 1000).collect();
                let xs: Vec<f64> = ids.iter().map(|id| *id as f64).collect();
                RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(Int64Array::from(ids)), Arc::new(Float64Array::from(xs))]).expect("batch")
            })
            .collect();
        let table = MemTable::try_new(Arc::clone(&schema), vec![batches])
            .expect("table")
            .with_sort_order(vec![vec![col("id").sort(true, false)]]);
        let runtime = RuntimeEnvBuilder::new().with_memory_pool(Arc::new(FairSpillPool::new(256 * 1024))).build_arc().expect("runtime");
        let context = crate::catalog::output_order::session_context(SessionConfig::new().with_target_partitions(1), runtime);
        context.register_table("v", Arc::new(table)).expect("register");
        let frame = context.sql("SELECT id, lead(x, 60000) OVER (ORDER BY id) FROM v").await.expect("plan");
        let plan = frame.clone().create_physical_plan().await.expect("physical plan");
        let shown = datafusion::physical_plan::displayable(plan.as_ref()).indent(false).to_string();
        assert!(shown.contains("SortedShiftWindowExec"), "{shown}");
        let error = frame.collect().await.expect_err("60,000 rows of 16 bytes are over 256 KiB");
        assert!(error.to_string().contains("Resources exhausted"), "{error}");
    }
}
