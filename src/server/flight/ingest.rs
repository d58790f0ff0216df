//! Bulk ingest: `DoPut` with `CommandStatementIngest` writes Arrow record batches into
//! the table the command names, through [`crate::ingest::arrow`] and
//! [`MetricStore::write`](crate::MetricStore::write), as every protocol does.
//!
//! Each record batch is one atomic write: it is stored whole or not at all. A
//! refused batch ends the call with its error, naming the batch and how many rows
//! before it were stored. Tables are created by their first write, so
//! `if_not_exist = CREATE` (or unspecified) is the norm; `FAIL` refuses an unknown
//! table. `if_exists = FAIL` refuses an existing table; `REPLACE` is refused (tables
//! are append-only).

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::sql::server::PeekableFlightDataStream;
use arrow_flight::sql::{CommandStatementIngest, TableExistsOption, TableNotExistOption};
use futures::{Stream, StreamExt, TryStreamExt};
use tonic::Status;

use super::FlightSql;
use super::error::{code_of, ingest_status};
use crate::ingest::arrow::to_write_batch;
use crate::query::{CATALOG, SCHEMA};
use crate::server::metrics::{Protocol, Rejection};

/// The record batches of a `DoPut` stream. Messages without an IPC header (a
/// descriptor-only first message, for example) carry no data and are skipped.
pub fn decode(
    data: PeekableFlightDataStream,
) -> impl Stream<Item = Result<RecordBatch, FlightError>> {
    let data = data
        .try_filter(|d| futures::future::ready(!d.data_header.is_empty()))
        .map_err(FlightError::from);
    FlightRecordBatchStream::new_from_flight_data(data)
}

fn check_target(svc: &FlightSql, command: &CommandStatementIngest) -> Result<(), Status> {
    if command.transaction_id.is_some() {
        return Err(Status::invalid_argument("transactions are not supported"));
    }
    if command.temporary {
        return Err(Status::invalid_argument(
            "temporary tables are not supported",
        ));
    }
    for (what, given, ours) in [
        ("catalog", &command.catalog, CATALOG),
        ("schema", &command.schema, SCHEMA),
    ] {
        if let Some(given) = given.as_deref()
            && !given.is_empty()
            && given != ours
        {
            return Err(Status::not_found(format!(
                "{what} {given:?} does not exist: tables live in {CATALOG}.{SCHEMA}"
            )));
        }
    }
    let options = command.table_definition_options.unwrap_or_default();
    let exists = svc.store.table_names().contains(&command.table);
    match (
        exists,
        TableNotExistOption::try_from(options.if_not_exist).unwrap_or_default(),
        TableExistsOption::try_from(options.if_exists).unwrap_or_default(),
    ) {
        (false, TableNotExistOption::Fail, _) => Err(Status::not_found(format!(
            "table {:?} not found (ingest mode append needs an existing table; \
             create_append creates it)",
            command.table
        ))),
        (true, _, TableExistsOption::Fail) => Err(Status::already_exists(format!(
            "table {:?} already exists (ingest mode create needs a new table; \
             append or create_append add to it)",
            command.table
        ))),
        (_, _, TableExistsOption::Replace) => Err(Status::invalid_argument(
            "ingest mode replace is not supported: tables are append-only",
        )),
        _ => Ok(()),
    }
}

/// `DoPut(CommandStatementIngest)`: returns the number of rows stored.
pub async fn ingest(
    svc: &FlightSql,
    command: CommandStatementIngest,
    data: PeekableFlightDataStream,
) -> Result<i64, Status> {
    check_target(svc, &command)?;
    let table: Arc<str> = command.table.into();
    let mut batches = std::pin::pin!(decode(data));
    let mut stored = 0usize;
    let mut index = 0usize;
    while let Some(batch) = batches.next().await {
        let batch = batch.map_err(|e| {
            svc.metrics.rejected(Rejection::Malformed, 0);
            Status::invalid_argument(format!("record batch {index}: {e}"))
        })?;
        let rows = batch.num_rows();
        let write = to_write_batch(&table, &batch).map_err(|e| {
            svc.metrics.rejected(Rejection::Malformed, rows);
            ingest_status(index, e)
        })?;
        let samples = write.sample_count();
        let store = svc.store.clone();
        let result = tokio::task::spawn_blocking(move || store.write(&write))
            .await
            .map_err(|e| Status::internal(format!("write task failed: {e}")))?;
        if let Err(e) = result {
            svc.metrics.rejected(Rejection::of(&e), samples);
            return Err(Status::new(
                code_of(&e),
                format!("record batch {index} ({stored} rows before it were stored): {e}"),
            ));
        }
        svc.metrics.ingested(Protocol::Flight, samples);
        stored += rows;
        index += 1;
    }
    Ok(stored as i64)
}
