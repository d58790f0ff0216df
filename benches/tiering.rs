//! The cold tier on TSBS cpu data (`METRICSTORE_BENCH_TSBS`: quick = 100 hosts × 1 day
//! under `cargo bench`), integer and float variants:
//! - tiering throughput to the local filesystem: samples/s (target ≥ 5 M/s);
//! - Parquet bytes per sample (target ≤ 2 on the integer variant; the float one is
//!   reported: random-walk doubles do not compress losslessly to 2 bytes);
//! - single-groupby-1-1-12 (max per minute, one host, 12 hours) over cold files only:
//!   ms (target ≤ 50 ms), by pruning files, row groups and pages;
//! - TSBS queries over hot rows while tiering runs continuously (a thread tiering
//!   one more chunk span (an hour) of the older half in a loop) against the same queries with
//!   tiering idle: the latency ratio (target ≤ 1.2).
//!
//! Scale 1000 for the cold query: `METRICSTORE_BENCH_TSBS=1000 cargo bench --bench tiering`.

mod common;

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use metricstore::workload::tsbs::{CpuOnly, QueryKind, Variant, query_sql};
use metricstore::{Config, MetricStore, StorageConfig, TierConfig};

/// Tiers the whole data set of `variant`; prints the figures; returns the store.
fn tier_all(
    variant: Variant,
    dir: &std::path::Path,
    runtime: &tokio::runtime::Runtime,
) -> MetricStore {
    let config = common::tsbs_config(variant);
    let store = MetricStore::open(Config {
        storage: StorageConfig {
            out_of_order_window_ms: i64::MAX / 4,
            ..StorageConfig::default()
        },
        tier: Some(TierConfig {
            policies: metricstore::tier::Policies::hot_for_all(Duration::ZERO),
            ..TierConfig::new(dir)
        }),
        ..Config::default()
    })
    .expect("open");
    let mut samples = 0;
    for batch in CpuOnly::new(config.clone()).batches(10_000) {
        samples += batch.sample_count();
        store.write(&batch).expect("write");
    }
    let start = Instant::now();
    let report = runtime
        .block_on(store.run_tiering(config.end_ms() + 3_600_000))
        .expect("tiering")
        .expect("cold tier");
    let took = start.elapsed();
    println!(
        "tiering: {} samples in {:.3} s: {} samples/s, {} files, {:.3} bytes/sample (TSBS {variant:?}, scale {})",
        samples,
        took.as_secs_f64(),
        common::per_second(samples as f64, took),
        report.files,
        report.bytes as f64 / samples as f64,
        config.scale
    );
    assert!(store.stats().total.rows == 0, "everything should be cold");
    store
}

/// Median latency of `queries` on `store`, each run `rounds` times.
fn median_ms(
    store: &MetricStore,
    queries: &[String],
    rounds: usize,
    runtime: &tokio::runtime::Runtime,
) -> f64 {
    let mut times = Vec::new();
    for _ in 0..rounds {
        for sql in queries {
            let start = Instant::now();
            runtime.block_on(store.sql(sql)).expect("query");
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Hot-query latency with tiering idle and with tiering running continuously.
fn queries_during_tiering(runtime: &tokio::runtime::Runtime) {
    let mut config = common::tsbs_config(Variant::Float);
    config.duration_ms = config.duration_ms.max(2 * 3_600_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let store = std::sync::Arc::new(
        MetricStore::open(Config {
            storage: StorageConfig {
                out_of_order_window_ms: i64::MAX / 4,
                ..StorageConfig::default()
            },
            tier: Some(TierConfig::new(dir.path())),
            ..Config::default()
        })
        .expect("open"),
    );
    for batch in CpuOnly::new(config.clone()).batches(10_000) {
        store.write(&batch).expect("write");
    }
    // Queries over the newer half, which stays hot; tiering eats the older half.
    let half = config.duration_ms / 2;
    let hot = metricstore::workload::tsbs::TsbsConfig {
        start_ms: config.start_ms + half,
        duration_ms: half,
        ..config.clone()
    };
    let kinds = [
        QueryKind::SingleGroupby1_1_1,
        QueryKind::SingleGroupby5_1_1,
        QueryKind::CpuMaxAll1,
        QueryKind::HighCpu1,
    ];
    let queries: Vec<String> = kinds
        .iter()
        .enumerate()
        .map(|(i, k)| query_sql(&hot, *k, i as u64))
        .collect();
    let rounds = if common::bench_mode() { 20 } else { 1 };
    let idle = median_ms(&store, &queries, rounds, runtime);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tierer = {
        let (store, stop) = (store.clone(), stop.clone());
        let start = config.start_ms;
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let cold = store.cold().expect("cold tier").clone();
            let (mut cutoff, mut runs) = (start, 0u64);
            // Chunk-span steps, as scheduled runs cut (their cutoffs are aligned to
            // the span, so no chunk is split under the table lock).
            let span = store.storage().config().chunk_span_ms;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && cutoff < start + half {
                cutoff += span;
                runtime
                    .block_on(cold.tier_before(store.storage(), cutoff))
                    .expect("tiering");
                runs += 1;
            }
            runs
        })
    };
    let busy = median_ms(&store, &queries, rounds, runtime);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let runs = tierer.join().expect("tiering thread");
    println!(
        "tiering: hot TSBS queries median {idle:.2} ms idle, {busy:.2} ms while tiering ran ({runs} runs): ratio {:.2} (scale {})",
        busy / idle,
        config.scale
    );
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    queries_during_tiering(&runtime);
    let int_dir = tempfile::tempdir().expect("temp dir");
    drop(tier_all(Variant::Integer, int_dir.path(), &runtime));
    let dir = tempfile::tempdir().expect("temp dir");
    let store = tier_all(Variant::Float, dir.path(), &runtime);
    let config = common::tsbs_config(Variant::Float);
    let sql = query_sql(&config, QueryKind::SingleGroupby1_1_12, 7);
    let run = || {
        let start = Instant::now();
        let rows: usize = runtime
            .block_on(store.sql(&sql))
            .expect("query")
            .iter()
            .map(|b| b.num_rows())
            .sum();
        (start.elapsed(), rows)
    };
    let best = (0..5).map(|_| run()).min().unwrap_or_default();
    println!(
        "tiering: single-groupby-1-1-12 over cold files: {:.2} ms ({} rows, best of 5)",
        best.0.as_secs_f64() * 1e3,
        best.1
    );
    let mut group = c.benchmark_group("cold");
    group.sample_size(10);
    group.bench_function("single-groupby-1-1-12", |b| b.iter(run));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
