//! Aggregation semantics per type, checked against naive computations.

use std::collections::HashSet;

use super::*;
use crate::ingest::statsd::aggregate::nearest_rank;
use crate::ingest::statsd::config::percentile_field;

fn aggregator() -> Aggregator {
    Aggregator::new(StatsdConfig::default())
}

fn add(agg: &mut Aggregator, packet: &str) {
    let errors = agg.add_packet(packet.as_bytes());
    assert!(errors.is_empty(), "{packet:?}: {errors:?}");
}

fn flush(agg: &mut Aggregator, now_ms: i64) -> Vec<Row> {
    rows(&agg.flush(now_ms))
}

fn no_tags() -> TagSet {
    TagSet::empty()
}

#[test]
fn counters_are_cumulative_across_flushes_with_rates_applied() {
    let mut agg = aggregator();
    add(&mut agg, "hits:1|c\nhits:2|c|@0.5\nhits:1|c|#env:prod");
    let r = flush(&mut agg, 10_000);
    let hits = find(&r, "hits", &no_tags()).unwrap();
    assert_eq!(hits.time, 10_000);
    assert_eq!(
        hits.fields,
        [("value".into(), Some(FieldKind::Counter), 5.0)]
    );
    assert_eq!(
        find(&r, "hits", &tags(&[("env", "prod")]))
            .unwrap()
            .get("value"),
        1.0
    );

    add(&mut agg, "hits:3|c|@0.1");
    let r = flush(&mut agg, 20_000);
    assert_eq!(find(&r, "hits", &no_tags()).unwrap().get("value"), 35.0);
    // No increments: the unchanged total is emitted, so rate() sees zero increase.
    assert_eq!(
        find(&r, "hits", &tags(&[("env", "prod")]))
            .unwrap()
            .get("value"),
        1.0
    );
    let r = flush(&mut agg, 30_000);
    assert_eq!(find(&r, "hits", &no_tags()).unwrap().get("value"), 35.0);
    assert_eq!(r.len(), 2);
}

#[test]
fn counter_totals_match_a_naive_sum_over_many_flushes() {
    let rates = [1.0, 0.5, 0.25, 0.1];
    let mut agg = aggregator();
    let mut naive = 0.0;
    let mut x: u64 = 7;
    // Flushes 7, 14, ... add nothing and must still report the total.
    for flush_no in 1..50 {
        for _ in 0..(flush_no % 7) {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let v = (x >> 40) % 100;
            let rate = rates[(x >> 20) as usize % rates.len()];
            add(&mut agg, &format!("c:{v}|c|@{rate}"));
            naive += v as f64 / rate;
        }
        let r = flush(&mut agg, flush_no * 1000);
        assert_eq!(find(&r, "c", &no_tags()).unwrap().get("value"), naive);
    }
}

#[test]
fn gauges_apply_deltas_in_order_and_emit_only_when_updated() {
    let mut agg = aggregator();
    add(
        &mut agg,
        "g:10|g\ng:+5|g\ng:-3|g\nnew:-4|g\nneg:0|g\nneg:-7|g",
    );
    let r = flush(&mut agg, 1);
    let g = find(&r, "g", &no_tags()).unwrap();
    assert_eq!(g.fields, [("value".into(), Some(FieldKind::Gauge), 12.0)]);
    // A delta on an unknown gauge starts from 0; a negative gauge is 0 then a delta.
    assert_eq!(find(&r, "new", &no_tags()).unwrap().get("value"), -4.0);
    assert_eq!(find(&r, "neg", &no_tags()).unwrap().get("value"), -7.0);

    add(&mut agg, "g:+1|g");
    let r = flush(&mut agg, 2);
    assert_eq!(r.len(), 1);
    assert_eq!(find(&r, "g", &no_tags()).unwrap().get("value"), 13.0);
    assert!(flush(&mut agg, 3).is_empty());
    // The value survives idle intervals, so a later delta applies to it.
    add(&mut agg, "g:-13|g");
    assert_eq!(flush(&mut agg, 4)[0].get("value"), 0.0);
}

