//! One table over both tiers: the hot scan from the manifest's `tiered_until` on, and
//! a Parquet scan over the cold files the query's time range selects.
//!
//! ```text
//!  TieredExec (holds the planned manifest until the plan is done)
//!    └─ UnionExec
//!        ├─ Projection (tags only the cold files have read as NULL)
//!        │    └─ HotScanExec   time >= tiered_until, tag/time filters exact; fails
//!        │                     if the manifest moved before its snapshot was taken
//!        └─ Projection └─ FilterExec (every filter, exact)
//!             └─ DataSourceExec: Parquet, files outside the range never opened,
//!                row groups and pages pruned by the predicate
//! ```
//! Schemas are reconciled by name: a column the hot tier or a file lacks reads as
//! NULL. Tag and time filters are reported `Exact`: the hot scan applies them through
//! the index, the cold branch through its `FilterExec`.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, col, lit};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{Column, Literal};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};

use super::exec::SnapshotCheck;
use super::provider::HotTable;
use super::pushdown::{Pushed, ScanFilters, classify};
use crate::model::TIME_COLUMN;
use crate::query::options::QueryOptions;
use crate::storage::{Storage, tag_type, time_type};
use crate::tier::{ColdTier, Manifest, TableManifest};

/// A table with rows in the cold tier (and maybe in memory).
#[derive(Debug)]
pub struct TieredTable {
    name: String,
    hot: Option<HotTable>,
    cold: Arc<ColdTier>,
    manifest: Arc<Manifest>,
    schema: SchemaRef,
    tags: Vec<String>,
    fields: Vec<String>,
}

impl TieredTable {
    /// The table `name`, if the cold tier holds part of it.
    pub fn new(storage: Arc<Storage>, cold: Arc<ColdTier>, name: &str) -> Option<TieredTable> {
        let manifest = cold.manifest();
        let entry = manifest.tables.get(name)?;
        let hot = HotTable::new(storage, name);
        let mut tags: Vec<String> = hot.as_ref().map(|h| h.tags().to_vec()).unwrap_or_default();
        let mut fields: Vec<String> = hot
            .as_ref()
            .map(|h| h.fields().to_vec())
            .unwrap_or_default();
        for t in &entry.tags {
            if !tags.contains(t) {
                tags.push(t.clone());
            }
        }
        for f in &entry.fields {
            if !fields.contains(f) {
                fields.push(f.clone());
            }
        }
        let mut columns: Vec<Field> = tags
            .iter()
            .map(|t| Field::new(t, tag_type(), true))
            .collect();
        columns.push(Field::new(TIME_COLUMN, time_type(), false));
        columns.extend(
            fields
                .iter()
                .map(|f| Field::new(f, DataType::Float64, true)),
        );
        Some(TieredTable {
            name: name.to_string(),
            hot,
            cold,
            manifest,
            schema: Arc::new(Schema::new(columns)),
            tags,
            fields,
        })
    }

    /// The table's part of the manifest this table was planned with.
    pub(crate) fn entry(&self) -> Option<&TableManifest> {
        self.manifest.tables.get(&self.name)
    }

    /// The manifest this table was planned with.
    pub(crate) fn manifest(&self) -> Arc<Manifest> {
        self.manifest.clone()
    }

