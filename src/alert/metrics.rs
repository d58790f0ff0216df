//! Alerting's counters, rendered into `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use super::notify::Channel;

/// Upper bounds (seconds) of the rule evaluation histogram.
const BUCKETS: [f64; 9] = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 10.0];

/// Counters of rule evaluations, group runs and history writes.
#[derive(Debug, Default)]
pub struct AlertMetrics {
    evaluations: AtomicU64,
    failures: AtomicU64,
    buckets: [AtomicU64; 9],
    sum_micros: AtomicU64,
    missed: AtomicU64,
    history_refused: AtomicU64,
    /// Group → (last duration, last evaluation time ms).
    groups: Mutex<BTreeMap<String, (Duration, i64)>>,
}

impl AlertMetrics {
    /// Counts one rule evaluation.
    pub fn evaluation(&self, took: Duration, ok: bool) {
        self.evaluations.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        let s = took.as_secs_f64();
        for (bound, count) in BUCKETS.iter().zip(&self.buckets) {
            if s <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.sum_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// Records one group run.
    pub fn group_evaluated(&self, group: &str, took: Duration, at: i64) {
        self.groups.lock().insert(group.to_string(), (took, at));
    }

    /// Forgets a deleted group.
    pub fn group_removed(&self, group: &str) {
        self.groups.lock().remove(group);
    }

    /// Counts evaluation slots a group missed because its last run overran.
    pub fn missed(&self, slots: u64) {
        self.missed.fetch_add(slots, Ordering::Relaxed);
    }

    /// Counts `alerts` rows the store refused.
    pub fn history_refused(&self, rows: usize) {
        self.history_refused
            .fetch_add(rows as u64, Ordering::Relaxed);
    }

    /// Rule evaluations so far, and how many failed.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.evaluations.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
        )
    }

    /// Prometheus text format, with the receivers' counters.
    pub fn render(&self, channels: &[std::sync::Arc<Channel>], out: &mut String) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let n = load(&self.evaluations);
        let _ = writeln!(
            out,
            "# HELP metricstore_rule_evaluation_duration_seconds Time one alert rule took to evaluate.\n\
             # TYPE metricstore_rule_evaluation_duration_seconds histogram"
        );
        for (bound, count) in BUCKETS.iter().zip(&self.buckets) {
            let _ = writeln!(
                out,
                "metricstore_rule_evaluation_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                load(count)
            );
        }
        let _ = writeln!(
            out,
            "metricstore_rule_evaluation_duration_seconds_bucket{{le=\"+Inf\"}} {n}\n\
             metricstore_rule_evaluation_duration_seconds_sum {}\n\
             metricstore_rule_evaluation_duration_seconds_count {n}",
            load(&self.sum_micros) as f64 / 1e6
        );
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        counter(
            "metricstore_rule_evaluations_total",
            "Alert rule evaluations.",
            n,
        );
        counter(
            "metricstore_rule_evaluation_failures_total",
            "Alert rule evaluations that failed.",
            load(&self.failures),
        );
        counter(
            "metricstore_rule_group_iterations_missed_total",
            "Group evaluation slots skipped because the group's previous run overran.",
            load(&self.missed),
        );
        counter(
            "metricstore_alerts_history_refused_total",
            "Rows of the alerts table the store refused.",
            load(&self.history_refused),
        );
        let groups = self.groups.lock();
        let _ = writeln!(
            out,
            "# HELP metricstore_rule_group_last_duration_seconds Duration of each group's last evaluation.\n\
             # TYPE metricstore_rule_group_last_duration_seconds gauge"
        );
        for (name, (took, _)) in groups.iter() {
            let _ = writeln!(
                out,
                "metricstore_rule_group_last_duration_seconds{{rule_group=\"{}\"}} {}",
                escape(name),
                took.as_secs_f64()
            );
        }
        let _ = writeln!(
            out,
            "# HELP metricstore_rule_group_last_evaluation_timestamp_seconds Evaluation time of each group's last evaluation.\n\
             # TYPE metricstore_rule_group_last_evaluation_timestamp_seconds gauge"
        );
        for (name, (_, at)) in groups.iter() {
            let _ = writeln!(
                out,
                "metricstore_rule_group_last_evaluation_timestamp_seconds{{rule_group=\"{}\"}} {}",
                escape(name),
                *at as f64 / 1e3
            );
        }
        let _ = writeln!(
            out,
            "# HELP metricstore_notifications_sent_total Notification requests delivered, by receiver.\n\
             # TYPE metricstore_notifications_sent_total counter"
        );
        for c in channels {
            let _ = writeln!(
                out,
                "metricstore_notifications_sent_total{{receiver=\"{}\"}} {}",
                escape(&c.receiver.url),
                load(&c.stats.sent)
            );
        }
        let _ = writeln!(
            out,
            "# HELP metricstore_notifications_failed_total Notification requests that failed (and were retried), by receiver.\n\
             # TYPE metricstore_notifications_failed_total counter"
        );
        for c in channels {
            let _ = writeln!(
                out,
                "metricstore_notifications_failed_total{{receiver=\"{}\"}} {}",
                escape(&c.receiver.url),
                load(&c.stats.failed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP metricstore_notifications_queued Alerts waiting for delivery, by receiver.\n\
             # TYPE metricstore_notifications_queued gauge"
        );
        for c in channels {
            let _ = writeln!(
                out,
                "metricstore_notifications_queued{{receiver=\"{}\"}} {}",
                escape(&c.receiver.url),
                c.queued()
            );
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
