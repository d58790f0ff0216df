//! The StatsD listener: a UDP socket feeding the aggregator, and a timer that flushes
//! the aggregator's rows into the store.
//!
//! Malformed lines are counted (`metricstore_statsd_bad_lines_total`), never fatal. A
//! datagram that does not fit the receive buffer is truncated by the kernel; the
//! buffer is 64 KiB, the largest UDP payload.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::metrics::{Protocol, Rejection, ServerMetrics};
use crate::MetricStore;
use crate::ingest::statsd::{Aggregator, StatsdConfig};

/// Receives datagrams until `stop` turns true.
pub(super) async fn receive(
    socket: UdpSocket,
    aggregator: Arc<Mutex<Aggregator>>,
    metrics: Arc<ServerMetrics>,
    mut stop: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            received = socket.recv_from(&mut buf) => match received {
                Ok((n, _)) => {
                    let bad = aggregator.lock().add_packet(&buf[..n]).len();
                    metrics.statsd_packet(bad);
                }
                Err(e) => tracing::warn!(error = %e, "StatsD receive failed"),
            },
        }
    }
}

/// Flushes every `interval`, and once more when `stop` turns true.
pub(super) async fn flush(
    store: Arc<MetricStore>,
    aggregator: Arc<Mutex<Aggregator>>,
    metrics: Arc<ServerMetrics>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.tick().await;
    loop {
        let last = tokio::select! {
            _ = stop.changed() => true,
            _ = ticker.tick() => false,
        };
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let batch = aggregator.lock().flush(now_ms);
        let samples = batch.sample_count();
        if samples > 0 {
            // The WAL may fsync: keep the write off the I/O threads.
            let store = store.clone();
            let written = tokio::task::spawn_blocking(move || {
                let refused = store.write_partial(&batch)?;
                // Samples refused one by one (too old, cardinality) are counted; the
                // rest of the flush is stored.
                let counts: Vec<(Rejection, usize)> = refused
                    .iter()
                    .filter_map(|(i, e)| {
                        let item = batch.items().get(*i)?;
                        Some((Rejection::of(e), item.len() * item.fields().len()))
                    })
                    .collect();
                Ok::<_, crate::Error>(counts)
            })
            .await;
            match written {
                Ok(Ok(refused)) => {
                    let mut stored = samples;
                    for (reason, n) in refused {
                        metrics.rejected(reason, n);
                        stored = stored.saturating_sub(n);
                    }
                    metrics.ingested(Protocol::Statsd, stored);
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, samples, "StatsD flush refused");
                    metrics.rejected(Rejection::of(&e), samples);
                }
                Err(e) => tracing::error!(error = %e, "StatsD flush task failed"),
            }
        }
        if last {
            return;
        }
    }
}

/// The aggregator for the server's settings.
pub(super) fn aggregator() -> Aggregator {
    Aggregator::new(StatsdConfig::default())
}