    /// The cold tier.
    pub(crate) fn cold(&self) -> Arc<ColdTier> {
        self.cold.clone()
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Tag columns, hot and cold.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    /// Field columns, hot and cold.
    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// The retention policies in force that can apply to this table's series.
    pub(crate) fn policies(&self) -> Vec<crate::tier::RetentionPolicy> {
        let config = self.cold.config();
        config
            .policies
            .for_table(&self.name)
            .into_iter()
            .cloned()
            .collect()
    }
}

/// `expr` with unqualified column references, to resolve against a bare schema.
pub(super) fn unqualified(expr: &Expr) -> DfResult<Expr> {
    expr.clone()
        .transform_up(|e| match e {
            Expr::Column(c) => Ok(Transformed::yes(Expr::Column(
                datafusion::common::Column::new_unqualified(c.name),
            ))),
            other => Ok(Transformed::no(other)),
        })
        .map(|t| t.data)
}

/// A Parquet source over the cold tier's store that keeps file footers (metadata and
/// page indexes) in the session's file metadata cache, so that a query does not read
/// and decode the footers of the files the previous query opened. Cold files are never
/// rewritten in place (new contents get new names), and the cache checks the size.
pub(super) fn cached_parquet(
    state: &dyn Session,
    schema: SchemaRef,
    cold: &ColdTier,
) -> ParquetSource {
    let cache = state.runtime_env().cache_manager.get_file_metadata_cache();
    let (store, _) = cold.store();
    ParquetSource::new(schema).with_parquet_file_reader_factory(Arc::new(
        CachedParquetFileReaderFactory::new(store.clone(), cache),
    ))
}

/// Column names `expr` refers to.
fn columns_of(expr: &Expr) -> Vec<String> {
    let mut out = Vec::new();
    let _ = expr.apply(|e| {
        if let Expr::Column(c) = e {
            out.push(c.name.clone());
        }
        Ok(TreeNodeRecursion::Continue)
    });
    out
}

/// Projects `input` (whose columns are a subset of `full`, by name) onto `wanted`
/// columns of `full`, filling the missing ones with typed NULLs.
fn reconcile(
    input: Arc<dyn ExecutionPlan>,
    full: &Schema,
    wanted: &[usize],
) -> DfResult<Arc<dyn ExecutionPlan>> {
    let have = input.schema();
    let exprs: Vec<(Arc<dyn PhysicalExpr>, String)> = wanted
        .iter()
        .map(|&i| {
            let field = full.field(i);
            let expr: Arc<dyn PhysicalExpr> = match have.index_of(field.name()) {
                Ok(j) => Arc::new(Column::new(field.name(), j)),
                Err(_) => Arc::new(Literal::new(ScalarValue::try_from(field.data_type())?)),
            };
            Ok((expr, field.name().clone()))
        })
        .collect::<DfResult<_>>()?;
    Ok(Arc::new(ProjectionExec::try_new(exprs, input)?))
}

#[async_trait]
impl TableProvider for TieredTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Exact only where the hot scan takes the filter exactly too (every column
        // known to it); the cold branch filters exactly in any case.
        let hot_tags = self.hot.as_ref().map(|h| h.tags()).unwrap_or_default();
        let hot_fields = self.hot.as_ref().map(|h| h.fields()).unwrap_or_default();
        Ok(filters
            .iter()
            .map(|f| match classify(f, hot_tags, hot_fields) {
                Some(Pushed::Tags(_) | Pushed::Time(_)) => TableProviderFilterPushDown::Exact,
                _ => TableProviderFilterPushDown::Inexact,
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let Some(entry) = self.entry() else {
            return Err(DataFusionError::Internal(format!(
                "table {} left the cold tier during planning",
                self.name
            )));
        };
        let tiered_until = entry.tiered_until;
        let all: Vec<usize> = (0..self.schema.fields().len()).collect();
        let wanted: Vec<usize> = projection.cloned().unwrap_or(all);
        let filters: Vec<Expr> = filters.iter().map(unqualified).collect::<DfResult<_>>()?;
        // Columns read: the projection plus whatever the filters need.
        let mut needed = wanted.clone();
        for f in &filters {
            for c in columns_of(f) {
                if let Ok(i) = self.schema.index_of(&c)
                    && !needed.contains(&i)
                {
                    needed.push(i);
                }
            }
        }
        let df_schema = DFSchema::try_from(self.schema.as_ref().clone())?;
        let predicate = filters.iter().cloned().reduce(Expr::and);
        let mut branches: Vec<Arc<dyn ExecutionPlan>> = Vec::new();

        if let Some(hot) = &self.hot {
            let hot_schema = hot.schema();
            let hot_has = |e: &Expr| columns_of(e).iter().all(|c| hot_schema.index_of(c).is_ok());
            let mut hot_filters: Vec<Expr> =
                filters.iter().filter(|f| hot_has(f)).cloned().collect();
            hot_filters.push(
                col(TIME_COLUMN).gt_eq(lit(ScalarValue::TimestampMillisecond(
                    Some(tiered_until),
                    Some("UTC".into()),
                ))),
            );
            let hot_proj: Vec<usize> = needed
                .iter()
                .filter_map(|&i| hot_schema.index_of(self.schema.field(i).name()).ok())
                .collect();
            // Checked when the hot snapshot is taken, wherever the optimizer puts the
            // scan: the plan reads rows before `tiered_until` from its manifest's files
            // and the rest from memory, which is right as long as memory still holds
            // every row from `tiered_until` on. A later commit that has not dropped
            // its rows yet changes nothing (the plan reads none of its files).
            let manifest = self.manifest.clone();
            let check = SnapshotCheck(Arc::new(move |snapshot| {
                let _planned_with = &manifest;
                match snapshot.tiered_until() {
                    Some(now) if now > tiered_until => Err(crate::Error::InvalidWrite(format!(
                        "the cold tier dropped hot rows up to {now} ms while this query was \
                         planned to read memory from {tiered_until} ms; run it again"
                    ))),
                    _ => Ok(()),
                }
            }));
            let scan =
                hot.scan_checked(state, Some(&hot_proj), &hot_filters, limit, Some(check))?;
            // Filters on columns the hot tier lacks: those columns are NULL here.
            let rest: Vec<Expr> = filters.iter().filter(|f| !hot_has(f)).cloned().collect();
            let mut plan = reconcile(scan, &self.schema, &needed)?;
            if let Some(rest) = rest.into_iter().reduce(Expr::and) {
                let expr = state.create_physical_expr(
                    rest,
                    &DFSchema::try_from(plan.schema().as_ref().clone())?,
                )?;
                plan = Arc::new(FilterExec::try_new(expr, plan)?);
            }
            branches.push(reconcile(plan, &self.schema, &wanted)?);
        }

        let range = ScanFilters::new(&filters, &self.tags, &self.fields).range;
        let files: Vec<PartitionedFile> = entry
            .files
            .iter()
            .filter(|f| f.max_time >= range.start && f.min_time < range.end.min(tiered_until))
            .map(|f| PartitionedFile::new(f.path.clone(), f.bytes))
            .collect();
        if !files.is_empty() {
            let (_, url) = self.cold.store();
            let mut source = cached_parquet(state, self.schema.clone(), &self.cold);
            if let Some(p) = &predicate {
                source = source.with_predicate(state.create_physical_expr(p.clone(), &df_schema)?);
            }
            let config = FileScanConfigBuilder::new(url.clone(), Arc::new(source))
                .with_file_group(FileGroup::new(files))
                .with_projection_indices(Some(needed.clone()))?
                .build();
            let mut plan: Arc<dyn ExecutionPlan> = Arc::new(TieredExec {
                input: DataSourceExec::from_data_source(config),
                role: Role::ColdScan,
            });
            if let Some(p) = predicate {
                let schema = DFSchema::try_from(plan.schema().as_ref().clone())?;
                let expr = state.create_physical_expr(p, &schema)?;
                plan = Arc::new(FilterExec::try_new(expr, plan)?);
            }
            branches.push(reconcile(plan, &self.schema, &wanted)?);
        }

        let input: Arc<dyn ExecutionPlan> = match branches.len() {
            0 => {
                let schema = Arc::new(self.schema.project(&wanted)?);
                Arc::new(datafusion::physical_plan::empty::EmptyExec::new(schema))
            }
            1 => branches.remove(0),
            _ => UnionExec::try_new(branches)?,
        };
        Ok(Arc::new(TieredExec {
            input,
            role: Role::Manifest(self.manifest.clone()),
        }))
    }
}

/// What a [`TieredExec`] adds to the plan below it, which it otherwise passes through.
#[derive(Debug, Clone)]
enum Role {
    /// Above the union of both tiers: holds the manifest the plan was made with, so
    /// that tiering waits for the plan to take its hot snapshot before dropping rows
    /// (see [`crate::tier`]).
    Manifest(Arc<Manifest>),
    /// Above the Parquet scan: names the cold tier in its errors, so that a query
    /// failing because the object store is unreachable says where the problem is.
    ColdScan,
}

/// A pass-through plan node of a tiered table; see [`Role`].
#[derive(Debug)]
pub struct TieredExec {
    input: Arc<dyn ExecutionPlan>,
    role: Role,
}

impl TieredExec {
    /// `input`, holding `manifest` until the plan is dropped (so that retention does
    /// not delete the files the plan reads before it has read them).
    pub(crate) fn holding(manifest: Arc<Manifest>, input: Arc<dyn ExecutionPlan>) -> Self {
        TieredExec {
            input,
            role: Role::Manifest(manifest),
        }
    }
}

impl DisplayAs for TieredExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.role {
            Role::Manifest(m) => write!(f, "TieredExec: manifest version {}", m.version),
            Role::ColdScan => write!(f, "ColdTierScan"),
        }
    }
}

impl ExecutionPlan for TieredExec {
    fn name(&self) -> &'static str {
        match self.role {
            Role::Manifest(_) => "TieredExec",
            Role::ColdScan => "ColdTierScan",
        }
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let input = children
            .pop()
            .ok_or_else(|| DataFusionError::Internal(format!("{} takes one child", self.name())))?;
        Ok(Arc::new(TieredExec {
            input,
            role: self.role.clone(),
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        if let Role::Manifest(_) = self.role {
            return self.input.execute(partition, context);
        }
        use futures::StreamExt;
        let cold = |e: DataFusionError| {
            DataFusionError::Execution(format!("cold tier (Parquet on the object store): {e}"))
        };
        let partial = QueryOptions::of(&context).filter(|o| o.partial_results);
        let schema = self.input.schema();
        let stream = match self.input.execute(partition, context) {
            Ok(stream) => stream,
            Err(e) => match &partial {
                Some(options) => {
                    options.warn(partial_warning(&cold(e)));
                    return Ok(Box::pin(
                        datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
                            schema,
                            futures::stream::empty(),
                        ),
                    ));
                }
                None => return Err(cold(e)),
            },
        };
        // After the first error the stream ends: with partial results the rows read
        // so far stand, and the warning says the answer is incomplete.
        let mut failed = false;
        let stream = stream.filter_map(move |item| {
            let out = match item {
                _ if failed => None,
                Ok(batch) => Some(Ok(batch)),
                Err(e) => {
                    failed = true;
                    match &partial {
                        Some(options) => {
                            options.warn(partial_warning(&cold(e)));
                            None
                        }
                        None => Some(Err(cold(e))),
                    }
                }
            };
            std::future::ready(out)
        });
        Ok(Box::pin(
            datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(schema, stream),
        ))
    }
}

fn partial_warning(e: &DataFusionError) -> String {
    format!("partial result: rows in the cold tier are missing ({e})")
}
