//! Alerting: rules are SQL queries; every row a rule returns is an alert instance.
//!
//! ```text
//!  rule files / admin API ──► rule (YAML model) ──► eval::PlannedQuery (planned once)
//!                                                        │ evaluate(at)   ◄── scheduler
//!                                                        ▼                   (task per group)
//!                       state::RuleState (pending → firing → resolved, `for`, keep-firing)
//!                         ├─► history: rows of table `alerts` (like Prometheus' ALERTS)
//!                         ├─► persist: state file in the data dir (survives restarts)
//!                         └─► notify: Alertmanager v2 / webhook outboxes, retried with backoff
//! ```
//!
//! | module | owns |
//! |---|---|
//! | [`rule`] | the rule-file model (groups, rules, Prometheus durations) |
//! | [`template`] | `{{ $labels.x }}`, `{{ $value }}` in labels and annotations |
//! | [`eval`] | planning a rule once and executing it at any evaluation time |
//! | [`state`] | the per-instance state machine (pure) |
//! | [`group`] | a planned group and one evaluation of it |
//! | [`manager`] | [`Alerting`]: the groups, load/replace/delete/reload, queries for the API |
//! | [`scheduler`] | one task per group, spread over the interval |
//! | [`notify`] | receivers, their outboxes and delivery |
//! | [`persist`] | the state file and the API-managed rules file |
//! | [`history`] | writes of the `alerts` table |
//! | [`metrics`] | evaluation counters for `/metrics` |
//! | [`testing`] | `metricstore rules test`: rules over input series, like `promtool test rules` |
//!
//! Alerting reads the store through SQL and writes only its own table, `alerts`.

pub mod eval;
pub mod group;
pub mod history;
pub mod manager;
pub mod metrics;
pub mod notify;
pub mod persist;
pub mod rule;
pub mod scheduler;
pub mod state;
pub mod template;
pub mod testing;

pub use manager::{Alerting, AlertingConfig};
pub use notify::{Receiver, ReceiverKind};
pub use rule::{PromDuration, Rule, RuleFile, RuleGroup};
pub use state::{AlertState, Instance, Labels};

/// Why a rule could not be loaded, evaluated or managed.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// The rule file or group is not valid YAML/JSON for the rule model.
    #[error("invalid rule file: {0}")]
    Parse(String),
    /// The rules are well-formed but not acceptable (duplicates, empty names, ...).
    #[error("invalid rules: {0}")]
    Invalid(String),
    /// A rule's SQL does not plan, or its result has no usable value column. The
    /// message is the planner's.
    #[error("rule {rule:?} does not plan: {message}")]
    Plan {
        /// `group/alert`.
        rule: String,
        /// The planner's message.
        message: String,
    },
    /// A planned rule failed while running.
    #[error("evaluation failed: {0}")]
    Eval(#[source] datafusion::error::DataFusionError),
    /// No such group.
    #[error("no rule group named {0:?}")]
    UnknownGroup(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl AlertError {
    /// A planning error not yet attributed to a rule.
    pub(crate) fn plan(message: impl Into<String>) -> AlertError {
        AlertError::Plan {
            rule: String::new(),
            message: message.into(),
        }
    }

    /// Attributes a planning error to `rule`.
    pub(crate) fn for_rule(self, rule: &str) -> AlertError {
        match self {
            AlertError::Plan { message, .. } => AlertError::Plan {
                rule: rule.to_string(),
                message,
            },
            e => e,
        }
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
