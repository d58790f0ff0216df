//! Prepared statements: `CreatePreparedStatement` plans the SQL once and hands back a
//! handle with the result and parameter schemas; `DoPut` with parameter batches binds
//! `$1`, `$2`, .. (or named `$name`s, by column name) through DataFusion's
//! `with_param_values`; `DoGet` runs the bound plan; `ClosePreparedStatement` drops it.
//!
//! Handles live in memory, at most [`MAX_OPEN`] at a time: past that the least
//! recently used one is dropped, so clients that never close cannot exhaust memory.

use std::collections::HashMap;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::error::FlightError;
use arrow_flight::sql::server::PeekableFlightDataStream;
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, CommandPreparedStatementQuery,
    DoPutPreparedStatementResult,
};
use arrow_flight::{FlightDescriptor, FlightInfo, IpcMessage, SchemaAsIpc};
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::dataframe::DataFrame;
use datafusion::logical_expr::LogicalPlan;
use futures::TryStreamExt;
use parking_lot::Mutex;
use prost::bytes::Bytes;
use tonic::Status;

use super::FlightSql;
use super::error::{query_status, status};
use super::stream::{self, DoGetStream};

/// Prepared statements open at once, over all clients.
pub const MAX_OPEN: usize = 4096;

/// One prepared statement.
struct Prepared {
    plan: LogicalPlan,
    /// Placeholder ids in binding order (`$1`, `$2`, .. or names by first use).
    placeholders: Vec<(String, Option<DataType>)>,
    params: Option<ParamValues>,
    last_used: u64,
}

/// The open prepared statements.
#[derive(Default)]
pub struct Statements {
    inner: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    next: u64,
    clock: u64,
    open: HashMap<u64, Prepared>,
}

fn handle_of(bytes: &[u8]) -> Result<u64, Status> {
    let raw: [u8; 8] = bytes
        .try_into()
        .map_err(|_| Status::invalid_argument("malformed prepared statement handle"))?;
    Ok(u64::from_be_bytes(raw))
}

fn unknown() -> Status {
    Status::not_found("unknown prepared statement: it was closed, evicted, or the server restarted")
}

impl Statements {
    fn insert(&self, prepared: Prepared) -> u64 {
        let mut r = self.inner.lock();
        if r.open.len() >= MAX_OPEN
            && let Some(oldest) = r
                .open
                .iter()
                .min_by_key(|(_, p)| p.last_used)
                .map(|(h, _)| *h)
        {
            r.open.remove(&oldest);
        }
        r.next += 1;
        r.clock += 1;
        let handle = r.next;
        let clock = r.clock;
        r.open.insert(
            handle,
            Prepared {
                last_used: clock,
                ..prepared
            },
        );
        handle
    }

