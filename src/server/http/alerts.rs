//! Alerting endpoints: Prometheus' `/api/v1/rules` and `/api/v1/alerts` shapes, and
//! the admin API that creates, replaces, deletes and reloads rule groups.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::alert::group::{AlertRule, Group};
use crate::alert::{AlertError, AlertState, Alerting, Instance, RuleGroup};
use crate::model::rfc3339;

fn alerting(state: &AppState) -> Result<&Arc<Alerting>, ApiError> {
    state.alerting.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "alerting is disabled ([alerting] enabled = false)",
        )
    })
}

impl From<AlertError> for ApiError {
    fn from(e: AlertError) -> ApiError {
        let status = match &e {
            AlertError::Parse(_) | AlertError::Invalid(_) | AlertError::Plan { .. } => {
                StatusCode::BAD_REQUEST
            }
            AlertError::UnknownGroup(_) => StatusCode::NOT_FOUND,
            AlertError::Eval(_) | AlertError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

fn success(data: Value) -> Response {
    Json(json!({"status": "success", "data": data})).into_response()
}

fn alert_json(group: &Group, rule: &AlertRule, i: &Instance) -> Value {
    json!({
        "labels": group.alert_labels(rule, i),
        "annotations": group.annotations(rule, i),
        "state": i.state.as_str(),
        "activeAt": rfc3339(i.active_at),
        "value": format!("{:e}", i.value),
    })
}

fn rule_json(group: &Group, rule: &AlertRule) -> Value {
    let state = rule.state.lock();
    let active: Vec<&Instance> = state
        .instances()
        .filter(|i| i.state != AlertState::Resolved)
        .collect();
    let overall = if active.iter().any(|i| i.state == AlertState::Firing) {
        "firing"
    } else if active.is_empty() {
        "inactive"
    } else {
        "pending"
    };
    let health = rule.health.lock().clone();
    json!({
        "type": "alerting",
        "name": rule.rule.alert,
        "query": rule.rule.sql,
        "duration": rule.rule.for_.0.as_secs_f64(),
        "keepFiringFor": rule.rule.keep_firing_for.0.as_secs_f64(),
        "labels": rule.rule.labels,
        "annotations": rule.rule.annotations,
        "state": overall,
        "alerts": active.iter().map(|i| alert_json(group, rule, i)).collect::<Vec<_>>(),
        "health": match (&health.last_error, health.last_evaluation_ms) {
            (Some(_), _) => "err",
            (None, Some(_)) => "ok",
            (None, None) => "unknown",
        },
        "lastError": health.last_error.unwrap_or_default(),
        "evaluationTime": health.last_duration.as_secs_f64(),
        "lastEvaluation": health.last_evaluation_ms.map(rfc3339).unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
    })
}

/// `GET /api/v1/rules`.
pub async fn rules(State(state): State<AppState>) -> Result<Response, ApiError> {
    let alerting = alerting(&state)?;
    let groups: Vec<Value> = alerting
        .groups()
        .iter()
        .map(|g| {
            let health = g.health.lock().clone();
            json!({
                "name": g.name(),
                "file": g.file.as_ref().map_or("api".into(), |f| f.display().to_string()),
                "interval": g.interval_ms as f64 / 1e3,
                "limit": 0,
                "rules": g.rules.iter().map(|r| rule_json(g, r)).collect::<Vec<_>>(),
                "evaluationTime": health.last_duration.as_secs_f64(),
                "lastEvaluation": health.last_evaluation_ms.map(rfc3339).unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
            })
        })
        .collect();
    Ok(success(json!({ "groups": groups })))
}

/// `GET /api/v1/alerts`: pending and firing alerts.
pub async fn alerts(State(state): State<AppState>) -> Result<Response, ApiError> {
    let alerting = alerting(&state)?;
    let mut out = Vec::new();
    for g in alerting.groups() {
        for r in &g.rules {
            let state = r.state.lock();
            out.extend(
                state
                    .instances()
                    .filter(|i| i.state != AlertState::Resolved)
                    .map(|i| alert_json(&g, r, i)),
            );
        }
    }
    Ok(success(json!({ "alerts": out })))
}

/// `PUT /api/v1/admin/rules/{group}`: the body is one group in YAML or JSON; its
/// `name` may be left out (the path names it) but must not differ.
pub async fn put_group(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: String,
) -> Result<Response, ApiError> {
    let alerting = alerting(&state)?;
    let mut value: serde_yaml_ng::Value = serde_yaml_ng::from_str(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid rule group: {e}")))?;
    let Some(map) = value.as_mapping_mut() else {
        return Err(ApiError::bad_request(
            "invalid rule group: expected a mapping with `rules`",
        ));
    };
    let key = serde_yaml_ng::Value::from("name");
    match map.get(&key).and_then(|v| v.as_str()) {
        Some(n) if n != name => {
            return Err(ApiError::bad_request(format!(
                "the body names group {n:?} but the path names {name:?}"
            )));
        }
        _ => {
            map.insert(key, serde_yaml_ng::Value::from(name.clone()));
        }
    }
    let group: RuleGroup = serde_yaml_ng::from_value(value)
        .map_err(|e| ApiError::bad_request(format!("invalid rule group: {e}")))?;
    let existed = alerting.group(&name).is_some();
    alerting.put_group(group).await?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(json!({"status": "success"}))).into_response())
}

/// `DELETE /api/v1/admin/rules/{group}`.
pub async fn delete_group(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let alerting = alerting(&state)?;
    if alerting.delete_group(&name).await? {
        Ok(Json(json!({"status": "success"})).into_response())
    } else {
        Err(AlertError::UnknownGroup(name).into())
    }
}

/// `POST /-/reload`: re-reads the rule files (all or nothing).
pub async fn reload(State(state): State<AppState>) -> Result<Response, ApiError> {
    alerting(&state)?.reload().await?;
    Ok(Json(json!({"status": "success"})).into_response())
}
