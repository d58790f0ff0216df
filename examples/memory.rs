//! Memory overhead per series: how many bytes a series costs beyond its samples.
//!
//! Creates `METRICSTORE_MEMORY_SERIES` series (default 1 000 000) in one table, each
//! with one sample, shaped like node-exporter CPU series
//! (`node_cpu_seconds_total{instance, job, cpu, mode}`), and reports bytes per series
//! two ways:
//! - from `MetricStore::stats()`: every accounted byte (heads, chunks, label index,
//!   dictionaries, per-series bookkeeping) minus the samples' own encoded bytes, over
//!   the series count, broken down by component; before and after `seal_all()`;
//! - from the process: the growth of `VmRSS` (`/proc/self/status`) over the same steps,
//!   which also sees allocator overhead and anything the stats miss.
//!
//! Run it by hand: `cargo run --release --example memory` (the target is at most 300
//! bytes per series with 1M series). `cargo test --all-targets` only compiles it.

use metricstore::{MetricStore, TableStats, TagSet, WriteBatch};

const MODES: [&str; 8] = [
    "idle", "user", "system", "iowait", "irq", "softirq", "steal", "nice",
];

/// Resident set size of this process in bytes, from `/proc/self/status`; `None`
/// where that file does not exist (not Linux).
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn tags(i: usize) -> TagSet {
    // 8 modes x 8 CPUs per instance: 64 series per host, 15 625 hosts for 1M series.
    TagSet::new([
        (
            "instance",
            format!(
                "10.{}.{}.{}:9100",
                i >> 22 & 255,
                i >> 14 & 255,
                i >> 6 & 255
            ),
        ),
        ("job", "node".to_string()),
        ("cpu", (i >> 3 & 7).to_string()),
        ("mode", MODES[i & 7].to_string()),
    ])
    .expect("valid tags")
}

fn report(
    what: &str,
    t: &TableStats,
    sample_bytes: usize,
    rss: Option<u64>,
    base_rss: Option<u64>,
) {
    let n = t.series.max(1) as f64;
    let per = |b: usize| b as f64 / n;
    let overhead = t.total_bytes().saturating_sub(sample_bytes);
    println!("{what}:");
    println!(
        "  stats: {:.1} B/series overhead ({} series, {} samples; total {:.1} B/series)",
        per(overhead),
        t.series,
        t.samples,
        per(t.total_bytes())
    );
    println!(
        "    heads {:.1}, chunks {:.1} (samples' own bytes {:.1}), index {:.1}, dictionaries + series {:.1}",
        per(t.head_bytes),
        per(t.chunk_bytes),
        per(sample_bytes),
        per(t.index_bytes),
        per(t.dictionary_bytes)
    );
    if let (Some(rss), Some(base)) = (rss, base_rss) {
        println!(
            "  process: VmRSS grew {:.1} MiB = {:.1} B/series",
            rss.saturating_sub(base) as f64 / (1 << 20) as f64,
            rss.saturating_sub(base) as f64 / n
        );
    }
}

fn main() {
    let series: usize = std::env::var("METRICSTORE_MEMORY_SERIES")
        .ok()
        .map(|v| {
            v.trim()
                .replace('_', "")
                .parse()
                .expect("METRICSTORE_MEMORY_SERIES must be a count")
        })
        .unwrap_or(1_000_000);
    println!("size_of: TagSet {} B", std::mem::size_of::<TagSet>());
    let base = rss_bytes();
    let store = MetricStore::in_memory();
    // Small batches, dropped as we go, so that the batches' own memory is reused by
    // the allocator rather than counted in the RSS growth.
    let per_batch = 10_000;
    let start_ms = 1_767_225_600_000;
    for first in (0..series).step_by(per_batch) {
        let mut batch = WriteBatch::new();
        for i in first..(first + per_batch).min(series) {
            batch.add_sample(
                "node_cpu_seconds_total",
                tags(i),
                "value",
                start_ms,
                i as f64,
            );
        }
        store.write(&batch).expect("write");
    }
    let stats = store.stats();
    let table = &stats.total;
    // A sample in a head is 8 bytes of time and 8 of value.
    report(
        "1 sample per series, in open heads",
        table,
        table.samples as usize * 16,
        rss_bytes(),
        base,
    );

    store.seal_all();
    // Read before the snapshot below: a snapshot of every series is this example's own
    // measuring tool, and the allocator keeps its pages after it is dropped.
    let sealed_rss = rss_bytes();
    let stats = store.stats();
    let table = &stats.total;
    // Sealed, one sample is one row in a chunk: count its encoded blocks as sample
    // bytes (a one-row value block and a timestamp block shared by every series) and
    // the chunk header as overhead.
    let snapshot = store
        .select("node_cpu_seconds_total", &[], metricstore::TimeRange::ALL)
        .expect("select");
    let encoded: usize = snapshot
        .series()
        .iter()
        .flat_map(|s| s.chunks.iter())
        .map(|c| c.encoded_bytes() - c.time_bytes())
        .sum();
    drop(snapshot);
    report(
        "after seal_all (one 1-row chunk per series)",
        table,
        encoded,
        sealed_rss,
        base,
    );
    println!(
        "memory_used (what the memory limit sees): {:.1} B/series",
        stats.memory_used as f64 / series.max(1) as f64
    );
}