#[test]
fn repeat_gauges_emits_every_gauge_every_flush() {
    let config = StatsdConfig {
        repeat_gauges: true,
        ..StatsdConfig::default()
    };
    let mut agg = Aggregator::new(config);
    add(&mut agg, "g:10|g|@0.5");
    assert_eq!(flush(&mut agg, 1)[0].get("value"), 10.0);
    assert_eq!(flush(&mut agg, 2)[0].get("value"), 10.0);
}

#[test]
fn timers_emit_count_sum_min_max_avg_and_percentiles() {
    let mut agg = aggregator();
    let values: Vec<String> = (1..=100).rev().map(|v| v.to_string()).collect();
    add(&mut agg, &format!("lat:{}|ms|#route:/a", values.join(":")));
    let r = flush(&mut agg, 5);
    let row = find(&r, "lat", &tags(&[("route", "/a")])).unwrap();
    let expected = [
        ("count", 100.0),
        ("sum", 5050.0),
        ("min", 1.0),
        ("max", 100.0),
        ("avg", 50.5),
        ("p50", 50.0),
        ("p90", 90.0),
        ("p99", 99.0),
    ];
    let got: Vec<(&str, Option<FieldKind>, f64)> = row
        .fields
        .iter()
        .map(|(n, k, v)| (n.as_str(), *k, *v))
        .collect();
    let want: Vec<(&str, Option<FieldKind>, f64)> = expected
        .iter()
        .map(|&(n, v)| (n, Some(FieldKind::Histogram), v))
        .collect();
    assert_eq!(got, want);
    // Nothing in the next interval: no row.
    assert!(flush(&mut agg, 6).is_empty());
}

#[test]
fn timer_sample_rates_weight_count_and_sum_but_not_percentiles() {
    let mut agg = aggregator();
    add(&mut agg, "t:10|ms|@0.5\nt:20:30|h|@0.25\nt:40|d");
    let r = flush(&mut agg, 1);
    assert_eq!(r.len(), 1, "ms, h and d of one name are one series");
    let row = &r[0];
    assert_eq!(row.get("count"), 2.0 + 4.0 + 4.0 + 1.0);
    assert_eq!(row.get("sum"), 20.0 + 80.0 + 120.0 + 40.0);
    assert_eq!(row.get("avg"), 260.0 / 11.0);
    assert_eq!((row.get("min"), row.get("max")), (10.0, 40.0));
    assert_eq!((row.get("p50"), row.get("p99")), (20.0, 40.0));
}

#[test]
fn timer_percentiles_match_a_naive_count_over_random_values() {
    let percents = [1, 7, 10, 25, 33, 50, 66, 70, 90, 95, 99, 100];
    let config = StatsdConfig {
        percentiles: percents.iter().map(|&p| f64::from(p) / 100.0).collect(),
        ..StatsdConfig::default()
    };
    let mut agg = Aggregator::new(config);
    let mut x: u64 = 99;
    for n in [1usize, 2, 3, 7, 10, 99, 100, 101, 1000] {
        let mut values = Vec::new();
        for _ in 0..n {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // Few distinct values, so that ties are common.
            values.push(((x >> 33) % 50) as f64 - 10.0);
        }
        let text: Vec<String> = values.iter().map(f64::to_string).collect();
        add(&mut agg, &format!("t:{}|ms", text.join(":")));
        let r = flush(&mut agg, n as i64);
        for p in percents {
            let field = format!("p{p}");
            let naive = naive_percentile(&values, p);
            assert_eq!(r[0].get(&field), naive, "n={n} {field} of {values:?}");
        }
    }
}

#[test]
fn nearest_rank_picks_rank_ceil_q_n() {
    let ten: Vec<f64> = (1..=10).map(f64::from).collect();
    assert_eq!(nearest_rank(&ten, 0.5), 5.0);
    assert_eq!(nearest_rank(&ten, 0.51), 6.0);
    assert_eq!(nearest_rank(&ten, 0.9), 9.0);
    assert_eq!(nearest_rank(&ten, 0.99), 10.0);
    assert_eq!(nearest_rank(&ten, 1.0), 10.0);
    assert_eq!(nearest_rank(&ten, 0.01), 1.0);
    let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
    // 0.07 * 100 is 7.000000000000001 in f64; the rank is still 7.
    assert_eq!(nearest_rank(&hundred, 0.07), 7.0);
    assert_eq!(nearest_rank(&[3.0], 0.5), 3.0);
}

