//! Delivery of alerts to receivers: Alertmanager's API v2 (`POST /api/v2/alerts`) and
//! generic webhooks (Alertmanager's webhook JSON).
//!
//! Each receiver has an **outbox** keyed by the alert's labels that holds the newest
//! notification of every alert not yet delivered, and a task that sends the whole
//! outbox, retrying with exponential backoff while the receiver is down. Evaluation
//! only puts into outboxes (a map insert under a lock), so a receiver that is down never
//! stalls it; a newer notification of an alert replaces an older one (firing then
//! resolved: the receiver hears "resolved"), so the outbox is bounded by the number of
//! alerts and a resolved notification stays until delivered.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::state::Labels;
use crate::model::rfc3339;

/// What a receiver speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReceiverKind {
    /// Alertmanager: the URL is its base (`http://host:9093`); alerts go to
    /// `/api/v2/alerts`.
    Alertmanager,
    /// A webhook: the URL gets Alertmanager's webhook JSON.
    Webhook,
}

/// Where alerts go.
#[derive(Debug, Clone, PartialEq)]
pub struct Receiver {
    /// What it speaks.
    pub kind: ReceiverKind,
    /// Its URL.
    pub url: String,
}

/// One alert as sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// All labels, `alertname` included.
    pub labels: Labels,
    /// Templated annotations.
    pub annotations: Labels,
    /// When it started firing (ms).
    pub starts_at: i64,
    /// When it resolved, or until when a firing alert is valid (ms).
    pub ends_at: i64,
    /// Whether it is resolved.
    pub resolved: bool,
    /// A link to the rule's query.
    pub generator_url: String,
}

/// Retry timing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// First wait after a failure.
    pub initial: Duration,
    /// Longest wait.
    pub max: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Counters of one receiver.
#[derive(Debug, Default)]
pub struct ReceiverStats {
    /// Requests that delivered.
    pub sent: AtomicU64,
    /// Requests that failed (each retried).
    pub failed: AtomicU64,
    /// Alerts delivered.
    pub alerts: AtomicU64,
}

struct Outbox {
    /// Labels → (newest notification, generation).
    pending: BTreeMap<Labels, (Notification, u64)>,
    generation: u64,
}

/// One receiver's outbox and counters.
pub struct Channel {
    /// The receiver.
    pub receiver: Receiver,
    outbox: Mutex<Outbox>,
    wake: tokio::sync::Notify,
    /// Its counters.
    pub stats: ReceiverStats,
}

impl Channel {
    /// Alerts waiting for delivery.
    pub fn queued(&self) -> usize {
        self.outbox.lock().pending.len()
    }
}

