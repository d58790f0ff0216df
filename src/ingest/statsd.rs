//! StatsD and DogStatsD packets in, aggregated [`WriteBatch`]es out.
//!
//! This module owns the StatsD text format and its aggregation, the one stateful piece of
//! ingest: [`parse_packet`] turns a UDP payload into [`Metric`]s, an [`Aggregator`]
//! accumulates them over a flush interval, and [`Aggregator::flush`] turns the interval
//! into one row per series. The server owns the socket and the flush timer; nothing here
//! does I/O or reads the clock (the flush time is an argument), so that tests can drive
//! it deterministically.
//!
//! ```text
//! api.requests:1|c|@0.1|#env:prod,region:eu
//! queue.depth:42|g
//! queue.depth:-3|g
//! api.latency:12.5:13:40|ms|#route:/users
//! api.users:alice|s
//! ```
//!
//! # Syntax accepted
//! A packet holds metrics separated by `\n` (a `\r` before it is dropped; blank lines are
//! skipped). Each is `name:value|type[|@rate][|#tags][|other...]`:
//! - `name`: everything before the first `:`, kept as given (StatsD's `.` included, any
//!   UTF-8 is a valid table name); it may not be empty or contain `|`, and
//!   [`validate_name`](crate::model::validate_name) must accept it as a table name.
//! - `value`: everything between the first `:` and the first `|`. Numbers are decimal or
//!   exponent floats (`1`, `-0.5`, `1e3`); NaN, infinities and numbers beyond `f64` are
//!   refused.
//! - `type`: `c` counter, `g` gauge, `ms` timer, `h` histogram, `d` distribution, `s` set.
//!   - `c`: one non-negative number. Negative increments are refused: counters are
//!     stored cumulative, and a total that goes down would read as a counter reset.
//!   - `g`: `N` sets the gauge; `+N` and `-N` add to its current value (StatsD: a sign
//!     always means a delta, so a negative gauge is set by sending `0` then `-N`).
//!   - `ms`, `h`, `d`: one or more numbers separated by `:` (DogStatsD 1.1 value packing,
//!     `latency:1:2:3|ms`); any sign.
//!   - `s`: the member is the whole value text, `:` included (so IPv6 addresses work).
//! - `@rate`: the sample rate, `0 < rate <= 1`. Counters count `value / rate`; timers,
//!   histograms and distributions count each value `1 / rate` times in `count` and `sum`.
//!   Gauges and sets accept and ignore it, as StatsD does.
//! - `#tags`: DogStatsD tags `key:value,key2:value2`, split at the first `:` (values may
//!   hold `:`). A tag without `:` (`#canary`) becomes `canary="true"`, so that it stays
//!   queryable rather than vanishing; empty entries (`a:1,,b:2`, a trailing `,`) are
//!   skipped; an empty value means "no such tag" as everywhere in MetricStore. Keys and
//!   values must pass [`validate_name`](crate::model::validate_name); a key may not repeat
//!   and may not be one of the metric's own field names (`value`, or `count`, `sum`,
//!   `min`, `max`, `avg`, `p<digits>` for timers), which would clash in the table schema.
//! - Any other section is ignored: DogStatsD's `|c:<container id>`, `|T<unix seconds>`
//!   (the aggregator timestamps rows with the flush time) and future extensions.
//!   Empty sections (`|c||#a:b`) and a second `@` or `#` section are errors.
//!
//! A bad line yields a [`ParseError`] with its 1-based line number within the packet and
//! 1-based byte column; the packet's good lines still count (as InfluxDB partial writes).
//! Events (`_e{...}`) and service checks (`_sc|...`) are not metrics and are reported as
//! bad lines.
//!
//! # Aggregation, per flush interval
//! A series is a metric name, its tags and its aggregation class (counter, gauge,
//! sampled, set); the table is the metric name and rows are timestamped with the flush
//! time. Sending one name as two classes (a counter and a timer) makes two series in one
//! table with different fields; that is the client's choice, not an error.
//! - **Counters** (`c`): field `value`, kind [`Counter`](FieldKind::Counter), the running
//!   total of `value / rate` since the series was created, never reset at flush, so SQL
//!   `rate()` works. Every flush emits every live counter, also without increments, so
//!   that `rate()` sees the zero increase. A counter idle for longer than
//!   [`StatsdConfig::idle_expiry_ms`] is forgotten; if it comes back it restarts at 0,
//!   which `rate()` reads as a counter reset.
//! - **Gauges** (`g`): field `value`, kind [`Gauge`](FieldKind::Gauge), the last value
//!   with deltas applied in arrival order. Emitted only in intervals that updated it
//!   (the store keeps the last value; querying "last value before t" works), unless
//!   [`StatsdConfig::repeat_gauges`] asks for StatsD's keep-sending behaviour. The value
//!   persists across flushes so that later deltas apply to it, until the gauge is idle
//!   for longer than [`StatsdConfig::idle_expiry_ms`] (then a delta starts from 0).
//! - **Timers, histograms, distributions** (`ms`, `h`, `d`, aggregated alike: one name
//!   sent as `ms` and as `h` is one series): one row per interval with fields `count`, `sum` (both sample-rate weighted), `min`, `max`,
//!   `avg` (`sum / count`, the rate-weighted mean) and one field per configured
//!   percentile, all of kind [`Histogram`](FieldKind::Histogram). Percentiles are exact
//!   nearest-rank over the interval's received values: the value at 1-based rank
//!   `ceil(q * n)` of the sorted values (the smallest value with at least `q * n` values
//!   at or below it). They are named `p` + the percent with `.` as `_`: 0.5 → `p50`,
//!   0.999 → `p99_9`. DESIGN.md asks for timers as sketches: the quantile-sketch type
//!   arrives with the downsampling work, and then timers will also be stored as sketches
//!   (mergeable across intervals); until then percentiles are exact per interval and
//!   cannot be combined across intervals, and an interval's values are held in memory
//!   (8 bytes each) until it is flushed.
//! - **Sets** (`s`): field `value`, kind [`Gauge`](FieldKind::Gauge), the number of
//!   distinct members seen in the interval; reset every flush. Members are remembered as
//!   64-bit hashes (a collision, about `n² / 2^65` likely, undercounts by one).
//!
//! Except for counters, a series without data in an interval emits no row.
//!
//! # Bounded memory
//! At most [`StatsdConfig::max_series`] series are live at once. A metric that would
//! create a series beyond it is dropped and counted in [`AggregatorStats::series_dropped`];
//! series free their slot when idle for [`StatsdConfig::idle_expiry_ms`]. Malformed
//! lines are counted, never fatal ([`Aggregator::add_packet`]).

