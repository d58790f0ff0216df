//! Downsampling and rollups (issue 7), each figure printed with its target:
//! - downsampling `METRICSTORE_BENCH_ROLLUP_SERIES` × `METRICSTORE_BENCH_ROLLUP_POINTS`
//!   points (1000 × 1000 under `cargo bench`) into 1-minute buckets with min, max, avg,
//!   p50 and p99 in one SQL query: ms (target ≤ 50 ms), exact and sketch percentiles;
//! - an exact percentile over the same points: ms (target ≤ 30 ms);
//! - DDSketch inserts/s (target ≥ 50 M/s) and merges/s (in memory and from bytes);
//! - a 30-day query of one series from the `1h` level: ms (target ≤ 20 ms), over
//!   `METRICSTORE_BENCH_ROLLUP_DAYS` days (30) of 10 series sampled every minute.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use metricstore::sketch::DDSketch;
use metricstore::tier::{Policies, RetentionPolicy, RollupLevel};
use metricstore::{Config, MetricStore, StorageConfig, TagSet, TierConfig, WriteBatch};

const START: i64 = 1_767_225_600_000; // 2026-01-01
const DAY: i64 = 86_400_000;

/// Deterministic pseudo-random values in [0, 1).
fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        })
        .collect()
}

fn storage() -> StorageConfig {
    StorageConfig {
        out_of_order_window_ms: i64::MAX / 4,
        ..StorageConfig::default()
    }
}

/// `series` series of `points` points each, one per `step_ms`, latency-like values.
fn write(store: &MetricStore, series: usize, points: usize, step_ms: i64) {
    let noise = values(points.max(1) * 4, 7);
    for chunk in (0..points).collect::<Vec<_>>().chunks(100) {
        let mut batch = WriteBatch::new();
        for s in 0..series {
            let tags = TagSet::new([("host", format!("h{s}"))]).expect("tags");
            let w = batch.series("m", tags, &["value"]);
            for &p in chunk {
                let v = 10.0 + 90.0 * noise[(p * 3 + s) % noise.len()].powi(4);
                w.push(START + p as i64 * step_ms, &[v]).expect("push");
            }
        }
        store.write(&batch).expect("write");
    }
}

