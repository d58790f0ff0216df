//! A planned rule group and one evaluation of it: run each rule, step its state,
//! record history, queue notifications.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::eval::PlannedQuery;
use super::metrics::AlertMetrics;
use super::notify::{Notification, Notifier};
use super::rule::{Rule, RuleGroup};
use super::state::{AlertState, Instance, Labels, RuleState};
use super::template::expand;
use super::{AlertError, history};
use crate::MetricStore;

/// How a rule or group did at its last evaluation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Health {
    /// The last failure's message, cleared by a success.
    pub last_error: Option<String>,
    /// The evaluation time of the last evaluation (ms).
    pub last_evaluation_ms: Option<i64>,
    /// How long it took.
    pub last_duration: Duration,
}

/// One planned rule with its instances.
#[derive(Debug)]
pub struct AlertRule {
    /// The rule as loaded.
    pub rule: Rule,
    query: PlannedQuery,
    /// Its instances.
    pub state: Mutex<RuleState>,
    /// Its last evaluation.
    pub health: Mutex<Health>,
}

/// A planned group.
#[derive(Debug)]
pub struct Group {
    /// The group as loaded.
    pub spec: RuleGroup,
    /// Its interval (ms), the configured default when the group has none.
    pub interval_ms: i64,
    /// The file it came from; `None` for groups managed through the admin API.
    pub file: Option<PathBuf>,
    /// Its rules, in order.
    pub rules: Vec<AlertRule>,
    /// Its last evaluation.
    pub health: Mutex<Health>,
    /// One evaluation of the group at a time (the scheduler and `evaluate_at` may
    /// overlap).
    running: tokio::sync::Mutex<()>,
}

/// What evaluations need from their surroundings.
pub struct EvalContext<'a> {
    /// The store, for the `alerts` history.
    pub store: &'a MetricStore,
    /// Where notifications go.
    pub notifier: &'a Notifier,
    /// Counters.
    pub metrics: &'a AlertMetrics,
    /// Base of `generatorURL`.
    pub external_url: &'a str,
    /// Firing alerts are re-sent this often (ms).
    pub resend_delay_ms: i64,
    /// Write the `alerts` table.
    pub history: bool,
}

/// The key of a rule's state: `group/alert`.
pub fn rule_key(group: &str, alert: &str) -> String {
    format!("{group}/{alert}")
}

impl Group {
    /// Plans every rule of `spec`; the first rule that does not plan refuses the
    /// group. Each rule takes its instances from `saved` (by `group/alert`).
    pub async fn plan(
        store: &MetricStore,
        spec: RuleGroup,
        file: Option<PathBuf>,
        default_interval: Duration,
        saved: &mut BTreeMap<String, RuleState>,
    ) -> Result<Group, AlertError> {
        spec.check()?;
        let mut rules = Vec::with_capacity(spec.rules.len());
        for rule in &spec.rules {
            let key = rule_key(&spec.name, &rule.alert);
            let query = PlannedQuery::plan(store, &rule.sql)
                .await
                .map_err(|e| e.for_rule(&key))?;
            rules.push((rule.clone(), query));
        }
        // Only once every rule planned are saved states claimed.
        let rules = rules
            .into_iter()
            .map(|(rule, query)| AlertRule {
                state: Mutex::new(
                    saved
                        .remove(&rule_key(&spec.name, &rule.alert))
                        .unwrap_or_default(),
                ),
                rule,
                query,
                health: Mutex::default(),
            })
            .collect();
        let interval = spec.interval.map_or(default_interval, |i| i.0);
        Ok(Group {
            interval_ms: (interval.as_millis() as i64).max(1),
            spec,
            file,
            rules,
            health: Mutex::default(),
            running: tokio::sync::Mutex::new(()),
        })
    }

