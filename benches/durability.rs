//! What durability costs and how fast a restart is.
//!
//! - `http-ingest`: TSBS cpu rows as line protocol, posted by two client threads to an
//!   in-process server, once with the WAL off and once with it on (`fsync = interval`,
//!   the default). Prints field values/s for each and the ratio (target: on ≥ 80% of
//!   off). Size: `METRICSTORE_BENCH_HTTP_ROWS` (1 000 000 rows under `cargo bench`).
//! - `restart`: a durable store holding `METRICSTORE_BENCH_RESTART_SAMPLES` field
//!   values (50 million under `cargo bench`) is closed (which checkpoints) and opened
//!   again; prints the time to open, i.e. until it can serve (target: ≤ 5 s). Also
//!   prints the open time after a crash, when the whole WAL is replayed.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use metricstore::server::{ServerConfig, serve};
use metricstore::workload::tsbs::{CpuOnly, TsbsConfig, Variant};
use metricstore::{Config, DurabilityConfig, MetricStore};

/// Line protocol bodies for two clients, about `rows_per_body / 2` rows each. A
/// series always goes to the same client, so neither can run so far ahead of the
/// other that a series' rows arrive out of order.
fn bodies(config: TsbsConfig, rows_per_body: usize) -> ([Vec<String>; 2], usize) {
    let workload = CpuOnly::new(config);
    let mut out = [Vec::new(), Vec::new()];
    let mut values = 0;
    for batch in workload.batches(rows_per_body) {
        let mut bodies = [String::new(), String::new()];
        for (n, item) in batch.items().iter().enumerate() {
            let body = &mut bodies[n % 2];
            let tags: String = item
                .tags()
                .pairs()
                .iter()
                .map(|(k, v)| format!(",{k}={v}"))
                .collect();
            for (i, t) in item.timestamps().iter().enumerate() {
                let fields: Vec<String> = item
                    .fields()
                    .iter()
                    .zip(item.row(i))
                    .map(|((name, _), v)| format!("{name}={v}"))
                    .collect();
                body.push_str(&format!(
                    "{}{tags} {} {t}\n",
                    item.table(),
                    fields.join(",")
                ));
                values += fields.len();
            }
        }
        let [a, b] = bodies;
        out[0].push(a);
        out[1].push(b);
    }
    (out, values)
}

fn post(addr: SocketAddr, body: &str) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    let head = format!(
        "POST /write?precision=ms HTTP/1.1\r\nHost: bench\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("send");
    stream.write_all(body.as_bytes()).expect("send");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("receive");
    assert!(
        response.starts_with(b"HTTP/1.1 204"),
        "{}",
        String::from_utf8_lossy(&response)
    );
}

/// Posts every body from two threads to a fresh server; returns the time taken.
fn ingest_over_http(bodies: &[Vec<String>; 2], wal: bool) -> Duration {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = ServerConfig {
        statsd_enabled: false,
        data_dir: dir.path().to_path_buf(),
        http_addr: "127.0.0.1:0".parse().expect("address"),
        ..ServerConfig::default()
    };
    config.durability.enabled = wal;
    // HTTP only: Flight would take its fixed default port.
    config.flight.enabled = false;
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (ready, addr) = std::sync::mpsc::channel();
    let server = runtime.spawn(serve(
        config,
        async {
            let _ = stopped.await;
        },
        move |running| {
            let _ = ready.send(running.http_addr);
        },
    ));
    let addr = addr.recv().expect("server address");
    let start = Instant::now();
    std::thread::scope(|s| {
        for client in bodies {
            s.spawn(move || {
                for body in client {
                    post(addr, body);
                }
            });
        }
    });
    let took = start.elapsed();
    let _ = stop.send(());
    let _ = runtime.block_on(server);
    took
}

fn durable(dir: &Path) -> Config {
    Config {
        durability: Some(DurabilityConfig {
            checkpoint_interval: None,
            ..DurabilityConfig::new(dir)
        }),
        ..Config::default()
    }
}

fn restart(c: &mut Criterion) {
    let samples = common::size("METRICSTORE_BENCH_RESTART_SAMPLES", 100_000, 50_000_000);
    let hosts = 1000.min(samples / 10).max(1);
    let rows_per_host = (samples / 10).div_ceil(hosts);
    let config = TsbsConfig {
        scale: hosts,
        duration_ms: rows_per_host as i64 * 10_000,
        variant: Variant::Integer,
        ..TsbsConfig::standard()
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let store = MetricStore::open(durable(dir.path())).expect("open");
    let mut written = 0;
    for batch in CpuOnly::new(config).batches(10_000) {
        written += batch.sample_count();
        store.write(&batch).expect("write");
    }
    // A crash: the WAL holds everything, no checkpoint.
    drop(store);
    let open = Instant::now();
    let store = MetricStore::open(durable(dir.path())).expect("reopen");
    let replay = open.elapsed();
    let checkpoint = store.close().expect("close").expect("checkpoint");
    drop(store);
    let open = Instant::now();
    let store = MetricStore::open(durable(dir.path())).expect("reopen");
    let clean = open.elapsed();
    assert_eq!(store.recovery().map(|r| r.records_replayed), Some(0));
    println!(
        "restart with {written} samples: {:.3} s from a {:.1} MB checkpoint (written in {:.3} s); \
         {:.3} s after a crash (whole WAL replayed)",
        clean.as_secs_f64(),
        checkpoint.bytes as f64 / 1e6,
        checkpoint.elapsed.as_secs_f64(),
        replay.as_secs_f64()
    );
    drop(store);
    let mut group = c.benchmark_group("restart");
    group.sample_size(10);
    group.bench_function(format!("open-{written}-samples"), |b| {
        b.iter(|| MetricStore::open(durable(dir.path())).expect("reopen"))
    });
    group.finish();
}

fn http_ingest(c: &mut Criterion) {
    let rows = common::size("METRICSTORE_BENCH_HTTP_ROWS", 2_000, 1_000_000);
    let hosts = 100.min(rows).max(1);
    let config = TsbsConfig {
        scale: hosts,
        duration_ms: rows.div_ceil(hosts) as i64 * 10_000,
        ..TsbsConfig::quick()
    };
    let (bodies, values) = bodies(config, 5_000);
    let mut figures = Vec::new();
    for wal in [false, true] {
        // Best of three: the machine is shared.
        let took = (0..3)
            .map(|_| ingest_over_http(&bodies, wal))
            .min()
            .unwrap_or_default();
        figures.push(values as f64 / took.as_secs_f64());
        println!(
            "http ingest, WAL {}: {} field values/s ({rows} rows, {:.3} s)",
            if wal { "on (fsync interval)" } else { "off" },
            common::per_second(values as f64, took),
            took.as_secs_f64()
        );
    }
    println!(
        "http ingest: WAL on at {:.0}% of off",
        figures[1] / figures[0] * 100.0
    );
    let mut group = c.benchmark_group("http-ingest");
    group.sample_size(10);
    group.bench_function("wal-on", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| ingest_over_http(&bodies, true)).sum())
    });
    group.finish();
}

criterion_group!(benches, http_ingest, restart);
criterion_main!(benches);
