//! The HTTP API (axum): writes, SQL, the Prometheus metadata API, operations.
//!
//! | route | what |
//! |---|---|
//! | `POST /api/v1/write` | Prometheus remote_write 1.0 and 2.0 (snappy or zstd) |
//! | `POST /write`, `POST /api/v2/write` | Influx line protocol (v1 `db`/`precision`, v2 `bucket`/`precision`) |
//! | `GET/POST /api/v1/sql` | SQL (`q=` or the body); JSON, CSV or Arrow IPC |
//! | `GET/POST /api/v1/labels`, `/api/v1/label/{name}/values`, `/api/v1/series` | Prometheus metadata |
//! | `GET /api/v1/status/tsdb` | cardinality and storage totals |
//! | `GET /api/v1/rules`, `GET /api/v1/alerts` | alert rules and alerts (Prometheus JSON) |
//! | `PUT/DELETE /api/v1/admin/rules/{group}`, `POST /-/reload` | manage rule groups |
//! | `GET /metrics`, `/-/healthy`, `/-/ready` | operations |
//!
//! With `auth_token` configured every route but `/-/healthy` and `/-/ready` needs
//! `authorization: Bearer <token>` (401 otherwise), the same token Flight SQL checks.
//!
//! Handlers translate between HTTP and the [`MetricStore`] facade; they hold no
//! business logic.

mod alerts;
mod ops;
mod prom;
mod remote_write;
mod sql;
mod write;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::auth::Token;
use super::config::ServerConfig;
use super::metrics::ServerMetrics;
use crate::{Error, MetricStore};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub store: Arc<MetricStore>,
    /// The server's own counters.
    pub metrics: Arc<ServerMetrics>,
    /// The configuration in force.
    pub config: Arc<ServerConfig>,
    /// Alert rules, when alerting is enabled.
    pub alerting: Option<Arc<crate::alert::Alerting>>,
}

/// Refuses requests without the configured token (see [`crate::server::auth`]).
async fn authenticate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(token) = state.config.auth_token.as_deref().and_then(Token::new) else {
        return next.run(request).await;
    };
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or(""));
    match token.check(header) {
        Ok(()) => next.run(request).await,
        Err(e) => {
            let mut response =
                ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()).into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
    }
}

/// The routes over `state`.
pub fn router(state: AppState) -> Router {
    let limit = state.config.max_body_bytes;
    // Probes stay open so that orchestrators need no secret.
    let probes = Router::new()
        .route("/-/healthy", get(ops::healthy))
        .route("/-/ready", get(ops::ready));
    Router::new()
        .route("/api/v1/write", post(remote_write::write))
        .route("/write", post(write::influx))
        .route("/api/v2/write", post(write::influx))
        .route("/api/v1/sql", get(sql::query).post(sql::query))
        .route("/api/v1/labels", get(prom::labels).post(prom::labels))
        .route("/api/v1/label/{name}/values", get(prom::label_values))
        .route("/api/v1/series", get(prom::series).post(prom::series))
        .route("/api/v1/status/tsdb", get(prom::status_tsdb))
        .route("/api/v1/admin/checkpoint", post(ops::checkpoint))
        .route("/api/v1/admin/tier", post(ops::tier))
        .route(
            "/api/v1/admin/retention",
            get(ops::retention).put(ops::set_retention),
        )
        .route("/api/v1/rules", get(alerts::rules))
        .route("/api/v1/alerts", get(alerts::alerts))
        .route(
            "/api/v1/admin/rules/{group}",
            axum::routing::put(alerts::put_group).delete(alerts::delete_group),
        )
        .route("/-/reload", post(alerts::reload))
        .route("/metrics", get(ops::metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .merge(probes)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// An error answer: a status code and a message naming what was wrong.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    retry_after: Option<u32>,
}

impl ApiError {
    /// An error with `status`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Adds a `Retry-After` header of `seconds`.
    pub fn retry_after(mut self, seconds: u32) -> ApiError {
        self.retry_after = Some(seconds);
        self
    }

    /// 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

/// The status a store error deserves: the caller's fault is 4xx, a full store is 503
/// with `Retry-After` (remote_write senders retry those; 429 makes Prometheus drop the
/// batch), a bug is 500.
fn status_of(e: &Error) -> (StatusCode, Option<u32>) {
    use datafusion::error::DataFusionError as Df;
    let status = match e {
        Error::BatchItem { source, .. } => return status_of(source),
        Error::MemoryLimit { .. } | Error::Durability(_) | Error::ColdTier(_) => {
            return (StatusCode::SERVICE_UNAVAILABLE, Some(5));
        }
        Error::TableNotFound(_) => StatusCode::NOT_FOUND,
        Error::SeriesLimit { .. } | Error::TagValueLimit { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        Error::Query(q) => match q.find_root() {
            Df::ResourcesExhausted(_) => StatusCode::TOO_MANY_REQUESTS,
            Df::Plan(_) | Df::SQL(..) | Df::SchemaError(..) | Df::NotImplemented(_) => {
                StatusCode::BAD_REQUEST
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        },
        Error::Corrupt { .. } | Error::Arrow(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    (status, None)
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let (status, retry_after) = status_of(&e);
        ApiError {
            status,
            message: e.to_string(),
            retry_after,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "status": "error",
            "errorType": error_type(self.status),
            "error": self.message,
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

fn error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 404 | 422 => "bad_data",
        401 => "unauthorized",
        429 | 503 => "unavailable",
        _ => "internal",
    }
}