/// Every receiver's outbox; delivery runs in [`Notifier::start`]'s tasks.
pub struct Notifier {
    channels: Vec<Arc<Channel>>,
    backoff: Backoff,
    external_url: String,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Notifier {
    /// Outboxes for `receivers`; nothing is sent until [`Notifier::start`].
    pub fn new(receivers: Vec<Receiver>, backoff: Backoff, external_url: String) -> Notifier {
        let channels = receivers
            .into_iter()
            .map(|receiver| {
                Arc::new(Channel {
                    receiver,
                    outbox: Mutex::new(Outbox {
                        pending: BTreeMap::new(),
                        generation: 0,
                    }),
                    wake: tokio::sync::Notify::new(),
                    stats: ReceiverStats::default(),
                })
            })
            .collect();
        Notifier {
            channels,
            backoff,
            external_url,
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// The receivers' outboxes and counters.
    pub fn channels(&self) -> &[Arc<Channel>] {
        &self.channels
    }

    /// Puts `alerts` into every outbox; never waits on a receiver.
    pub fn enqueue(&self, alerts: Vec<Notification>) {
        for channel in &self.channels {
            let mut outbox = channel.outbox.lock();
            outbox.generation += 1;
            let generation = outbox.generation;
            for alert in &alerts {
                outbox
                    .pending
                    .insert(alert.labels.clone(), (alert.clone(), generation));
            }
            drop(outbox);
            channel.wake.notify_one();
        }
    }

    /// Starts one delivery task per receiver (in the current tokio runtime).
    pub fn start(&self) {
        let mut tasks = self.tasks.lock();
        if !tasks.is_empty() {
            return;
        }
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        for channel in &self.channels {
            tasks.push(tokio::spawn(deliver(
                channel.clone(),
                client.clone(),
                self.backoff,
                self.external_url.clone(),
            )));
        }
    }

    /// Stops delivery; what is still queued stays queued.
    pub fn stop(&self) {
        for task in self.tasks.lock().drain(..) {
            task.abort();
        }
    }
}

/// Sends `channel`'s outbox whenever it has something, backing off while failing.
async fn deliver(
    channel: Arc<Channel>,
    client: Client<HttpConnector, Full<Bytes>>,
    backoff: Backoff,
    external_url: String,
) {
    let mut wait = backoff.initial;
    loop {
        let batch: Vec<(Notification, u64)> =
            channel.outbox.lock().pending.values().cloned().collect();
        if batch.is_empty() {
            channel.wake.notified().await;
            continue;
        }
        let alerts: Vec<&Notification> = batch.iter().map(|(n, _)| n).collect();
        let (url, body) = match channel.receiver.kind {
            ReceiverKind::Alertmanager => (
                format!(
                    "{}/api/v2/alerts",
                    channel.receiver.url.trim_end_matches('/')
                ),
                alertmanager_body(&alerts),
            ),
            ReceiverKind::Webhook => (
                channel.receiver.url.clone(),
                webhook_body(&alerts, &external_url),
            ),
        };
        match post(&client, &url, body, backoff.timeout).await {
            Ok(()) => {
                channel.stats.sent.fetch_add(1, Ordering::Relaxed);
                channel
                    .stats
                    .alerts
                    .fetch_add(alerts.len() as u64, Ordering::Relaxed);
                // Drop what was delivered, unless a newer notification replaced it.
                let mut outbox = channel.outbox.lock();
                for (n, generation) in &batch {
                    if outbox
                        .pending
                        .get(&n.labels)
                        .is_some_and(|(_, g)| g == generation)
                    {
                        outbox.pending.remove(&n.labels);
                    }
                }
                wait = backoff.initial;
            }
            Err(e) => {
                channel.stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(url = %url, error = %e, retry_in = ?wait, "alert delivery failed");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(backoff.max);
            }
        }
    }
}

async fn post(
    client: &Client<HttpConnector, Full<Bytes>>,
    url: &str,
    body: String,
    timeout: Duration,
) -> Result<(), String> {
    let request = hyper::Request::post(url)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(timeout, client.request(request))
        .await
        .map_err(|_| format!("no answer within {timeout:?}"))?
        .map_err(|e| e.to_string())?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("answered {status}"))
    }
}

/// Alertmanager's `postableAlerts`.
pub fn alertmanager_body(alerts: &[&Notification]) -> String {
    let alerts: Vec<_> = alerts
        .iter()
        .map(|a| {
            json!({
                "labels": a.labels,
                "annotations": a.annotations,
                "startsAt": rfc3339(a.starts_at),
                "endsAt": rfc3339(a.ends_at),
                "generatorURL": a.generator_url,
            })
        })
        .collect();
    serde_json::Value::Array(alerts).to_string()
}

/// Alertmanager's webhook JSON (version 4), all alerts in one group.
pub fn webhook_body(alerts: &[&Notification], external_url: &str) -> String {
    let status = |resolved: bool| if resolved { "resolved" } else { "firing" };
    let common = |pick: fn(&Notification) -> &Labels| -> Labels {
        let mut iter = alerts.iter().map(|a| pick(a));
        let Some(first) = iter.next() else {
            return Labels::new();
        };
        let mut common = first.clone();
        for other in iter {
            common.retain(|k, v| other.get(k) == Some(v));
        }
        common
    };
    let items: Vec<_> = alerts
        .iter()
        .map(|a| {
            json!({
                "status": status(a.resolved),
                "labels": a.labels,
                "annotations": a.annotations,
                "startsAt": rfc3339(a.starts_at),
                "endsAt": if a.resolved { rfc3339(a.ends_at) } else { "0001-01-01T00:00:00Z".into() },
                "generatorURL": a.generator_url,
                "fingerprint": fingerprint(&a.labels),
            })
        })
        .collect();
    json!({
        "version": "4",
        "groupKey": "{}:{}",
        "truncatedAlerts": 0,
        "status": status(alerts.iter().all(|a| a.resolved)),
        "receiver": "metricstore",
        "groupLabels": {},
        "commonLabels": common(|a| &a.labels),
        "commonAnnotations": common(|a| &a.annotations),
        "externalURL": external_url,
        "alerts": items,
    })
    .to_string()
}

/// A stable hex id of a label set (FNV-1a), as Alertmanager's `fingerprint`.
pub fn fingerprint(labels: &Labels) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (k, v) in labels {
        for b in k.bytes().chain([0xff]).chain(v.bytes()).chain([0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}
