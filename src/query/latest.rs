//! `latest('table')`: the newest row of every series, from the per-series latest
//! sample, without decoding a chunk. This is how MetricStore answers TSBS' lastpoint:
//! `SELECT * FROM latest('cpu')`.
//!
//! The rows are read when the plan *executes*, not when it is planned: a plan kept
//! and run again (an alert rule, a prepared statement) sees the store as it is at each
//! run. The schema is the table's at planning time; tag columns added since are left
//! out, so a kept plan never changes shape.
//!
//! Filters are pushed down (inexactly; DataFusion still applies them): tag
//! predicates pick series through the label index and comparisons of fields with
//! constants skip series whose newest value fails them, so a threshold rule over
//! 100,000 series builds rows only for the few that cross it.

use std::fmt;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, new_null_array};
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{ScalarValue, plan_err};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    ReplaceChildrenOptions, SendableRecordBatchStream,
};

use super::pushdown::ScanFilters;
use crate::model::TIME_COLUMN;
use crate::storage::{LatestBound, Storage};

/// The `latest` table function.
#[derive(Debug)]
pub struct LatestFunction {
    storage: Arc<Storage>,
}

impl LatestFunction {
    /// `latest(...)` over `storage`.
    pub fn new(storage: Arc<Storage>) -> LatestFunction {
        LatestFunction { storage }
    }
}

impl TableFunctionImpl for LatestFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        let table = match args.exprs() {
            [Expr::Literal(ScalarValue::Utf8(Some(t)), _)] => t,
            _ => {
                return plan_err!(
                    "latest() takes one argument: a table name as a string, e.g. latest('cpu')"
                );
            }
        };
        let schema = self
            .storage
            .schema(table)
            .map_err(|e| DataFusionError::Plan(format!("latest('{table}'): {e}")))?;
        Ok(Arc::new(LatestTable {
            storage: self.storage.clone(),
            table: table.clone(),
            schema,
        }))
    }
}

/// The provider `latest('t')` resolves to: a schema now, rows at execution.
#[derive(Debug)]
struct LatestTable {
    storage: Arc<Storage>,
    table: String,
    schema: SchemaRef,
}

#[async_trait]
impl TableProvider for LatestTable {
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
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let names: Vec<String> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let time = names
            .iter()
            .position(|n| n == TIME_COLUMN)
            .unwrap_or(names.len());
        let fields = names.get(time + 1..).unwrap_or_default();
        let pushed = ScanFilters::new(filters, &names[..time], fields);
        let bounds = pushed.bounds.iter().filter_map(|b| {
            use std::cmp::Ordering::{Equal, Greater, Less};
            let (op, or_equal, negated) = match b.op {
                Operator::Gt => (Greater, false, false),
                Operator::GtEq => (Greater, true, false),
                Operator::Lt => (Less, false, false),
                Operator::LtEq => (Less, true, false),
                Operator::Eq => (Equal, false, false),
                Operator::NotEq => (Equal, false, true),
                _ => return None,
            };
            Some(LatestBound {
                field: b.field.clone(),
                op,
                or_equal,
                negated,
                value: b.value,
            })
        });
        let bounds: Vec<LatestBound> = bounds.collect();
        let columns: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let schema = Arc::new(self.schema.project(&columns)?);
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(Arc::new(LatestExec {
            storage: self.storage.clone(),
            table: self.table.clone(),
            filters: pushed,
            bounds,
            schema,
            properties: Arc::new(properties),
        }))
    }
}

/// Reads the newest row of every series of `table` when executed.
#[derive(Debug)]
struct LatestExec {
    storage: Arc<Storage>,
    table: String,
    /// Tag predicates, resolved through the index at each execution.
    filters: ScanFilters,
    /// Field comparisons the newest values must pass.
    bounds: Vec<LatestBound>,
    /// The planned (projected) schema; every execution answers in it.
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl LatestExec {
    /// The table's newest rows, in the planned schema: columns matched by name, a
    /// column the table no longer has (impossible today) reads as NULL.
    fn read(&self) -> DfResult<RecordBatch> {
        let batch = self
            .storage
            .latest_where(
                &self.table,
                |index| self.filters.select(index),
                &self.bounds,
            )
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let rows = batch.num_rows();
        let columns: Vec<ArrayRef> = self
            .schema
            .fields()
            .iter()
            .map(|f| match batch.column_by_name(f.name()) {
                Some(c) if c.data_type() == f.data_type() => c.clone(),
                _ => new_null_array(f.data_type(), rows),
            })
            .collect();
        let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &options,
        )?)
    }
}

impl DisplayAs for LatestExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LatestExec: table={}", self.table)
    }
}

impl ExecutionPlan for LatestExec {
    fn name(&self) -> &'static str {
        "LatestExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
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
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        _partition: usize,
        _context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        // The snapshot is taken here, so that each execution sees the store as it is.
        let batch = self.read();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            futures::stream::once(async move { batch }),
        )))
    }
}