    /// The statement's plan with its parameters bound, marking it used.
    fn bound_plan(&self, handle: &[u8]) -> Result<LogicalPlan, Status> {
        let handle = handle_of(handle)?;
        let mut r = self.inner.lock();
        r.clock += 1;
        let clock = r.clock;
        let p = r.open.get_mut(&handle).ok_or_else(unknown)?;
        p.last_used = clock;
        match &p.params {
            Some(params) => p
                .plan
                .clone()
                .with_param_values(params.clone())
                .map_err(query_status),
            None if p.placeholders.is_empty() => Ok(p.plan.clone()),
            None => Err(Status::invalid_argument(format!(
                "the statement has {} parameter(s) ({}): bind them with DoPut before executing",
                p.placeholders.len(),
                p.placeholders
                    .iter()
                    .map(|(id, _)| id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }
}

fn ipc_schema(schema: &Schema) -> Result<Bytes, Status> {
    let IpcMessage(bytes) = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(|e: arrow::error::ArrowError| Status::internal(e.to_string()))?;
    Ok(bytes)
}

/// The number of a positional placeholder (`$3` is 3).
fn position(id: &str) -> Option<u64> {
    id.strip_prefix('$')?.parse().ok()
}

/// Placeholders of `plan` in binding order: `$1`, `$2`, .. numerically, then named
/// ones alphabetically.
fn placeholders(plan: &LogicalPlan) -> Result<Vec<(String, Option<DataType>)>, Status> {
    let mut ids: Vec<(String, Option<DataType>)> = plan
        .get_parameter_types()
        .map_err(query_status)?
        .into_iter()
        .collect();
    ids.sort_by_key(|(id, _)| match position(id) {
        Some(n) => (0, n, String::new()),
        None => (1, 0, id.clone()),
    });
    Ok(ids)
}

/// `CreatePreparedStatement`.
pub async fn create(
    svc: &FlightSql,
    request: ActionCreatePreparedStatementRequest,
) -> Result<ActionCreatePreparedStatementResult, Status> {
    if request.transaction_id.is_some() {
        return Err(Status::invalid_argument("transactions are not supported"));
    }
    let frame = svc
        .store
        .sql_frame_with(&request.query, &svc.options())
        .await
        .map_err(status)?;
    let dataset = svc.dictionaries.wire_schema(frame.schema().as_arrow());
    let plan = frame.into_unoptimized_plan();
    let placeholders = placeholders(&plan)?;
    let parameters = Schema::new(
        placeholders
            .iter()
            .map(|(id, t)| Field::new(id, t.clone().unwrap_or(DataType::Null), true))
            .collect::<Vec<_>>(),
    );
    let handle = svc.statements.insert(Prepared {
        plan,
        placeholders,
        params: None,
        last_used: 0,
    });
    Ok(ActionCreatePreparedStatementResult {
        prepared_statement_handle: Bytes::copy_from_slice(&handle.to_be_bytes()),
        dataset_schema: ipc_schema(&dataset)?,
        parameter_schema: ipc_schema(&parameters)?,
    })
}

/// `ClosePreparedStatement`.
pub fn close(svc: &FlightSql, request: ActionClosePreparedStatementRequest) -> Result<(), Status> {
    let handle = handle_of(&request.prepared_statement_handle)?;
    svc.statements.inner.lock().open.remove(&handle);
    // Closing twice, or after eviction, is harmless.
    Ok(())
}

/// Parameter values from one row of `batch`, cast to the types the plan expects
/// where it knows them (the planner reports a value it cannot use).
fn values(
    batch: &RecordBatch,
    placeholders: &[(String, Option<DataType>)],
) -> Result<ParamValues, Status> {
    let positional = placeholders.iter().all(|(id, _)| position(id).is_some());
    let expected = |id: &str| {
        placeholders
            .iter()
            .find(|(p, _)| p == id)
            .and_then(|(_, t)| t.clone())
    };
    let mut list = Vec::new();
    let mut named = Vec::new();
    for (i, (field, column)) in batch
        .schema()
        .fields()
        .iter()
        .zip(batch.columns())
        .enumerate()
    {
        let mut value = ScalarValue::try_from_array(column, 0).map_err(query_status)?;
        let id = if positional {
            format!("${}", i + 1)
        } else {
            format!("${}", field.name())
        };
        if let Some(t) = expected(&id)
            && !value.is_null()
            && value.data_type() != t
            && let Ok(cast) = value.cast_to(&t)
        {
            value = cast;
        }
        if positional {
            list.push(value);
        } else {
            named.push((field.name().clone(), value));
        }
    }
    Ok(if positional {
        ParamValues::from(list)
    } else {
        ParamValues::from(named)
    })
}

/// `DoPut(CommandPreparedStatementQuery)`: binds the parameter row sent.
pub async fn bind(
    svc: &FlightSql,
    command: CommandPreparedStatementQuery,
    data: PeekableFlightDataStream,
) -> Result<DoPutPreparedStatementResult, Status> {
    let handle = handle_of(&command.prepared_statement_handle)?;
    let batches: Vec<RecordBatch> = super::ingest::decode(data)
        .try_collect()
        .await
        .map_err(|e: FlightError| Status::invalid_argument(format!("parameters: {e}")))?;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Err(Status::invalid_argument("no parameter row was sent"));
    };
    if rows > 1 {
        return Err(Status::invalid_argument(format!(
            "{rows} parameter rows were sent: a query binds exactly one"
        )));
    }
    let mut r = svc.statements.inner.lock();
    let p = r.open.get_mut(&handle).ok_or_else(unknown)?;
    if batch.num_columns() != p.placeholders.len() {
        return Err(Status::invalid_argument(format!(
            "{} parameter(s) sent, the statement has {}",
            batch.num_columns(),
            p.placeholders.len()
        )));
    }
    p.params = Some(values(batch, &p.placeholders)?);
    Ok(DoPutPreparedStatementResult {
        prepared_statement_handle: Some(command.prepared_statement_handle),
    })
}

/// `GetFlightInfo(CommandPreparedStatementQuery)`.
pub async fn info(
    svc: &FlightSql,
    command: CommandPreparedStatementQuery,
    descriptor: FlightDescriptor,
) -> Result<FlightInfo, Status> {
    let plan = svc
        .statements
        .bound_plan(&command.prepared_statement_handle)?;
    let schema = svc.dictionaries.wire_schema(plan.schema().as_arrow());
    stream::info(&command, &schema, descriptor)
}

/// `DoGet(CommandPreparedStatementQuery)`.
pub async fn get(
    svc: &FlightSql,
    command: CommandPreparedStatementQuery,
) -> Result<DoGetStream, Status> {
    let plan = svc
        .statements
        .bound_plan(&command.prepared_statement_handle)?;
    let frame = DataFrame::new(svc.store.session().state(), plan);
    let batches = frame.execute_stream().await.map_err(query_status)?;
    Ok(stream::encode(batches, svc.dictionaries, svc.watch()))
}
