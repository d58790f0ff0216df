//! [`Alerting`]: the loaded groups and everything done to them: load, replace, delete,
//! reload, evaluate, persist, and the views the HTTP API answers with.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use super::group::{EvalContext, Group, rule_key};
use super::metrics::AlertMetrics;
use super::notify::{Backoff, Notifier, Receiver};
use super::rule::{RuleFile, RuleGroup};
use super::scheduler::Scheduler;
use super::state::RuleState;
use super::{AlertError, persist};
use crate::MetricStore;

/// How alerting runs. Every field has a default.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertingConfig {
    /// Rule files loaded at start and by [`Alerting::reload`].
    pub rule_files: Vec<PathBuf>,
    /// Interval of groups that name none.
    pub default_interval: Duration,
    /// Firing alerts are re-sent this often.
    pub resend_delay: Duration,
    /// Where the state file and the API rules live; `None` keeps them in memory.
    pub state_dir: Option<PathBuf>,
    /// Base URL of this server, for `generatorURL`.
    pub external_url: String,
    /// Where notifications go.
    pub receivers: Vec<Receiver>,
    /// Delivery retry timing.
    pub backoff: Backoff,
    /// Write the `alerts` history table.
    pub history: bool,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        AlertingConfig {
            rule_files: Vec::new(),
            default_interval: Duration::from_secs(60),
            resend_delay: Duration::from_secs(60),
            state_dir: None,
            external_url: "http://127.0.0.1:9201".into(),
            receivers: Vec::new(),
            backoff: Backoff::default(),
            history: true,
        }
    }
}

/// The rules of one store, their state and their receivers.
pub struct Alerting {
    store: Arc<MetricStore>,
    config: AlertingConfig,
    groups: RwLock<BTreeMap<String, Arc<Group>>>,
    /// Saved states not (yet) claimed by a loaded rule.
    saved: Mutex<BTreeMap<String, RuleState>>,
    /// Serialises changes to the set of groups (put, delete, reload).
    changing: tokio::sync::Mutex<()>,
    notifier: Notifier,
    metrics: AlertMetrics,
    scheduler: Mutex<Option<Scheduler>>,
}

