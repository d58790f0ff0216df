//! "The newest k buckets": `GROUP BY date_bin(...) ORDER BY bucket DESC LIMIT k`
//! reads the newest few buckets first instead of aggregating the whole table.
//!
//! A dashboard's "last 5 minutes, per minute" over a table without a lower time
//! bound makes DataFusion aggregate every row ever stored only to keep five groups.
//! The [`NewestBucketsRule`] rewrites
//! ```text
//! Sort: bucket DESC, ... fetch=k
//!   Projection / Filter (HAVING) ...
//!     Aggregate: groupBy=[date_bin(W, time[, origin]), ...]
//!       Filter / Projection (plain columns) ...
//!         TableScan: t   (a MetricStore table)
//! ```
//! into a [`NewestBuckets`] node with two inputs: the same plan with `time >= from`
//! added above the scan (`from` = the start of the bucket holding the table's newest
//! time, or the query's upper time bound if lower, minus `k - 1` widths), and the
//! plan unchanged. [`NewestBucketsExec`] runs the narrow plan and keeps its answer
//! when it has `k` rows; otherwise (gaps in the data, a HAVING that drops buckets)
//! it runs the unchanged plan.
//!
//! Why the narrow answer is exact when it has `k` rows: `from` is a bucket boundary,
//! so every bucket at or after `from` holds exactly the rows it holds in the full
//! plan, and every row before `from` belongs to an older bucket. Sorted by bucket
//! descending, all of the narrow plan's rows come before any row of an older
//! bucket, so its first `k` rows are the full plan's first `k` (rows equal in every
//! sort key may come in either order, as in any sort). `EXPLAIN` shows the node;
//! `EXPLAIN ANALYZE` counts whether the fallback ran.

use std::any::Any;
use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::catalog::default_table_source::source_as_provider;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchemaRef, ScalarValue};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{
    Expr, Extension, Filter, LogicalPlan, Sort, TableScan, UserDefinedLogicalNode,
    UserDefinedLogicalNodeCore,
};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use datafusion::physical_expr::{OrderingRequirements, PhysicalExpr};
use datafusion::physical_plan::metrics::{
    Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, ExecutionPlanProperties,
    PlanProperties, SendableRecordBatchStream,
};
use datafusion::physical_planner::{ExtensionPlanner, PhysicalPlanner};
use futures::{StreamExt, TryStreamExt};

use super::plan_match::{bucket_spec, unalias};
use super::provider::HotTable;
use super::pushdown::time_range;
use super::tiered::TieredTable;
use crate::model::{TIME_COLUMN, rfc3339};
use crate::storage::{BucketSpec, Storage};

/// The rule; see the module docs.
#[derive(Debug)]
pub struct NewestBucketsRule {
    storage: Arc<Storage>,
}

impl NewestBucketsRule {
    /// The rule for tables of `storage`.
    pub fn new(storage: Arc<Storage>) -> NewestBucketsRule {
        NewestBucketsRule { storage }
    }
}

impl OptimizerRule for NewestBucketsRule {
    fn name(&self) -> &str {
        "metricstore_newest_buckets"
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> DfResult<Transformed<LogicalPlan>> {
        plan.transform_down(|node| {
            // Both inputs of a node made in an earlier pass match again: leave them.
            if let LogicalPlan::Extension(e) = &node
                && e.node.as_any().is::<NewestBuckets>()
            {
                return Ok(Transformed::new(node, false, TreeNodeRecursion::Jump));
            }
            match self.try_rewrite(&node)? {
                Some(new) => Ok(Transformed::new(new, true, TreeNodeRecursion::Jump)),
                None => Ok(Transformed::no(node)),
            }
        })
    }
}

/// What the rule learned walking down from the sort to the scan.
struct Matched<'a> {
    spec: BucketSpec,
    scan: &'a TableScan,
    /// The newest time the query's filters allow (inclusive).
    upper: i64,
}

impl NewestBucketsRule {
    fn try_rewrite(&self, plan: &LogicalPlan) -> DfResult<Option<LogicalPlan>> {
        let LogicalPlan::Sort(sort) = plan else {
            return Ok(None);
        };
        let Some(fetch) = sort.fetch.filter(|&k| k > 0) else {
            return Ok(None);
        };
        let Some(first) = sort.expr.first().filter(|s| !s.asc) else {
            return Ok(None);
        };
        let Expr::Column(bucket) = &first.expr else {
            return Ok(None);
        };
        let Some(found) = find_bucket(bucket, &sort.input, i64::MAX) else {
            return Ok(None);
        };
        let Some(newest) = self.newest(found.scan) else {
            return Ok(None);
        };
        let Some(from) = narrow_start(found.spec, newest.min(found.upper), fetch) else {
            return Ok(None);
        };
        let Some(narrow) = narrowed(sort, found.scan, from)? else {
            return Ok(None);
        };
        Ok(Some(LogicalPlan::Extension(Extension {
            node: Arc::new(NewestBuckets {
                narrow,
                full: plan.clone(),
                fetch,
                from,
            }),
        })))
    }