    /// The group's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Evaluates every rule as of `at` (ms), in order. A failing rule keeps its
    /// instances as they were and does not stop the others. Returns whether any
    /// instance changed state (the state file is then due).
    pub async fn evaluate(&self, ctx: &EvalContext<'_>, at: i64) -> bool {
        let _one_at_a_time = self.running.lock().await;
        let started = Instant::now();
        let mut changed = false;
        let mut errors = Vec::new();
        let mut outgoing = Vec::new();
        let mut history_rows = Vec::new();
        for rule in &self.rules {
            let rule_started = Instant::now();
            let result = rule.query.evaluate(at).await;
            let took = rule_started.elapsed();
            ctx.metrics.evaluation(took, result.is_ok());
            let mut health = rule.health.lock();
            health.last_evaluation_ms = Some(at);
            health.last_duration = took;
            let rows = match result {
                Ok(rows) => {
                    health.last_error = None;
                    rows
                }
                Err(e) => {
                    let message = e.to_string();
                    tracing::warn!(group = %self.spec.name, alert = %rule.rule.alert, error = %message, "rule evaluation failed");
                    health.last_error = Some(message.clone());
                    errors.push(message);
                    continue;
                }
            };
            drop(health);
            let mut state = rule.state.lock();
            let transitions = state.step(
                rows,
                at,
                rule.rule.for_.as_millis(),
                rule.rule.keep_firing_for.as_millis(),
            );
            changed |= !transitions.is_empty();
            for instance in state.instances_mut() {
                let due = match instance.state {
                    AlertState::Pending => false,
                    AlertState::Firing => instance
                        .last_sent_at
                        .is_none_or(|t| at - t >= ctx.resend_delay_ms),
                    AlertState::Resolved => instance
                        .last_sent_at
                        .is_some_and(|t| t < instance.resolved_at.unwrap_or(at)),
                };
                if due {
                    outgoing.push(self.notification(ctx, rule, instance, at));
                    instance.last_sent_at = Some(at);
                }
                if ctx.history && instance.state != AlertState::Resolved {
                    history_rows.push((self.alert_labels(rule, instance), instance.state.as_str()));
                }
            }
        }
        if !outgoing.is_empty() {
            ctx.notifier.enqueue(outgoing);
        }
        if !history_rows.is_empty() {
            history::record(ctx.store, at, &history_rows, ctx.metrics);
        }
        let took = started.elapsed();
        ctx.metrics.group_evaluated(&self.spec.name, took, at);
        let mut health = self.health.lock();
        health.last_evaluation_ms = Some(at);
        health.last_duration = took;
        health.last_error = (!errors.is_empty()).then(|| errors.join("; "));
        changed
    }

    /// An instance's full label set: its own labels, the rule's (templated, they win),
    /// and `alertname`.
    pub fn alert_labels(&self, rule: &AlertRule, instance: &Instance) -> Labels {
        let mut labels = instance.labels.clone();
        for (k, v) in &rule.rule.labels {
            labels.insert(k.clone(), expand(v, &instance.labels, instance.value));
        }
        labels.insert("alertname".into(), rule.rule.alert.clone());
        labels
    }

    /// An instance's annotations, templated.
    pub fn annotations(&self, rule: &AlertRule, instance: &Instance) -> Labels {
        rule.rule
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), expand(v, &instance.labels, instance.value)))
            .collect()
    }

    fn notification(
        &self,
        ctx: &EvalContext<'_>,
        rule: &AlertRule,
        instance: &Instance,
        at: i64,
    ) -> Notification {
        // Firing alerts carry an end a few resends ahead, so that Alertmanager resolves
        // them by itself should this process die (Prometheus does the same).
        let valid_for = 4 * ctx.resend_delay_ms.max(self.interval_ms);
        let ends_at = match instance.state {
            AlertState::Resolved => instance.resolved_at.unwrap_or(at),
            _ => at + valid_for,
        };
        let query =
            serde_urlencoded::to_string([("q", rule.rule.sql.as_str())]).unwrap_or_default();
        Notification {
            labels: self.alert_labels(rule, instance),
            annotations: self.annotations(rule, instance),
            starts_at: instance.fired_at.unwrap_or(instance.active_at),
            ends_at,
            resolved: instance.state == AlertState::Resolved,
            generator_url: format!(
                "{}/api/v1/sql?{query}",
                ctx.external_url.trim_end_matches('/')
            ),
        }
    }
}
