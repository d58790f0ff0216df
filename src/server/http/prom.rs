//! The metadata part of Prometheus' HTTP API, answered from label indexes and
//! dictionaries, never by scanning samples: `/api/v1/labels`,
//! `/api/v1/label/{name}/values`, `/api/v1/series` and `/api/v1/status/tsdb`.
//!
//! Series selectors in `match[]` are parsed with `promql-parser`. A metric name (or a
//! matcher on `__name__`) picks tables; the other matchers run on each table's index
//! with Prometheus semantics (anchored regexes, a missing label equals `""`).
//! `start`/`end` keep series whose first..newest sample overlaps the range.

use std::collections::BTreeSet;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::storage::{Matcher, TimeRange};

const NAME: &str = "__name__";

/// One `match[]` selector: matchers on the metric name and on labels.
struct Selector {
    name: Vec<Matcher>,
    labels: Vec<Matcher>,
}

impl Selector {
    fn tables(&self, all: &[String]) -> Vec<String> {
        all.iter()
            .filter(|t| self.name.iter().all(|m| m.matches(Some(t))))
            .cloned()
            .collect()
    }
}

struct Params {
    selectors: Vec<Selector>,
    range: TimeRange,
}

/// Query string and, for form posts, the body: Prometheus clients use both.
fn pairs(query: Option<String>, headers: &HeaderMap, body: &Bytes) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = query
        .and_then(|q| serde_urlencoded::from_str(&q).ok())
        .unwrap_or_default();
    let form = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if form && let Ok(more) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(body) {
        pairs.extend(more);
    }
    pairs
}

fn parse_time(name: &str, value: &str) -> Result<i64, ApiError> {
    if let Ok(seconds) = value.parse::<f64>() {
        return Ok((seconds * 1000.0).round() as i64);
    }
    arrow::compute::kernels::cast_utils::string_to_timestamp_nanos(value)
        .map(|ns| ns.div_euclid(1_000_000))
        .map_err(|_| {
            ApiError::bad_request(format!(
                "invalid parameter {name:?}: {value:?} is neither RFC 3339 nor a Unix timestamp"
            ))
        })
}

fn matcher(m: &promql_parser::label::Matcher) -> Result<Matcher, ApiError> {
    Matcher::from_promql(m).map_err(|e| ApiError::bad_request(e.to_string()))
}

fn parse_selector(text: &str) -> Result<Vec<Selector>, ApiError> {
    let expr = promql_parser::parser::parse(text)
        .map_err(|e| ApiError::bad_request(format!("invalid match[] {text:?}: {e}")))?;
    let promql_parser::parser::Expr::VectorSelector(vs) = expr else {
        return Err(ApiError::bad_request(format!(
            "invalid match[] {text:?}: expected a series selector"
        )));
    };
    let groups: Vec<&Vec<promql_parser::label::Matcher>> = if vs.matchers.or_matchers.is_empty() {
        vec![&vs.matchers.matchers]
    } else {
        vs.matchers.or_matchers.iter().collect()
    };
    groups
        .into_iter()
        .map(|group| {
            let mut s = Selector {
                name: Vec::new(),
                labels: Vec::new(),
            };
            if let Some(name) = &vs.name {
                s.name.push(Matcher::eq(NAME, name));
            }
            for m in group {
                if m.name == NAME {
                    s.name.push(matcher(m)?);
                } else {
                    s.labels.push(matcher(m)?);
                }
            }
            Ok(s)
        })
        .collect()
}

fn params(pairs: &[(String, String)], need_match: bool) -> Result<Params, ApiError> {
    let mut selectors = Vec::new();
    let mut range = TimeRange::ALL;
    for (k, v) in pairs {
        match k.as_str() {
            "match[]" => selectors.extend(parse_selector(v)?),
            "start" => range.start = parse_time(k, v)?,
            "end" => range.end = parse_time(k, v)?.saturating_add(1),
            _ => {}
        }
    }
    if need_match && selectors.is_empty() {
        return Err(ApiError::bad_request("no match[] parameter provided"));
    }
    Ok(Params { selectors, range })
}

fn success(data: Value) -> axum::Json<Value> {
    axum::Json(json!({ "status": "success", "data": data }))
}

