//! Rollups against raw data: seeded random gauges, counters with resets and spiky
//! series are tiered with levels `5m`, `1h` and `1d` (two runs, so `1d` buckets are
//! split in partial rows), then every bucket answer from a level is compared with a
//! naive loop over the generated samples, and the naive loop with raw SQL. Once raw
//! retention deletes raw rows, the same SQL over the table answers the same from the
//! levels (the `LevelAggregateRule`). Several exact percentiles of one column, which
//! share one value buffer, equal separate ones and a naive nearest rank.
//!
//! Tolerances: counts, min, max, first and last are exact; sums, averages, increases
//! and rates agree within `1e-9 × Σ|v|` of the bucket (only the summation order
//! differs); sketch percentiles lie within 1% (the sketch's relative accuracy) of the
//! exact nearest-rank percentile.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit};
use metricstore::model::STALE_NAN_BITS;
use metricstore::tier::{Policies, RetentionPolicy, RollupLevel, SeriesSelector};
use metricstore::{
    Config, DurabilityConfig, FsyncPolicy, MetricStore, StorageConfig, TagSet, TierConfig,
    WriteBatch,
};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
const START: i64 = 1_767_225_600_000; // 2026-01-01
const KINDS: [&str; 3] = ["gauge", "counter", "spiky"];
const HOSTS: usize = 3;

/// SplitMix64: small, seeded, good enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Samples per (kind, host): time-ordered `(ms, value)`, NaN-free; stale markers are
/// written too but kept out of this model (SQL reads them as NULL).
type Data = BTreeMap<(String, String), Vec<(i64, f64)>>;

fn level(secs: u64) -> RollupLevel {
    RollupLevel {
        width: Duration::from_secs(secs),
        keep_for: None,
    }
}

