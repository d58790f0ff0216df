//! Helpers shared by the benches: sizes from the environment, loading the real data set
//! and the TSBS workload through the public facade, and walking sealed chunks.
//!
//! `cargo test --all-targets` runs every bench binary once without `--bench`, in debug
//! mode, so every size here has a tiny default there and the full size under
//! `cargo bench` (which passes `--bench`). An environment variable overrides either.

#![allow(dead_code, reason = "each bench binary uses a different subset")]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use arrow::array::BooleanBufferBuilder;
use metricstore::ingest::prom_text;
use metricstore::storage::codec::{self, FloatCodec};
use metricstore::workload::tsbs::{CpuOnly, TsbsConfig, Variant};
use metricstore::{MetricStore, TimeRange};

/// Whether the binary runs under `cargo bench` (criterion's own test-mode check).
pub fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// `var` from the environment if set, else `bench` under `cargo bench`, else `test`.
///
/// # Panics
/// If `var` is set to something that is not a non-negative integer: a bench run with a
/// mistyped size should stop rather than measure the wrong thing.
pub fn size(var: &str, test: usize, bench: usize) -> usize {
    match std::env::var(var) {
        Ok(v) => v
            .trim()
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{var}={v:?} is not a non-negative integer")),
        Err(_) if bench_mode() => bench,
        Err(_) => test,
    }
}

/// The TSBS configuration for compression and ingest benches: `METRICSTORE_BENCH_TSBS`
/// is `quick` (100 hosts, 1 day; the `cargo bench` default), `standard` (1000 hosts,
/// 1 day) or a host count (1 day). Tests use 2 hosts over 2 hours.
pub fn tsbs_config(variant: Variant) -> TsbsConfig {
    let mut config = match std::env::var("METRICSTORE_BENCH_TSBS").as_deref() {
        Ok("quick") => TsbsConfig::quick(),
        Ok("standard") => TsbsConfig::standard(),
        Ok(hosts) => TsbsConfig {
            scale: hosts.trim().parse().unwrap_or_else(|_| {
                panic!("METRICSTORE_BENCH_TSBS={hosts:?}: expected quick, standard or a host count")
            }),
            ..TsbsConfig::quick()
        },
        Err(_) if bench_mode() => TsbsConfig::quick(),
        Err(_) => TsbsConfig {
            scale: 2,
            duration_ms: 2 * 3_600_000,
            ..TsbsConfig::quick()
        },
    };
    config.variant = variant;
    config
}

/// Path of the real node-exporter data set (`METRICSTORE_DATA` overrides it).
pub fn node_exporter_path() -> PathBuf {
    std::env::var_os("METRICSTORE_DATA").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/node-exporter.prom.zst"),
        PathBuf::from,
    )
}

/// The decompressed node-exporter text: all of it under `cargo bench`, its first
/// `METRICSTORE_BENCH_PROM_LINES` lines otherwise (default 20 000). `None`, with a
/// note, when the file is absent and this is not `cargo bench` (a clone without the
/// data set beside it still runs its tests); under `cargo bench` a missing file is an
/// error.
pub fn node_exporter_text() -> Option<Vec<u8>> {
    let path = node_exporter_path();
    if !path.exists() && !bench_mode() {
        println!(
            "note: {} not found; skipping the node-exporter data set",
            path.display()
        );
        return None;
    }
    let file = std::fs::File::open(&path)
        .unwrap_or_else(|e| panic!("cannot open the data set {}: {e}", path.display()));
    let decoder =
        zstd::Decoder::new(file).unwrap_or_else(|e| panic!("{} is not zstd: {e}", path.display()));
    let lines = size("METRICSTORE_BENCH_PROM_LINES", 20_000, usize::MAX);
    let mut text = Vec::new();
    if lines == usize::MAX {
        BufReader::new(decoder)
            .read_to_end(&mut text)
            .unwrap_or_else(|e| panic!("cannot decompress {}: {e}", path.display()));
    } else {
        for line in BufReader::new(decoder).lines().take(lines) {
            let line = line.unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            text.extend_from_slice(line.as_bytes());
            text.push(b'\n');
        }
    }
    Some(text)
}

/// Parses Prometheus text into a new store through `MetricStore::write`; returns the
/// store and the number of samples in the text (every sample, NaNs included).
pub fn load_prom(text: &[u8]) -> (MetricStore, u64) {
    let store = MetricStore::in_memory();
    let stats = prom_text::parse_reader(text, 0, 100_000, |batch| store.write(&batch))
        .unwrap_or_else(|e| panic!("loading the data set failed: {e}"));
    (store, stats.samples as u64)
}

/// A store holding the whole TSBS data set of `config`, written in batches of 10 000
/// rows; returns the store and the number of field values written.
pub fn load_tsbs(config: TsbsConfig) -> (MetricStore, u64) {
    let store = MetricStore::in_memory();
    let workload = CpuOnly::new(config);
    let mut values = 0;
    for batch in workload.batches(10_000) {
        values += batch.sample_count() as u64;
        store.write(&batch).expect("TSBS rows are valid");
    }
    (store, values)
}

