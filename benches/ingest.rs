//! Ingest through `MetricStore::write`, one thread.
//!
//! - `write/10k-series`: batches of one sample for each of `METRICSTORE_BENCH_SERIES`
//!   existing series (10 000 under `cargo bench`, 100 in tests), timestamps advancing
//!   10 s per batch. Batches are built before the timed section; the series are
//!   created beforehand. Prints samples/s over 1200 batches, which seals every
//!   series' head twice.
//! - `write/tsbs-cpu`: the whole TSBS cpu-only data set (`METRICSTORE_BENCH_TSBS`,
//!   quick scale by default) into a fresh store, batches of 10 000 rows built
//!   beforehand. Prints rows/s and field values/s.
//! - `decode/remote-write`: a remote write 1.0 body (snappy) of 10 TSBS-like series
//!   per host of the quick scale, 10 samples each, decoded again and again, as a
//!   Prometheus server's every request repeats its series' labels. Prints samples/s.
//!
//! The process allocates with mimalloc, as the `metricstore` binary does.

mod common;

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use metricstore::ingest::remote_write::{self, Encoding, Version};
use metricstore::workload::tsbs::{CpuOnly, Variant};
use metricstore::{MetricStore, TagSet, WriteBatch};

/// Batches built ahead of timing at a time: bounds memory (a 10k-sample batch holds
/// 10k tag sets, about 3 MB) while keeping construction out of the timed section.
const POOL: usize = 32;

/// The server's allocator (see `src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const START_MS: i64 = 1_767_225_600_000;
const STEP_MS: i64 = 10_000;

struct Series {
    tags: Vec<TagSet>,
}

impl Series {
    fn new(n: usize) -> Series {
        let tags = (0..n)
            .map(|i| {
                TagSet::new([
                    ("instance", format!("host-{:05}:9100", i / 10)),
                    ("job", "node".to_string()),
                    ("cpu", (i % 10).to_string()),
                ])
                .expect("valid tags")
            })
            .collect();
        Series { tags }
    }

    /// One sample per series at step `step`: a counter-like value per series.
    fn batch(&self, step: i64) -> WriteBatch {
        let mut batch = WriteBatch::new();
        for (i, tags) in self.tags.iter().enumerate() {
            let value = (step * (i as i64 % 7 + 1)) as f64 * 0.25;
            batch.add_sample(
                "node_cpu_seconds_total",
                tags.clone(),
                "value",
                START_MS + step * STEP_MS,
                value,
            );
        }
        batch
    }
}

/// Writes `count` batches starting at step `*next` into `store`, building them in
/// pools outside the timed section; returns the time spent writing.
fn write_steps(store: &MetricStore, series: &Series, next: &mut i64, count: u64) -> Duration {
    let mut elapsed = Duration::ZERO;
    let mut left = count;
    while left > 0 {
        let n = left.min(POOL as u64);
        let pool: Vec<WriteBatch> = (0..n as i64).map(|k| series.batch(*next + k)).collect();
        let start = Instant::now();
        for batch in &pool {
            store.write(batch).expect("write to existing series");
        }
        elapsed += start.elapsed();
        *next += n as i64;
        left -= n;
    }
    elapsed
}

fn bench(c: &mut Criterion) {
    let n = common::size("METRICSTORE_BENCH_SERIES", 100, 10_000);
    let series = Series::new(n);

    // The printed figure: a fresh store, series created, then timed batches.
    let store = MetricStore::in_memory();
    let mut next = 0;
    store.write(&series.batch(next)).expect("create series");
    next += 1;
    // Over two chunk lengths, so that the figure includes sealing (chunks hold 512
    // rows by default).
    let batches = common::size("METRICSTORE_BENCH_BATCHES", 2, 1200) as u64;
    let took = write_steps(&store, &series, &mut next, batches);
    let samples = batches as f64 * n as f64;
    println!(
        "ingest write: {} samples/s ({batches} batches of {n} samples, {n} existing series, one thread, {:.3} s)",
        common::per_second(samples, took),
        took.as_secs_f64()
    );

    let mut group = c.benchmark_group("write");
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function(format!("{n}-series"), |b| {
        b.iter_custom(|iters| write_steps(&store, &series, &mut next, iters))
    });
    drop(store);

    // TSBS cpu-only: rows/s and field values/s into a fresh store.
    let config = common::tsbs_config(Variant::Integer);
    let workload = CpuOnly::new(config.clone());
    let tsbs: Vec<WriteBatch> = workload.batches(10_000).collect();
    let rows: usize = tsbs.iter().map(WriteBatch::row_count).sum();
    let values: usize = tsbs.iter().map(WriteBatch::sample_count).sum();
    let run = || {
        let store = MetricStore::in_memory();
        let start = Instant::now();
        for batch in &tsbs {
            store.write(batch).expect("TSBS rows are valid");
        }
        let took = start.elapsed();
        (store, took)
    };
    let (_, took) = run();
    println!(
        "ingest tsbs-cpu (scale {}, {rows} rows): {} rows/s, {} field values/s ({:.3} s)",
        config.scale,
        common::per_second(rows as f64, took),
        common::per_second(values as f64, took),
        took.as_secs_f64()
    );
    group.throughput(Throughput::Elements(rows as u64));
    group.sample_size(10);
    group.bench_function(format!("tsbs-cpu-scale-{}", config.scale), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (store, took) = run();
                total += took;
                drop(store); // outside the timed section
            }
            total
        })
    });
    group.finish();
    bench_remote_write_decode(c);
}

fn bench_remote_write_decode(c: &mut Criterion) {
    let config = common::tsbs_config(Variant::Integer);
    let workload = CpuOnly::new(config);
    let series: Vec<remote_write::EncodeSeries> = workload
        .hosts()
        .iter()
        .flat_map(|host| {
            (0..10).map(move |f| {
                let mut labels = vec![("__name__".to_string(), format!("cpu_field_{f}"))];
                labels.extend(host.tags().pairs().iter().cloned());
                let samples = (0..10)
                    .map(|i| (START_MS + i * STEP_MS, (i * f) as f64 * 0.5))
                    .collect();
                (labels, samples)
            })
        })
        .collect();
    let body = remote_write::encode_v1(&series, &[]);
    let samples = series.len() * 10;
    let decode = || {
        remote_write::decode(&body, Version::V1, Encoding::Snappy, 64 << 20)
            .expect("the body is valid")
    };
    // The first decode fills this thread's identity cache, as a server's first request.
    assert_eq!(decode().samples, samples);
    let rounds = 200;
    let start = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(decode());
    }
    let took = start.elapsed();
    println!(
        "remote_write decode: {} samples/s ({} series of 10 samples, {} bytes, labels known)",
        common::per_second((rounds * samples) as f64, took),
        series.len(),
        body.len()
    );
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(samples as u64));
    group.bench_function("remote-write", |b| b.iter(decode));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
