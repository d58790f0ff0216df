//! Operations endpoints: the server's own metrics and health checks.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AppState;

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let storage = state.store.storage();
    let series = storage.series_count();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(storage.memory_used(), series),
    )
}

/// `GET /-/healthy`: the process answers.
pub async fn healthy() -> &'static str {
    "MetricStore is Healthy.\n"
}

/// `GET /-/ready`: the store is open and taking writes.
pub async fn ready() -> &'static str {
    "MetricStore is Ready.\n"
}
