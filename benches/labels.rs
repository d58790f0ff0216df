//! The Prometheus metadata API at scale: `/api/v1/labels`, `/api/v1/label/<name>/values`
//! and `/api/v1/series` over HTTP with `METRICSTORE_BENCH_TABLES` tables ×
//! `METRICSTORE_BENCH_SERIES_PER_TABLE` series (1 000 × 1 000 = 1 million series under
//! `cargo bench`). Prints each request's time in ms (target: at most 50 ms): they must
//! answer from the label index, never from samples.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use metricstore::server::{ServerConfig, serve};

fn request(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("send");
    stream.write_all(body).expect("send");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("receive");
    let status = std::str::from_utf8(&response[9..12])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, response)
}

fn bench(c: &mut Criterion) {
    let tables = common::size("METRICSTORE_BENCH_TABLES", 10, 1_000);
    let per_table = common::size("METRICSTORE_BENCH_SERIES_PER_TABLE", 10, 1_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let config = ServerConfig {
        statsd_enabled: false,
        data_dir: dir.path().to_path_buf(),
        http_addr: "127.0.0.1:0".parse().expect("address"),
        max_body_bytes: 1 << 30,
        // No Flight SQL: its default port is fixed and these servers run in parallel.
        flight: metricstore::server::config::FlightSettings {
            enabled: false,
            ..Default::default()
        },
        ..ServerConfig::default()
    };
    let (tx, rx) = std::sync::mpsc::channel();
    runtime.spawn(serve(config, std::future::pending(), move |running| {
        let _ = tx.send(running.http_addr);
    }));
    let addr = rx.recv().expect("server address");
    // Node-exporter-like families: each table's series spread over hosts and a
    // second label.
    let load = Instant::now();
    for t in 0..tables {
        let mut body = String::new();
        for s in 0..per_table {
            body.push_str(&format!(
                "node_metric_{t},job=node,instance=host-{:04},device=d{} value={s} 1767225600000\n",
                s % 1000,
                s / 1000
            ));
        }
        let (status, _) = request(addr, "POST", "/write?precision=ms", body.as_bytes());
        assert_eq!(status, 204);
    }
    println!(
        "labels: loaded {} series in {} tables in {:.1} s",
        tables * per_table,
        tables,
        load.elapsed().as_secs_f64()
    );
    let paths = [
        "/api/v1/labels".to_string(),
        "/api/v1/label/__name__/values".to_string(),
        "/api/v1/label/instance/values".to_string(),
        format!("/api/v1/series?match[]=node_metric_{}", tables / 2),
        "/api/v1/series?match[]=%7Binstance%3D%22host-0007%22%7D".to_string(),
        "/api/v1/labels?match[]=%7B__name__%3D~%22node_metric_1.*%22%7D".to_string(),
    ];
    let mut group = c.benchmark_group("labels");
    for path in &paths {
        let time = |path: &str| {
            let start = Instant::now();
            let (status, body) = request(addr, "GET", path, b"");
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            (start.elapsed(), body.len())
        };
        let runs: Vec<(Duration, usize)> = (0..5).map(|_| time(path)).collect();
        let best = runs.iter().map(|r| r.0).min().unwrap_or_default();
        println!(
            "labels: GET {path}: {:.2} ms ({} bytes, best of 5, {} series)",
            best.as_secs_f64() * 1e3,
            runs[0].1,
            tables * per_table
        );
        group.bench_function(path.as_str(), |b| b.iter(|| time(path)));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
