//! `HotScanExec`: the physical scan of one hot table.
//!
//! The scan takes one storage snapshot per execution, shared by its partitions, and
//! splits the snapshot's series into contiguous runs, one per partition. Each
//! partition decodes its series chunk by chunk into Arrow batches, skipping chunks
//! whose headers fail the pushed field bounds.
//!
//! Scheduling: the scan's stream spends Tokio's cooperative budget itself (one
//! unit per batch), so the scan declares itself cooperative and DataFusion adds no
//! `CooperativeExec` above it. That wrapper was one more node for every physical
//! optimizer rule to walk, and inserting it rebuilt every node above the scan,
//! recomputing their equivalence and ordering properties, on each query.
//!
//! Ordering: series come sorted by the projected tag columns (in table order), rows
//! by time. When the projected tags identify the selected series (or every tag is
//! projected) the scan declares the ordering `[projected tags..., time]`; series that
//! later turn out to share those tags are merged by time, so the declaration holds.

use std::fmt;
use std::sync::Arc;

use arrow::compute::SortOptions;
use arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::Statistics;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr, PhysicalSortExpr};
use datafusion::physical_plan::coop::cooperative;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType, SchedulingType};
use datafusion::physical_plan::metrics::{
    BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::statistics::StatisticsArgs;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning,
    PlanProperties, ReplaceChildrenOptions, SendableRecordBatchStream,
};

use super::pushdown::{FieldBound, ScanFilters};
use super::shared::SharedSnapshot;
use crate::model::TIME_COLUMN;
use crate::storage::{
    ChunkFilter, ReadOptions, SelectionCounts, SnapshotReader, Storage, TableSnapshot,
};

/// What the provider decided at planning time.
#[derive(Debug, Clone)]
pub(crate) struct ScanSpec {
    pub(crate) table: String,
    /// Projected column names, in output order.
    pub(crate) columns: Vec<String>,
    /// Projected tag columns in table order (the sort order of series).
    pub(crate) sort_tags: Vec<String>,
    pub(crate) filters: ScanFilters,
    pub(crate) limit: Option<usize>,
    /// Counts at planning time, for `EXPLAIN`.
    pub(crate) counts: SelectionCounts,
    /// Whether rows are declared ordered by time after the tags.
    pub(crate) time_ordered: bool,
    /// Run right after the storage snapshot is taken; an error fails the scan (the
    /// tiered table checks that the cold tier did not move under the snapshot).
    pub(crate) after_snapshot: Option<SnapshotCheck>,
}

/// A check run once the scan's snapshot is taken.
#[derive(Clone)]
pub(crate) struct SnapshotCheck(pub(crate) Arc<CheckFn>);

/// The function of a [`SnapshotCheck`].
pub(crate) type CheckFn = dyn Fn(&TableSnapshot) -> crate::Result<()> + Send + Sync;

impl fmt::Debug for SnapshotCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SnapshotCheck")
    }
}

/// Scans a hot table; see the module docs.
#[derive(Debug)]
pub struct HotScanExec {
    storage: Arc<Storage>,
    spec: ScanSpec,
    schema: SchemaRef,
    partitions: usize,
    shared: SharedSnapshot,
    metrics: ExecutionPlanMetricsSet,
    properties: Arc<PlanProperties>,
}

