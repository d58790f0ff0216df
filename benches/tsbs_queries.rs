//! TSBS cpu-only queries: every query of ../shared/workloads/tsbs-cpu-only.md against
//! the store and against a DataFusion `MemTable` holding the same rows, uncompressed.
//!
//! `cargo bench --bench tsbs_queries` loads the quick scale (100 hosts, 1 day);
//! `METRICSTORE_TSBS_SCALE=1000` loads the standard one. Under `cargo test` the bench
//! runs once on a tiny data set. Prints a table of median ms per query, and one
//! dashboard query beyond TSBS (every host per minute over 12 hours).

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{
    ArrayRef, Float64Builder, RecordBatch, StringDictionaryBuilder, TimestampMillisecondBuilder,
};
use arrow::datatypes::Int32Type;
use criterion::{Criterion, criterion_group, criterion_main};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use metricstore::MetricStore;
use metricstore::model::rfc3339;
use metricstore::workload::tsbs::{CpuOnly, QueryKind, TsbsConfig, lastpoint_fast_sql, query_sql};

/// The server's allocator (see `src/main.rs`), for the store and the MemTable alike.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const QUERY_SEED: u64 = 7;

fn config() -> TsbsConfig {
    let benching = std::env::args().any(|a| a == "--bench");
    let scale = std::env::var("METRICSTORE_TSBS_SCALE")
        .ok()
        .and_then(|s| s.parse().ok());
    match (benching, scale) {
        (_, Some(scale)) => TsbsConfig {
            scale,
            ..TsbsConfig::standard()
        },
        (true, None) => TsbsConfig::quick(),
        // Under `cargo test`: enough for every query window, small enough for debug.
        (false, None) => TsbsConfig {
            scale: 3,
            duration_ms: 13 * 3_600_000,
            ..TsbsConfig::standard()
        },
    }
}

fn load(data: &CpuOnly) -> (MetricStore, SessionContext) {
    let store = MetricStore::in_memory();
    for batch in data.batches(100_000) {
        store.write(&batch).expect("TSBS data is valid");
    }
    let schema = store.storage().schema("cpu").expect("table cpu");
    // The MemTable gets the same rows in the store's schema, split in two partitions.
    let hosts = data.hosts();
    let tag_names: Vec<String> = schema
        .fields()
        .iter()
        .take_while(|f| f.name() != "time")
        .map(|f| f.name().clone())
        .collect();
    let rows: Vec<_> = data.rows().collect();
    let mut partitions = Vec::new();
    for part in rows.chunks(rows.len().div_ceil(2).max(1)) {
        let mut columns: Vec<ArrayRef> = Vec::new();
        for tag in &tag_names {
            let mut b = StringDictionaryBuilder::<Int32Type>::new();
            for r in part {
                b.append_option(hosts[r.host].tags().get(tag));
            }
            columns.push(Arc::new(b.finish()));
        }
        let mut t = TimestampMillisecondBuilder::new().with_timezone("UTC");
        for r in part {
            t.append_value(r.timestamp_ms);
        }
        columns.push(Arc::new(t.finish()));
        for f in 0..10 {
            let mut b = Float64Builder::new();
            for r in part {
                b.append_value(r.values[f]);
            }
            columns.push(Arc::new(b.finish()));
        }
        partitions.push(vec![
            RecordBatch::try_new(schema.clone(), columns).expect("same schema"),
        ]);
    }
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(2));
    let table = MemTable::try_new(schema, partitions).expect("memtable");
    ctx.register_table("cpu", Arc::new(table))
        .expect("register");
    (store, ctx)
}

fn store_sql(config: &TsbsConfig, kind: QueryKind) -> String {
    match kind {
        QueryKind::Lastpoint => lastpoint_fast_sql().to_string(),
        _ => query_sql(config, kind, QUERY_SEED),
    }
}

/// Median of at least `runs` runs; sub-millisecond queries repeat for up to half a
/// second, since fifteen runs of them measure the machine's noise more than the query.
fn median_ms(runs: usize, mut f: impl FnMut()) -> f64 {
    let started = Instant::now();
    let mut times: Vec<Duration> = Vec::new();
    while times.len() < runs
        || (runs > 1 && times.len() < 2000 && started.elapsed() < Duration::from_millis(500))
    {
        let start = Instant::now();
        f();
        times.push(start.elapsed());
    }
    times.sort();
    times[times.len() / 2].as_secs_f64() * 1e3
}

fn bench(c: &mut Criterion) {
    let config = config();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    let data = CpuOnly::new(config.clone());
    let start = Instant::now();
    let (store, mem) = load(&data);
    println!(
        "TSBS cpu-only: {} hosts, {} rows, loaded in {:.1} s, store {:.2} bytes/value",
        config.scale,
        data.total_rows(),
        start.elapsed().as_secs_f64(),
        store.stats().total.bytes_per_sample()
    );
    let runs = if std::env::args().any(|a| a == "--bench") {
        15
    } else {
        1
    };
    println!(
        "{:<24} {:>12} {:>12} {:>9}",
        "query", "store ms", "memtable ms", "speedup"
    );
    // Every TSBS query, then one beyond TSBS: a dashboard panel of every host per
    // minute over 12 hours, where fine buckets fold runs of decoded rows instead of
    // hashing each row.
    let mut queries: Vec<(&str, String, String)> = QueryKind::ALL
        .into_iter()
        .map(|kind| {
            let theirs = query_sql(&config, kind, QUERY_SEED);
            (kind.name(), store_sql(&config, kind), theirs)
        })
        .collect();
    let end = config.end_ms().min(config.start_ms + 12 * 3_600_000);
    let panel = format!(
        "SELECT date_bin(INTERVAL '1 minute', time) AS m, hostname, max(usage_user), \
         avg(usage_system) FROM cpu WHERE time >= '{}' AND time < '{}' GROUP BY m, hostname",
        rfc3339(config.start_ms),
        rfc3339(end)
    );
    queries.push(("panel-all-hosts-1m-12h", panel.clone(), panel));
    for (name, ours, theirs) in &queries {
        let store_ms = median_ms(runs, || {
            rt.block_on(store.sql(ours)).expect("store query");
        });
        let mem_ms = median_ms(runs, || {
            rt.block_on(async { mem.sql(theirs).await?.collect().await })
                .expect("memtable query");
        });
        println!(
            "{:<24} {:>12.2} {:>12.2} {:>8.1}x",
            name,
            store_ms,
            mem_ms,
            mem_ms / store_ms
        );
    }
    let mut group = c.benchmark_group("tsbs");
    group.sample_size(10);
    for kind in QueryKind::ALL {
        let sql = store_sql(&config, kind);
        group.bench_function(kind.name(), |b| {
            b.iter(|| rt.block_on(store.sql(&sql)).expect("store query"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
