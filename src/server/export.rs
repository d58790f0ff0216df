//! `metricstore export`: one table's rows in a time range to a Parquet file at a URL
//! (a local path or `s3://bucket/key`), through a running server.
//!
//! The command asks the server (`POST /api/v1/sql`) to run
//! `COPY (SELECT * FROM t WHERE time >= start AND time < end ORDER BY ...) TO 'url'`,
//! so the export reads both tiers under one snapshot, and uses the server's object
//! store credentials; the data directory stays owned by the one server process. The
//! server's `query_timeout_secs` bounds the export.

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// What to export.
#[derive(Debug, Clone, PartialEq)]
pub struct Export {
    /// The table.
    pub table: String,
    /// First time included: Unix milliseconds or RFC 3339.
    pub start: Option<String>,
    /// First time excluded: Unix milliseconds or RFC 3339.
    pub end: Option<String>,
    /// Where the Parquet file goes.
    pub to: String,
}

/// A time bound as Unix milliseconds; the error names the flag.
fn millis(flag: &str, value: &str) -> Result<i64, String> {
    if let Ok(ms) = value.parse::<i64>() {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_millis())
        .map_err(|e| format!("--{flag} {value:?}: neither Unix milliseconds nor RFC 3339 ({e})"))
}

fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

impl Export {
    /// The `COPY` statement the server runs.
    pub fn statement(&self) -> Result<String, String> {
        if self.to.trim().is_empty() {
            return Err("--to: no destination".into());
        }
        let mut conditions = Vec::new();
        if let Some(start) = &self.start {
            conditions.push(format!(
                "time >= to_timestamp_millis({})",
                millis("start", start)?
            ));
        }
        if let Some(end) = &self.end {
            conditions.push(format!(
                "time < to_timestamp_millis({})",
                millis("end", end)?
            ));
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        Ok(format!(
            "COPY (SELECT * FROM {}{filter}) TO {} STORED AS PARQUET",
            quote_identifier(&self.table),
            quote_literal(&self.to)
        ))
    }

    /// Runs the export on the server at `server` (`http://host:port`); returns the
    /// number of rows written.
    pub async fn run(&self, server: &str, token: Option<&str>) -> Result<u64, String> {
        let sql = self.statement()?;
        let url = format!("{}/api/v1/sql?format=json", server.trim_end_matches('/'));
        let mut request = hyper::Request::post(&url)
            .header(hyper::header::CONTENT_TYPE, "text/plain; charset=utf-8");
        if let Some(token) = token {
            request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(Bytes::from(sql)))
            .map_err(|e| format!("{url}: {e}"))?;
        let client = Client::builder(TokioExecutor::new()).build_http();
        let response =
            tokio::time::timeout(Duration::from_secs(24 * 3600), client.request(request))
                .await
                .map_err(|_| format!("{url}: no answer"))?
                .map_err(|e| format!("cannot reach the server at {server}: {e}"))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{url}: {e}"))?
            .to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).map_err(|_| {
            format!(
                "{url} answered {status}: {}",
                String::from_utf8_lossy(&body)
            )
        })?;
        if !status.is_success() {
            let message = json["error"].as_str().unwrap_or("no message");
            return Err(format!(
                "the server refused the export ({status}): {message}"
            ));
        }
        // COPY answers one row with the count of rows written.
        json["rows"][0][0]
            .as_u64()
            .ok_or_else(|| format!("unexpected answer from {url}: {json}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export(start: Option<&str>, end: Option<&str>) -> Export {
        Export {
            table: "cpu \"x\"".into(),
            start: start.map(String::from),
            end: end.map(String::from),
            to: "s3://b/it's.parquet".into(),
        }
    }

    #[test]
    fn statements_quote_and_bound() {
        assert_eq!(
            export(Some("1000"), Some("2026-01-01T00:00:00Z"))
                .statement()
                .unwrap(),
            "COPY (SELECT * FROM \"cpu \"\"x\"\"\" WHERE time >= to_timestamp_millis(1000) \
             AND time < to_timestamp_millis(1767225600000)) TO 's3://b/it''s.parquet' STORED AS PARQUET"
        );
        assert_eq!(
            export(None, None).statement().unwrap(),
            "COPY (SELECT * FROM \"cpu \"\"x\"\"\") TO 's3://b/it''s.parquet' STORED AS PARQUET"
        );
        let e = export(Some("yesterday"), None).statement().unwrap_err();
        assert!(e.contains("--start \"yesterday\""), "{e}");
    }
}