    /// The newest time in memory of the scanned table; a table only in the cold
    /// tier gives none, and the query's own upper bound is used.
    fn newest(&self, scan: &TableScan) -> Option<i64> {
        let provider = source_as_provider(&scan.source).ok()?;
        let any: &dyn Any = provider.as_ref();
        let name = if let Some(hot) = any.downcast_ref::<HotTable>() {
            hot.name()
        } else {
            any.downcast_ref::<TieredTable>()?.name()
        };
        Some(self.storage.newest_time(name).unwrap_or(i64::MAX))
    }
}

/// The table scans under bucketed aggregates that this rule could narrow: those below
/// a `Sort` by a `date_bin` bucket descending with a fetch. The bucket rule leaves
/// them alone where it would decode every chunk, since narrowing decodes the newest.
pub(super) fn narrowable_scans(plan: &LogicalPlan) -> Vec<TableScan> {
    let mut scans = Vec::new();
    // The closure never fails; `apply` only returns its errors.
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::Sort(sort) = node
            && sort.fetch.is_some_and(|k| k > 0)
            && let Some(first) = sort.expr.first().filter(|s| !s.asc)
            && let Expr::Column(bucket) = &first.expr
            && let Some(found) = find_bucket(bucket, &sort.input, i64::MAX)
        {
            scans.push(found.scan.clone());
        }
        Ok(TreeNodeRecursion::Continue)
    });
    scans
}

/// Follows the sort column down to the aggregate that makes it; the column must be a
/// `date_bin` group key over the `time` of a single table scan below.
fn find_bucket<'a>(column: &Column, plan: &'a LogicalPlan, upper: i64) -> Option<Matched<'a>> {
    match plan {
        LogicalPlan::Projection(p) => {
            let i = p.schema.maybe_index_of_column(column)?;
            match unalias(&p.expr[i]) {
                Expr::Column(c) => find_bucket(c, &p.input, upper),
                _ => None,
            }
        }
        LogicalPlan::Filter(f) => find_bucket(column, &f.input, upper),
        LogicalPlan::Aggregate(a) => {
            let i = a.schema.maybe_index_of_column(column)?;
            if i >= a.group_expr.len() || matches!(a.group_expr[i], Expr::GroupingSet(_)) {
                return None;
            }
            let spec = bucket_spec(&a.group_expr[i])?;
            let (scan, upper) = scan_below(&a.input, upper)?;
            Some(Matched { spec, scan, upper })
        }
        _ => None,
    }
}

/// The table scan under filters and plain-column projections (which keep `time`
/// meaning the table's time), with the newest time the filters allow.
fn scan_below(plan: &LogicalPlan, upper: i64) -> Option<(&TableScan, i64)> {
    match plan {
        LogicalPlan::Filter(f) => scan_below(&f.input, upper.min(newest_allowed(&f.predicate))),
        LogicalPlan::Projection(p) => {
            // Plain columns keep their names, so `time` above is `time` below.
            if p.expr.iter().all(|e| matches!(e, Expr::Column(_))) {
                scan_below(&p.input, upper)
            } else {
                None
            }
        }
        LogicalPlan::TableScan(scan) if scan.fetch.is_none() => {
            let upper = scan
                .filters
                .iter()
                .map(newest_allowed)
                .fold(upper, i64::min);
            Some((scan, upper))
        }
        _ => None,
    }
}

/// The newest time a predicate lets through (inclusive), `i64::MAX` if it says
/// nothing about time.
fn newest_allowed(predicate: &Expr) -> i64 {
    split_conjunction(predicate)
        .into_iter()
        .filter_map(time_range)
        .map(|r| r.end.saturating_sub(1))
        .fold(i64::MAX, i64::min)
}

/// The start of the bucket holding `newest`, less `k - 1` bucket widths.
fn narrow_start(spec: BucketSpec, newest: i64, k: usize) -> Option<i64> {
    if newest == i64::MAX {
        return None;
    }
    let offset = newest.checked_sub(spec.origin_ms)?;
    let bucket = offset
        .div_euclid(spec.width_ms)
        .checked_mul(spec.width_ms)?
        .checked_add(spec.origin_ms)?;
    let back = i64::try_from(k - 1).ok()?.checked_mul(spec.width_ms)?;
    bucket.checked_sub(back)
}

/// `sort` with `time >= from` above `scan`.
fn narrowed(sort: &Sort, scan: &TableScan, from: i64) -> DfResult<Option<LogicalPlan>> {
    let tz = match scan
        .source
        .schema()
        .field_with_name(TIME_COLUMN)
        .map(|f| f.data_type().clone())
    {
        Ok(DataType::Timestamp(TimeUnit::Millisecond, tz)) => tz,
        _ => return Ok(None),
    };
    let time = Expr::Column(Column::new(Some(scan.table_name.clone()), TIME_COLUMN));
    let bound = time.gt_eq(Expr::Literal(
        ScalarValue::TimestampMillisecond(Some(from), tz),
        None,
    ));
    let plan = LogicalPlan::Sort(sort.clone()).transform_up(|node| match node {
        LogicalPlan::TableScan(s) if s == *scan => Ok(Transformed::yes(LogicalPlan::Filter(
            Filter::try_new(bound.clone(), Arc::new(LogicalPlan::TableScan(s)))?,
        ))),
        node => Ok(Transformed::no(node)),
    })?;
    Ok(plan.transformed.then_some(plan.data))
}