// Explicit paths: resolved against this file's directory both when the crate declares
// `pub mod statsd;` and when a scratch crate mounts this file with `#[path]`.
#[path = "statsd/aggregate.rs"]
mod aggregate;
#[path = "statsd/config.rs"]
mod config;
#[path = "statsd/parse.rs"]
mod parse;

pub use aggregate::Aggregator;
pub use config::{AggregatorStats, ConfigError, StatsdConfig};
pub use parse::parse_packet;

#[cfg(doc)]
use super::ParseError;
use crate::model::TagSet;
#[cfg(doc)]
use crate::model::{FieldKind, WriteBatch};

/// One parsed StatsD metric: a name, its tags, a typed value and a sample rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// The metric name, which becomes the table name.
    pub name: String,
    /// DogStatsD tags (empty for plain StatsD).
    pub tags: TagSet,
    /// The value, by metric type.
    pub value: MetricValue,
    /// The `@rate` section, in `(0, 1]`; `1.0` when absent. Not yet applied to the value:
    /// the aggregator divides by it.
    pub sample_rate: f64,
}

/// A metric's value, by StatsD type.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricValue {
    /// `c`: an increment (non-negative).
    Counter(f64),
    /// `g` without sign: the new value.
    Gauge(f64),
    /// `g` with `+` or `-`: added to the current value.
    GaugeDelta(f64),
    /// `ms`: one or more durations.
    Timer(Vec<f64>),
    /// `h`: one or more observations.
    Histogram(Vec<f64>),
    /// `d`: one or more observations (DogStatsD distributions; aggregated like `h`).
    Distribution(Vec<f64>),
    /// `s`: one member.
    Set(String),
}

impl MetricValue {
    /// The StatsD type code: `c`, `g`, `ms`, `h`, `d` or `s`.
    pub fn type_code(&self) -> &'static str {
        match self {
            MetricValue::Counter(_) => "c",
            MetricValue::Gauge(_) | MetricValue::GaugeDelta(_) => "g",
            MetricValue::Timer(_) => "ms",
            MetricValue::Histogram(_) => "h",
            MetricValue::Distribution(_) => "d",
            MetricValue::Set(_) => "s",
        }
    }
}

#[cfg(test)]
#[path = "statsd/tests.rs"]
mod tests;