/// The best of `n` runs of `sql`, and its row count.
fn best(runtime: &tokio::runtime::Runtime, store: &MetricStore, sql: &str, n: usize) -> Duration {
    (0..n)
        .map(|_| {
            let start = Instant::now();
            let rows: usize = runtime
                .block_on(store.sql(sql))
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .iter()
                .map(|b| b.num_rows())
                .sum();
            black_box(rows);
            start.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn downsampling(c: &mut Criterion, runtime: &tokio::runtime::Runtime) {
    let series = common::size("METRICSTORE_BENCH_ROLLUP_SERIES", 10, 1000);
    let points = common::size("METRICSTORE_BENCH_ROLLUP_POINTS", 100, 1000);
    let store = MetricStore::open(Config {
        storage: storage(),
        ..Config::default()
    })
    .expect("open");
    write(&store, series, points, 1000);
    let n = series * points;
    let exact = "SELECT host, date_bin(interval '1 minute', time) AS t, min(value), \
                 max(value), avg(value), percentile(value, 0.5), percentile(value, 0.99) \
                 FROM m GROUP BY host, t";
    let sketch = "SELECT host, t, lo, hi, av, sketch_quantile(s, 0.5), sketch_quantile(s, 0.99) \
                  FROM (SELECT host, date_bin(interval '1 minute', time) AS t, \
                  min(value) AS lo, max(value) AS hi, avg(value) AS av, \
                  quantile_sketch(value) AS s FROM m GROUP BY host, t)";
    let whole = "SELECT percentile(value, 0.99) FROM m";
    for (what, sql, target) in [
        ("downsampling (exact p50/p99)", exact, "≤ 50 ms"),
        ("downsampling (sketch p50/p99)", sketch, "≤ 50 ms"),
        ("exact percentile", whole, "≤ 30 ms"),
    ] {
        println!(
            "rollups: {what} over {n} points ({series} series × {points}): {:.2} ms \
             (best of 5; target {target})",
            ms(best(runtime, &store, sql, 5))
        );
    }
    let mut group = c.benchmark_group("downsampling");
    group.sample_size(10);
    group.bench_function("1m buckets, min/max/avg/p50/p99", |b| {
        b.iter(|| runtime.block_on(store.sql(exact)).expect("query"))
    });
    group.bench_function("exact percentile", |b| {
        b.iter(|| runtime.block_on(store.sql(whole)).expect("query"))
    });
    group.finish();
}

fn sketches(c: &mut Criterion) {
    let n = common::size("METRICSTORE_BENCH_ROLLUP_SKETCH_VALUES", 10_000, 10_000_000);
    let input: Vec<f64> = values(n, 3).iter().map(|u| (u * 10.0).exp()).collect();
    let insert = (0..3)
        .map(|_| {
            common::timed(|| {
                let mut s = DDSketch::default();
                input.iter().for_each(|&v| s.add(v));
                black_box(s);
            })
        })
        .min()
        .unwrap_or_default();
    println!(
        "rollups: sketch insert: {} values/s ({n} values, best of 3; target ≥ 50 M/s)",
        common::per_second(n as f64, insert)
    );
    // One sketch per 1 000 values, as a rollup row of a busy series holds.
    let parts: Vec<DDSketch> = input
        .chunks(1000)
        .map(|c| {
            let mut s = DDSketch::default();
            c.iter().for_each(|&v| s.add(v));
            s
        })
        .collect();
    let bytes: Vec<Vec<u8>> = parts.iter().map(DDSketch::to_bytes).collect();
    let merge = common::timed(|| {
        let mut all = DDSketch::default();
        parts.iter().for_each(|p| {
            let _ = all.merge(p);
        });
        black_box(all);
    });
    let decode_merge = common::timed(|| {
        let mut all = DDSketch::default();
        for b in &bytes {
            if let Ok(p) = DDSketch::from_bytes(b) {
                let _ = all.merge(&p);
            }
        }
        black_box(all);
    });
    println!(
        "rollups: sketch merge: {} merges/s in memory, {} merges/s from bytes ({} sketches of 1000 values)",
        common::per_second(parts.len() as f64, merge),
        common::per_second(parts.len() as f64, decode_merge),
        parts.len()
    );
    let mut group = c.benchmark_group("sketch");
    group.bench_function("insert 10k", |b| {
        b.iter(|| {
            let mut s = DDSketch::default();
            input.iter().take(10_000).for_each(|&v| s.add(v));
            s
        })
    });
    group.finish();
}

fn level_query(c: &mut Criterion, runtime: &tokio::runtime::Runtime) {
    let days = common::size("METRICSTORE_BENCH_ROLLUP_DAYS", 2, 30);
    let step = if common::bench_mode() {
        60_000
    } else {
        600_000
    };
    let series = 10;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut policy = RetentionPolicy::all(Duration::ZERO);
    policy.levels = vec![RollupLevel {
        width: Duration::from_secs(3600),
        keep_for: None,
    }];
    let store = MetricStore::open(Config {
        storage: storage(),
        tier: Some(TierConfig {
            policies: Policies::new(Vec::new(), policy).expect("policies"),
            ..TierConfig::new(dir.path())
        }),
        ..Config::default()
    })
    .expect("open");
    let points = (days as i64 * DAY / step) as usize;
    write(&store, series, points, step);
    let start = Instant::now();
    runtime
        .block_on(store.run_tiering(START + days as i64 * DAY + 3_600_000))
        .expect("tiering")
        .expect("cold tier");
    println!(
        "rollups: tiering {} points with the 1h level: {:.0} ms",
        series * points,
        ms(start.elapsed())
    );
    let sql = format!(
        "SELECT date_bin(interval '1 day', time) AS d, sum(value_sum) / sum(value_count), \
         min(value_min), max(value_max), sketch_quantile(sketch_merge(value_sketch), 0.99) \
         FROM rollup('m', '1h') WHERE host = 'h3' AND time >= to_timestamp_millis({START}) \
         AND time < to_timestamp_millis({}) GROUP BY d",
        START + days as i64 * DAY
    );
    println!(
        "rollups: {days}-day query of one series from the 1h level: {:.2} ms (best of 5; target ≤ 20 ms)",
        ms(best(runtime, &store, &sql, 5))
    );
    let mut group = c.benchmark_group("levels");
    group.sample_size(10);
    group.bench_function("30 days of one series from 1h", |b| {
        b.iter(|| runtime.block_on(store.sql(&sql)).expect("query"))
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    downsampling(c, &runtime);
    sketches(c);
    level_query(c, &runtime);
}

criterion_group!(benches, bench);
criterion_main!(benches);
