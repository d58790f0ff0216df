//! Counters about the server itself, exposed at `/metrics` in Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Protocols that ingest samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Prometheus remote_write.
    RemoteWrite,
    /// Influx line protocol.
    LineProtocol,
    /// StatsD over UDP.
    Statsd,
    /// Arrow Flight SQL bulk ingest (`DoPut`).
    Flight,
}

const PROTOCOLS: [(Protocol, &str); 4] = [
    (Protocol::RemoteWrite, "remote_write"),
    (Protocol::LineProtocol, "line_protocol"),
    (Protocol::Statsd, "statsd"),
    (Protocol::Flight, "flight"),
];

/// Why samples were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The request or line was malformed.
    Malformed,
    /// The memory limit was reached.
    MemoryLimit,
    /// A series or tag-value limit was reached.
    Cardinality,
    /// Too old for the out-of-order window.
    TooOld,
    /// Anything else the store refused.
    Invalid,
    /// The write-ahead log failed: nothing was acknowledged.
    Unavailable,
}

impl Rejection {
    /// Why the store refused a write, for counting.
    pub fn of(e: &crate::Error) -> Rejection {
        use crate::Error as E;
        match e {
            E::BatchItem { source, .. } => Rejection::of(source),
            E::MemoryLimit { .. } => Rejection::MemoryLimit,
            E::OutOfOrder { .. } | E::Tiered { .. } => Rejection::TooOld,
            E::SeriesLimit { .. } | E::TagValueLimit { .. } => Rejection::Cardinality,
            E::Durability(_) => Rejection::Unavailable,
            _ => Rejection::Invalid,
        }
    }
}

const REJECTIONS: [(Rejection, &str); 6] = [
    (Rejection::Malformed, "malformed"),
    (Rejection::MemoryLimit, "memory_limit"),
    (Rejection::Cardinality, "cardinality"),
    (Rejection::TooOld, "too_old"),
    (Rejection::Invalid, "invalid"),
    (Rejection::Unavailable, "unavailable"),
];

/// Upper bounds (seconds) of the query latency histogram.
const LATENCY_BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0];

/// The server's own counters.
#[derive(Debug, Default)]
pub struct ServerMetrics {
    ingested: [AtomicU64; 4],
    rejected: [AtomicU64; 6],
    queries: AtomicU64,
    query_errors: AtomicU64,
    latency_buckets: [AtomicU64; 10],
    latency_sum_micros: AtomicU64,
    statsd_packets: AtomicU64,
    statsd_bad_lines: AtomicU64,
}

impl ServerMetrics {
    /// Counts samples stored through `protocol`.
    pub fn ingested(&self, protocol: Protocol, samples: usize) {
        let i = PROTOCOLS
            .iter()
            .position(|(p, _)| *p == protocol)
            .unwrap_or(0);
        self.ingested[i].fetch_add(samples as u64, Ordering::Relaxed);
    }

    /// Counts samples refused for `reason`.
    pub fn rejected(&self, reason: Rejection, samples: usize) {
        let i = REJECTIONS
            .iter()
            .position(|(r, _)| *r == reason)
            .unwrap_or(0);
        self.rejected[i].fetch_add(samples as u64, Ordering::Relaxed);
    }

    /// Records one query and how long it took.
    pub fn query(&self, seconds: f64, ok: bool) {
        self.queries.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.query_errors.fetch_add(1, Ordering::Relaxed);
        }
        for (bound, count) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            if seconds <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    /// Counts a StatsD packet and its malformed lines.
    pub fn statsd_packet(&self, bad_lines: usize) {
        self.statsd_packets.fetch_add(1, Ordering::Relaxed);
        self.statsd_bad_lines
            .fetch_add(bad_lines as u64, Ordering::Relaxed);
    }

    /// The counters in Prometheus text format, plus the store's memory and series.
    pub fn render(&self, memory_bytes: usize, series: usize) -> String {
        let mut out = String::new();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP metricstore_ingested_samples_total Samples stored, by protocol."
        );
        let _ = writeln!(out, "# TYPE metricstore_ingested_samples_total counter");
        for ((_, name), count) in PROTOCOLS.iter().zip(&self.ingested) {
            let _ = writeln!(
                out,
                "metricstore_ingested_samples_total{{protocol=\"{name}\"}} {}",
                load(count)
            );
        }
        let _ = writeln!(
            out,
            "# HELP metricstore_rejected_samples_total Samples refused, by reason."
        );
        let _ = writeln!(out, "# TYPE metricstore_rejected_samples_total counter");
        for ((_, name), count) in REJECTIONS.iter().zip(&self.rejected) {
            let _ = writeln!(
                out,
                "metricstore_rejected_samples_total{{reason=\"{name}\"}} {}",
                load(count)
            );
        }
        let _ = writeln!(
            out,
            "# HELP metricstore_query_duration_seconds SQL query latency."
        );
        let _ = writeln!(out, "# TYPE metricstore_query_duration_seconds histogram");
        for (bound, count) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            let _ = writeln!(
                out,
                "metricstore_query_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                load(count)
            );
        }
        let queries = load(&self.queries);
        let _ = writeln!(
            out,
            "metricstore_query_duration_seconds_bucket{{le=\"+Inf\"}} {queries}"
        );
        let _ = writeln!(
            out,
            "metricstore_query_duration_seconds_sum {}",
            load(&self.latency_sum_micros) as f64 / 1e6
        );
        let _ = writeln!(out, "metricstore_query_duration_seconds_count {queries}");
        let _ = writeln!(out, "# TYPE metricstore_query_errors_total counter");
        let _ = writeln!(
            out,
            "metricstore_query_errors_total {}",
            load(&self.query_errors)
        );
        let _ = writeln!(out, "# TYPE metricstore_statsd_packets_total counter");
        let _ = writeln!(
            out,
            "metricstore_statsd_packets_total {}",
            load(&self.statsd_packets)
        );
        let _ = writeln!(out, "# TYPE metricstore_statsd_bad_lines_total counter");
        let _ = writeln!(
            out,
            "metricstore_statsd_bad_lines_total {}",
            load(&self.statsd_bad_lines)
        );
        let _ = writeln!(
            out,
            "# HELP metricstore_memory_bytes Bytes counted against the memory limit."
        );
        let _ = writeln!(out, "# TYPE metricstore_memory_bytes gauge");
        let _ = writeln!(out, "metricstore_memory_bytes {memory_bytes}");
        let _ = writeln!(out, "# TYPE metricstore_series gauge");
        let _ = writeln!(out, "metricstore_series {series}");
        out
    }
}