/// The rewritten sort: try `narrow`, else run `full`. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NewestBuckets {
    narrow: LogicalPlan,
    full: LogicalPlan,
    fetch: usize,
    from: i64,
}

impl PartialOrd for NewestBuckets {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        (self.fetch, self.from)
            .partial_cmp(&(other.fetch, other.from))
            .filter(|o| o.is_ne() || self == other)
    }
}

impl UserDefinedLogicalNodeCore for NewestBuckets {
    fn name(&self) -> &str {
        "NewestBuckets"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.narrow, &self.full]
    }

    fn schema(&self) -> &DFSchemaRef {
        self.full.schema()
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "NewestBuckets: fetch={}, first from time >= {}",
            self.fetch,
            rfc3339(self.from)
        )
    }

    fn with_exprs_and_inputs(
        &self,
        _exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> DfResult<Self> {
        let (Some(full), Some(narrow), None) = (inputs.pop(), inputs.pop(), inputs.pop()) else {
            return Err(DataFusionError::Internal(
                "NewestBuckets takes two inputs".into(),
            ));
        };
        Ok(NewestBuckets {
            narrow,
            full,
            fetch: self.fetch,
            from: self.from,
        })
    }
}

/// Plans [`NewestBuckets`] nodes as [`NewestBucketsExec`].
#[derive(Debug)]
pub struct NewestBucketsPlanner;

#[async_trait]
impl ExtensionPlanner for NewestBucketsPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn Session,
        _planning_ctx: &datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext,
    ) -> DfResult<Option<Arc<dyn ExecutionPlan>>> {
        let Some(node) = node.as_any().downcast_ref::<NewestBuckets>() else {
            return Ok(None);
        };
        let [narrow, full] = physical_inputs else {
            return Err(DataFusionError::Internal(
                "NewestBuckets takes two inputs".into(),
            ));
        };
        Ok(Some(Arc::new(NewestBucketsExec::new(
            narrow.clone(),
            full.clone(),
            node.fetch,
            node.from,
        ))))
    }
}

/// Runs the narrow plan, and the full one only if the narrow answer is short.
#[derive(Debug)]
pub struct NewestBucketsExec {
    narrow: Arc<dyn ExecutionPlan>,
    full: Arc<dyn ExecutionPlan>,
    fetch: usize,
    from: i64,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl NewestBucketsExec {
    fn new(
        narrow: Arc<dyn ExecutionPlan>,
        full: Arc<dyn ExecutionPlan>,
        fetch: usize,
        from: i64,
    ) -> NewestBucketsExec {
        // Both inputs are the same sorted query over different rows: the output has
        // the full plan's properties, in one partition.
        let properties =
            Arc::new(full.properties().as_ref().clone().with_partitioning(
                datafusion::physical_plan::Partitioning::UnknownPartitioning(1),
            ));
        NewestBucketsExec {
            narrow,
            full,
            fetch,
            from,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }
}

impl DisplayAs for NewestBucketsExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "NewestBucketsExec: fetch={}, first from time >= {}",
            self.fetch,
            rfc3339(self.from)
        )
    }
}

impl ExecutionPlan for NewestBucketsExec {
    fn name(&self) -> &'static str {
        "NewestBucketsExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.narrow, &self.full]
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![Distribution::SinglePartition; 2]
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        // The answer is the inputs' sorted rows: keep their sorts in place.
        let ordering = self
            .full
            .output_ordering()
            .map(|o| OrderingRequirements::new(o.clone().into()));
        vec![ordering.clone(), ordering]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true, true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false, false]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let [narrow, full] = children.as_slice() else {
            return Err(DataFusionError::Internal(
                "NewestBucketsExec takes two children".into(),
            ));
        };
        Ok(Arc::new(NewestBucketsExec::new(
            narrow.clone(),
            full.clone(),
            self.fetch,
            self.from,
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "NewestBucketsExec has one partition, asked for {partition}"
            )));
        }
        let narrow = self.narrow.execute(0, context.clone())?;
        let full = self.full.clone();
        let fetch = self.fetch;
        let fell_back: Count = MetricBuilder::new(&self.metrics).counter("fell_back", 0);
        let stream = futures::stream::once(async move {
            let batches: Vec<_> = narrow.try_collect().await?;
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            if rows >= fetch {
                return Ok(futures::stream::iter(batches.into_iter().map(Ok)).boxed());
            }
            fell_back.add(1);
            Ok::<_, DataFusionError>(full.execute(0, context)?.boxed())
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.full.schema(),
            stream,
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}
