//! The aggregator's configuration and the counters it reports.

#[cfg(doc)]
use super::{Aggregator, Metric};

/// How the aggregator summarises and bounds what it receives.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsdConfig {
    /// Quantiles emitted for timers, histograms and distributions, as fractions in
    /// `(0, 1]`; 0.99 becomes the field `p99`, 0.999 the field `p99_9`. Default
    /// `[0.5, 0.9, 0.99]`.
    pub percentiles: Vec<f64>,
    /// Most series (name + tags + class) held at once; metrics that would create more are
    /// dropped and counted. Default 100,000.
    pub max_series: usize,
    /// A series not updated for longer than this (compared at flush times) is forgotten,
    /// freeing its slot; a forgotten counter restarts at 0. `None` keeps series forever.
    /// Default one hour.
    pub idle_expiry_ms: Option<i64>,
    /// Emit every live gauge at every flush (StatsD's default) instead of only the gauges
    /// updated in the interval. Default `false`: the store already holds the last value.
    pub repeat_gauges: bool,
}

impl Default for StatsdConfig {
    fn default() -> StatsdConfig {
        StatsdConfig {
            percentiles: vec![0.5, 0.9, 0.99],
            max_series: 100_000,
            idle_expiry_ms: Some(3_600_000),
            repeat_gauges: false,
        }
    }
}

/// A configuration the aggregator cannot honour as written.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// A percentile outside `(0, 1]` (or NaN).
    #[error("statsd percentile {0} is out of range: expected a fraction 0 < q <= 1 (0.99 for p99)")]
    Percentile(f64),
    /// Two percentiles that would name the same field.
    #[error("statsd percentiles {0} and {1} both name the field {2:?}")]
    DuplicatePercentile(f64, f64, String),
    /// A zero or negative idle expiry.
    #[error("statsd idle_expiry_ms must be positive, got {0}")]
    IdleExpiry(i64),
}

impl StatsdConfig {
    /// Checks the configuration, so the server can refuse a bad one at startup;
    /// [`Aggregator::new`] skips bad and repeated percentiles instead.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut seen: Vec<(f64, String)> = Vec::new();
        for &q in &self.percentiles {
            if !(q > 0.0 && q <= 1.0) {
                return Err(ConfigError::Percentile(q));
            }
            let name = percentile_field(q);
            if let Some((other, _)) = seen.iter().find(|(_, n)| *n == name) {
                return Err(ConfigError::DuplicatePercentile(*other, q, name));
            }
            seen.push((q, name));
        }
        match self.idle_expiry_ms {
            Some(ms) if ms <= 0 => Err(ConfigError::IdleExpiry(ms)),
            _ => Ok(()),
        }
    }
}

/// The field name of quantile `q`: `p` + the percent with at most 4 decimals, `.` as `_`
/// (a field name without `.` needs no quoting in SQL).
pub(super) fn percentile_field(q: f64) -> String {
    let percent = format!("{:.4}", q * 100.0);
    let percent = percent.trim_end_matches('0').trim_end_matches('.');
    format!("p{}", percent.replace('.', "_"))
}

/// Counters about what the aggregator received and refused, since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AggregatorStats {
    /// Metrics given to [`Aggregator::add`] (including those parsed by
    /// [`Aggregator::add_packet`]), accepted or not.
    pub metrics_received: u64,
    /// Bad lines seen by [`Aggregator::add_packet`].
    pub lines_rejected: u64,
    /// Metrics refused because they would have created a series beyond
    /// [`StatsdConfig::max_series`] (each refused metric counts once).
    pub series_dropped: u64,
    /// Metrics refused because the parser would have refused them (non-finite value,
    /// sample rate outside `(0, 1]`, negative counter increment, no timer values), because a tag has the
    /// name of one of the metric's fields, or because a counter or gauge would overflow
    /// `f64`. Only hand-built [`Metric`]s and the configured percentile names reach this.
    pub metrics_invalid: u64,
    /// Series forgotten after [`StatsdConfig::idle_expiry_ms`] without updates.
    pub series_expired: u64,
    /// Series held now.
    pub series: usize,
    /// Calls to [`Aggregator::flush`].
    pub flushes: u64,
    /// Rows emitted by all flushes.
    pub rows_flushed: u64,
}
