//! `BucketTable`: a table's rows pre-aggregated per series and time bucket, read from
//! chunk headers where a chunk fits in one bucket (see `storage::buckets`).
//!
//! Nobody queries it by name: the [`super::rollup_rule`] rewrites eligible aggregates
//! over a hot table into aggregates over this table. Its columns: the table's tags,
//! `__bucket` (the bucket start), `__rows` (rows in the bucket), and for each field
//! `f`: `f__count`, `f__sum`, `f__min`, `f__max` (NULL when the bucket has no value).

use std::fmt;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, RecordBatchOptions, TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::Statistics;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::coop::make_cooperative;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType, SchedulingType};
use datafusion::physical_plan::metrics::{
    BaselineMetrics, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::statistics::StatisticsArgs;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning,
    PlanProperties, ReplaceChildrenOptions, SendableRecordBatchStream,
};
use futures::StreamExt;

use super::exec::{row_bound_statistics, scan_partitions};
use super::pushdown::{Pushed, ScanFilters, classify};
use super::shared::SharedSnapshot;
use crate::storage::{
    BucketRow, BucketSpec, SelectionCounts, Storage, TableSnapshot, tag_type, time_type,
};

/// Name of the bucket start column.
pub const BUCKET: &str = "__bucket";
/// Name of the row count column.
pub const ROWS: &str = "__rows";
/// Per-field statistics columns, in this order: `{field}__{suffix}`.
pub const STATS: [&str; 4] = ["count", "sum", "min", "max"];

/// Pre-aggregated rows of one hot table; see the module docs.
#[derive(Debug)]
pub struct BucketTable {
    storage: Arc<Storage>,
    table: String,
    spec: BucketSpec,
    tags: Vec<String>,
    /// Fields whose statistics are produced, and the table's field names.
    fields: Vec<String>,
    all_fields: Vec<String>,
    schema: SchemaRef,
}

impl BucketTable {
    /// Statistics of `fields` of `table` per series and bucket of `spec`.
    pub(crate) fn new(
        storage: Arc<Storage>,
        table: &str,
        spec: BucketSpec,
        tags: Vec<String>,
        fields: Vec<String>,
        all_fields: Vec<String>,
    ) -> BucketTable {
        let mut columns: Vec<Field> = tags
            .iter()
            .map(|t| Field::new(t, tag_type(), true))
            .collect();
        columns.push(Field::new(BUCKET, time_type(), false));
        columns.push(Field::new(ROWS, DataType::Int64, false));
        for f in &fields {
            columns.push(Field::new(format!("{f}__count"), DataType::Int64, false));
            for s in &STATS[1..] {
                columns.push(Field::new(format!("{f}__{s}"), DataType::Float64, true));
            }
        }
        BucketTable {
            storage,
            table: table.to_string(),
            spec,
            tags,
            fields,
            all_fields,
            schema: Arc::new(Schema::new(columns)),
        }
    }
}

#[async_trait]
impl TableProvider for BucketTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| match classify(f, &self.tags, &self.all_fields) {
                Some(Pushed::Tags(_) | Pushed::Time(_)) => TableProviderFilterPushDown::Exact,
                _ => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let filters = ScanFilters::new(filters, &self.tags, &self.all_fields);
        if !filters.bounds.is_empty() {
            return Err(DataFusionError::Internal(
                "bucket statistics cannot apply field filters".into(),
            ));
        }
        let projection = projection.cloned();
        let schema = match &projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => self.schema.clone(),
        };
        let counts = self
            .storage
            .count_selection(&self.table, filters.range, None, &[], |index| {
                filters.select(index)
            })
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let partitions = scan_partitions(state, &counts, self.fields.len());
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Incremental,
            Boundedness::Bounded,
        )
        // The stream spends Tokio's budget itself (see `HotScanExec`): no
        // `CooperativeExec` wrapper for the optimizer to insert and walk.
        .with_scheduling_type(SchedulingType::Cooperative);
        Ok(Arc::new(BucketExec {
            storage: self.storage.clone(),
            table: self.table.clone(),
            spec: self.spec,
            tags: self.tags.clone(),
            fields: self.fields.clone(),
            full_schema: self.schema.clone(),
            projection,
            filters,
            partitions,
            counts,
            shared: SharedSnapshot::new(partitions),
            metrics: ExecutionPlanMetricsSet::new(),
            properties: Arc::new(properties),
        }))
    }
}