/// `GET/POST /api/v1/labels`.
pub async fn labels(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    let p = params(&pairs(query, &headers, &body), false)?;
    let storage = state.store.storage();
    let tables = storage.table_names();
    let mut names = BTreeSet::new();
    if p.selectors.is_empty() {
        for t in &tables {
            names.extend(storage.label_names(t, &[], p.range)?);
            names.insert(NAME.to_string());
        }
    }
    for s in &p.selectors {
        for t in s.tables(&tables) {
            if storage.count_series(&t, &s.labels, p.range)? > 0 {
                names.extend(storage.label_names(&t, &s.labels, p.range)?);
                names.insert(NAME.to_string());
            }
        }
    }
    Ok(success(json!(names)))
}

/// `GET /api/v1/label/{name}/values`.
pub async fn label_values(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    let p = params(&pairs(query, &headers, &body), false)?;
    let storage = state.store.storage();
    let tables = storage.table_names();
    let selectors = if p.selectors.is_empty() {
        vec![Selector {
            name: Vec::new(),
            labels: Vec::new(),
        }]
    } else {
        p.selectors
    };
    let mut values: ahash::HashSet<std::sync::Arc<str>> = ahash::HashSet::default();
    for s in &selectors {
        for t in s.tables(&tables) {
            if name == NAME {
                let unfiltered = s.labels.is_empty() && p.range == TimeRange::ALL;
                if unfiltered || storage.count_series(&t, &s.labels, p.range)? > 0 {
                    values.insert(t.into());
                }
            } else {
                storage.label_values_into(&t, &name, &s.labels, p.range, &mut values)?;
            }
        }
    }
    let mut values: Vec<std::sync::Arc<str>> = values.into_iter().collect();
    values.sort_unstable();
    Ok(success(json!(values)))
}

/// `GET/POST /api/v1/series`.
pub async fn series(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    let p = params(&pairs(query, &headers, &body), true)?;
    let storage = state.store.storage();
    let tables = storage.table_names();
    let mut out = BTreeSet::new();
    for s in &p.selectors {
        for t in s.tables(&tables) {
            for tags in storage.series_tags(&t, &s.labels, p.range)? {
                let mut labels = vec![(NAME.to_string(), t.clone())];
                labels.extend(tags);
                out.insert(labels);
            }
        }
    }
    let data: Vec<Value> = out
        .into_iter()
        .map(|labels| {
            Value::Object(
                labels
                    .into_iter()
                    .map(|(k, v)| (k, Value::from(v)))
                    .collect(),
            )
        })
        .collect();
    Ok(success(Value::from(data)))
}

/// `GET /api/v1/status/tsdb`: Prometheus' cardinality report plus the engine's totals.
pub async fn status_tsdb(State(state): State<AppState>) -> axum::Json<Value> {
    let stats = state.store.stats();
    let by_name: Vec<Value> = stats
        .top_tables_by_series
        .iter()
        .map(|(name, n)| json!({ "name": name, "value": n }))
        .collect();
    let mut by_label: std::collections::BTreeMap<&str, usize> = Default::default();
    for t in &stats.tables {
        for (k, n) in &t.tag_cardinality {
            *by_label.entry(k).or_default() += n;
        }
    }
    let mut by_label: Vec<(&str, usize)> = by_label.into_iter().collect();
    by_label.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    by_label.truncate(10);
    let total = &stats.total;
    success(json!({
        "headStats": {
            "numSeries": total.series,
            "chunkCount": total.chunks,
        },
        "seriesCountByMetricName": by_name,
        "labelValueCountByLabelName": by_label
            .iter()
            .map(|(name, n)| json!({ "name": name, "value": n }))
            .collect::<Vec<_>>(),
        "memoryInBytesByLabelName": [],
        "seriesCountByLabelValuePair": [],
        "metricstore": {
            "series": total.series,
            "samples": total.samples,
            "sealed_bytes": total.chunk_bytes,
            "head_bytes": total.head_bytes,
            "index_bytes": total.index_bytes,
            "dictionary_bytes": total.dictionary_bytes,
            "bytes_per_sample": total.bytes_per_sample(),
            "memory_used": stats.memory_used,
        },
    }))
}