fn config(dir: &Path) -> Config {
    let mut default = RetentionPolicy::all(Duration::from_secs(6 * 3600));
    default.levels = vec![level(300), level(3600), level(86_400)];
    let mut only_5m = RetentionPolicy::all(Duration::from_secs(6 * 3600));
    only_5m.tables = "m".into();
    only_5m.series = Some(SeriesSelector::parse(r#"{kind="spiky", host="h2"}"#).unwrap());
    only_5m.levels = vec![level(300)];
    Config {
        storage: StorageConfig {
            chunk_size: 64,
            out_of_order_window_ms: 4 * DAY,
            ..StorageConfig::default()
        },
        durability: Some(DurabilityConfig {
            fsync: FsyncPolicy::Never,
            checkpoint_interval: None,
            ..DurabilityConfig::new(dir.join("data"))
        }),
        tier: Some(TierConfig {
            policies: Policies::new(vec![only_5m], default).unwrap(),
            ..TierConfig::new(dir.join("cold"))
        }),
    }
}

/// Writes about 2.5 days of every kind and host, every ~10 s with jitter and gaps.
fn generate(store: &MetricStore, seed: u64) -> Data {
    let mut rng = Rng(seed);
    let mut data = Data::new();
    let mut state = [[0.0f64; HOSTS]; 3];
    let steps = (5 * DAY / 2) / 10_000;
    for step in 0..steps {
        let mut batch = WriteBatch::new();
        for (k, kind) in KINDS.iter().enumerate() {
            for (h, v) in state[k].iter_mut().enumerate() {
                if rng.unit() < 0.05 {
                    continue; // a gap
                }
                let t = START + step * 10_000 + (rng.next() % 5_000) as i64;
                *v = match *kind {
                    "gauge" => *v + (rng.unit() - 0.5) * 20.0,
                    "counter" if rng.unit() < 0.01 => (rng.unit() * 5.0).floor(),
                    "counter" => *v + (rng.unit() * 10.0).floor(),
                    _ if rng.unit() < 0.02 => 1_000.0 + rng.unit() * 9_000.0,
                    _ => 10.0 + rng.unit(),
                };
                let stale = rng.unit() < 0.005;
                let written = if stale {
                    f64::from_bits(STALE_NAN_BITS)
                } else {
                    *v
                };
                let tags =
                    TagSet::new([("kind", kind.to_string()), ("host", format!("h{h}"))]).unwrap();
                batch.add_sample("m", tags, "value", t, written);
                if !stale {
                    data.entry((kind.to_string(), format!("h{h}")))
                        .or_default()
                        .push((t, *v));
                }
            }
        }
        store.write(&batch).unwrap();
    }
    data
}

/// What every source must agree on, per (kind, host, bucket start ms).
#[derive(Debug, Default, Clone)]
struct Bucket {
    count: i64,
    sum: f64,
    min: f64,
    max: f64,
    first: f64,
    last: f64,
    increase: Option<f64>,
    rate: Option<f64>,
    p50: f64,
    p99: f64,
    /// Σ|v|, the scale of the summation tolerance.
    scale: f64,
    /// Seconds from the first to the last sample.
    span: f64,
}

type Answers = BTreeMap<(String, String, i64), Bucket>;

fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    sorted[((q * n as f64).ceil() as usize).clamp(1, n) - 1]
}

fn naive(data: &Data, width: i64) -> Answers {
    let mut out = Answers::new();
    for ((kind, host), samples) in data {
        let mut buckets: BTreeMap<i64, Vec<(i64, f64)>> = BTreeMap::new();
        for &(t, v) in samples {
            buckets
                .entry(t - t.rem_euclid(width))
                .or_default()
                .push((t, v));
        }
        for (b, s) in buckets {
            let mut sorted: Vec<f64> = s.iter().map(|p| p.1).collect();
            sorted.sort_by(f64::total_cmp);
            let increase: f64 = s
                .windows(2)
                .map(|w| metricstore::tier::counter_delta(w[0].1, w[1].1))
                .sum();
            let span = (s[s.len() - 1].0 - s[0].0) as f64 / 1000.0;
            out.insert(
                (kind.clone(), host.clone(), b),
                Bucket {
                    count: s.len() as i64,
                    sum: s.iter().map(|p| p.1).sum(),
                    min: sorted[0],
                    max: sorted[sorted.len() - 1],
                    first: s[0].1,
                    last: s[s.len() - 1].1,
                    increase: (s.len() > 1).then_some(increase),
                    rate: (s.len() > 1).then_some(increase / span),
                    p50: nearest_rank(&sorted, 0.5),
                    p99: nearest_rank(&sorted, 0.99),
                    scale: s.iter().map(|p| p.1.abs()).sum(),
                    span: span.max(1e-3),
                },
            );
        }
    }
    out
}

fn strings(batch: &RecordBatch, name: &str) -> Vec<String> {
    let c = cast(batch.column_by_name(name).unwrap(), &DataType::Utf8).unwrap();
    c.as_string::<i32>()
        .iter()
        .map(|v| v.unwrap_or_default().to_string())
        .collect()
}

fn floats(batch: &RecordBatch, name: &str) -> Vec<Option<f64>> {
    let c = cast(batch.column_by_name(name).unwrap(), &DataType::Float64).unwrap();
    c.as_primitive::<Float64Type>().iter().collect()
}

fn millis(batch: &RecordBatch, name: &str) -> Vec<i64> {
    let c = batch.column_by_name(name).unwrap();
    let ms = cast(c, &DataType::Timestamp(TimeUnit::Millisecond, None)).unwrap();
    let ints = cast(&ms, &DataType::Int64).unwrap();
    ints.as_primitive::<Int64Type>().values().to_vec()
}

/// Runs a query whose columns are kind, host, b and the [`Bucket`] figures it has.
async fn answers(store: &MetricStore, sql: &str) -> Answers {
    let batches = store
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut out = Answers::new();
    for batch in &batches {
        let (kinds, hosts, bs) = (
            strings(batch, "kind"),
            strings(batch, "host"),
            millis(batch, "b"),
        );
        let col = |n: &str| {
            batch
                .column_by_name(n)
                .map(|_| floats(batch, n))
                .unwrap_or_else(|| vec![None; batch.num_rows()])
        };
        let (n, s, lo, hi) = (col("n"), col("s"), col("lo"), col("hi"));
        let (f, l, inc, rate, p50, p99) = (
            col("f"),
            col("l"),
            col("inc"),
            col("rate"),
            col("p50"),
            col("p99"),
        );
        for i in 0..batch.num_rows() {
            let count = n[i].unwrap_or(0.0) as i64;
            if count == 0 {
                continue; // only stale markers in this bucket
            }
            let nan = f64::NAN;
            out.insert(
                (kinds[i].clone(), hosts[i].clone(), bs[i]),
                Bucket {
                    count,
                    sum: s[i].unwrap_or(nan),
                    min: lo[i].unwrap_or(nan),
                    max: hi[i].unwrap_or(nan),
                    first: f[i].unwrap_or(nan),
                    last: l[i].unwrap_or(nan),
                    increase: inc[i],
                    rate: rate[i],
                    p50: p50[i].unwrap_or(nan),
                    p99: p99[i].unwrap_or(nan),
                    scale: 0.0,
                    span: 0.0,
                },
            );
        }
    }
    out
}

fn close(got: f64, want: f64, scale: f64) -> bool {
    (got - want).abs() <= 1e-9 * scale.max(1.0)
}

/// How a source answers percentiles.
#[derive(Clone, Copy, PartialEq)]
enum Pct {
    /// From merged sketches: within 1% of the exact value.
    Sketch,
    /// `percentile(value, q)`: exactly.
    Exact,
}

/// Compares `got` with the naive `want`.
fn compare(what: &str, got: &Answers, want: &Answers, pct: Pct) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{what}: buckets"
    );
    let both = |a: Option<f64>, b: Option<f64>, scale| match (a, b) {
        (Some(a), Some(b)) => close(a, b, scale),
        (a, b) => a.is_none() && b.is_none(),
    };
    for (key, w) in want {
        let g = &got[key];
        let ctx = format!("{what} {key:?}: got {g:?}, want {w:?}");
        assert_eq!(g.count, w.count, "{ctx}");
        assert!(close(g.sum, w.sum, w.scale), "sum {ctx}");
        assert!(
            close(g.sum / g.count as f64, w.sum / w.count as f64, w.scale),
            "avg {ctx}"
        );
        assert_eq!((g.min, g.max), (w.min, w.max), "min/max {ctx}");
        assert_eq!((g.first, g.last), (w.first, w.last), "first/last {ctx}");
        assert!(both(g.increase, w.increase, w.scale), "increase {ctx}");
        assert!(both(g.rate, w.rate, w.scale / w.span), "rate {ctx}");
        for (e, x) in [(g.p50, w.p50), (g.p99, w.p99)] {
            match pct {
                Pct::Sketch => assert!((e - x).abs() <= 0.01 * x.abs() + 1e-12, "percentile {ctx}"),
                Pct::Exact => assert_eq!(e, x, "percentile {ctx}"),
            }
        }
    }
}

