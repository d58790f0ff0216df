//! `rollup('table', 'level')`: a table's rollup rows of one level, straight from the
//! level's Parquet files (see [`crate::tier`]'s rollups for the columns).
//!
//! # Which queries use which level
//! Here the level is chosen explicitly, by name, in the query, so `EXPLAIN` shows the
//! level's files (`.../level=1h/...`) and the query never changes answers because a
//! level appeared or expired. Queries over the table itself use a level only for the
//! buckets whose raw rows retention deleted ([`super::LevelAggregateRule`], which
//! applies the table below automatically). Guidance for explicit use:
//! - bucket widths `W` that are a multiple of a level's width (and `date_bin`'s
//!   default origin, the Unix epoch) can use that level: `date_bin(W, time)` over bucket
//!   starts groups whole level buckets, so the answers equal the raw ones;
//! - use the coarsest such level whose retention (`keep_for`) still covers the range:
//!   fewer rows to read (one per series and bucket);
//! - ranges still within raw retention can use the raw table, which also covers the
//!   rows still in memory (rollups cover only tiered rows, before `tiered_until`).
//!
//! How each aggregate is answered from a level (per field `f`; rows are partial, so
//! always aggregate, even at the level's own width):
//!
//! | raw query | from a level |
//! |---|---|
//! | `count(f)` | `sum(f_count)` |
//! | `sum(f)` / `min(f)` / `max(f)` | `sum(f_sum)` / `min(f_min)` / `max(f_max)` |
//! | `avg(f)` | `sum(f_sum) / sum(f_count)` |
//! | `increase(f, time)`, `rate(f, time)` | `rollup_increase(...)`, `rollup_rate(...)` over `f_first, f_first_time, f_last, f_last_time, f_increase` |
//! | `percentile(f, q)` | `sketch_quantile(sketch_merge(f_sketch), q)` (relative error ≤ 1%) |
//! | `first(f, time)` / `last(f, time)` | `first(f_first, f_first_time)` / `last(f_last, f_last_time)` |
//!
//! Only series whose retention policy lists the level have rows in it. `time` is the
//! bucket start: a time filter keeps or drops whole buckets, so align its bounds to
//! the level's width.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl};
use datafusion::common::{DFSchema, ScalarValue, plan_err};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;

use arrow::datatypes::SchemaRef;

use super::pushdown::ScanFilters;
use super::tiered::{TieredExec, cached_parquet, unqualified};
use crate::tier::{ColdTier, LevelManifest, Manifest, level_schema};

/// The `rollup` table function (registered in every session; without a cold tier
/// every call is a planning error that says so).
#[derive(Debug)]
pub struct RollupFunction {
    cold: Option<Arc<ColdTier>>,
}

impl RollupFunction {
    /// `rollup(...)` over `cold`.
    pub fn new(cold: Option<Arc<ColdTier>>) -> RollupFunction {
        RollupFunction { cold }
    }
}

impl TableFunctionImpl for RollupFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        let (table, level) = match args.exprs() {
            [
                Expr::Literal(ScalarValue::Utf8(Some(t)), _),
                Expr::Literal(ScalarValue::Utf8(Some(l)), _),
            ] => (t, l),
            _ => {
                return plan_err!(
                    "rollup() takes two arguments: a table name and a level name as strings, \
                     e.g. rollup('cpu', '5m')"
                );
            }
        };
        let Some(cold) = &self.cold else {
            return plan_err!("rollup('{table}', '{level}'): this store has no cold tier");
        };
        let manifest = cold.manifest();
        let levels = manifest.tables.get(table).map(|t| &t.levels);
        let Some(found) = levels.and_then(|l| l.get(level)) else {
            let known: Vec<&String> = levels.map(|l| l.keys().collect()).unwrap_or_default();
            return plan_err!(
                "rollup('{table}', '{level}'): no such level; the table's levels: {known:?}"
            );
        };
        Ok(Arc::new(RollupTable::new(
            found.clone(),
            cold.clone(),
            manifest.clone(),
        )))
    }
}

/// One table's rollup rows of one level.
#[derive(Debug)]
pub struct RollupTable {
    level: LevelManifest,
    cold: Arc<ColdTier>,
    /// The manifest `level` comes from, held by the plan (see [`TieredExec::holding`]).
    manifest: Arc<Manifest>,
    schema: SchemaRef,
}

impl RollupTable {
    /// The rows of `level` (from `manifest`) on `cold`.
    pub(crate) fn new(
        level: LevelManifest,
        cold: Arc<ColdTier>,
        manifest: Arc<Manifest>,
    ) -> RollupTable {
        RollupTable {
            schema: level_schema(&level.tags, &level.fields),
            level,
            cold,
            manifest,
        }
    }
}

#[async_trait]
impl TableProvider for RollupTable {
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
        // Used to skip files and row groups; DataFusion still filters the rows.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let filters: Vec<Expr> = filters.iter().map(unqualified).collect::<DfResult<_>>()?;
        let range = ScanFilters::new(&filters, &self.level.tags, &[]).range;
        let files: Vec<PartitionedFile> = self
            .level
            .files
            .iter()
            .filter(|f| f.max_time >= range.start && f.min_time < range.end)
            .map(|f| PartitionedFile::new(f.path.clone(), f.bytes))
            .collect();
        if files.is_empty() {
            let schema = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => self.schema.clone(),
            };
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        let mut source = cached_parquet(state, self.schema.clone(), &self.cold);
        if let Some(p) = filters.into_iter().reduce(Expr::and) {
            let df_schema = DFSchema::try_from(self.schema.as_ref().clone())?;
            source = source.with_predicate(state.create_physical_expr(p, &df_schema)?);
        }
        let (_, url) = self.cold.store();
        // Level files are small (one per day): opening them is most of the work, so
        // spread them over the partitions.
        let n = state.config().target_partitions().clamp(1, files.len());
        let mut groups: Vec<Vec<PartitionedFile>> = vec![Vec::new(); n];
        for (i, f) in files.into_iter().enumerate() {
            groups[i % n].push(f);
        }
        let config = FileScanConfigBuilder::new(url.clone(), Arc::new(source))
            .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
            .with_projection_indices(projection.cloned())?
            .build();
        Ok(Arc::new(TieredExec::holding(
            self.manifest.clone(),
            DataSourceExec::from_data_source(config),
        )))
    }
}
