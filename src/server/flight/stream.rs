//! Query results onto the wire: a DataFusion record batch stream encoded as Flight
//! data, batch by batch, so a result is never held whole in memory; and the
//! `FlightInfo` that points a client at it.

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow_flight::encode::{DictionaryHandling, FlightDataEncoderBuilder};
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::ProstMessageExt;
use arrow_flight::{FlightDescriptor, FlightEndpoint, FlightInfo, Ticket};
use datafusion::execution::SendableRecordBatchStream;
use futures::{StreamExt, TryStreamExt};

use prost::Message;
use tonic::Status;

use super::FlightSql;
use super::error::query_status;

/// The stream `do_get` answers with.
pub type DoGetStream = <FlightSql as FlightService>::DoGetStream;

/// How tag dictionaries travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dictionaries {
    /// As dictionaries, resent with every batch (each batch has its own, small one).
    Keep,
    /// As plain strings, for clients without dictionary support.
    Hydrate,
}

impl Dictionaries {
    fn handling(self) -> DictionaryHandling {
        match self {
            Dictionaries::Keep => DictionaryHandling::Resend,
            Dictionaries::Hydrate => DictionaryHandling::Hydrate,
        }
    }

    /// The schema clients will see: with [`Dictionaries::Hydrate`], dictionary
    /// columns become their value type (as the encoder sends them).
    pub fn wire_schema(self, schema: &Schema) -> Schema {
        match self {
            Dictionaries::Keep => schema.clone(),
            Dictionaries::Hydrate => {
                let fields: Vec<Field> = schema
                    .fields()
                    .iter()
                    .map(|f| match f.data_type() {
                        DataType::Dictionary(_, value) => {
                            f.as_ref().clone().with_data_type(value.as_ref().clone())
                        }
                        _ => f.as_ref().clone(),
                    })
                    .collect();
                Schema::new_with_metadata(fields, schema.metadata().clone())
            }
        }
    }
}

/// How a query's stream is watched: its deadline, and where it is counted.
pub struct Watch {
    /// The query is cancelled (its DataFusion stream dropped) past this.
    pub timeout: std::time::Duration,
    /// `/metrics` counts the query when its stream ends.
    pub metrics: std::sync::Arc<crate::server::metrics::ServerMetrics>,
}

/// Counts the query into `/metrics` when its stream is dropped: finished, failed, or
/// abandoned by the client (which counts as failed).
struct Counted {
    watch: Watch,
    started: std::time::Instant,
    finished: bool,
}

impl Drop for Counted {
    fn drop(&mut self) {
        let elapsed = self.started.elapsed().as_secs_f64();
        self.watch.metrics.query(elapsed, self.finished);
    }
}

/// Encodes `batches` as Flight data as the client reads them; an execution error
/// ends the stream with its status, and so does the deadline (DEADLINE_EXCEEDED).
pub fn encode(
    batches: SendableRecordBatchStream,
    dictionaries: Dictionaries,
    watch: Watch,
) -> DoGetStream {
    let schema: SchemaRef = batches.schema();
    let deadline = tokio::time::Instant::now() + watch.timeout;
    let seconds = watch.timeout.as_secs();
    let counted = Counted {
        watch,
        started: std::time::Instant::now(),
        finished: false,
    };
    let batches = futures::stream::unfold(Some((batches, counted)), move |state| async move {
        let (mut batches, mut counted) = state?;
        match tokio::time::timeout_at(deadline, batches.next()).await {
            Err(_) => {
                let status = Status::deadline_exceeded(format!(
                    "query cancelled after the {seconds}s timeout"
                ));
                Some((Err(FlightError::Tonic(Box::new(status))), None))
            }
            Ok(None) => {
                counted.finished = true;
                None
            }
            Ok(Some(Err(e))) => Some((Err(FlightError::Tonic(Box::new(query_status(e)))), None)),
            Ok(Some(Ok(batch))) => Some((Ok(batch), Some((batches, counted)))),
        }
    });
    let data = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .with_dictionary_handling(dictionaries.handling())
        .build(batches)
        .map_err(Status::from);
    data.boxed()
}

/// Encodes one ready batch (metadata answers are small and built whole).
pub fn encode_one(
    batch: arrow::array::RecordBatch,
    dictionaries: Dictionaries,
) -> Result<DoGetStream, Status> {
    let schema = batch.schema();
    let data = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .with_dictionary_handling(dictionaries.handling())
        .build(futures::stream::once(async move { Ok(batch) }))
        .map_err(Status::from);
    Ok(data.boxed())
}

/// A `FlightInfo` whose single endpoint's ticket is `ticket` (a Flight SQL command
/// packed as `Any`), describing results of `schema`.
pub fn info(
    ticket: &impl ProstMessageExt,
    schema: &Schema,
    descriptor: FlightDescriptor,
) -> Result<FlightInfo, Status> {
    let ticket = Ticket::new(ticket.as_any().encode_to_vec());
    FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(format!("cannot encode the result schema: {e}")))
        .map(|info| {
            info.with_endpoint(FlightEndpoint::new().with_ticket(ticket))
                .with_descriptor(descriptor)
                // Results come in the order the query produced them.
                .with_ordered(true)
        })
}
