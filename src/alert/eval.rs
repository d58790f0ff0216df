//! A rule planned once and executed at any evaluation time.
//!
//! ```text
//!  sql ──plan once──► LogicalPlan ──► ExecutionPlan (kept)
//!                        │  eval_time() bound to this rule's EvalClock
//!  evaluate(at): clock.set(at) ─► reset_plan_states(plan) ─► execute ─► rows
//!                                                 (scans snapshot the store here)
//! ```
//! Each rule gets its own copy of the store's session state in which `eval_time()` is
//! a volatile function reading the rule's [`EvalClock`]: nothing folds it at planning,
//! and one kept physical plan answers for every evaluation time. The scans
//! (`HotScanExec`, `latest('t')`) take their storage snapshot in `execute()`, so each
//! run sees the store as it is. Runs of one rule are serialised (the clock is per
//! rule); after a failed run the plan is rebuilt from the logical plan, so that no
//! half-consumed operator state can leak into the next run.

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, SchemaRef};
use datafusion::execution::context::SQLOptions;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::execution::{FunctionRegistry, TaskContext};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::execution_plan::reset_plan_states;
use datafusion::physical_plan::{ExecutionPlan, collect};

use super::AlertError;
use super::state::Labels;
use crate::MetricStore;
use crate::query::functions::clock::{EvalClock, EvalTime};

/// Which result columns are labels and which one is the value.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultShape {
    /// `(column index, name)` of every string column.
    pub labels: Vec<(usize, String)>,
    /// Index of the value column.
    pub value: usize,
}

impl ResultShape {
    /// Labels are the string columns; the value is the numeric column `value` or the
    /// only numeric column. Anything else (timestamps, booleans) is ignored.
    pub fn of(schema: &SchemaRef) -> Result<ResultShape, AlertError> {
        let mut labels = Vec::new();
        let mut numeric = Vec::new();
        for (i, f) in schema.fields().iter().enumerate() {
            if is_string(f.data_type()) {
                labels.push((i, f.name().clone()));
            } else if f.data_type().is_numeric() {
                numeric.push((i, f.name().as_str()));
            }
        }
        let value = match numeric.as_slice() {
            [] => {
                return Err(AlertError::plan(
                    "the result has no numeric column: an alert's value is the numeric \
                     column `value` (or the only numeric one)",
                ));
            }
            [(i, _)] => *i,
            many => match many.iter().find(|(_, n)| *n == "value") {
                Some((i, _)) => *i,
                None => {
                    let names: Vec<_> = many.iter().map(|(_, n)| *n).collect();
                    return Err(AlertError::plan(format!(
                        "the result has several numeric columns ({}): name the alert's \
                         value `value`",
                        names.join(", ")
                    )));
                }
            },
        };
        Ok(ResultShape { labels, value })
    }
}

fn is_string(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => is_string(v),
        _ => false,
    }
}

/// A planned rule query.
pub struct PlannedQuery {
    clock: Arc<EvalClock>,
    state: SessionState,
    logical: LogicalPlan,
    /// The kept physical plan; `None` after a failed run (rebuilt on the next).
    physical: tokio::sync::Mutex<Option<Arc<dyn ExecutionPlan>>>,
    task: Arc<TaskContext>,
    shape: ResultShape,
}

impl std::fmt::Debug for PlannedQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlannedQuery")
            .field("shape", &self.shape)
            .finish_non_exhaustive()
    }
}

impl PlannedQuery {
    /// Plans `sql` against `store`; a query that does not plan, modifies anything or
    /// has no numeric column is refused with the planner's message.
    pub async fn plan(store: &MetricStore, sql: &str) -> Result<PlannedQuery, AlertError> {
        let clock = Arc::new(EvalClock::default());
        let mut state = SessionStateBuilder::new_from_existing(store.session().state()).build();
        state
            .register_udf(Arc::new(EvalTime::bound(clock.clone())))
            .map_err(plan_error)?;
        let options = state.config_mut().options_mut();
        // Rules are small and many run side by side: one partition each avoids the
        // repartition and merge work a single query would use to fill the cores.
        options.execution.target_partitions = 1;
        // Dynamic filters hold state across executions of one plan.
        options
            .set(
                "datafusion.optimizer.enable_dynamic_filter_pushdown",
                "false",
            )
            .map_err(plan_error)?;
        let logical = state.create_logical_plan(sql).await.map_err(plan_error)?;
        SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
            .verify_plan(&logical)
            .map_err(plan_error)?;
        let logical = state.optimize(&logical).map_err(plan_error)?;
        let physical = state
            .query_planner()
            .create_physical_plan(&logical, &state)
            .await
            .map_err(plan_error)?;
        let shape = ResultShape::of(&physical.schema())?;
        let task = Arc::new(TaskContext::from(&state));
        Ok(PlannedQuery {
            clock,
            state,
            logical,
            physical: tokio::sync::Mutex::new(Some(physical)),
            task,
            shape,
        })
    }

    /// Which columns are labels and which is the value.
    pub fn shape(&self) -> &ResultShape {
        &self.shape
    }

    /// Runs the query as of `at_ms` and returns each row's labels and value.
    pub async fn evaluate(&self, at_ms: i64) -> Result<Vec<(Labels, f64)>, AlertError> {
        let mut kept = self.physical.lock().await;
        let plan = match kept.take() {
            Some(p) => reset_plan_states(p.clone()).map_err(AlertError::Eval)?,
            None => self
                .state
                .query_planner()
                .create_physical_plan(&self.logical, &self.state)
                .await
                .map_err(AlertError::Eval)?,
        };
        self.clock.set(at_ms);
        let batches = collect(plan.clone(), self.task.clone())
            .await
            .map_err(AlertError::Eval)?;
        let rows = self.rows(&batches)?;
        // Only a run that went well leaves the plan for the next one.
        *kept = Some(plan);
        Ok(rows)
    }

    fn rows(&self, batches: &[RecordBatch]) -> Result<Vec<(Labels, f64)>, AlertError> {
        let mut out = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for batch in batches {
            let labels = self
                .shape
                .labels
                .iter()
                .map(|(i, name)| {
                    let strings =
                        arrow::compute::cast(batch.column(*i), &DataType::Utf8).map_err(arrow)?;
                    Ok((name.as_str(), strings))
                })
                .collect::<Result<Vec<_>, AlertError>>()?;
            let values = arrow::compute::cast(batch.column(self.shape.value), &DataType::Float64)
                .map_err(arrow)?;
            let values = values.as_primitive::<Float64Type>();
            for row in 0..batch.num_rows() {
                let mut set = Labels::new();
                for (name, column) in &labels {
                    let column = column.as_string::<i32>();
                    // An empty or NULL label is no label, as in Prometheus.
                    if column.is_valid(row) && !column.value(row).is_empty() {
                        set.insert(name.to_string(), column.value(row).to_string());
                    }
                }
                let value = if values.is_valid(row) {
                    values.value(row)
                } else {
                    f64::NAN
                };
                if !seen.insert(set.clone()) {
                    return Err(AlertError::Eval(
                        datafusion::error::DataFusionError::Execution(format!(
                            "the result holds two rows with the labels {set:?}: each row must be one instance"
                        )),
                    ));
                }
                out.push((set, value));
            }
        }
        Ok(out)
    }
}

fn plan_error(e: datafusion::error::DataFusionError) -> AlertError {
    AlertError::plan(e.to_string())
}

fn arrow(e: arrow::error::ArrowError) -> AlertError {
    AlertError::Eval(e.into())
}

#[cfg(test)]
mod tests;
