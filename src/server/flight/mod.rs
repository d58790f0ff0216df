//! Arrow Flight SQL over gRPC: MetricStore's SQL for Arrow-native clients (ADBC,
//! JDBC, DBeaver, Grafana) and columnar bulk ingest.
//!
//! This module owns the gRPC listener and everything behind it. It implements
//! arrow-flight's [`FlightSqlService`](arrow_flight::sql::server::FlightSqlService)
//! itself rather than using `datafusion-flight-sql-server`, because ingest goes
//! through [`MetricStore::write`] (with the store's validation and atomicity) and
//! authentication is the token shared with the HTTP API.
//!
//! ```text
//!  gRPC :50051 ── Authenticate (bearer token, shared with HTTP) ── FlightSql
//!    ├─ statement   CommandStatementQuery ─► ticket (the SQL) ─► do_get streams batches
//!    ├─ prepared    Create/Close actions, DoPut binds $1.. ─► do_get
//!    ├─ metadata    GetCatalogs / GetDbSchemas / GetTables / GetTableTypes / GetSqlInfo
//!    └─ ingest      DoPut CommandStatementIngest ─► ingest::arrow ─► MetricStore::write
//! ```
//!
//! Results stream batch by batch from DataFusion to the client; nothing is
//! collected. Errors map to gRPC codes in [`error`].

mod error;
mod ingest;
mod metadata;
mod prepared;
mod service;
mod statement;
mod stream;

use std::future::Future;
use std::sync::Arc;

use arrow_flight::flight_service_server::FlightServiceServer;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Status};

pub use error::code_of;
pub use stream::Dictionaries;

use super::auth::Token;
use super::config::ServerConfig;
use super::metrics::ServerMetrics;
use crate::MetricStore;

/// The Flight SQL service over one store.
pub struct FlightSql {
    store: Arc<MetricStore>,
    metrics: Arc<ServerMetrics>,
    token: Option<Token>,
    dictionaries: Dictionaries,
    statements: prepared::Statements,
    sql_info: arrow_flight::sql::metadata::SqlInfoData,
    query_timeout: std::time::Duration,
    export_root: std::path::PathBuf,
}

impl FlightSql {
    /// A service answering from `store`, counting into `metrics`.
    pub fn new(
        store: Arc<MetricStore>,
        metrics: Arc<ServerMetrics>,
        config: &ServerConfig,
    ) -> Result<FlightSql, arrow_flight::error::FlightError> {
        Ok(FlightSql {
            store,
            metrics,
            token: config.auth_token.as_deref().and_then(Token::new),
            dictionaries: if config.flight.hydrate_dictionaries {
                Dictionaries::Hydrate
            } else {
                Dictionaries::Keep
            },
            statements: prepared::Statements::default(),
            sql_info: metadata::sql_info()?,
            query_timeout: std::time::Duration::from_secs(config.query_timeout_secs.max(1)),
            export_root: config.export_root(),
        })
    }

    /// The options of a client's statement.
    fn options(&self) -> crate::QueryOptions {
        crate::QueryOptions::client(self.export_root.clone())
    }

    /// How a query started now is watched.
    fn watch(&self) -> stream::Watch {
        stream::Watch {
            timeout: self.query_timeout,
            metrics: self.metrics.clone(),
        }
    }
}

/// Refuses requests without the configured bearer token (or Basic credentials with
/// the token as password, as the Flight handshake sends). Lets everything through
/// when no token is configured.
#[derive(Clone)]
pub struct Authenticate(Option<Token>);

impl Interceptor for Authenticate {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(token) = &self.0 else {
            return Ok(request);
        };
        let header = request
            .metadata()
            .get("authorization")
            .map(|v| v.to_str().unwrap_or(""));
        token
            .check(header)
            .map_err(|e| Status::unauthenticated(e.to_string()))?;
        Ok(request)
    }
}

/// The gRPC service: [`FlightSql`] behind [`Authenticate`].
pub type Service = InterceptedService<FlightServiceServer<FlightSql>, Authenticate>;

/// Builds the service for `config`.
pub fn service(
    store: Arc<MetricStore>,
    metrics: Arc<ServerMetrics>,
    config: &ServerConfig,
) -> Result<Service, arrow_flight::error::FlightError> {
    let token = config.auth_token.as_deref().and_then(Token::new);
    let flight = FlightSql::new(store, metrics, config)?;
    // Ingest batches and parameter sets may be large; the HTTP body limit applies.
    let server = FlightServiceServer::new(flight)
        .max_decoding_message_size(config.max_body_bytes)
        .max_encoding_message_size(usize::MAX);
    Ok(InterceptedService::new(server, Authenticate(token)))
}

/// HTTP/2 flow-control window per stream (the connection's is twice it).
const WINDOW_BYTES: u32 = 8 << 20;
/// Largest HTTP/2 frame the server accepts (the protocol allows up to 16 MiB - 1).
const MAX_FRAME_BYTES: u32 = 1 << 20;

/// Serves `service` on `listener` until `shutdown` completes, then finishes the
/// calls in flight.
pub async fn run(
    listener: tokio::net::TcpListener,
    service: Service,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    // Bulk ingest sends megabytes per call: HTTP/2's default 64 KiB windows make the
    // client wait for a window update every few frames, even on loopback.
    tonic::transport::Server::builder()
        .initial_stream_window_size(WINDOW_BYTES)
        .initial_connection_window_size(2 * WINDOW_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}
