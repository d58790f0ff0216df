//! The SQL oracle: seeded random rows go into the store and into a plain DataFusion
//! `MemTable`; generated queries (tag predicates of every kind, time ranges, field
//! filters, aggregates, group-bys) must give identical results on both.
//!
//! Values are multiples of 0.5 (and the odd NaN or -0.0) so float sums are exact in
//! any order; no tolerance is needed.

mod common;

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Array, RecordBatch, StringDictionaryBuilder, TimestampMillisecondArray,
};
use arrow::datatypes::Int32Type;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use metricstore::workload::Rng;
use metricstore::{Config, MetricStore, StorageConfig, TagSet, WriteBatch};

struct Row {
    host: String,
    region: Option<String>,
    zone: Option<String>,
    time: i64,
    a: Option<f64>,
    b: Option<f64>,
}

fn generate(seed: u64) -> Vec<Row> {
    let mut rng = Rng::new(seed);
    let mut rows = Vec::new();
    for h in 0..12 {
        let host = format!("h{h:02}");
        let region = (h % 4 != 3).then(|| format!("r{}", h % 3));
        // Hosts from h08 on carry a tag the table did not have at first.
        let zone = (h >= 8).then(|| format!("z{}", h % 2));
        let mut times: Vec<i64> = (0..300).map(|i| i * 1_000).collect();
        // Out of order within the window: swap some neighbours.
        for i in (1..times.len()).step_by(37) {
            times.swap(i - 1, i);
        }
        for t in times {
            if rng.below(10) == 0 {
                continue;
            }
            let v = |rng: &mut Rng| (rng.below(400) as f64 - 100.0) / 2.0;
            // Field `a` now and then holds NaN or -0.0, which Arrow compares in IEEE
            // total order (NaN above +inf) and chunk pruning must too. DataFusion's
            // grouped min/max of NaN depend on row order, so queries take min/max of `b`.
            let a = (rng.below(20) != 0).then(|| match rng.below(100) {
                0 => f64::NAN,
                1 => -0.0,
                _ => v(&mut rng),
            });
            let b = (rng.below(5) != 0).then(|| v(&mut rng));
            rows.push(Row {
                host: host.clone(),
                region: region.clone(),
                zone: zone.clone(),
                time: t + h * 7,
                a: a.or(if b.is_none() { Some(0.0) } else { None }),
                b,
            });
        }
    }
    rows
}

fn load_store(rows: &[Row]) -> MetricStore {
    let store = MetricStore::open(Config {
        storage: StorageConfig {
            chunk_size: 32,
            chunk_span_ms: 60_000,
            ..StorageConfig::default()
        },
        ..Config::default()
    })
    .unwrap();
    // Write in time order across hosts, a few rows per batch, as a scraper would.
    let mut order: Vec<&Row> = rows.iter().collect();
    order.sort_by_key(|r| r.time / 10_000);
    for chunk in order.chunks(50) {
        let mut batch = WriteBatch::new();
        for r in chunk {
            let mut tags = vec![("host", r.host.clone())];
            if let Some(region) = &r.region {
                tags.push(("region", region.clone()));
            }
            if let Some(zone) = &r.zone {
                tags.push(("zone", zone.clone()));
            }
            let tags = TagSet::new(tags).unwrap();
            match (r.a, r.b) {
                (Some(a), Some(b)) => {
                    batch
                        .series("m", tags, &["a", "b"])
                        .push(r.time, &[a, b])
                        .unwrap();
                }
                (Some(a), None) => batch.add_sample("m", tags, "a", r.time, a),
                (None, Some(b)) => batch.add_sample("m", tags, "b", r.time, b),
                (None, None) => unreachable!("every row has a field"),
            }
        }
        store.write(&batch).unwrap();
    }
    store
}

fn mem_table(store: &MetricStore, rows: &[Row]) -> SessionContext {
    let schema = store.storage().schema("m").unwrap();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for field in schema.fields() {
        let column: ArrayRef = match field.name().as_str() {
            "host" | "region" | "zone" => {
                let mut b = StringDictionaryBuilder::<Int32Type>::new();
                for r in rows {
                    let v = match field.name().as_str() {
                        "host" => Some(r.host.as_str()),
                        "region" => r.region.as_deref(),
                        _ => r.zone.as_deref(),
                    };
                    b.append_option(v);
                }
                Arc::new(b.finish())
            }
            "time" => Arc::new(
                TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.time))
                    .with_timezone("UTC"),
            ),
            "a" => Arc::new(rows.iter().map(|r| r.a).collect::<Float64Array>()),
            "b" => Arc::new(rows.iter().map(|r| r.b).collect::<Float64Array>()),
            other => panic!("unexpected column {other}"),
        };
        columns.push(column);
    }
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let ctx = SessionContext::new();
    ctx.register_table(
        "m",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()),
    )
    .unwrap();
    ctx
}

fn canonical(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for r in 0..batch.num_rows() {
            rows.push(formatters.iter().map(|f| f.value(r).to_string()).collect());
        }
    }
    rows.sort();
    rows
}