/// Computes bucket statistics; one snapshot per execution, series split over partitions.
#[derive(Debug)]
pub struct BucketExec {
    storage: Arc<Storage>,
    table: String,
    spec: BucketSpec,
    tags: Vec<String>,
    fields: Vec<String>,
    full_schema: SchemaRef,
    projection: Option<Vec<usize>>,
    filters: ScanFilters,
    partitions: usize,
    /// What the selection held at planning (for partitioning and statistics).
    counts: SelectionCounts,
    shared: SharedSnapshot,
    metrics: ExecutionPlanMetricsSet,
    properties: Arc<PlanProperties>,
}

impl BucketExec {
    /// At most one row per selected series and bucket of the time range (when both
    /// ends are bounded), and never more than the rows read.
    fn output_rows_bound(&self) -> u64 {
        let range = self.filters.range;
        let width = i128::from(self.spec.width_ms.max(1));
        let buckets = if range.start > i64::MIN && range.end < i64::MAX && range.end > range.start {
            let first = i128::from(self.spec.bucket(range.start));
            let last = i128::from(self.spec.bucket(range.end - 1));
            u64::try_from((last - first) / width + 1).unwrap_or(u64::MAX)
        } else {
            u64::MAX
        };
        let series = self.counts.series_selected;
        self.counts.rows_bound.min(series.saturating_mul(buckets))
    }

    fn snapshot(&self) -> DfResult<Arc<TableSnapshot>> {
        self.shared.get(|| {
            self.storage
                .select_with(&self.table, self.filters.range, |index| {
                    self.filters.select(index)
                })
        })
    }
}

/// What one partition computes, owned so it can run inside the stream.
struct Work {
    snapshot: Arc<TableSnapshot>,
    spec: BucketSpec,
    tags: Vec<String>,
    fields: Vec<String>,
    full_schema: SchemaRef,
    projection: Option<Vec<usize>>,
    /// `full_schema` projected: the batches' schema.
    schema: SchemaRef,
    series: std::ops::Range<usize>,
    batch_size: usize,
}

impl Work {
    fn run(&self) -> DfResult<(Vec<RecordBatch>, crate::storage::BucketReads)> {
        let schema = self.snapshot.schema();
        let time = schema.index_of(crate::model::TIME_COLUMN)?;
        let field_numbers = self
            .fields
            .iter()
            .map(|f| Ok(schema.index_of(f)? - time - 1))
            .collect::<DfResult<Vec<usize>>>()?;
        let mut rows = Vec::new();
        let reads = self
            .snapshot
            .bucket_stats(self.series.clone(), self.spec, &field_numbers, &mut rows)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let batches = rows
            .chunks(self.batch_size.max(1))
            .map(|chunk| self.batch(chunk))
            .collect::<DfResult<Vec<_>>>()?;
        Ok((batches, reads))
    }

