//! The `alerts` table: one row per pending or firing instance per evaluation, like
//! Prometheus' `ALERTS` series, so that SQL can query alert history:
//!
//! ```sql
//! SELECT time, host FROM alerts WHERE alertname = 'HighCpu' AND alertstate = 'firing';
//! ```
//! Tags: `alertname`, `alertstate` (`pending` or `firing`) and the alert's labels;
//! field `value` = 1. This is the only table alerting writes.

use super::metrics::AlertMetrics;
use super::state::Labels;
use crate::model::{NameKind, validate_name};
use crate::{MetricStore, TagSet, WriteBatch};

/// The history table's name.
pub const TABLE: &str = "alerts";

/// Writes one row per `(labels, state)` at `at` (ms). Rows the store refuses (a label
/// name it cannot store, a time outside its window) are counted, never fatal: history
/// must not stop alerting.
pub fn record(store: &MetricStore, at: i64, rows: &[(Labels, &str)], metrics: &AlertMetrics) {
    let mut batch = WriteBatch::new();
    for (labels, state) in rows {
        // `alertname` is among the labels; labels the store refuses as tag names
        // (`__x`, `time`) are left out rather than losing the row.
        let tags = labels
            .iter()
            .filter(|(k, _)| *k != "alertstate" && validate_name(NameKind::Tag, k).is_ok())
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain([("alertstate", *state)]);
        match TagSet::new(tags) {
            Ok(tags) => batch.add_sample(TABLE, tags, "value", at, 1.0),
            Err(_) => metrics.history_refused(1),
        }
    }
    match store.write_partial(&batch) {
        Ok(refused) => metrics.history_refused(refused.len()),
        Err(e) => {
            tracing::warn!(error = %e, "cannot write the alerts table");
            metrics.history_refused(batch.row_count());
        }
    }
}
