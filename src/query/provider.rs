//! `HotTable`: a hot-tier table as a DataFusion `TableProvider`.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;

use super::exec::{HotScanExec, ScanSpec, SnapshotCheck, chunk_filter};
use super::pushdown::{Pushed, ScanFilters, classify};
use crate::model::TIME_COLUMN;
use crate::storage::Storage;

/// One table of the hot tier, with the schema it had when the query was planned.
#[derive(Debug)]
pub struct HotTable {
    storage: Arc<Storage>,
    name: String,
    schema: SchemaRef,
    tags: Vec<String>,
    fields: Vec<String>,
    after_snapshot: Option<SnapshotCheck>,
}

impl HotTable {
    /// The table `name` as it is now, or `None` if there is no such table.
    pub fn new(storage: Arc<Storage>, name: &str) -> Option<HotTable> {
        let schema = storage.schema(name).ok()?;
        let time = schema.index_of(TIME_COLUMN).ok()?;
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        Some(HotTable {
            storage,
            name: name.to_string(),
            tags: names[..time].to_vec(),
            fields: names[time + 1..].to_vec(),
            schema,
            after_snapshot: None,
        })
    }

    /// Runs `check` whenever a scan of this table takes its storage snapshot.
    pub(crate) fn with_check(mut self, check: SnapshotCheck) -> HotTable {
        self.after_snapshot = Some(check);
        self
    }
}

impl HotTable {
    /// The table's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Tag column names, in table order.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    /// Field column names, in table order.
    pub fn fields(&self) -> &[String] {
        &self.fields
    }
}

#[async_trait]
impl TableProvider for HotTable {
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
        Ok(filters
            .iter()
            .map(|f| match classify(f, &self.tags, &self.fields) {
                Some(Pushed::Tags(_) | Pushed::Time(_)) => TableProviderFilterPushDown::Exact,
                Some(Pushed::Fields(_)) => TableProviderFilterPushDown::Inexact,
                None => TableProviderFilterPushDown::Unsupported,
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
        self.scan_checked(
            state,
            projection,
            filters,
            limit,
            self.after_snapshot.clone(),
        )
    }
}

impl HotTable {
    /// [`TableProvider::scan`], running `check` right after the storage snapshot is
    /// taken at execution.
    pub(crate) fn scan_checked(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
        after_snapshot: Option<SnapshotCheck>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let schema = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => self.schema.clone(),
        };
        let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let filters = ScanFilters::new(filters, &self.tags, &self.fields);
        let sort_tags: Vec<String> = self
            .tags
            .iter()
            .filter(|t| columns.contains(t))
            .cloned()
            .collect();
        let all_tags = sort_tags.len() == self.tags.len();
        let filter = chunk_filter(&filters.bounds, &self.schema);
        let counts = self
            .storage
            .count_selection(
                &self.name,
                filters.range,
                filter.as_ref(),
                if all_tags { &[] } else { &sort_tags },
                |index| filters.select(index),
            )
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let time_ordered = columns.iter().any(|c| c == TIME_COLUMN) && (all_tags || counts.unique);
        let partitions = super::exec::scan_partitions(state, &counts, columns.len());
        let spec = ScanSpec {
            table: self.name.clone(),
            columns,
            sort_tags,
            filters,
            limit,
            counts,
            time_ordered,
            after_snapshot,
        };
        Ok(Arc::new(HotScanExec::new(
            self.storage.clone(),
            spec,
            schema,
            partitions,
        )))
    }
}
