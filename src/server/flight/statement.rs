//! Statement queries: `CommandStatementQuery` plans the SQL (so mistakes surface at
//! `GetFlightInfo`) and answers with a ticket holding the SQL itself; `DoGet` on the
//! ticket plans it again and streams the result. Tickets are stateless: the server
//! keeps nothing between the two calls.

use arrow_flight::sql::{CommandStatementQuery, TicketStatementQuery};
use arrow_flight::{FlightDescriptor, FlightInfo};
use tonic::Status;

use super::FlightSql;
use super::error::{query_status, status};
use super::stream::{self, DoGetStream};

fn no_transactions(transaction_id: &Option<prost::bytes::Bytes>) -> Result<(), Status> {
    match transaction_id {
        Some(_) => Err(Status::invalid_argument(
            "transactions are not supported: run the statement without one",
        )),
        None => Ok(()),
    }
}

/// `GetFlightInfo(CommandStatementQuery)`.
pub async fn info(
    svc: &FlightSql,
    query: CommandStatementQuery,
    descriptor: FlightDescriptor,
) -> Result<FlightInfo, Status> {
    no_transactions(&query.transaction_id)?;
    let frame = svc
        .store
        .sql_frame_with(&query.query, &svc.options())
        .await
        .map_err(status)?;
    let schema = svc.dictionaries.wire_schema(frame.schema().as_arrow());
    let ticket = TicketStatementQuery {
        statement_handle: query.query.into_bytes().into(),
    };
    stream::info(&ticket, &schema, descriptor)
}

/// `DoGet(TicketStatementQuery)`.
pub async fn get(svc: &FlightSql, ticket: TicketStatementQuery) -> Result<DoGetStream, Status> {
    let sql = std::str::from_utf8(&ticket.statement_handle)
        .map_err(|_| Status::invalid_argument("the ticket is not a statement of this server"))?;
    // The ticket is the client's to forge: plan it as any client statement.
    let frame = svc
        .store
        .sql_frame_with(sql, &svc.options())
        .await
        .map_err(status)?;
    let batches = frame.execute_stream().await.map_err(query_status)?;
    Ok(stream::encode(batches, svc.dictionaries, svc.watch()))
}