impl HotScanExec {
    pub(crate) fn new(
        storage: Arc<Storage>,
        spec: ScanSpec,
        schema: SchemaRef,
        partitions: usize,
    ) -> HotScanExec {
        let partitions = partitions.max(1);
        let options = SortOptions {
            descending: false,
            nulls_first: false,
        };
        let mut ordering = Vec::new();
        for tag in &spec.sort_tags {
            if let Ok(i) = schema.index_of(tag) {
                ordering.push(PhysicalSortExpr::new(
                    Arc::new(Column::new(tag, i)),
                    options,
                ));
            }
        }
        if spec.time_ordered
            && let Ok(i) = schema.index_of(TIME_COLUMN)
        {
            ordering.push(PhysicalSortExpr::new(
                Arc::new(Column::new(TIME_COLUMN, i)),
                options,
            ));
        }
        let eq = if ordering.is_empty() {
            EquivalenceProperties::new(schema.clone())
        } else {
            EquivalenceProperties::new_with_orderings(schema.clone(), [ordering])
        };
        let properties = PlanProperties::new(
            eq,
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Incremental,
            Boundedness::Bounded,
        )
        .with_scheduling_type(SchedulingType::Cooperative);
        HotScanExec {
            storage,
            spec,
            schema,
            partitions,
            shared: SharedSnapshot::new(partitions),
            metrics: ExecutionPlanMetricsSet::new(),
            properties: Arc::new(properties),
        }
    }

    /// This execution's snapshot, shared by the partitions.
    fn snapshot(&self) -> DfResult<Arc<TableSnapshot>> {
        let filters = &self.spec.filters;
        self.shared.get(|| {
            let snapshot = self.storage.select_sorted(
                &self.spec.table,
                filters.range,
                Some(&self.spec.sort_tags),
                |index| filters.select(index),
            )?;
            if let Some(check) = &self.spec.after_snapshot {
                (check.0)(&snapshot)?;
            }
            Ok(snapshot)
        })
    }
}

/// A chunk filter from pushed field bounds, resolving field names in `schema`.
pub(crate) fn chunk_filter(
    bounds: &[FieldBound],
    schema: &arrow::datatypes::Schema,
) -> Option<ChunkFilter> {
    if bounds.is_empty() {
        return None;
    }
    let time = schema.index_of(TIME_COLUMN).ok()?;
    let resolved: Vec<(FieldBound, usize)> = bounds
        .iter()
        .filter_map(|b| {
            let i = schema.index_of(&b.field).ok()?;
            (i > time).then(|| (b.clone(), i - time - 1))
        })
        .collect();
    Some(Arc::new(move |chunk| {
        resolved.iter().all(|(b, f)| b.may_match(chunk, *f))
    }))
}

/// Values (rows times columns) per batch of rows a scan may decode in one partition.
///
/// Splitting a scan costs a repartition or merge above it and hands batches between
/// threads; for a few hundred thousand values (about a quarter of a millisecond of
/// decoding at the default batch size) that costs more than the second core saves.
const VALUES_PER_PARTITION_BATCH: u64 = 32;

/// How many partitions a scan of `counts` decoding `columns` columns gets: its series
/// split over the cores, but one when it decodes at most
/// [`VALUES_PER_PARTITION_BATCH`] × the batch size values.
pub(crate) fn scan_partitions(
    state: &dyn Session,
    counts: &SelectionCounts,
    columns: usize,
) -> usize {
    let batch = state.config().batch_size() as u64;
    let values = counts.rows_bound.saturating_mul(columns.max(1) as u64);
    if values <= batch.saturating_mul(VALUES_PER_PARTITION_BATCH) {
        1
    } else {
        state
            .config()
            .target_partitions()
            .min(counts.series_selected.max(1) as usize)
    }
}

/// A scan's statistics: the bound on its output rows from planning, as an estimate
/// (writes may add rows before execution). With it DataFusion keeps a small scan in
/// one partition rather than adding a round-robin repartition above it (the session
/// lets it trust estimates).
pub(crate) fn row_bound_statistics(
    schema: &SchemaRef,
    rows_bound: u64,
    partitions: usize,
    args: &StatisticsArgs,
) -> Arc<Statistics> {
    let rows = usize::try_from(rows_bound).unwrap_or(usize::MAX);
    let rows = match args.partition() {
        Some(_) => rows.div_ceil(partitions.max(1)),
        None => rows,
    };
    Arc::new(Statistics::new_unknown(schema).with_num_rows(Precision::Inexact(rows)))
}

