//! The alert state machine, per rule and per instance; pure (times are arguments).
//!
//! ```text
//!            returned               returned for `for`
//!  inactive ─────────► pending ─────────────────────► firing
//!     ▲                   │ not returned                │ not returned for
//!     └───────────────────┘                             │ `keep_firing_for`
//!     ▲                                                 ▼
//!     └──────────── 15 min (notifications sent) ──── resolved
//! ```
//! An instance is identified by its labels (the query's string columns, sorted by
//! name). A resolved instance that is returned again starts over as pending: it is a
//! new alert with a new `active_at`, as in Prometheus.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// An instance's labels, sorted by name.
pub type Labels = BTreeMap<String, String>;

/// How long a resolved instance is kept (and re-sent), as Prometheus does.
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

/// Where an instance is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// Returned, but not yet for `for`.
    Pending,
    /// Returned for at least `for` (or kept firing by `keep_firing_for`).
    Firing,
    /// Was firing, no longer is.
    Resolved,
}

impl AlertState {
    /// The lower-case name Prometheus uses (`pending`, `firing`, `inactive`).
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Resolved => "inactive",
        }
    }
}

/// One alert instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    /// The query's labels for this instance.
    pub labels: Labels,
    /// The value at the last evaluation that returned it.
    pub value: f64,
    /// Where it is.
    pub state: AlertState,
    /// When it was first returned (ms).
    pub active_at: i64,
    /// When it started firing (ms).
    pub fired_at: Option<i64>,
    /// When it resolved (ms).
    pub resolved_at: Option<i64>,
    /// Since when the query no longer returns it while `keep_firing_for` holds it (ms).
    pub keep_firing_since: Option<i64>,
    /// When a notification for it was last queued (ms); notifier bookkeeping.
    pub last_sent_at: Option<i64>,
}

/// A change of state, for logs and the `alerts` history.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The instance.
    pub labels: Labels,
    /// Where it was (`None` = inactive).
    pub from: Option<AlertState>,
    /// Where it is now (`None` = inactive: a pending instance no longer returned).
    pub to: Option<AlertState>,
}

/// Every instance of one rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "Vec<Instance>", into = "Vec<Instance>")]
pub struct RuleState {
    instances: BTreeMap<Labels, Instance>,
}

impl From<Vec<Instance>> for RuleState {
    fn from(v: Vec<Instance>) -> Self {
        RuleState {
            instances: v.into_iter().map(|i| (i.labels.clone(), i)).collect(),
        }
    }
}

impl From<RuleState> for Vec<Instance> {
    fn from(s: RuleState) -> Self {
        s.instances.into_values().collect()
    }
}

impl RuleState {
    /// The instances, by labels.
    pub fn instances(&self) -> impl Iterator<Item = &Instance> {
        self.instances.values()
    }

    /// The instances, mutable (for notification bookkeeping).
    pub fn instances_mut(&mut self) -> impl Iterator<Item = &mut Instance> {
        self.instances.values_mut()
    }

    /// The instance with `labels`.
    pub fn get(&self, labels: &Labels) -> Option<&Instance> {
        self.instances.get(labels)
    }

    /// Applies one evaluation at `at` (ms) that returned `results` (distinct labels),
    /// with the rule's `for` and `keep_firing_for` (ms); returns what changed.
    pub fn step(
        &mut self,
        results: Vec<(Labels, f64)>,
        at: i64,
        for_ms: i64,
        keep_firing_for_ms: i64,
    ) -> Vec<Transition> {
        let mut changes = Vec::new();
        let mut returned = std::collections::BTreeSet::new();
        for (labels, value) in results {
            returned.insert(labels.clone());
            let fresh = || Instance {
                labels: labels.clone(),
                value,
                state: AlertState::Pending,
                active_at: at,
                fired_at: None,
                resolved_at: None,
                keep_firing_since: None,
                last_sent_at: None,
            };
            // A resolved alert that comes back is a new alert.
            let before = match self.instances.get(&labels) {
                Some(i) if i.state != AlertState::Resolved => Some(i.state),
                _ => None,
            };
            let instance = self.instances.entry(labels.clone()).or_insert_with(fresh);
            if before.is_none() {
                *instance = fresh();
            }
            instance.value = value;
            instance.keep_firing_since = None;
            if instance.state == AlertState::Pending && at - instance.active_at >= for_ms {
                instance.state = AlertState::Firing;
                instance.fired_at = Some(at);
            }
            if before != Some(instance.state) {
                changes.push(Transition {
                    labels,
                    from: before,
                    to: Some(instance.state),
                });
            }
        }
        self.instances.retain(|labels, instance| {
            if returned.contains(labels) {
                return true;
            }
            match instance.state {
                AlertState::Pending => {
                    changes.push(Transition {
                        labels: labels.clone(),
                        from: Some(AlertState::Pending),
                        to: None,
                    });
                    false
                }
                AlertState::Firing => {
                    let since = *instance.keep_firing_since.get_or_insert(at);
                    if at - since < keep_firing_for_ms {
                        return true;
                    }
                    instance.state = AlertState::Resolved;
                    instance.resolved_at = Some(at);
                    instance.keep_firing_since = None;
                    changes.push(Transition {
                        labels: labels.clone(),
                        from: Some(AlertState::Firing),
                        to: Some(AlertState::Resolved),
                    });
                    true
                }
                AlertState::Resolved => {
                    instance.resolved_at.unwrap_or(at) + RESOLVED_RETENTION_MS > at
                }
            }
        });
        changes
    }
}

#[cfg(test)]
mod tests;