impl std::fmt::Debug for Alerting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerting")
            .field("groups", &self.groups.read().keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Alerting {
    /// Loads the saved state, the rule files and the API-managed groups, and plans
    /// every rule. Nothing runs until [`Alerting::start`]; evaluations can also be
    /// driven by hand with [`Alerting::evaluate_at`].
    pub async fn new(
        store: Arc<MetricStore>,
        config: AlertingConfig,
    ) -> Result<Arc<Alerting>, AlertError> {
        let saved = match &config.state_dir {
            Some(dir) => persist::load_state(dir)?,
            None => BTreeMap::new(),
        };
        let notifier = Notifier::new(
            config.receivers.clone(),
            config.backoff,
            config.external_url.clone(),
        );
        let alerting = Arc::new(Alerting {
            store,
            config,
            groups: RwLock::new(BTreeMap::new()),
            saved: Mutex::new(saved),
            changing: tokio::sync::Mutex::new(()),
            notifier,
            metrics: AlertMetrics::default(),
            scheduler: Mutex::new(None),
        });
        let mut groups = alerting.plan_files().await?;
        if let Some(dir) = &alerting.config.state_dir {
            for spec in persist::load_api_rules(dir)?.groups {
                let name = spec.name.clone();
                if groups.contains_key(&name) {
                    return Err(AlertError::Invalid(format!(
                        "group {name:?} is both in a rule file and managed through the API"
                    )));
                }
                groups.insert(name, Arc::new(alerting.plan(spec, None).await?));
            }
        }
        *alerting.groups.write() = groups;
        Ok(alerting)
    }

    async fn plan(&self, spec: RuleGroup, file: Option<PathBuf>) -> Result<Group, AlertError> {
        // Claims saved state only if the whole group plans.
        let mut saved = std::mem::take(&mut *self.saved.lock());
        let planned = Group::plan(
            &self.store,
            spec,
            file,
            self.config.default_interval,
            &mut saved,
        )
        .await;
        self.saved.lock().extend(saved);
        planned
    }

    /// Reads and plans every rule file; the first error refuses them all.
    async fn plan_files(&self) -> Result<BTreeMap<String, Arc<Group>>, AlertError> {
        let mut groups = BTreeMap::new();
        for path in &self.config.rule_files {
            let text = std::fs::read_to_string(path).map_err(|source| AlertError::Io {
                path: path.clone(),
                source,
            })?;
            let file = RuleFile::parse(&text)
                .map_err(|e| AlertError::Parse(format!("{}: {e}", path.display())))?;
            for spec in file.groups {
                if groups.contains_key(&spec.name) {
                    return Err(AlertError::Invalid(format!(
                        "group {:?} is defined twice ({})",
                        spec.name,
                        path.display()
                    )));
                }
                let name = spec.name.clone();
                groups.insert(name, Arc::new(self.plan(spec, Some(path.clone())).await?));
            }
        }
        Ok(groups)
    }

    /// Gives a replaced group's instances to its successor (by `group/alert`).
    fn hand_over(&self, old: &Group) {
        let mut saved = self.saved.lock();
        for rule in &old.rules {
            saved.insert(
                rule_key(old.name(), &rule.rule.alert),
                rule.state.lock().clone(),
            );
        }
    }

    /// Creates or replaces a group through the API. A group from a rule file cannot
    /// be replaced this way (edit the file and reload).
    pub async fn put_group(&self, spec: RuleGroup) -> Result<(), AlertError> {
        let _changing = self.changing.lock().await;
        let name = spec.name.clone();
        if let Some(old) = self.groups.read().get(&name).cloned() {
            if old.file.is_some() {
                return Err(AlertError::Invalid(format!(
                    "group {name:?} comes from {}: edit the file and reload",
                    old.file
                        .as_deref()
                        .unwrap_or_else(|| std::path::Path::new(""))
                        .display()
                )));
            }
            self.hand_over(&old);
        }
        let group = Arc::new(self.plan(spec, None).await?);
        self.groups.write().insert(name, group);
        self.after_change()
    }

    /// Deletes an API-managed group. `Ok(false)` if there is none of that name.
    pub async fn delete_group(&self, name: &str) -> Result<bool, AlertError> {
        let _changing = self.changing.lock().await;
        let Some(old) = self.groups.read().get(name).cloned() else {
            return Ok(false);
        };
        if old.file.is_some() {
            return Err(AlertError::Invalid(format!(
                "group {name:?} comes from a rule file: remove it there and reload"
            )));
        }
        self.groups.write().remove(name);
        self.metrics.group_removed(name);
        self.after_change()?;
        Ok(true)
    }

    /// Re-reads the rule files. All or nothing: if any rule fails, the old groups
    /// stay and the error says why.
    pub async fn reload(&self) -> Result<(), AlertError> {
        let _changing = self.changing.lock().await;
        let current: Vec<Arc<Group>> = self.groups.read().values().cloned().collect();
        for g in current.iter().filter(|g| g.file.is_some()) {
            self.hand_over(g);
        }
        let files = self.plan_files().await?;
        let mut groups = self.groups.write();
        if let Some(clash) = files
            .keys()
            .find(|n| groups.get(*n).is_some_and(|g| g.file.is_none()))
        {
            return Err(AlertError::Invalid(format!(
                "group {clash:?} is both in a rule file and managed through the API"
            )));
        }
        groups.retain(|_, g| g.file.is_none());
        groups.extend(files);
        drop(groups);
        self.after_change()
    }

    fn after_change(&self) -> Result<(), AlertError> {
        if let Some(scheduler) = &*self.scheduler.lock() {
            scheduler.sync(&self.groups.read());
        }
        if let Some(dir) = &self.config.state_dir {
            let api = RuleFile {
                groups: self
                    .groups
                    .read()
                    .values()
                    .filter(|g| g.file.is_none())
                    .map(|g| g.spec.clone())
                    .collect(),
            };
            persist::save_api_rules(dir, &api)?;
        }
        Ok(())
    }

    /// The groups, by name.
    pub fn groups(&self) -> Vec<Arc<Group>> {
        self.groups.read().values().cloned().collect()
    }

    /// The group named `name`.
    pub fn group(&self, name: &str) -> Option<Arc<Group>> {
        self.groups.read().get(name).cloned()
    }

    /// Evaluates every group as of `at` (ms): what the scheduler does, driven by hand
    /// (tests, `rules test`).
    pub async fn evaluate_at(&self, at: i64) -> Result<(), AlertError> {
        for group in self.groups() {
            self.evaluate_group(&group, at).await?;
        }
        Ok(())
    }

    /// Evaluates one group as of `at` (ms) and saves the state if it changed.
    pub async fn evaluate_group(&self, group: &Group, at: i64) -> Result<(), AlertError> {
        let ctx = EvalContext {
            store: &self.store,
            notifier: &self.notifier,
            metrics: &self.metrics,
            external_url: &self.config.external_url,
            resend_delay_ms: self.config.resend_delay.as_millis() as i64,
            history: self.config.history,
        };
        if group.evaluate(&ctx, at).await {
            self.save_state()?;
        }
        Ok(())
    }

    /// Writes every rule's instances to the state file (no-op without a state dir).
    pub fn save_state(&self) -> Result<(), AlertError> {
        let Some(dir) = &self.config.state_dir else {
            return Ok(());
        };
        let mut rules = self.saved.lock().clone();
        for group in self.groups() {
            for rule in &group.rules {
                rules.insert(
                    rule_key(group.name(), &rule.rule.alert),
                    rule.state.lock().clone(),
                );
            }
        }
        persist::save_state(dir, rules)
    }

    /// Starts the delivery tasks and one evaluation task per group (needs a tokio
    /// runtime).
    pub fn start(self: &Arc<Self>) {
        self.notifier.start();
        let scheduler = Scheduler::new(Arc::downgrade(self));
        scheduler.sync(&self.groups.read());
        *self.scheduler.lock() = Some(scheduler);
    }

    /// Stops evaluating and delivering, then saves the state.
    pub fn stop(&self) -> Result<(), AlertError> {
        self.scheduler.lock().take();
        self.notifier.stop();
        self.save_state()
    }

    /// Counters for `/metrics`, in Prometheus text format.
    pub fn render_metrics(&self, out: &mut String) {
        self.metrics.render(self.notifier.channels(), out);
    }

    /// The counters themselves.
    pub fn metrics(&self) -> &AlertMetrics {
        &self.metrics
    }

    /// The configuration in force.
    pub fn config(&self) -> &AlertingConfig {
        &self.config
    }
}