fn rollup_sql(level: &str, width_secs: i64, filter: &str) -> String {
    format!(
        "SELECT kind, host, date_bin(interval '{width_secs} seconds', time) AS b,
                sum(value_count) AS n, sum(value_sum) AS s,
                min(value_min) AS lo, max(value_max) AS hi,
                first(value_first, value_first_time) AS f,
                last(value_last, value_last_time) AS l,
                rollup_increase(value_first, value_first_time, value_last, value_last_time,
                                value_increase) AS inc,
                rollup_rate(value_first, value_first_time, value_last, value_last_time,
                            value_increase) AS rate,
                sketch_quantile(sketch_merge(value_sketch), 0.5) AS p50,
                sketch_quantile(sketch_merge(value_sketch), 0.99) AS p99
         FROM rollup('m', '{level}') {filter} GROUP BY kind, host, b"
    )
}

fn raw_sql(width_secs: i64) -> String {
    format!(
        "SELECT kind, host, date_bin(interval '{width_secs} seconds', time) AS b,
                count(value) AS n, sum(value) AS s, min(value) AS lo, max(value) AS hi,
                first(value, time) AS f, last(value, time) AS l,
                increase(value, time) AS inc, rate(value, time) AS rate,
                percentile(value, 0.5) AS p50, percentile(value, 0.99) AS p99
         FROM m GROUP BY kind, host, b"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollup_answers_equal_raw_answers() {
    let dir = tempfile::tempdir().unwrap();
    let store = MetricStore::open(config(dir.path())).unwrap();
    let data = generate(&store, 0x5eed_0007);
    // Two runs: the cutoff of the first (day 1, 07:00) splits day 1 of the 1d level.
    for now in [START + DAY + 13 * HOUR, START + 3 * DAY + 6 * HOUR] {
        let report = store.run_tiering(now).await.unwrap().unwrap();
        assert!(report.rows > 0, "{report:?}");
    }
    assert_eq!(store.stats().total.rows, 0, "everything is cold");
    let manifest = store.cold().unwrap().manifest();
    let levels = &manifest.tables["m"].levels;
    assert_eq!(levels.keys().collect::<Vec<_>>(), ["1d", "1h", "5m"]);
    assert!(
        levels["1d"].files.len() > 3,
        "the split day has files from both runs"
    );

    // Only the series whose policy lists a level have rows in it.
    let mut without = data.clone();
    without.remove(&("spiky".to_string(), "h2".to_string()));

    for (name, width, multiples) in [
        ("5m", 300, vec![1, 3, 12]),
        ("1h", 3600, vec![1, 6]),
        ("1d", 86_400, vec![1]),
    ] {
        let model = if name == "5m" { &data } else { &without };
        for m in multiples {
            let w = width * m;
            let want = naive(model, w * 1000);
            let got = answers(&store, &rollup_sql(name, w, "")).await;
            compare(
                &format!("level {name}, width {w}s"),
                &got,
                &want,
                Pct::Sketch,
            );
        }
    }

    // The naive model is what raw SQL answers (raw rows are still in the cold tier).
    for w in [300, 3600, 86_400] {
        let want = naive(&data, w * 1000);
        let got = answers(&store, &raw_sql(w)).await;
        compare(&format!("raw SQL, width {w}s"), &got, &want, Pct::Exact);
    }

    // A time filter prunes files and still answers its buckets exactly.
    let filter =
        "WHERE host = 'h1' AND time >= '2026-01-02T00:00:00Z' AND time < '2026-01-02T12:00:00Z'";
    let got = answers(&store, &rollup_sql("1h", 3600, filter)).await;
    let want: Answers = naive(&without, HOUR)
        .into_iter()
        .filter(|(k, _)| k.1 == "h1" && k.2 >= START + DAY && k.2 < START + DAY + 12 * HOUR)
        .collect();
    assert_eq!(got.len(), 36);
    compare("filtered 1h", &got, &want, Pct::Sketch);

    // The level survives a restart (it is in the manifest).
    drop(store);
    let store = MetricStore::open(config(dir.path())).unwrap();
    let got = answers(&store, &rollup_sql("1d", 86_400, "")).await;
    compare("1d after restart", &got, &naive(&without, DAY), Pct::Sketch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_names_the_level_and_bad_levels_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = MetricStore::open(config(dir.path())).unwrap();
    generate(&store, 7);
    store.run_tiering(START + 3 * DAY).await.unwrap().unwrap();
    let batches = store
        .sql(
            "EXPLAIN SELECT date_bin(interval '1 day', time) AS d, sum(value_sum) \
             FROM rollup('m', '1h') WHERE host = 'h0' GROUP BY d",
        )
        .await
        .unwrap();
    let plan = arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    assert!(plan.contains("level=1h"), "{plan}");
    assert!(!plan.contains("level=raw"), "{plan}");
    let e = store
        .sql("SELECT * FROM rollup('m', '7m')")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("no such level") && e.contains("1h"), "{e}");
    let e = store
        .sql("SELECT * FROM rollup('nope', '1h')")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("no such level"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn m4_keeps_every_buckets_extremes() {
    let dir = tempfile::tempdir().unwrap();
    let store = MetricStore::open(config(dir.path())).unwrap();
    let data = generate(&store, 42);
    // Half cold, half hot: m4 reads both tiers.
    store
        .run_tiering(START + DAY + 13 * HOUR)
        .await
        .unwrap()
        .unwrap();
    let batches = store
        .sql(
            "SELECT kind, host, date_bin(interval '1 hour', time) AS b, \
                    m4(value, time)['min'] AS lo, m4(value, time)['min_time'] AS lo_t, \
                    m4(value, time)['max'] AS hi, m4(value, time)['max_time'] AS hi_t, \
                    m4(value, time)['first'] AS f, m4(value, time)['last'] AS l \
             FROM m GROUP BY kind, host, b",
        )
        .await
        .unwrap();
    let mut seen = 0;
    for batch in &batches {
        let (kinds, hosts, bs) = (
            strings(batch, "kind"),
            strings(batch, "host"),
            millis(batch, "b"),
        );
        let (lo, hi) = (floats(batch, "lo"), floats(batch, "hi"));
        let (lo_t, hi_t) = (millis(batch, "lo_t"), millis(batch, "hi_t"));
        let (f, l) = (floats(batch, "f"), floats(batch, "l"));
        for i in 0..batch.num_rows() {
            let Some(samples) = data.get(&(kinds[i].clone(), hosts[i].clone())) else {
                panic!("unknown series {} {}", kinds[i], hosts[i]);
            };
            let bucket: Vec<(i64, f64)> = samples
                .iter()
                .copied()
                .filter(|(t, _)| *t - t.rem_euclid(HOUR) == bs[i])
                .collect();
            if bucket.is_empty() {
                continue; // only stale markers
            }
            // Earliest point among equal extremes, as m4 documents.
            let min = bucket
                .iter()
                .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
                .unwrap();
            let max = bucket
                .iter()
                .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
                .unwrap();
            let ctx = format!("{} {} {}", kinds[i], hosts[i], bs[i]);
            assert_eq!((lo[i], lo_t[i]), (Some(min.1), min.0), "min {ctx}");
            assert_eq!((hi[i], hi_t[i]), (Some(max.1), max.0), "max {ctx}");
            assert_eq!(f[i], Some(bucket[0].1), "first {ctx}");
            assert_eq!(l[i], Some(bucket[bucket.len() - 1].1), "last {ctx}");
            seen += 1;
        }
    }
    assert!(seen > 500, "{seen} buckets checked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn levels_follow_new_fields_and_tags() {
    let dir = tempfile::tempdir().unwrap();
    let store = MetricStore::open(config(dir.path())).unwrap();
    let write = |from: i64, fields: &[&str], tags: &[(&str, &str)]| {
        let mut batch = WriteBatch::new();
        let tags = TagSet::new(tags.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap();
        let s = batch.series("n", tags, fields);
        for i in 0..120 {
            let row: Vec<f64> = (0..fields.len()).map(|f| (i + f) as f64).collect();
            s.push(from + i as i64 * MINUTE, &row).unwrap();
        }
        store.write(&batch).unwrap();
    };
    write(START, &["a"], &[("host", "x")]);
    store.run_tiering(START + DAY).await.unwrap().unwrap();
    // After the first run: a new field and a new tag.
    write(START + DAY, &["a", "b"], &[("host", "x"), ("rack", "r1")]);
    store.run_tiering(START + 3 * DAY).await.unwrap().unwrap();
    let batches = store
        .sql(
            "SELECT rack, sum(a_count) AS a, sum(b_count) AS b, count(*) AS rows \
             FROM rollup('n', '1h') GROUP BY rack ORDER BY rack",
        )
        .await
        .unwrap();
    let text = arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    // Two hours of rows each day; the first day's files have neither b nor rack.
    let want = [
        "+------+-----+-----+------+",
        "| rack | a   | b   | rows |",
        "+------+-----+-----+------+",
        "| r1   | 120 | 120 | 2    |",
        "|      | 120 |     | 2    |",
        "+------+-----+-----+------+",
    ]
    .join("\n");
    assert_eq!(text, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_within_one_bucket_keep_both_parts() {
    let dir = tempfile::tempdir().unwrap();
    let store = MetricStore::open(config(dir.path())).unwrap();
    let mut batch = WriteBatch::new();
    let s = batch.series("p", TagSet::new([("host", "x")]).unwrap(), &["v"]);
    for i in 0..600 {
        s.push(START + i * MINUTE, &[1.0]).unwrap();
    }
    store.write(&batch).unwrap();
    // Cutoffs at 04:00 and 10:00 of the same day: two parts of one 1d bucket.
    for now in [START + 10 * HOUR, START + 16 * HOUR] {
        store.run_tiering(now).await.unwrap().unwrap();
    }
    let manifest = store.cold().unwrap().manifest();
    let files = &manifest.tables["p"].levels["1d"].files;
    assert_eq!(files.len(), 2, "{files:?}");
    assert_ne!(files[0].path, files[1].path);
    let batches = store
        .sql("SELECT sum(v_count) AS n, sum(v_sum) AS s FROM rollup('p', '1d')")
        .await
        .unwrap();
    let text = arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    assert!(text.contains("| 600 | 600.0 |"), "{text}");
}

/// `config` with raw rows kept for `raw_for` by every policy; `mixed` adds the policy
/// of one series that lists only the `5m` level (as [`config`] does).
fn retention_config(dir: &Path, raw_for: Option<Duration>, mixed: bool) -> Config {
    let mut config = config(dir);
    let mut default = RetentionPolicy::all(Duration::from_secs(6 * 3600));
    default.raw_for = raw_for;
    default.levels = vec![level(300), level(3600), level(86_400)];
    let mut only_5m = default.clone();
    only_5m.tables = "m".into();
    only_5m.series = Some(SeriesSelector::parse(r#"{kind="spiky", host="h2"}"#).unwrap());
    only_5m.levels = vec![level(300)];
    let list = if mixed { vec![only_5m] } else { Vec::new() };
    if let Some(tier) = &mut config.tier {
        tier.policies = Policies::new(list, default).unwrap();
    }
    config
}

async fn explain(store: &MetricStore, sql: &str) -> String {
    let batches = store.sql(&format!("EXPLAIN {sql}")).await.unwrap();
    arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string()
}

/// Which levels a plan reads (`level=raw` included).
fn levels_read(plan: &str) -> Vec<&'static str> {
    ["raw", "5m", "1h", "1d"]
        .into_iter()
        .filter(|l| plan.contains(&format!("level={l}/")))
        .collect()
}

/// The naive answers restricted to buckets starting in `[from, to)`.
fn naive_between(data: &Data, width: i64, from: i64, to: i64) -> Answers {
    naive(data, width)
        .into_iter()
        .filter(|(k, _)| k.2 >= from && k.2 < to)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_past_raw_retention_are_answered_from_levels() {
    for mixed in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let store = MetricStore::open(retention_config(dir.path(), None, mixed)).unwrap();
        let data = generate(&store, 0x1e7e_0007 + u64::from(mixed));
        let now = START + 3 * DAY + 6 * HOUR;
        store.run_tiering(now).await.unwrap().unwrap();
        assert_eq!(store.stats().total.rows, 0, "everything is cold");
        let mut before = BTreeMap::new();
        for w in [300, 3600, 86_400] {
            let mut got = answers(&store, &raw_sql(w)).await;
            let want = naive(&data, w * 1000);
            compare(&format!("raw, width {w}s"), &got, &want, Pct::Exact);
            // The tolerances' scales, for comparing with these answers below.
            for (k, b) in got.iter_mut() {
                (b.scale, b.span) = (want[k].scale, want[k].span);
            }
            let plan = explain(&store, &raw_sql(w)).await;
            assert_eq!(
                levels_read(&plan),
                ["raw"],
                "no level while raw is whole: {plan}"
            );
            before.insert(w, got);
        }

        // Raw rows kept for one day: the files of Jan 1 and Jan 2 go.
        let policies = retention_config(dir.path(), Some(Duration::from_secs(86_400)), mixed)
            .tier
            .unwrap()
            .policies;
        store.cold().unwrap().set_policies(policies);
        let report = store.run_tiering(now).await.unwrap().unwrap();
        let manifest = store.cold().unwrap().manifest();
        let deleted = manifest.tables["m"]
            .raw_deleted_before
            .expect("raw rows deleted");
        assert!(
            deleted > START + DAY && deleted <= START + 2 * DAY,
            "{deleted} {report:?}"
        );

        // The same queries answer the same, from levels before the split.
        for (w, level) in [(300, "5m"), (3600, "1h"), (86_400, "1d")] {
            let what = format!("mixed {mixed}, width {w}s after retention");
            let sql = raw_sql(w);
            let plan = explain(&store, &sql).await;
            // With the 5m-only policy, only the 5m level has every series.
            let level = if mixed { "5m" } else { level };
            assert_eq!(levels_read(&plan), ["raw", level], "{what}: {plan}");
            assert!(plan.contains(&format!("m@{level}")), "{plan}");
            let got = answers(&store, &sql).await;
            compare(&what, &got, &before[&w], Pct::Sketch);
            compare(&what, &got, &naive(&data, w * 1000), Pct::Sketch);
        }

        // Wholly before the deletion: the level only. Bounds off the level's grid keep
        // the level buckets wholly inside the range.
        let filter = "WHERE host = 'h1' AND time >= '2026-01-01T10:30:00Z' \
                      AND time < '2026-01-02T12:10:00Z'";
        let sql = raw_sql(3600).replace("FROM m", &format!("FROM m {filter}"));
        let plan = explain(&store, &sql).await;
        let level = if mixed { "5m" } else { "1h" };
        assert_eq!(levels_read(&plan), [level], "{plan}");
        let got = answers(&store, &sql).await;
        let (from, to) = if mixed {
            // 5m buckets: whole hours plus the half hour from 10:30 and the 10
            // minutes to 12:10, within 5 minutes of the bounds.
            (START + 10 * HOUR, START + DAY + 13 * HOUR)
        } else {
            (START + 11 * HOUR, START + DAY + 12 * HOUR)
        };
        let mut model = data.clone();
        model.retain(|k, _| k.1 == "h1");
        for samples in model.values_mut() {
            samples.retain(|(t, _)| {
                *t >= START + 10 * HOUR + 30 * MINUTE && *t < START + DAY + 12 * HOUR + 10 * MINUTE
            });
            if !mixed {
                samples.retain(|(t, _)| *t >= START + 11 * HOUR && *t < START + DAY + 12 * HOUR);
            }
        }
        compare(
            "before the deletion",
            &got,
            &naive_between(&model, HOUR, from, to),
            Pct::Sketch,
        );

        // From the deletion on: raw only, exact.
        let filter = "WHERE time >= '2026-01-03T00:00:00Z'";
        let sql = raw_sql(3600).replace("FROM m", &format!("FROM m {filter}"));
        assert_eq!(levels_read(&explain(&store, &sql).await), ["raw"]);
        let got = answers(&store, &sql).await;
        compare(
            "after the deletion",
            &got,
            &naive_between(&data, HOUR, START + 2 * DAY, i64::MAX),
            Pct::Exact,
        );

        // A query a level cannot answer (stddev) is unchanged: the raw rows left.
        let sql = "SELECT kind, host, date_bin(interval '1 hour', time) AS b, \
                   count(value) AS n, stddev(value) AS sd FROM m GROUP BY kind, host, b";
        assert_eq!(levels_read(&explain(&store, sql).await), ["raw"]);
        let got = answers(&store, sql).await;
        let want = naive_between(&data, HOUR, START + 2 * DAY, i64::MAX);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>()
        );
        for (k, w) in &want {
            assert_eq!(got[k].count, w.count, "{k:?}");
        }
    }
}

/// Several exact percentiles of one column share one value buffer (the
/// `PercentileShareRule`); their answers must equal one percentile per query and a
/// naive nearest-rank over the same values, with NULLs (rows without the field),
/// stale markers, NaN (above +∞ in total order) and ±∞ among them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_percentiles_equal_separate_ones() {
    let store = MetricStore::open(Config::default()).unwrap();
    let mut rng = Rng(0x9e7c_0001);
    // (host, minute) -> values, as SQL sees them.
    let mut model: BTreeMap<(String, i64), Vec<f64>> = BTreeMap::new();
    let mut batch = WriteBatch::new();
    for h in 0..5 {
        let host = format!("h{h}");
        let tags = TagSet::new([("host", host.clone())]).unwrap();
        for i in 0..600i64 {
            let t = START + i * 1_000;
            let r = rng.unit();
            let v = match (rng.next() % 50, h) {
                _ if h == 4 && i >= 300 => None, // a bucket range with no values at all
                (0, _) => None,
                (1, _) => Some(f64::NAN),
                (2, _) => Some(f64::INFINITY),
                (3, _) => Some(f64::NEG_INFINITY),
                (4, _) => Some(f64::from_bits(STALE_NAN_BITS)),
                _ => Some((r * 1000.0).round() / 10.0 - 20.0),
            };
            // A row without `v` reads it as NULL.
            batch.add_sample("q", tags.clone(), "w", t, r);
            if let Some(v) = v {
                batch.add_sample("q", tags.clone(), "v", t, v);
            }
            let minute = t - t.rem_euclid(MINUTE);
            let values = model.entry((host.clone(), minute)).or_default();
            if let Some(v) = v.filter(|v| v.to_bits() != STALE_NAN_BITS) {
                values.push(v);
            }
        }
    }
    store.write(&batch).unwrap();
    let qs = [0.0, 0.5, 0.5, 0.9, 0.99, 1.0];
    let list: Vec<String> = qs
        .iter()
        .enumerate()
        .map(|(i, q)| format!("percentile(v, {q}) AS p{i}"))
        .collect();
    let shared = format!(
        "SELECT host, date_bin(interval '1 minute', time) AS b, median(v) AS med, \
         min(v) AS lo, {} FROM q GROUP BY host, b",
        list.join(", ")
    );
    let plan = arrow::util::pretty::pretty_format_batches(
        &store.sql(&format!("EXPLAIN {shared}")).await.unwrap(),
    )
    .unwrap()
    .to_string();
    assert!(plan.contains("percentiles("), "{plan}");
    let got = store.sql(&shared).await.unwrap();
    let mut checked = 0;
    for batch in &got {
        let (hosts, bs) = (strings(batch, "host"), millis(batch, "b"));
        let med = floats(batch, "med");
        for (i, q) in qs.iter().enumerate() {
            let column = floats(batch, &format!("p{i}"));
            for row in 0..batch.num_rows() {
                let mut values = model[&(hosts[row].clone(), bs[row])].clone();
                values.sort_by(f64::total_cmp);
                let want = (!values.is_empty()).then(|| nearest_rank(&values, *q));
                let same =
                    |a: Option<f64>, b: Option<f64>| a.map(f64::to_bits) == b.map(f64::to_bits);
                assert!(
                    same(column[row], want),
                    "p{i} {} {}: {:?} vs {want:?}",
                    hosts[row],
                    bs[row],
                    column[row]
                );
                let want_med = (!values.is_empty()).then(|| nearest_rank(&values, 0.5));
                assert!(
                    same(med[row], want_med),
                    "median {} {}",
                    hosts[row],
                    bs[row]
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, qs.len() * 50, "5 hosts x 10 minutes");

    // One percentile per query (nothing to share), and without GROUP BY.
    for (i, q) in qs.iter().enumerate() {
        let one = format!(
            "SELECT host, date_bin(interval '1 minute', time) AS b, percentile(v, {q}) AS p{i} \
             FROM q GROUP BY host, b"
        );
        let separate = store.sql(&one).await.unwrap();
        let key = |batches: &[RecordBatch], column: &str| -> BTreeMap<(String, i64), Option<u64>> {
            batches
                .iter()
                .flat_map(|b| {
                    let (h, t, v) = (strings(b, "host"), millis(b, "b"), floats(b, column));
                    (0..b.num_rows()).map(move |r| ((h[r].clone(), t[r]), v[r].map(f64::to_bits)))
                })
                .collect()
        };
        assert_eq!(
            key(&separate, &format!("p{i}")),
            key(&got, &format!("p{i}")),
            "q = {q}"
        );
    }
    let whole = store
        .sql("SELECT percentile(v, 0.5) AS a, percentile(v, 0.99) AS b, median(v) AS c FROM q")
        .await
        .unwrap();
    let mut all: Vec<f64> = model.values().flatten().copied().collect();
    all.sort_by(f64::total_cmp);
    assert_eq!(floats(&whole[0], "a")[0], Some(nearest_rank(&all, 0.5)));
    assert_eq!(
        floats(&whole[0], "b")[0].map(f64::to_bits),
        Some(nearest_rank(&all, 0.99).to_bits())
    );
    assert_eq!(floats(&whole[0], "c")[0], Some(nearest_rank(&all, 0.5)));
}
