//! Write endpoints: Influx line protocol (v1 and v2).
//!
//! Line protocol writes are partial, as InfluxDB's: valid lines are stored and the
//! answer is `204 No Content`; when some lines are malformed the valid ones are still
//! stored and the answer is `400` with every bad line's number, column and reason.
//! Samples the store refuses one by one (too old, cardinality limits, invalid names)
//! are reported the same way, by series and reason, and the rest is stored. Over the
//! memory limit the whole request is refused (`429` with `Retry-After`): nothing is
//! stored, so the client's retry loses nothing.

use std::collections::HashMap;
use std::io::Read;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};
use crate::ingest::line_protocol::{self, Precision};
use crate::server::metrics::{Protocol, Rejection};

/// `POST /write?db=..&precision=n|u|ms|s` (InfluxDB 1.x) and
/// `POST /api/v2/write?bucket=..&precision=ns|us|ms|s` (InfluxDB 2.x): the database or
/// bucket is ignored (one store), the precision is honoured.
pub async fn influx(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    write_lines(state, &params, &headers, body).await
}

/// The body, gunzipped if `Content-Encoding: gzip`, refused past `limit` bytes.
pub(super) fn decoded_body(
    headers: &HeaderMap,
    body: Bytes,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity");
    match encoding {
        "identity" | "" => Ok(body),
        "gzip" => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&body[..])
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| ApiError::bad_request(format!("invalid gzip body: {e}")))?;
            if out.len() > limit {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("decompressed body is larger than the limit of {limit} bytes"),
                ));
            }
            Ok(out.into())
        }
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported Content-Encoding {other:?}: use gzip or identity"),
        )),
    }
}

async fn write_lines(
    state: AppState,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let precision = match params.get("precision") {
        None => Precision::Nanosecond,
        Some(p) => Precision::parse(p).map_err(|e| ApiError::bad_request(e.to_string()))?,
    };
    let body = decoded_body(headers, body, state.config.max_body_bytes)?;
    let text = std::str::from_utf8(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "body is not UTF-8 at byte offset {}",
            e.valid_up_to()
        ))
    })?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let parsed = line_protocol::parse(text, precision, now_ms);
    let samples = parsed.batch.sample_count();
    let store = state.store.clone();
    let batch = parsed.batch;
    let (batch, result) = tokio::task::spawn_blocking(move || {
        let result = store.write_partial(&batch);
        (batch, result)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let refused = match result {
        Ok(refused) => refused,
        Err(e) => {
            let reason = Rejection::of(&e);
            state.metrics.rejected(reason, samples);
            let mut error = ApiError::from(e);
            if reason == Rejection::MemoryLimit {
                // Influx clients retry 429 with backoff; 503 is for remote_write.
                error = ApiError::new(StatusCode::TOO_MANY_REQUESTS, error.message).retry_after(5);
            }
            return Err(error);
        }
    };
    let (refused_rows, refused_samples) = refused_counts(&state, &batch, &refused);
    state
        .metrics
        .ingested(Protocol::LineProtocol, samples - refused_samples);
    if parsed.errors.is_empty() && refused.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    state
        .metrics
        .rejected(Rejection::Malformed, parsed.errors.len());
    let mut lines: Vec<String> = parsed.errors.iter().map(|e| e.to_string()).collect();
    lines.extend(refused.iter().map(|(_, e)| e.to_string()));
    let written = parsed.points.saturating_sub(refused_rows);
    let body = serde_json::json!({
        "code": "invalid",
        "message": format!(
            "partial write: {written} points written, {} rejected: {}",
            lines.len(),
            lines.join("; ")
        ),
        "written": written,
        "errors": lines,
    });
    let mut response = (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    // (Influx's own header for a write that stored part of the request.)
    response.headers_mut().insert(
        "X-Influxdb-Error",
        HeaderValue::from_static("partial write"),
    );
    Ok(response)
}

/// Counts refused items' rows and samples by reason in the server metrics; returns
/// the totals.
pub(super) fn refused_counts(
    state: &AppState,
    batch: &crate::WriteBatch,
    refused: &[(usize, crate::Error)],
) -> (usize, usize) {
    let (mut rows, mut samples) = (0, 0);
    for (i, e) in refused {
        if let Some(item) = batch.items().get(*i) {
            let n = item.len() * item.fields().len();
            state.metrics.rejected(Rejection::of(e), n);
            rows += item.len();
            samples += n;
        }
    }
    (rows, samples)
}
