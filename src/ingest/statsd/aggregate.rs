//! The aggregator: metrics of one flush interval in, one row per series out.

use std::collections::{HashMap, HashSet};

use super::config::percentile_field;
use super::{AggregatorStats, Metric, MetricValue, StatsdConfig, parse_packet};
use crate::ingest::ParseError;
use crate::model::{FieldKind, SeriesWrite, TagSet, WriteBatch};

type Map<K, V> = HashMap<K, V, ahash::RandomState>;

/// The fields every timer, histogram and distribution row starts with; the configured
/// percentiles follow.
const SAMPLED_FIELDS: [&str; 5] = ["count", "sum", "min", "max", "avg"];

/// The aggregation state of StatsD metrics between flushes (see the module docs for the
/// semantics per type). Not thread-safe by itself: the server owns it behind its UDP
/// reader(s), adds packets and calls [`flush`](Aggregator::flush) on its timer.
#[derive(Debug)]
pub struct Aggregator {
    config: StatsdConfig,
    /// The accepted percentiles, in configuration order, and their field names.
    percentiles: Vec<f64>,
    sampled_fields: Vec<String>,
    counters: Series<f64>,
    gauges: Series<f64>,
    sampled: Series<Sampled>,
    sets: Series<Members>,
    budget: Budget,
    /// Hashes set members: one fixed hasher so that a member always hashes the same.
    member_hasher: ahash::RandomState,
    stats: AggregatorStats,
}

/// One interval of timer, histogram or distribution values.
#[derive(Debug, Default)]
struct Sampled {
    values: Vec<f64>,
    /// Sample-rate weighted count and sum.
    count: f64,
    sum: f64,
}

/// The hashes of one interval's set members.
type Members = HashSet<u64, ahash::RandomState>;

