//! The cold tier on TSBS cpu data (`METRICSTORE_BENCH_TSBS`: quick = 100 hosts × 1 day
//! under `cargo bench`), integer and float variants:
//! - tiering throughput to the local filesystem: samples/s (target ≥ 5 M/s);
//! - Parquet bytes per sample (target ≤ 2 on the integer variant; the float one is
//!   reported: random-walk doubles do not compress losslessly to 2 bytes);
//! - single-groupby-1-1-12 (max per minute, one host, 12 hours) over cold files only:
//!   ms (target ≤ 50 ms), by pruning files, row groups and pages.

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

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
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
