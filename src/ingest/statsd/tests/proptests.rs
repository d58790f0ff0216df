//! Property tests: no input panics, rendered metrics parse back, and the aggregator
//! agrees with a naive model over random sequences of metrics and flushes.

use std::collections::{BTreeMap, HashSet};

use proptest::prelude::*;

use super::*;

/// Text over the characters that matter to the syntax, plus a few ordinary ones.
fn statsd_ish() -> impl Strategy<Value = String> {
    "[a-c:|@#,.+\\-0-9e\n\r msghd_é{}]{0,60}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(packet in proptest::collection::vec(any::<u8>(), 0..200)) {
        let lines = packet.split(|&b| b == b'\n').count();
        let (metrics, errors) = parse_packet(&packet);
        prop_assert!(metrics.len() + errors.len() <= lines);
        for e in &errors {
            prop_assert!(e.line >= 1 && e.line <= lines && e.column >= 1, "{e:?}");
        }
        let mut agg = Aggregator::new(StatsdConfig::default());
        agg.add_packet(&packet);
        agg.flush(0);
    }

    #[test]
    fn syntax_soup_never_panics(packet in statsd_ish()) {
        let (metrics, errors) = parse_packet(packet.as_bytes());
        for e in &errors {
            let line = packet.split('\n').nth(e.line - 1).unwrap_or_default();
            // Columns point into the line or just past its end.
            prop_assert!(e.column >= 1 && e.column <= line.len() + 1, "{e:?} in {line:?}");
        }
        let mut agg = Aggregator::new(StatsdConfig { max_series: 3, ..StatsdConfig::default() });
        agg.add(&metrics);
        agg.flush(0);
        agg.flush(1);
    }
}

fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z_.é][a-zA-Z0-9_.\\-é]{0,10}"
}

fn value() -> impl Strategy<Value = f64> {
    any::<f64>().prop_filter("finite", |v| v.is_finite())
}

fn metric() -> impl Strategy<Value = Metric> {
    let values = || proptest::collection::vec(value(), 1..5);
    let value = prop_oneof![
        value().prop_map(|v| MetricValue::Counter(v.abs())),
        value().prop_map(|v| MetricValue::Gauge(v.abs())),
        value().prop_map(MetricValue::GaugeDelta),
        values().prop_map(MetricValue::Timer),
        values().prop_map(MetricValue::Histogram),
        values().prop_map(MetricValue::Distribution),
        "[^|\\p{Cc}]{1,12}".prop_map(MetricValue::Set),
    ];
    let tag_list =
        proptest::collection::btree_map("[a-z][a-z0-9_.]{0,6}", "[^|,\\p{Cc}]{0,8}", 0..4);
    let rate = prop_oneof![Just(1.0), (1u32..=1000).prop_map(|r| f64::from(r) / 1000.0)];
    (name(), tag_list, value, rate).prop_filter_map(
        "field-named tags",
        |(name, tags, value, rate)| {
            let sampled = matches!(
                value,
                MetricValue::Timer(_) | MetricValue::Histogram(_) | MetricValue::Distribution(_)
            );
            let clashes = |k: &str| {
                if sampled {
                    k.starts_with('p') || ["count", "sum", "min", "max", "avg"].contains(&k)
                } else {
                    k == "value"
                }
            };
            if tags.keys().any(|k| clashes(k) || k == "time") {
                return None;
            }
            Some(Metric {
                name,
                tags: TagSet::new(tags).ok()?,
                value,
                sample_rate: rate,
            })
        },
    )
}

/// `m` as a StatsD line.
fn render(m: &Metric) -> String {
    let value = match &m.value {
        MetricValue::Counter(v) | MetricValue::Gauge(v) => format!("{v}"),
        MetricValue::GaugeDelta(v) if v.is_sign_negative() => format!("{v}"),
        MetricValue::GaugeDelta(v) => format!("+{v}"),
        MetricValue::Timer(vs) | MetricValue::Histogram(vs) | MetricValue::Distribution(vs) => {
            vs.iter().map(f64::to_string).collect::<Vec<_>>().join(":")
        }
        MetricValue::Set(member) => member.clone(),
    };
    let mut line = format!("{}:{value}|{}", m.name, m.value.type_code());
    if m.sample_rate != 1.0 {
        line.push_str(&format!("|@{}", m.sample_rate));
    }
    if !m.tags.is_empty() {
        let pairs: Vec<String> = m
            .tags
            .pairs()
            .iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect();
        line.push_str(&format!("|#{}", pairs.join(",")));
    }
    line
}

proptest! {
    #[test]
    fn rendered_metrics_parse_back(metrics in proptest::collection::vec(metric(), 1..10)) {
        let packet: Vec<String> = metrics.iter().map(render).collect();
        let (parsed, errors) = parse_packet(packet.join("\n").as_bytes());
        prop_assert!(errors.is_empty(), "{errors:?} in {packet:?}");
        // -0.0 == 0.0 for PartialEq, but a rendered `-0` gauge is a delta: compare bits.
        prop_assert_eq!(format!("{parsed:?}"), format!("{metrics:?}"));
    }
}