/// One field column of one sealed chunk, decoded.
pub struct Column {
    pub table: String,
    pub times: Vec<i64>,
    /// Values of present rows only (null rows dropped).
    pub values: Vec<f64>,
    /// Times of present rows only.
    pub present_times: Vec<i64>,
    pub codec: Option<FloatCodec>,
    pub block: Vec<u8>,
}

/// Walks every sealed chunk of every table in `store` and hands each field column to
/// `visit`, along with the series position in the table and the chunk number.
pub fn for_each_column(store: &MetricStore, mut visit: impl FnMut(usize, usize, usize, &Column)) {
    for table in store.table_names() {
        let snapshot = store
            .select(&table, &[], TimeRange::ALL)
            .unwrap_or_else(|e| panic!("select {table}: {e}"));
        for (s, series) in snapshot.series().iter().enumerate() {
            for (c, chunk) in series.chunks.iter().enumerate() {
                let mut times = Vec::with_capacity(chunk.rows());
                chunk.decode_times(&mut times).expect("own chunk decodes");
                for column in chunk.columns() {
                    let mut values = Vec::with_capacity(chunk.rows());
                    let mut validity = BooleanBufferBuilder::new(chunk.rows());
                    chunk
                        .decode_field(column.field as usize, &mut values, &mut validity)
                        .expect("own chunk decodes");
                    let valid = validity.finish();
                    let (present_times, values): (Vec<i64>, Vec<f64>) = times
                        .iter()
                        .zip(values)
                        .zip(valid.iter())
                        .filter_map(|((&t, v), ok)| ok.then_some((t, v)))
                        .unzip();
                    let col = Column {
                        table: table.clone(),
                        times: times.clone(),
                        values,
                        present_times,
                        codec: column.codec(),
                        block: column.data().to_vec(),
                    };
                    visit(s, c, column.field as usize, &col);
                }
            }
        }
    }
}

/// Plain Gorilla sizes of everything `store` holds, and the float codec mix.
#[derive(Debug, Default)]
pub struct Baseline {
    /// Gorilla over the same chunks (512 rows or the hour, whichever ends first):
    /// delta-of-delta timestamps once per series and chunk, XOR values per field.
    pub gorilla_chunks: usize,
    /// Gorilla over whole series (one stream per series and field, timestamps once
    /// per series): what a Gorilla store with unbounded blocks would keep.
    pub gorilla_series: usize,
    /// Sealed chunks per float codec.
    pub codec_mix: BTreeMap<String, usize>,
    /// Encoded value-block bytes per float codec.
    pub codec_bytes: BTreeMap<String, usize>,
    /// Sealed field columns.
    pub columns: usize,
}

/// A series' timestamps and its values per field, concatenated over its chunks.
type WholeSeries = (Vec<i64>, BTreeMap<usize, Vec<f64>>);

/// Plain Gorilla sizes and the codec mix of everything sealed in `store`.
pub fn baseline(store: &MetricStore) -> Baseline {
    let mut b = Baseline::default();
    // (table, series) -> (times, per-field values) over whole series.
    let mut whole: BTreeMap<(String, usize), WholeSeries> = BTreeMap::new();
    let mut last_chunk: Option<(String, usize, usize)> = None;
    for_each_column(store, |s, c, field, col| {
        let key = (col.table.clone(), s, c);
        if last_chunk.as_ref() != Some(&key) {
            // First column of a chunk: its timestamps, once.
            b.gorilla_chunks += codec::gorilla_size(&col.times, &[]);
            whole
                .entry((col.table.clone(), s))
                .or_default()
                .0
                .extend_from_slice(&col.times);
            last_chunk = Some(key);
        }
        b.gorilla_chunks += codec::gorilla_size(&[], &col.values);
        whole
            .entry((col.table.clone(), s))
            .or_default()
            .1
            .entry(field)
            .or_default()
            .extend_from_slice(&col.values);
        let name = col
            .codec
            .map_or_else(|| "?".to_string(), |c| format!("{c:?}"));
        *b.codec_mix.entry(name.clone()).or_default() += 1;
        *b.codec_bytes.entry(name).or_default() += col.block.len();
        b.columns += 1;
    });
    for (times, fields) in whole.values() {
        b.gorilla_series += codec::gorilla_size(times, &[]);
        for values in fields.values() {
            b.gorilla_series += codec::gorilla_size(&[], values);
        }
    }
    b
}

/// Runs `f` and returns how long it took.
pub fn timed(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

/// `n / d` per second, as a readable string (e.g. `12.3 M`).
pub fn per_second(n: f64, d: Duration) -> String {
    human(n / d.as_secs_f64().max(1e-12))
}

pub fn human(x: f64) -> String {
    if x >= 1e9 {
        format!("{:.2} G", x / 1e9)
    } else if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1} k", x / 1e3)
    } else {
        format!("{x:.1} ")
    }
}