const TAG_PREDICATES: &[&str] = &[
    "TRUE",
    "host = 'h03'",
    "host <> 'h03'",
    "host IN ('h01', 'h05', 'h09')",
    "host NOT IN ('h01', 'h05')",
    "region LIKE 'r%'",
    "region NOT LIKE '%1'",
    "region ~ '[01]'",
    "region !~ '1'",
    "region ~* 'R2'",
    "regexp_like(host, 'h0[2-5]')",
    "region IS NULL",
    "region IS NOT NULL",
    "zone = 'z1'",
    "zone IS NULL AND host > 'h05'",
    "NOT (host = 'h01' OR region = 'r2')",
    "(region = 'r0' OR zone = 'z0') AND host <> 'h00'",
    "host < 'h04' OR region <= 'r0'",
];

const TIME_PREDICATES: &[&str] = &[
    "TRUE",
    "time >= '1970-01-01T00:01:00Z'",
    "time < '1970-01-01T00:02:30.5Z'",
    "time >= '1970-01-01T00:00:30Z' AND time < '1970-01-01T00:03:20Z'",
    "time BETWEEN '1970-01-01T00:01:00Z' AND '1970-01-01T00:01:00.007Z'",
    "time > TIMESTAMP '1970-01-01T00:04:00'",
];

const FIELD_PREDICATES: &[&str] = &[
    "TRUE",
    "a > 40",
    "b <= -10 AND a IS NOT NULL",
    "a = 0",
    "a > 142",
    "b >= 147.5",
    "a < -48 OR b > 148",
    "b <> 0.5",
];

const SHAPES: &[&str] = &[
    "SELECT count(*), count(a), count(b), sum(a), min(b), max(b) FROM m WHERE {w}",
    "SELECT host, count(*), sum(a), max(b) FROM m WHERE {w} GROUP BY host",
    "SELECT region, zone, count(*), avg(b) FROM m WHERE {w} GROUP BY region, zone",
    "SELECT date_bin(INTERVAL '30 seconds', time) AS t, min(b), max(b), avg(a), count(*) FROM m WHERE {w} GROUP BY t",
    // Whole chunks inside a bucket are answered from chunk headers here.
    "SELECT host, date_bin(INTERVAL '2 minutes', time) AS t, sum(a), count(b), min(b), max(b), avg(b), count(*) FROM m WHERE {w} GROUP BY host, t",
    "SELECT region, date_bin(INTERVAL '1 minute', time, TIMESTAMP '1970-01-01T00:00:30') AS t, max(b), count(a) FROM m WHERE {w} GROUP BY t, region",
    "SELECT host, region, zone, time, a, b FROM m WHERE {w}",
    "SELECT host, time, a - lag(a) OVER (PARTITION BY host ORDER BY time) FROM m WHERE {w}",
    // The newest buckets first (a narrowed scan, or the whole plan when it falls short).
    "SELECT date_bin(INTERVAL '30 seconds', time) AS t, min(b), max(b), count(*) FROM m WHERE {w} GROUP BY t ORDER BY t DESC LIMIT 3",
    "SELECT host, date_bin(INTERVAL '1 minute', time) AS t, sum(a), count(b) FROM m WHERE {w} GROUP BY t, host ORDER BY t DESC, host LIMIT 7",
    "SELECT date_bin(INTERVAL '10 seconds', time) AS t, count(*) AS n FROM m WHERE {w} GROUP BY t HAVING count(*) > 25 ORDER BY t DESC LIMIT 2",
];

#[tokio::test]
async fn the_store_answers_like_a_memtable() {
    // Seed 2 runs with small batches, so that scans of more than 64 rows split over
    // two partitions (a scan of at most one batch stays in one).
    for (seed, batch_size) in [(1, None), (2, Some(64))] {
        let rows = generate(seed);
        let store = load_store(&rows);
        if let Some(n) = batch_size {
            for set in [
                format!("SET datafusion.execution.batch_size = {n}"),
                "SET datafusion.execution.target_partitions = 2".to_string(),
            ] {
                store.sql(&set).await.unwrap();
            }
        }
        let oracle = mem_table(&store, &rows);
        let mut rng = Rng::new(seed + 100);
        let mut checked = 0;
        for _ in 0..200 {
            let tag = TAG_PREDICATES[rng.index(TAG_PREDICATES.len())];
            let time = TIME_PREDICATES[rng.index(TIME_PREDICATES.len())];
            let field = FIELD_PREDICATES[rng.index(FIELD_PREDICATES.len())];
            let shape = SHAPES[rng.index(SHAPES.len())];
            let sql = shape.replace("{w}", &format!("({tag}) AND ({time}) AND ({field})"));
            let expected = canonical(&oracle.sql(&sql).await.unwrap().collect().await.unwrap());
            let got = canonical(
                &store
                    .sql(&sql)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}")),
            );
            if got != expected {
                let plan = store.sql(&format!("EXPLAIN {sql}")).await.unwrap();
                panic!(
                    "seed {seed}: results differ for\n{sql}\nplan:\n{}\nstore ({} rows), only in store: {:?}\nmemtable ({} rows), only in memtable: {:?}",
                    arrow::util::pretty::pretty_format_batches(&plan).unwrap(),
                    got.len(),
                    got.iter()
                        .filter(|r| !expected.contains(r))
                        .take(5)
                        .collect::<Vec<_>>(),
                    expected.len(),
                    expected
                        .iter()
                        .filter(|r| !got.contains(r))
                        .take(5)
                        .collect::<Vec<_>>(),
                );
            }
            checked += 1;
        }
        assert_eq!(checked, 200);
    }
}
