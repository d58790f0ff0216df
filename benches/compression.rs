//! Compression: bytes per sample, timestamps included, on the real node-exporter data
//! and on TSBS cpu-only data (integer and float variants), next to plain Gorilla
//! (delta-of-delta timestamps + XOR values) on the same data.
//!
//! Every data set goes through `MetricStore::write`, then `seal_all()`, then `stats()`.
//! The printed table has, per data set:
//! - `chunks`: bytes of sealed chunks (encoded blocks, validity, chunk headers; shared
//!   timestamp blocks once) over samples;
//! - `total`: every byte the store accounts (chunks, heads, label index, dictionaries);
//! - `gorilla/chunk`: plain Gorilla over the same chunk boundaries (512 rows or the
//!   hour), timestamps once per series and chunk;
//! - `gorilla/series`: plain Gorilla over whole series.
//!
//! Samples are counted as the data README does: every sample in the file, NaNs
//! included. Criterion then times sealing (`encode_floats`) over the node-exporter
//! chunks. Sizes: `METRICSTORE_BENCH_PROM_LINES` (lines of the file to load; all under
//! `cargo bench`) and `METRICSTORE_BENCH_TSBS` (see `common::tsbs_config`).

mod common;

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use metricstore::MetricStore;
use metricstore::storage::codec;
use metricstore::workload::tsbs::Variant;

struct Row {
    name: String,
    samples: u64,
    chunk_bytes: usize,
    total_bytes: usize,
    baseline: common::Baseline,
}

fn measure(name: &str, store: &MetricStore, samples: u64) -> Row {
    store.seal_all();
    let stats = store.stats();
    if stats.total.samples != samples {
        println!(
            "note: {name}: the store holds {} samples, {samples} were written \
             (duplicate timestamps keep the last value)",
            stats.total.samples
        );
    }
    Row {
        name: name.to_string(),
        samples,
        chunk_bytes: stats.total.chunk_bytes,
        total_bytes: stats.total.total_bytes(),
        baseline: common::baseline(store),
    }
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "{:<22} {:>11} {:>9} {:>9} {:>14} {:>15}",
        "data set", "samples", "chunks", "total", "gorilla/chunk", "gorilla/series"
    );
    for r in rows {
        let per = |b: usize| b as f64 / r.samples.max(1) as f64;
        println!(
            "{:<22} {:>11} {:>9.3} {:>9.3} {:>14.3} {:>15.3}",
            r.name,
            r.samples,
            per(r.chunk_bytes),
            per(r.total_bytes),
            per(r.baseline.gorilla_chunks),
            per(r.baseline.gorilla_series),
        );
    }
    println!("(bytes/sample, timestamps included)");
    for r in rows {
        let mix: Vec<String> = r
            .baseline
            .codec_mix
            .iter()
            .map(|(codec, n)| {
                let bytes = r.baseline.codec_bytes.get(codec).copied().unwrap_or(0);
                format!("{codec} {n} ({bytes} B)")
            })
            .collect();
        println!(
            "codec mix {}: {} columns: {}",
            r.name,
            r.baseline.columns,
            mix.join(", ")
        );
    }
    println!();
}

fn bench(c: &mut Criterion) {
    let mut rows = Vec::new();
    let mut stores = Vec::new();
    if let Some(text) = common::node_exporter_text() {
        let (node, node_samples) = common::load_prom(&text);
        rows.push(measure("node-exporter", &node, node_samples));
        stores.push(node);
    }
    for (name, variant) in [
        ("tsbs-cpu integer", Variant::Integer),
        ("tsbs-cpu float", Variant::Float),
    ] {
        let (store, samples) = common::load_tsbs(common::tsbs_config(variant));
        rows.push(measure(name, &store, samples));
        stores.push(store);
    }
    print_table(&rows);

    // Sealing cost: re-encode the value columns of every chunk of the first data set
    // (node-exporter when present).
    let mut columns: Vec<Vec<f64>> = Vec::new();
    common::for_each_column(&stores[0], |_, _, _, col| columns.push(col.values.clone()));
    let values: usize = columns.iter().map(Vec::len).sum();
    let mut group = c.benchmark_group("compression");
    group.throughput(Throughput::Elements(values as u64));
    group.sample_size(10);
    group.bench_function("encode_floats/node-exporter", |b| {
        let mut out = Vec::new();
        b.iter(|| {
            for col in &columns {
                out.clear();
                black_box(codec::encode_floats(col, &mut out));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