impl Aggregator {
    /// An empty aggregator. Percentiles outside `(0, 1]` and ones naming a field twice are
    /// skipped (call [`StatsdConfig::validate`] first to refuse them instead).
    pub fn new(config: StatsdConfig) -> Aggregator {
        let mut percentiles = Vec::new();
        let mut sampled_fields: Vec<String> = SAMPLED_FIELDS.map(String::from).to_vec();
        for &q in &config.percentiles {
            let name = percentile_field(q);
            if q > 0.0 && q <= 1.0 && !sampled_fields.contains(&name) {
                percentiles.push(q);
                sampled_fields.push(name);
            }
        }
        Aggregator {
            budget: Budget {
                live: 0,
                max: config.max_series,
                dropped: 0,
            },
            config,
            percentiles,
            sampled_fields,
            counters: Series::default(),
            gauges: Series::default(),
            sampled: Series::default(),
            sets: Series::default(),
            member_hasher: ahash::RandomState::new(),
            stats: AggregatorStats::default(),
        }
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &StatsdConfig {
        &self.config
    }

    /// The fields of timer, histogram and distribution rows, in row order: `count`,
    /// `sum`, `min`, `max`, `avg`, then one per percentile (`p50`, ...).
    pub fn sampled_fields(&self) -> &[String] {
        &self.sampled_fields
    }

    /// Parses `packet` and adds its metrics; returns the bad lines (counted in
    /// [`AggregatorStats::lines_rejected`]) for the caller to log. Never fails.
    pub fn add_packet(&mut self, packet: &[u8]) -> Vec<ParseError> {
        let (metrics, errors) = parse_packet(packet);
        self.stats.lines_rejected += errors.len() as u64;
        self.add(&metrics);
        errors
    }

    /// Adds metrics to the current interval, in order (gauge deltas apply in order).
    pub fn add(&mut self, metrics: &[Metric]) {
        for metric in metrics {
            self.stats.metrics_received += 1;
            if !self.add_one(metric) {
                self.stats.metrics_invalid += 1;
            }
        }
    }

    /// Adds one metric; `false` if it is invalid (a dropped series is not invalid).
    fn add_one(&mut self, m: &Metric) -> bool {
        let rate = m.sample_rate;
        if !(rate > 0.0 && rate <= 1.0) || self.tag_clashes(m) {
            return false;
        }
        let budget = &mut self.budget;
        match &m.value {
            MetricValue::Counter(v) => {
                let increment = v / rate;
                if !(increment.is_finite() && increment >= 0.0) {
                    return false;
                }
                let Some(total) = self.counters.slot(&m.name, &m.tags, budget, || 0.0) else {
                    return true;
                };
                let next = *total + increment;
                apply_finite(total, next)
            }
            MetricValue::Gauge(v) | MetricValue::GaugeDelta(v) if !v.is_finite() => false,
            MetricValue::Gauge(v) => match self.gauges.slot(&m.name, &m.tags, budget, || 0.0) {
                Some(gauge) => apply_finite(gauge, *v),
                None => true,
            },
            MetricValue::GaugeDelta(d) => {
                match self.gauges.slot(&m.name, &m.tags, budget, || 0.0) {
                    Some(gauge) => {
                        let next = *gauge + d;
                        apply_finite(gauge, next)
                    }
                    None => true,
                }
            }
            MetricValue::Timer(values)
            | MetricValue::Histogram(values)
            | MetricValue::Distribution(values) => {
                if values.is_empty() || values.iter().any(|v| !(v / rate).is_finite()) {
                    return false;
                }
                let Some(s) = self
                    .sampled
                    .slot(&m.name, &m.tags, budget, Sampled::default)
                else {
                    return true;
                };
                s.values.extend_from_slice(values);
                for v in values {
                    s.count += 1.0 / rate;
                    s.sum += v / rate;
                }
                true
            }
            MetricValue::Set(member) => {
                let hash = self.member_hasher.hash_one(member);
                if let Some(members) = self.sets.slot(&m.name, &m.tags, budget, Members::default) {
                    members.insert(hash);
                }
                true
            }
        }
    }

    /// Whether a tag of `m` has the name of one of the fields its row will carry.
    fn tag_clashes(&self, m: &Metric) -> bool {
        let sampled = matches!(
            m.value,
            MetricValue::Timer(_) | MetricValue::Histogram(_) | MetricValue::Distribution(_)
        );
        m.tags.pairs().iter().any(|(key, _)| {
            if sampled {
                self.sampled_fields.iter().any(|f| f == key)
            } else {
                key == "value"
            }
        })
    }

    /// Ends the interval: one row per series at `now_ms` (see the module docs for which
    /// series emit), then forgets idle series. The batch is sorted by table and tags, so
    /// equal input gives an equal batch.
    pub fn flush(&mut self, now_ms: i64) -> WriteBatch {
        let expiry = self.config.idle_expiry_ms;
        let mut expired = 0;
        let mut rows: Vec<SeriesWrite> = Vec::new();
        let budget = &mut self.budget;

        let value = ["value"];
        self.counters.sweep(
            now_ms,
            expiry,
            budget,
            &mut expired,
            |name, tags, _, total| {
                rows.extend(row(
                    name,
                    tags,
                    &value,
                    FieldKind::Counter,
                    now_ms,
                    &[*total],
                ));
            },
        );
        let repeat = self.config.repeat_gauges;
        self.gauges.sweep(
            now_ms,
            expiry,
            budget,
            &mut expired,
            |name, tags, updated, v| {
                if updated || repeat {
                    rows.extend(row(name, tags, &value, FieldKind::Gauge, now_ms, &[*v]));
                }
            },
        );
        let fields: Vec<&str> = self.sampled_fields.iter().map(String::as_str).collect();
        let percentiles = &self.percentiles;
        let mut values = Vec::with_capacity(fields.len());
        self.sampled
            .sweep(now_ms, expiry, budget, &mut expired, |name, tags, _, s| {
                if s.values.is_empty() {
                    return;
                }
                s.values.sort_unstable_by(f64::total_cmp);
                let (min, max) = match (s.values.first(), s.values.last()) {
                    (Some(&min), Some(&max)) => (min, max),
                    _ => return,
                };
                values.clear();
                values.extend([s.count, s.sum, min, max, s.sum / s.count]);
                values.extend(percentiles.iter().map(|&q| nearest_rank(&s.values, q)));
                rows.extend(row(
                    name,
                    tags,
                    &fields,
                    FieldKind::Histogram,
                    now_ms,
                    &values,
                ));
                // Keep the allocation for the next interval, but not a burst's worth.
                let n = s.values.len();
                s.values.clear();
                s.values.shrink_to(n);
                s.count = 0.0;
                s.sum = 0.0;
            });
        self.sets.sweep(
            now_ms,
            expiry,
            budget,
            &mut expired,
            |name, tags, _, members| {
                if members.is_empty() {
                    return;
                }
                let n = members.len();
                rows.extend(row(
                    name,
                    tags,
                    &value,
                    FieldKind::Gauge,
                    now_ms,
                    &[n as f64],
                ));
                members.clear();
                members.shrink_to(n);
            },
        );

        rows.sort_by(|a, b| (a.table(), a.tags()).cmp(&(b.table(), b.tags())));
        self.stats.series_expired += expired;
        self.stats.flushes += 1;
        self.stats.rows_flushed += rows.len() as u64;
        let mut batch = WriteBatch::new();
        for r in rows {
            batch.push(r);
        }
        batch
    }

    /// Counters since the aggregator started, and the series held now.
    pub fn stats(&self) -> AggregatorStats {
        AggregatorStats {
            series_dropped: self.budget.dropped,
            series: self.budget.live,
            ..self.stats
        }
    }
}

/// Stores `next` in `slot` if it is finite; `false` (invalid) otherwise.
fn apply_finite(slot: &mut f64, next: f64) -> bool {
    if next.is_finite() {
        *slot = next;
    }
    next.is_finite()
}

/// One single-row group, every field of `kind`.
fn row(
    name: &str,
    tags: &TagSet,
    fields: &[&str],
    kind: FieldKind,
    now_ms: i64,
    values: &[f64],
) -> Option<SeriesWrite> {
    let mut s = SeriesWrite::new(name, tags.clone(), fields);
    for field in fields {
        s.with_kind(field, kind);
    }
    // Fails only if `values` and `fields` differ in length, which callers rule out.
    s.push(now_ms, values).ok()?;
    Some(s)
}

/// The nearest-rank `q` quantile of sorted, non-empty `sorted`: the value at 1-based
/// rank `ceil(q * n)`, clamped to `1..=n`.
pub(super) fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    let x = q * n as f64;
    let nearest = x.round();
    // `q * n` is often an integer that f64 misses by an ulp (0.07 * 100 is
    // 7.000000000000001); ceil would then pick the next rank.
    let rank = if (x - nearest).abs() <= 1e-9 * x.max(1.0) {
        nearest
    } else {
        x.ceil()
    };
    let rank = (rank as usize).clamp(1, n.max(1));
    sorted.get(rank - 1).copied().unwrap_or(f64::NAN)
}