/// One step of a random session.
#[derive(Debug, Clone)]
enum Op {
    Counter(usize, u32, f64),
    Gauge(usize, i32, bool),
    Timer(usize, Vec<i32>, f64),
    Set(usize, u8),
    Flush,
}

fn op() -> impl Strategy<Value = Op> {
    let series = 0usize..4;
    let rate = prop_oneof![Just(1.0), Just(0.5), Just(0.1), Just(0.03)];
    prop_oneof![
        (series.clone(), 0u32..1000, rate.clone()).prop_map(|(s, v, r)| Op::Counter(s, v, r)),
        (series.clone(), -1000i32..1000, any::<bool>()).prop_map(|(s, v, d)| Op::Gauge(s, v, d)),
        (
            series.clone(),
            proptest::collection::vec(-500i32..500, 1..20),
            rate
        )
            .prop_map(|(s, v, r)| Op::Timer(s, v, r)),
        (series, 0u8..30).prop_map(|(s, m)| Op::Set(s, m)),
        Just(Op::Flush),
    ]
}

/// What the module docs promise, computed the obvious way.
#[derive(Default)]
struct Model {
    counters: BTreeMap<usize, f64>,
    gauges: BTreeMap<usize, (f64, bool)>,
    timers: BTreeMap<usize, Vec<(f64, f64)>>,
    sets: BTreeMap<usize, HashSet<u8>>,
}

impl Model {
    /// The expected rows, as (table, fields) sorted like the batch.
    fn flush(&mut self) -> Vec<(String, Vec<(String, f64)>)> {
        let mut rows = Vec::new();
        let one = |v: f64| vec![("value".to_string(), v)];
        for (&s, &total) in &self.counters {
            rows.push((format!("s{s}"), 0, one(total)));
        }
        for (&s, (v, updated)) in &mut self.gauges {
            if std::mem::take(updated) {
                rows.push((format!("s{s}"), 1, one(*v)));
            }
        }
        for (&s, values) in &mut self.timers {
            if values.is_empty() {
                continue;
            }
            let (mut count, mut sum) = (0.0, 0.0);
            for &(v, rate) in values.iter() {
                count += 1.0 / rate;
                sum += v / rate;
            }
            let plain: Vec<f64> = values.iter().map(|&(v, _)| v).collect();
            let min = plain.iter().copied().fold(f64::INFINITY, f64::min);
            let max = plain.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mut fields = vec![
                ("count", count),
                ("sum", sum),
                ("min", min),
                ("max", max),
                ("avg", sum / count),
            ];
            for (name, p) in [("p50", 50), ("p90", 90), ("p99", 99)] {
                fields.push((name, naive_percentile(&plain, p)));
            }
            rows.push((
                format!("s{s}"),
                2,
                fields
                    .into_iter()
                    .map(|(n, v)| (n.to_string(), v))
                    .collect(),
            ));
            values.clear();
        }
        for (&s, members) in &mut self.sets {
            if !members.is_empty() {
                rows.push((format!("s{s}"), 3, one(members.len() as f64)));
                members.clear();
            }
        }
        rows.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        rows.into_iter().map(|(t, _, f)| (t, f)).collect()
    }
}

proptest! {
    #[test]
    fn aggregator_agrees_with_a_naive_model(ops in proptest::collection::vec(op(), 1..80)) {
        let mut agg = Aggregator::new(StatsdConfig { idle_expiry_ms: None, ..StatsdConfig::default() });
        let mut model = Model::default();
        let mut now = 0;
        for op in ops.iter().chain([&Op::Flush]) {
            let line = match op {
                Op::Counter(s, v, r) => {
                    *model.counters.entry(*s).or_default() += f64::from(*v) / r;
                    format!("s{s}:{v}|c|@{r}")
                }
                Op::Gauge(s, v, delta) => {
                    let g = model.gauges.entry(*s).or_default();
                    *g = (if *delta { g.0 + f64::from(*v) } else { f64::from(*v) }, true);
                    let sign = if *delta && *v >= 0 { "+" } else { "" };
                    let prefix = if !*delta && *v < 0 { format!("s{s}:0|g\n") } else { String::new() };
                    if !*delta && *v < 0 {
                        // Setting a negative gauge takes `0` then a delta.
                        *g = (f64::from(*v), true);
                    }
                    format!("{prefix}s{s}:{sign}{v}|g")
                }
                Op::Timer(s, vs, r) => {
                    model.timers.entry(*s).or_default().extend(vs.iter().map(|&v| (f64::from(v), *r)));
                    let text: Vec<String> = vs.iter().map(i32::to_string).collect();
                    format!("s{s}:{}|ms|@{r}", text.join(":"))
                }
                Op::Set(s, m) => {
                    model.sets.entry(*s).or_default().insert(*m);
                    format!("s{s}:member{m}|s")
                }
                Op::Flush => {
                    now += 10_000;
                    let got: Vec<(String, Vec<(String, f64)>)> = rows(&agg.flush(now))
                        .into_iter()
                        .map(|r| (r.table, r.fields.into_iter().map(|(n, _, v)| (n, v)).collect()))
                        .collect();
                    prop_assert_eq!(got, model.flush());
                    continue;
                }
            };
            let errors = agg.add_packet(line.as_bytes());
            prop_assert!(errors.is_empty(), "{line}: {errors:?}");
        }
    }
}
