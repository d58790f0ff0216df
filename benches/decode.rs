//! Decoding sealed chunks into Arrow, per float codec.
//!
//! For each codec a store is filled with series whose values make the chunk encoder
//! pick it (checked: the bench stops if another codec was chosen), then sealed:
//! - Constant: a value that never changes;
//! - Decimal: a gauge with two decimals;
//! - IntDelta: an integer counter;
//! - Xor: sign flips with fine noise, where XOR keeps a narrow window;
//! - BitDelta: a full-precision random walk.
//!
//! Timed: `MetricStore::select` of every series then a `SnapshotReader` streaming (time and value
//! columns into Arrow `TimestampMillisecond` and `Float64` arrays), printed as samples/s
//! and by criterion; and the raw codec, `storage::codec::decode_floats` over the same
//! value blocks. Sizes: `METRICSTORE_BENCH_DECODE_SERIES` series of
//! `METRICSTORE_BENCH_DECODE_ROWS` rows (1000 × 4096 under `cargo bench`).

mod common;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use metricstore::storage::codec::{self, FloatCodec};
use metricstore::storage::{ReadOptions, SnapshotReader};
use metricstore::workload::Rng;
use metricstore::{MetricStore, TableSnapshot, TagSet, TimeRange, WriteBatch};

const START_MS: i64 = 1_767_225_600_000;

fn values(codec: FloatCodec, series: usize, rows: usize) -> Vec<f64> {
    let mut rng = Rng::new(series as u64 + 1);
    let mut x = 50.0 + series as f64;
    (0..rows)
        .map(|i| match codec {
            FloatCodec::Constant => 42.5,
            FloatCodec::Decimal => {
                x = (x + rng.normal()).clamp(0.0, 100.0);
                (x * 100.0).round() / 100.0
            }
            FloatCodec::IntDelta => (i * 3 + (rng.below(5) as usize)) as f64,
            // Sign flips with fine noise: XOR keeps a window of ~40 bits, while the
            // integer view of the bits jumps by ~2^63 every row.
            FloatCodec::Xor => {
                let sign = if i % 2 == 0 { 1.0 } else { -1.0 };
                sign * (1000.0 + rng.below(256) as f64 / f64::from(1 << 20))
            }
            FloatCodec::BitDelta => {
                x += rng.normal() * 1e-3;
                x
            }
        })
        .collect()
}

struct Case {
    codec: FloatCodec,
    store: MetricStore,
    samples: usize,
    blocks: Vec<Vec<u8>>,
}

fn build(codec: FloatCodec, series: usize, rows: usize) -> Case {
    let store = MetricStore::in_memory();
    for s in 0..series {
        let mut batch = WriteBatch::new();
        let tags = TagSet::new([("host", format!("host_{s}"))]).expect("valid tags");
        let item = batch.series("m", tags, &["value"]);
        for (i, v) in values(codec, s, rows).into_iter().enumerate() {
            item.push(START_MS + i as i64 * 10_000, &[v])
                .expect("one value per row");
        }
        store.write(&batch).expect("write");
    }
    store.seal_all();
    let mut blocks = Vec::new();
    let mut other: BTreeMap<String, usize> = BTreeMap::new();
    let snapshot = store.select("m", &[], TimeRange::ALL).expect("select");
    for s in snapshot.series() {
        for chunk in &s.chunks {
            for column in chunk.columns() {
                if column.codec() != Some(codec) {
                    *other.entry(format!("{:?}", column.codec())).or_default() += 1;
                }
                blocks.push(column.data().to_vec());
            }
        }
    }
    // A few chunks of another codec (e.g. a short last chunk) are fine; a mix is not.
    let stray: usize = other.values().sum();
    assert!(
        stray * 20 <= blocks.len(),
        "{codec:?} data sealed as {other:?} in {stray} of {} chunks",
        blocks.len()
    );
    Case {
        codec,
        store,
        samples: series * rows,
        blocks,
    }
}

fn read_all(store: &MetricStore) -> usize {
    let snapshot: Arc<TableSnapshot> = store.select("m", &[], TimeRange::ALL).expect("select");
    // Time and value columns only: tag dictionaries are not chunk decoding.
    let tag_count = snapshot.schema().fields().len() - 2;
    let mut options = ReadOptions::new(&snapshot);
    options.projection = vec![tag_count, tag_count + 1];
    // Batches are consumed one at a time, as a query's stream does; collecting all of
    // them would mostly measure the kernel faulting in fresh pages for the result.
    SnapshotReader::new(snapshot, options)
        .map(|batch| black_box(batch.expect("decode")).num_rows())
        .sum()
}

fn decode_raw(blocks: &[Vec<u8>], out: &mut Vec<f64>) -> usize {
    let mut n = 0;
    for block in blocks {
        out.clear();
        codec::decode_floats(block, out).expect("own block decodes");
        n += out.len();
    }
    n
}

fn bench(c: &mut Criterion) {
    let series = common::size("METRICSTORE_BENCH_DECODE_SERIES", 4, 1000);
    let rows = common::size("METRICSTORE_BENCH_DECODE_ROWS", 600, 4096);
    let mut group = c.benchmark_group("decode");
    for codec in [
        FloatCodec::Constant,
        FloatCodec::Decimal,
        FloatCodec::IntDelta,
        FloatCodec::Xor,
        FloatCodec::BitDelta,
    ] {
        let case = build(codec, series, rows);
        let bytes: usize = case.blocks.iter().map(Vec::len).sum();
        // Printed figures: best of a few runs, so a stray scheduler hiccup on a
        // 2-core machine does not decide them.
        let best = |f: &mut dyn FnMut() -> usize| {
            (0..5)
                .map(|_| {
                    let start = Instant::now();
                    assert_eq!(f(), case.samples);
                    start.elapsed()
                })
                .min()
                .unwrap_or_default()
        };
        let arrow = best(&mut || read_all(&case.store));
        let mut out = Vec::with_capacity(rows);
        let raw = best(&mut || decode_raw(&case.blocks, &mut out));
        println!(
            "decode {:<9} {:>5.2} B/value: into Arrow {} samples/s, raw decode_floats {} values/s",
            format!("{:?}", case.codec),
            bytes as f64 / case.samples as f64,
            common::per_second(case.samples as f64, arrow),
            common::per_second(case.samples as f64, raw),
        );
        group.throughput(Throughput::Elements(case.samples as u64));
        group.bench_function(format!("arrow/{:?}", case.codec), |b| {
            b.iter(|| black_box(read_all(&case.store)))
        });
        group.bench_function(format!("raw/{:?}", case.codec), |b| {
            let mut out = Vec::with_capacity(rows);
            b.iter(|| black_box(decode_raw(&case.blocks, &mut out)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