/// The live-series budget shared by all classes.
#[derive(Debug)]
struct Budget {
    live: usize,
    max: usize,
    dropped: u64,
}

/// The series of one class: name → tags → state. Two levels so that a lookup borrows the
/// metric's name and tags instead of building an owned key per metric.
#[derive(Debug)]
struct Series<S> {
    tables: Map<String, Map<TagSet, Entry<S>>>,
}

impl<S> Default for Series<S> {
    fn default() -> Series<S> {
        Series {
            tables: Map::default(),
        }
    }
}

#[derive(Debug)]
struct Entry<S> {
    state: S,
    /// Whether the current interval updated it.
    updated: bool,
    /// The flush time that closed the last interval that updated it.
    seen_ms: i64,
}

impl<S> Series<S> {
    /// The state of series `name` + `tags`, marked updated; created with `make` if the
    /// budget allows, else `None` (counted as dropped).
    fn slot(
        &mut self,
        name: &str,
        tags: &TagSet,
        budget: &mut Budget,
        make: impl FnOnce() -> S,
    ) -> Option<&mut S> {
        let known = self.tables.get(name).is_some_and(|t| t.contains_key(tags));
        if !known {
            if budget.live >= budget.max {
                budget.dropped += 1;
                return None;
            }
            budget.live += 1;
            let entry = Entry {
                state: make(),
                updated: true,
                seen_ms: i64::MIN,
            };
            match self.tables.get_mut(name) {
                Some(table) => {
                    table.insert(tags.clone(), entry);
                }
                None => {
                    let mut table = Map::default();
                    table.insert(tags.clone(), entry);
                    self.tables.insert(name.to_string(), table);
                }
            }
        }
        let entry = self.tables.get_mut(name)?.get_mut(tags)?;
        entry.updated = true;
        Some(&mut entry.state)
    }

    /// Ends an interval: forgets series idle for longer than `expiry` (counting them in
    /// `expired`), passes the others to `visit` with whether the interval updated them,
    /// then starts a new interval.
    fn sweep(
        &mut self,
        now_ms: i64,
        expiry: Option<i64>,
        budget: &mut Budget,
        expired: &mut u64,
        mut visit: impl FnMut(&str, &TagSet, bool, &mut S),
    ) {
        self.tables.retain(|name, table| {
            table.retain(|tags, entry| {
                if entry.updated {
                    entry.seen_ms = now_ms;
                } else if expiry.is_some_and(|ms| now_ms.saturating_sub(entry.seen_ms) > ms) {
                    budget.live = budget.live.saturating_sub(1);
                    *expired += 1;
                    return false;
                }
                visit(name, tags, entry.updated, &mut entry.state);
                entry.updated = false;
                true
            });
            !table.is_empty()
        });
    }
}
