//! `GET/POST /api/v1/sql`: SQL over HTTP.
//!
//! The statement comes from `q=` or the request body. The answer is JSON by default:
//! `{"columns": [..], "types": [..], "rows": [[..], ..]}` with timestamps as RFC 3339
//! strings and non-finite floats as `"NaN"`, `"+Inf"`, `"-Inf"` (as Prometheus writes
//! them); `format=csv` / `Accept: text/csv` gives CSV, `format=arrow` / `Accept:
//! application/vnd.apache.arrow.stream` an Arrow IPC stream. Errors are JSON with a
//! status code; a query past the configured timeout is cancelled.
//!
//! `partial_response=true` accepts an answer from the hot tier alone when the cold
//! tier fails; the answer then carries `"warnings": [..]` (and an
//! `X-MetricStore-Warning` header per warning, in every format).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float32Type, Float64Type, SchemaRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use serde_json::Value;

use super::{ApiError, AppState};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Format {
    Json,
    Csv,
    Arrow,
}

fn format(params: &HashMap<String, String>, headers: &HeaderMap) -> Result<Format, ApiError> {
    if let Some(f) = params.get("format") {
        return match f.as_str() {
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "arrow" => Ok(Format::Arrow),
            other => Err(ApiError::bad_request(format!(
                "unknown format {other:?}: use json, csv or arrow"
            ))),
        };
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    Ok(if accept.contains("text/csv") {
        Format::Csv
    } else if accept.contains("application/vnd.apache.arrow.stream") {
        Format::Arrow
    } else {
        Format::Json
    })
}

/// Runs the statement and answers in the requested format.
pub async fn query(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let format = format(&params, &headers)?;
    let sql = match params.get("q") {
        Some(q) => q.clone(),
        None => String::from_utf8(body.to_vec())
            .map_err(|e| ApiError::bad_request(format!("body is not UTF-8: {e}")))?,
    };
    if sql.trim().is_empty() {
        return Err(ApiError::bad_request(
            "no SQL: pass the statement as q= or as the request body",
        ));
    }
    let start = Instant::now();
    let timeout = Duration::from_secs(state.config.query_timeout_secs.max(1));
    let mut options = crate::QueryOptions::client(state.config.export_root());
    options.partial_results = matches!(
        params.get("partial_response").map(String::as_str),
        Some("true" | "1")
    );
    let run = async {
        let stream = state
            .store
            .sql_frame_with(&sql, &options)
            .await?
            .execute_stream()
            .await?;
        let schema = stream.schema();
        let batches: Vec<RecordBatch> = stream.try_collect().await.map_err(crate::Error::Query)?;
        Ok::<_, crate::Error>((schema, batches))
    };
    // Dropping the stream on timeout cancels the query's work.
    let result = tokio::time::timeout(timeout, run).await;
    let elapsed = start.elapsed().as_secs_f64();
    let (schema, batches) = match result {
        Err(_) => {
            state.metrics.query(elapsed, false);
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("query cancelled after the {}s timeout", timeout.as_secs()),
            ));
        }
        Ok(Err(e)) => {
            state.metrics.query(elapsed, false);
            return Err(e.into());
        }
        Ok(Ok(r)) => r,
    };
    state.metrics.query(elapsed, true);
    let warnings = options.warnings();
    let mut response = match format {
        Format::Json => {
            let mut json = to_json(&schema, &batches)?;
            if !warnings.is_empty() {
                json["warnings"] = Value::from(warnings.clone());
            }
            axum::Json(json).into_response()
        }
        Format::Csv => {
            let mut out = Vec::new();
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut out);
            for b in &batches {
                writer.write(b).map_err(internal)?;
            }
            drop(writer);
            ([(header::CONTENT_TYPE, "text/csv")], out).into_response()
        }
        Format::Arrow => {
            let mut out = Vec::new();
            let mut writer =
                arrow::ipc::writer::StreamWriter::try_new(&mut out, &schema).map_err(internal)?;
            for b in &batches {
                writer.write(b).map_err(internal)?;
            }
            writer.finish().map_err(internal)?;
            drop(writer);
            (
                [(header::CONTENT_TYPE, "application/vnd.apache.arrow.stream")],
                out,
            )
                .into_response()
        }
    };
    // Every format carries the warnings in a header too (JSON also in the body).
    for w in &warnings {
        if let Ok(value) = header::HeaderValue::from_str(&w.replace(['\r', '\n'], " ")) {
            response
                .headers_mut()
                .append("x-metricstore-warning", value);
        }
    }
    Ok(response)
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

fn float(v: f64) -> Value {
    if v.is_nan() {
        Value::from("NaN")
    } else if v == f64::INFINITY {
        Value::from("+Inf")
    } else if v == f64::NEG_INFINITY {
        Value::from("-Inf")
    } else {
        Value::from(v)
    }
}

/// The JSON answer; see the module docs for its shape.
fn to_json(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Value, ApiError> {
    let columns: Vec<Value> = schema
        .fields()
        .iter()
        .map(|f| Value::from(f.name().as_str()))
        .collect();
    let types: Vec<Value> = schema
        .fields()
        .iter()
        .map(|f| Value::from(f.data_type().to_string()))
        .collect();
    let options = FormatOptions::default();
    let mut rows = Vec::new();
    for batch in batches {
        let mut cells: Vec<Vec<Value>> =
            vec![Vec::with_capacity(batch.num_columns()); batch.num_rows()];
        for column in batch.columns() {
            let formatter = ArrayFormatter::try_new(column.as_ref(), &options).map_err(internal)?;
            for (r, row) in cells.iter_mut().enumerate() {
                row.push(if column.is_null(r) {
                    Value::Null
                } else {
                    match column.data_type() {
                        DataType::Float64 => float(column.as_primitive::<Float64Type>().value(r)),
                        DataType::Float32 => {
                            float(f64::from(column.as_primitive::<Float32Type>().value(r)))
                        }
                        DataType::Boolean => Value::from(column.as_boolean().value(r)),
                        t if t.is_integer() => {
                            serde_json::from_str(&formatter.value(r).to_string())
                                .unwrap_or_else(|_| Value::from(formatter.value(r).to_string()))
                        }
                        _ => Value::from(formatter.value(r).to_string()),
                    }
                });
            }
        }
        rows.extend(cells.into_iter().map(Value::from));
    }
    Ok(serde_json::json!({ "columns": columns, "types": types, "rows": rows }))
}