#[test]
fn sets_count_distinct_members_per_interval() {
    let mut agg = aggregator();
    let mut naive = HashSet::new();
    let mut packet = String::new();
    for i in 0..500u64 {
        let member = format!("user{}", (i * 7919) % 211);
        naive.insert(member.clone());
        packet.push_str(&format!("u:{member}|s\n"));
    }
    add(&mut agg, &packet);
    add(
        &mut agg,
        "ip:2001:db8::1|s\nip:2001:db8::2|s\nip:2001:db8::1|s",
    );
    let r = flush(&mut agg, 1);
    let u = find(&r, "u", &no_tags()).unwrap();
    assert_eq!(
        u.fields,
        [("value".into(), Some(FieldKind::Gauge), naive.len() as f64)]
    );
    assert_eq!(find(&r, "ip", &no_tags()).unwrap().get("value"), 2.0);
    // Reset each flush.
    assert!(flush(&mut agg, 2).is_empty());
    add(&mut agg, "u:user1|s");
    assert_eq!(flush(&mut agg, 3)[0].get("value"), 1.0);
}

#[test]
fn one_packet_many_types_gives_a_sorted_batch() {
    let mut agg = aggregator();
    let errors = agg.add_packet(b"z:1|c\na:2|g\nm:3|ms\nm:1|c\nbad\nm:x|s|#k:v\n");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].line, 5);
    let r = flush(&mut agg, 1);
    let order: Vec<(&str, usize)> = r
        .iter()
        .map(|r| (r.table.as_str(), r.fields.len()))
        .collect();
    // Same table and tags: counter before timer (class order).
    assert_eq!(order, [("a", 1), ("m", 1), ("m", 8), ("m", 1), ("z", 1)]);
    let stats = agg.stats();
    assert_eq!(stats.metrics_received, 5);
    assert_eq!(stats.lines_rejected, 1);
    assert_eq!(stats.series, 5);
    assert_eq!((stats.flushes, stats.rows_flushed), (1, 5));
}

