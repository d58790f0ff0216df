//! `POST /api/v1/write`: Prometheus remote_write 1.0 and 2.0.
//!
//! The version comes from `Content-Type`, the compression from `Content-Encoding`
//! (snappy, or zstd as vmagent sends). A request is all or nothing: a malformed body
//! is a `400` naming what and where, and nothing of it is stored. Over the memory
//! limit the answer is `503` with `Retry-After`, which Prometheus retries (a `429`
//! would make it drop the batch).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};
use crate::ingest::remote_write::{self, Version};
use crate::server::metrics::{Protocol, Rejection};

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Decodes and stores one remote_write request.
pub async fn write(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let bad = |e: remote_write::RemoteWriteError| ApiError::bad_request(e.to_string());
    let version =
        remote_write::version_from_content_type(header_str(&headers, header::CONTENT_TYPE))
            .map_err(|e| ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, e.to_string()))?;
    let encoding =
        remote_write::encoding_from_header(header_str(&headers, header::CONTENT_ENCODING))
            .map_err(|e| ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, e.to_string()))?;
    let limit = state.config.max_body_bytes;
    let store = state.store.clone();
    let metrics = state.metrics.clone();
    // Decoding and storing are CPU work: keep them off the I/O threads.
    let outcome = tokio::task::spawn_blocking(move || {
        let decoded = remote_write::decode(&body, version, encoding, limit).map_err(|e| {
            metrics.rejected(Rejection::Malformed, 1);
            match e {
                remote_write::RemoteWriteError::TooLarge { .. } => {
                    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
                }
                e => bad(e),
            }
        })?;
        match store.write_partial(&decoded.batch) {
            Ok(refused) => Ok((decoded, refused)),
            Err(e) => {
                metrics.rejected(Rejection::of(&e), decoded.samples);
                Err(ApiError::from(e))
            }
        }
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    let (outcome, refused) = outcome;
    let (_, refused_samples) = super::write::refused_counts(&state, &outcome.batch, &refused);
    let written = outcome.samples.saturating_sub(refused_samples);
    state.metrics.ingested(Protocol::RemoteWrite, written);
    if !refused.is_empty() {
        // As Prometheus' own receiver: 400 for samples it will never take (a sender
        // must not retry them); everything else in the request is stored.
        let reasons: Vec<String> = refused
            .iter()
            .take(10)
            .map(|(_, e)| e.to_string())
            .collect();
        return Err(ApiError::bad_request(format!(
            "stored {written} samples, refused {refused_samples}: {}{}",
            reasons.join("; "),
            if refused.len() > reasons.len() {
                "; ..."
            } else {
                ""
            }
        )));
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    if version == Version::V2 {
        // Remote write 2.0 senders read what was stored from these headers.
        let h = response.headers_mut();
        h.insert(
            "X-Prometheus-Remote-Write-Samples-Written",
            HeaderValue::from(written),
        );
        h.insert(
            "X-Prometheus-Remote-Write-Histograms-Written",
            HeaderValue::from(0),
        );
        h.insert(
            "X-Prometheus-Remote-Write-Exemplars-Written",
            HeaderValue::from(0),
        );
    }
    Ok(response)
}
