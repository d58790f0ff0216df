//! Operations endpoints: the server's own metrics and health checks.

use std::fmt::Write;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};
use crate::MetricStore;
use crate::server::retention::RetentionSettings;

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let storage = state.store.storage();
    let series = storage.series_count();
    let mut text = state.metrics.render(storage.memory_used(), series);
    durability_metrics(&state.store, &mut text);
    if let Some(alerting) = &state.alerting {
        alerting.render_metrics(&mut text);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

fn durability_metrics(store: &MetricStore, out: &mut String) {
    let (Some(report), Some(stats)) = (store.recovery(), store.durability_stats()) else {
        return;
    };
    let mut gauge = |name: &str, help: &str, kind: &str, value: f64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    gauge(
        "metricstore_wal_corrupt_records",
        "Damaged WAL records or checkpoints found at the last start; data after each was not recovered.",
        "gauge",
        report.corrupt.len() as f64,
    );
    gauge(
        "metricstore_wal_torn_records",
        "Torn final WAL records truncated at the last start.",
        "gauge",
        report.torn.len() as f64,
    );
    gauge(
        "metricstore_wal_replayed_records",
        "WAL records replayed at the last start.",
        "gauge",
        report.records_replayed as f64,
    );
    gauge(
        "metricstore_recovery_seconds",
        "Time the last start spent recovering.",
        "gauge",
        report.elapsed.as_secs_f64(),
    );
    gauge(
        "metricstore_wal_segments",
        "WAL segment files on disk.",
        "gauge",
        stats.wal_segments as f64,
    );
    gauge(
        "metricstore_checkpoints_total",
        "Checkpoints written since start.",
        "counter",
        stats.checkpoints as f64,
    );
    if let Some(last) = &stats.last_checkpoint {
        gauge(
            "metricstore_last_checkpoint_bytes",
            "Size of the last checkpoint file.",
            "gauge",
            last.bytes as f64,
        );
    }
}

/// `POST /api/v1/admin/checkpoint`: writes a checkpoint now and trims the WAL.
pub async fn checkpoint(State(state): State<AppState>) -> Result<Response, ApiError> {
    let store = state.store.clone();
    let info = tokio::task::spawn_blocking(move || store.checkpoint())
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    let body = match info {
        None => serde_json::json!({"status": "success", "data": null}),
        Some(i) => serde_json::json!({
            "status": "success",
            "data": {
                "file": i.path.display().to_string(),
                "baseSeq": i.base_seq,
                "bytes": i.bytes,
                "segmentsRemoved": i.segments_removed,
                "millis": i.elapsed.as_millis() as u64,
            }
        }),
    };
    Ok(axum::Json(body).into_response())
}

/// `GET /-/healthy`: the process answers.
pub async fn healthy() -> &'static str {
    "MetricStore is Healthy.\n"
}

/// `GET /-/ready`: the store is open and taking writes.
pub async fn ready() -> &'static str {
    "MetricStore is Ready.\n"
}

/// `POST /api/v1/admin/tier`: runs tiering now (`?now=<ms>` to tier as of another
/// time, for tests and backfills).
pub async fn tier(
    State(state): State<AppState>,
    axum::extract::Query(params): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let now = match params.get("now") {
        None => crate::server::now_ms(),
        Some(v) => v
            .parse()
            .map_err(|_| ApiError::bad_request(format!("now={v:?} is not milliseconds")))?,
    };
    let report = state.store.run_tiering(now).await?;
    let body = match report {
        None => serde_json::json!({"status": "error", "error": "no cold tier configured"}),
        Some(r) => serde_json::json!({
            "status": "success",
            "data": {
                "tables": r.tables,
                "rows": r.rows,
                "files": r.files,
                "bytes": r.bytes,
                "millis": r.elapsed.as_millis() as u64,
            }
        }),
    };
    Ok(axum::Json(body).into_response())
}

fn cold(state: &AppState) -> Result<&std::sync::Arc<crate::ColdTier>, ApiError> {
    state
        .store
        .cold()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no cold tier configured"))
}

/// `GET /api/v1/admin/retention`: the policies in force, as
/// [`RetentionSettings`] (the `[tier.retention]` section of the config file).
pub async fn retention(State(state): State<AppState>) -> Result<Response, ApiError> {
    let body = RetentionSettings::from_policies(&cold(&state)?.config().policies);
    Ok(axum::Json(serde_json::json!({"status": "success", "data": body})).into_response())
}

/// `PUT /api/v1/admin/retention`: replaces the policies; applies from the next run.
pub async fn set_retention(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let settings: RetentionSettings = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid retention policies: {e}")))?;
    let policies = settings
        .to_policies()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    cold(&state)?.set_policies(policies);
    retention(State(state)).await
}