    /// The projected columns of `rows`; only those are built (a dictionary append per
    /// row and tag cost more than the statistics).
    fn batch(&self, rows: &[BucketRow]) -> DfResult<RecordBatch> {
        let snapshot = &self.snapshot;
        let full = snapshot.schema();
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for r in rows {
            match runs.last_mut() {
                Some((series, n)) if *series == r.series => *n += 1,
                _ => runs.push((r.series, 1)),
            }
        }
        let all: Vec<usize>;
        let indices = match &self.projection {
            Some(p) => p.as_slice(),
            None => {
                all = (0..self.full_schema.fields().len()).collect();
                &all
            }
        };
        let tags = self.tags.len();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(indices.len());
        for &i in indices {
            columns.push(match i.checked_sub(tags) {
                None => snapshot
                    .tag_array(full.index_of(&self.tags[i])?, &runs)
                    .map_err(|e| DataFusionError::External(Box::new(e)))?,
                Some(0) => Arc::new(
                    TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.bucket))
                        .with_timezone("UTC"),
                ),
                Some(1) => Arc::new(Int64Array::from_iter_values(
                    rows.iter().map(|r| r.rows as i64),
                )),
                Some(j) => {
                    let (f, stat) = ((j - 2) / STATS.len(), (j - 2) % STATS.len());
                    let present = |r: &BucketRow| r.fields[f].count > 0;
                    let value = |r: &BucketRow| match stat {
                        1 => r.fields[f].sum,
                        2 => r.fields[f].min,
                        _ => r.fields[f].max,
                    };
                    if stat == 0 {
                        Arc::new(Int64Array::from_iter_values(
                            rows.iter().map(|r| r.fields[f].count as i64),
                        ))
                    } else {
                        Arc::new(
                            rows.iter()
                                .map(|r| present(r).then(|| value(r)))
                                .collect::<Float64Array>(),
                        )
                    }
                }
            });
        }
        let options = RecordBatchOptions::new().with_row_count(Some(rows.len()));
        Ok(RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &options,
        )?)
    }
}

impl DisplayAs for BucketExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "BucketExec: table={}, bucket={}ms, fields=[{}], partitions={}",
            self.table,
            self.spec.width_ms,
            self.fields.join(", "),
            self.partitions
        )?;
        if !self.filters.pushed.is_empty() {
            write!(f, ", pushed=[{}]", self.filters.pushed.join(", "))?;
        }
        // The estimate DataFusion partitions by (see `HotScanExec`).
        write!(f, ", rows<={}", self.output_rows_bound())
    }
}

impl ExecutionPlan for BucketExec {
    fn name(&self) -> &'static str {
        "BucketExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    /// At most one row per raw row: the scan's bound holds.
    fn statistics_from_inputs(
        &self,
        _input_stats: &[Arc<Statistics>],
        args: &StatisticsArgs,
    ) -> DfResult<Arc<Statistics>> {
        Ok(row_bound_statistics(
            &self.schema(),
            self.output_rows_bound(),
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
        let baseline = BaselineMetrics::new(&self.metrics, partition);
        let headers = MetricBuilder::new(&self.metrics).counter("chunks_from_headers", partition);
        let decoded = MetricBuilder::new(&self.metrics).counter("chunks_decoded", partition);
        let n = snapshot.series().len();
        let schema = match &self.projection {
            Some(p) => Arc::new(self.full_schema.project(p)?),
            None => self.full_schema.clone(),
        };
        let work = Work {
            schema: schema.clone(),
            snapshot,
            spec: self.spec,
            tags: self.tags.clone(),
            fields: self.fields.clone(),
            full_schema: self.full_schema.clone(),
            projection: self.projection.clone(),
            series: n * partition / self.partitions..n * (partition + 1) / self.partitions,
            batch_size: context.session_config().batch_size(),
        };
        // The work runs when the stream is first polled, not in `execute`.
        let stream = futures::stream::once(async move {
            let timer = baseline.elapsed_compute().timer();
            let result = work.run();
            timer.done();
            match result {
                Ok((batches, reads)) => {
                    headers.add(reads.from_headers);
                    decoded.add(reads.decoded);
                    for b in &batches {
                        baseline.record_output(b.num_rows());
                    }
                    baseline.done();
                    futures::stream::iter(batches.into_iter().map(Ok).collect::<Vec<_>>())
                }
                Err(e) => futures::stream::iter(vec![Err(e)]),
            }
        })
        .flatten();
        Ok(make_cooperative(Box::pin(RecordBatchStreamAdapter::new(
            schema, stream,
        ))))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}