impl DisplayAs for HotScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.spec.counts;
        write!(
            f,
            "HotScanExec: table={}, partitions={}, series={}/{}, chunks={} \
             (pruned by time={}, by value={})",
            self.spec.table,
            self.partitions,
            c.series_selected,
            c.series_total,
            c.chunks_selected,
            c.chunks_pruned_by_time,
            c.chunks_pruned_by_value
        )?;
        if !self.spec.filters.pushed.is_empty() {
            write!(f, ", pushed=[{}]", self.spec.filters.pushed.join(", "))?;
        }
        if let Some(limit) = self.spec.limit {
            write!(f, ", limit={limit}")?;
        }
        // The estimate DataFusion partitions by: a scan of at most one batch of
        // rows stays in one partition.
        write!(f, ", rows<={}", c.rows_bound)
    }
}

impl ExecutionPlan for HotScanExec {
    fn name(&self) -> &'static str {
        "HotScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn statistics_from_inputs(
        &self,
        _input_stats: &[Arc<Statistics>],
        args: &StatisticsArgs,
    ) -> DfResult<Arc<Statistics>> {
        Ok(row_bound_statistics(
            &self.schema,
            self.spec.counts.rows_bound,
            self.partitions,
            args,
        ))
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let snapshot = self.snapshot()?;
        let full = snapshot.schema().clone();
        let projection = self
            .spec
            .columns
            .iter()
            .map(|c| full.index_of(c))
            .collect::<Result<Vec<_>, _>>()?;
        let n = snapshot.series().len();
        let (start, end) = (
            n * partition / self.partitions,
            n * (partition + 1) / self.partitions,
        );
        let tag_count = full.index_of(TIME_COLUMN)?;
        let merge_by = self.spec.time_ordered.then(|| {
            self.spec
                .sort_tags
                .iter()
                .filter_map(|t| full.index_of(t).ok())
                .filter(|&i| i < tag_count)
                .collect()
        });
        let options = ReadOptions {
            projection,
            batch_rows: context.session_config().batch_size(),
            series: start..end,
            chunk_filter: chunk_filter(&self.spec.filters.bounds, &full),
            limit: self.spec.limit,
            merge_by,
        };
        let reader = SnapshotReader::new(snapshot, options);
        let metrics = ScanMetrics {
            baseline: BaselineMetrics::new(&self.metrics, partition),
            decoded: MetricBuilder::new(&self.metrics).counter("chunks_decoded", partition),
            pruned: MetricBuilder::new(&self.metrics).counter("chunks_pruned_by_value", partition),
            series: MetricBuilder::new(&self.metrics).counter("series_scanned", partition),
        };
        metrics.series.add(end - start);
        let stream = ScanIter {
            reader,
            metrics,
            reported: (0, 0),
        };
        Ok(Box::pin(cooperative(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            futures::stream::iter(stream),
        ))))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

struct ScanMetrics {
    baseline: BaselineMetrics,
    decoded: Count,
    pruned: Count,
    series: Count,
}

/// Decodes batches on demand and keeps the plan metrics up to date.
struct ScanIter {
    reader: SnapshotReader,
    metrics: ScanMetrics,
    reported: (usize, usize),
}

impl Iterator for ScanIter {
    type Item = DfResult<arrow::array::RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        let timer = self.metrics.baseline.elapsed_compute().timer();
        let next = self.reader.next();
        timer.done();
        let (decoded, pruned) = (self.reader.decoded_chunks, self.reader.pruned_chunks);
        self.metrics.decoded.add(decoded - self.reported.0);
        self.metrics.pruned.add(pruned - self.reported.1);
        self.reported = (decoded, pruned);
        match next {
            Some(Ok(batch)) => {
                self.metrics.baseline.record_output(batch.num_rows());
                Some(Ok(batch))
            }
            Some(Err(e)) => Some(Err(DataFusionError::External(Box::new(e)))),
            None => {
                self.metrics.baseline.done();
                None
            }
        }
    }
}