#[test]
fn max_series_drops_new_series_and_counts_them() {
    let config = StatsdConfig {
        max_series: 2,
        idle_expiry_ms: Some(100),
        ..StatsdConfig::default()
    };
    let mut agg = Aggregator::new(config);
    add(
        &mut agg,
        "a:1|c\nb:1|ms\nc:1|g\nc:2|g\na:1|c|#k:v\nb:2|ms\na:1|c",
    );
    let r = flush(&mut agg, 1000);
    let names: Vec<&str> = r.iter().map(|r| r.table.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(r[0].get("value"), 2.0);
    assert_eq!(r[1].get("count"), 2.0);
    let stats = agg.stats();
    assert_eq!((stats.series, stats.series_dropped), (2, 3));
    assert_eq!(stats.metrics_received, 7);

    // An idle series frees its slot after the expiry.
    add(&mut agg, "a:1|c");
    flush(&mut agg, 1050);
    flush(&mut agg, 1101);
    assert_eq!(agg.stats().series_expired, 1, "b idle since 1000");
    add(&mut agg, "c:7|g");
    let r = flush(&mut agg, 1102);
    assert_eq!(find(&r, "c", &no_tags()).unwrap().get("value"), 7.0);
    assert_eq!(agg.stats().series_dropped, 3);
}

#[test]
fn idle_counters_are_forgotten_and_restart_at_zero() {
    let config = StatsdConfig {
        idle_expiry_ms: Some(10_000),
        ..StatsdConfig::default()
    };
    let mut agg = Aggregator::new(config);
    add(&mut agg, "c:5|c\ng:1|g");
    flush(&mut agg, 0);
    assert_eq!(
        flush(&mut agg, 10_000)[0].get("value"),
        5.0,
        "idle for exactly the expiry"
    );
    assert!(flush(&mut agg, 10_001).is_empty());
    let stats = agg.stats();
    assert_eq!((stats.series, stats.series_expired), (0, 2));
    add(&mut agg, "c:1|c\ng:+1|g");
    let r = flush(&mut agg, 20_000);
    assert_eq!(find(&r, "c", &no_tags()).unwrap().get("value"), 1.0);
    assert_eq!(find(&r, "g", &no_tags()).unwrap().get("value"), 1.0);
}

#[test]
fn without_expiry_series_live_forever() {
    let config = StatsdConfig {
        idle_expiry_ms: None,
        ..StatsdConfig::default()
    };
    let mut agg = Aggregator::new(config);
    add(&mut agg, "c:5|c");
    flush(&mut agg, 0);
    assert_eq!(flush(&mut agg, i64::MAX)[0].get("value"), 5.0);
}

#[test]
fn invalid_hand_built_metrics_are_counted_not_stored() {
    let mut agg = Aggregator::new(StatsdConfig {
        percentiles: vec![0.75],
        ..StatsdConfig::default()
    });
    let metric = |value: MetricValue, rate: f64, tag_set: TagSet| Metric {
        name: "m".into(),
        tags: tag_set,
        value,
        sample_rate: rate,
    };
    agg.add(&[
        metric(MetricValue::Counter(1.0), 0.0, no_tags()),
        metric(MetricValue::Counter(1.0), f64::NAN, no_tags()),
        metric(MetricValue::Counter(-1.0), 1.0, no_tags()),
        metric(MetricValue::Counter(1e300), 1e-300, no_tags()),
        metric(MetricValue::Gauge(f64::INFINITY), 1.0, no_tags()),
        metric(MetricValue::Timer(vec![1.0, f64::NAN]), 1.0, no_tags()),
        metric(MetricValue::Histogram(vec![]), 1.0, no_tags()),
        metric(MetricValue::Timer(vec![1.0]), 1.0, tags(&[("p75", "x")])),
        metric(MetricValue::Set("x".into()), 1.0, tags(&[("value", "x")])),
    ]);
    let stats = agg.stats();
    assert_eq!((stats.metrics_received, stats.metrics_invalid), (9, 9));
    assert_eq!(stats.series, 0);
    assert!(flush(&mut agg, 0).is_empty());
}

#[test]
fn overflowing_gauges_keep_their_value() {
    let mut agg = aggregator();
    add(&mut agg, "g:1e308|g\ng:+1e308|g\nc:1e308|c\nc:1e308|c");
    let r = flush(&mut agg, 0);
    assert_eq!(find(&r, "g", &no_tags()).unwrap().get("value"), 1e308);
    assert_eq!(find(&r, "c", &no_tags()).unwrap().get("value"), 1e308);
    assert_eq!(agg.stats().metrics_invalid, 2);
}

#[test]
fn percentile_fields_are_named_by_percent() {
    assert_eq!(percentile_field(0.5), "p50");
    assert_eq!(percentile_field(0.9), "p90");
    assert_eq!(percentile_field(0.999), "p99_9");
    assert_eq!(percentile_field(0.9995), "p99_95");
    assert_eq!(percentile_field(1.0), "p100");
    assert_eq!(percentile_field(0.07), "p7");
}

#[test]
fn config_validation_names_the_problem() {
    assert_eq!(StatsdConfig::default().validate(), Ok(()));
    let bad = |percentiles: Vec<f64>, idle: Option<i64>| {
        let config = StatsdConfig {
            percentiles,
            idle_expiry_ms: idle,
            ..StatsdConfig::default()
        };
        config.validate().unwrap_err().to_string()
    };
    assert!(bad(vec![99.0], None).contains("percentile 99 is out of range"));
    assert!(bad(vec![0.0], None).contains("out of range"));
    assert!(bad(vec![f64::NAN], None).contains("out of range"));
    assert_eq!(
        bad(vec![0.5, 0.5000001], None),
        "statsd percentiles 0.5 and 0.5000001 both name the field \"p50\""
    );
    assert!(bad(vec![], Some(0)).contains("idle_expiry_ms must be positive"));
    // The aggregator skips what validation refuses.
    let agg = Aggregator::new(StatsdConfig {
        percentiles: vec![2.0, 0.5, 0.5, 0.25],
        ..StatsdConfig::default()
    });
    assert_eq!(
        agg.sampled_fields(),
        ["count", "sum", "min", "max", "avg", "p50", "p25"]
    );
}
