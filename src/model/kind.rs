//! Field kinds: what a field's values mean, which decides codecs and valid functions.

use std::fmt;

/// What a field's values mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FieldKind {
    /// A monotonic counter that may reset to zero (Prometheus `counter`, `_total`).
    Counter,
    /// A value that goes up and down.
    #[default]
    Gauge,
    /// Part of a classic histogram or summary (`_bucket`, `_sum`, `_count`, StatsD timers).
    Histogram,
}

impl FieldKind {
    /// The kind a metric's name suggests when no metadata says otherwise.
    ///
    /// Follows Prometheus conventions: `_total` is a counter; `_bucket`, `_sum` and
    /// `_count` belong to histograms and summaries.
    pub fn infer(metric_name: &str) -> FieldKind {
        if metric_name.ends_with("_total") {
            FieldKind::Counter
        } else if metric_name.ends_with("_bucket")
            || metric_name.ends_with("_sum")
            || metric_name.ends_with("_count")
        {
            FieldKind::Histogram
        } else {
            FieldKind::Gauge
        }
    }

    /// The lower-case name used in configuration and `DESCRIBE`.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldKind::Counter => "counter",
            FieldKind::Gauge => "gauge",
            FieldKind::Histogram => "histogram",
        }
    }
}

impl fmt::Display for FieldKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infers_kinds_from_prometheus_suffixes() {
        assert_eq!(FieldKind::infer("http_requests_total"), FieldKind::Counter);
        assert_eq!(FieldKind::infer("rpc_latency_bucket"), FieldKind::Histogram);
        assert_eq!(FieldKind::infer("rpc_latency_count"), FieldKind::Histogram);
        assert_eq!(FieldKind::infer("node_load1"), FieldKind::Gauge);
    }
}
