//! Ingests the real node-exporter data set through the `MetricStore` facade and prints
//! what the store holds: series, samples, bytes per sample, the top tables and tag
//! keys, and the first rows of `node_load1`.
//!
//! ```text
//! cargo run --release --example import [-- path/to/file.prom[.zst]]
//! ```
//!
//! The path defaults to `../shared/data/node-exporter.prom.zst` next to the crate. A
//! `.zst` file is decompressed on the fly; anything else is read as Prometheus text.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::PathBuf;
use std::time::Instant;

use arrow::util::pretty::pretty_format_batches;
use metricstore::ingest::prom_text;
use metricstore::{MetricStore, TimeRange};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args_os().nth(1).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/node-exporter.prom.zst"),
        PathBuf::from,
    );
    let file = File::open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "zst") {
        Box::new(
            zstd::Decoder::new(file)
                .map_err(|e| format!("cannot read {} as zstd: {e}", path.display()))?,
        )
    } else {
        Box::new(BufReader::new(file))
    };

    let store = MetricStore::in_memory();
    let start = Instant::now();
    let parsed = prom_text::parse_reader(reader, 0, 100_000, |batch| store.write(&batch))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let took = start.elapsed();
    // Seal the open heads so that bytes per sample shows the compressed form.
    store.seal_all();
    println!("imported {}", path.display());
    println!(
        "  {} lines, {} samples in {:.2} s ({:.2} M samples/s, parse + write, one thread)",
        parsed.lines,
        parsed.samples,
        took.as_secs_f64(),
        parsed.samples as f64 / took.as_secs_f64().max(1e-9) / 1e6
    );
    print!("{}", store.stats());

    if store.table_names().iter().any(|t| t == "node_load1") {
        let snapshot = store.select("node_load1", &[], TimeRange::ALL)?;
        let batches = snapshot.record_batches(None)?;
        if let Some(first) = batches.first() {
            println!("node_load1, first rows:");
            println!(
                "{}",
                pretty_format_batches(&[first.slice(0, first.num_rows().min(5))])?
            );
        }
    }
    Ok(())
}
