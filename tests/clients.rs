//! Real client libraries from PyPI (`influxdb-client`, `statsd`) write to an
//! in-process server; what they sent must be what SQL reads back.
//!
//! Runs the interpreter named by `METRICSTORE_PYTHON` (a venv `.ci/run` prepares).
//! Without it the test is skipped with a note, unless `METRICSTORE_CI` is set.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use metricstore::server::{ServerConfig, serve};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn sql(addr: SocketAddr, query: &str) -> Value {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/v1/sql HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        query.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(query.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let body = &response[split + 4..];
    // Small JSON answers come in one chunk: skip its size line if chunked.
    let start = body.iter().position(|&b| b == b'{').unwrap_or(0);
    let end = body
        .iter()
        .rposition(|&b| b == b'}')
        .map_or(body.len(), |e| e + 1);
    serde_json::from_slice(&body[start..end]).unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_influx_and_statsd_clients() {
    let Some(python) = std::env::var_os("METRICSTORE_PYTHON") else {
        assert!(
            std::env::var_os("METRICSTORE_CI").is_none(),
            "METRICSTORE_PYTHON is not set but CI must run this test"
        );
        println!("note: METRICSTORE_PYTHON not set; skipping the client library test");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig {
        data_dir: dir.path().to_path_buf(),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        statsd_addr: "127.0.0.1:0".parse().unwrap(),
        statsd_flush_secs: 1,
        // No Flight SQL: its default port is fixed and these servers run in parallel.
        flight: metricstore::server::config::FlightSettings {
            enabled: false,
            ..Default::default()
        },
        ..ServerConfig::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (ready, addrs) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(serve(
        config,
        async {
            let _ = stopped.await;
        },
        move |running| {
            let _ = ready.send((running.http_addr, running.statsd_addr));
        },
    ));
    let (http, statsd) = addrs.await.unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/clients.py");
    let statsd = statsd.unwrap().to_string();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .arg(http.to_string())
            .arg(statsd)
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let sent: Value = serde_json::from_slice(&output.stdout).unwrap();

    let rows = sql(
        http,
        "SELECT count(*) AS n, sum(usage) AS s, min(note) AS note FROM py_cpu",
    )
    .await;
    assert_eq!(rows["rows"][0][0], sent["influx_rows"], "{rows}");
    assert_eq!(rows["rows"][0][1], sent["usage_sum"], "{rows}");
    assert_eq!(rows["rows"][0][2], "with space, comma=equals", "{rows}");

    // StatsD rows appear at the next flush: poll for them.
    let deadline = Instant::now() + Duration::from_secs(30);
    let hits = loop {
        let hits = sql(http, "SELECT max(value) FROM \"pyapp.hits\"").await;
        if hits["rows"][0][0].is_number() {
            break hits;
        }
        assert!(Instant::now() < deadline, "no StatsD rows: {hits}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        hits["rows"][0][0].as_f64(),
        sent["statsd_hits"].as_f64(),
        "{hits}"
    );
    let temperature = sql(http, "SELECT max(value) FROM \"pyapp.temperature\"").await;
    assert_eq!(
        temperature["rows"][0][0].as_f64(),
        sent["statsd_temperature"].as_f64(),
        "{temperature}"
    );
    let timer = sql(
        http,
        "SELECT sum(count), min(min), max(max) FROM \"pyapp.latency\"",
    )
    .await;
    assert_eq!(
        timer["rows"][0][0].as_f64(),
        sent["statsd_timer_count"].as_f64(),
        "{timer}"
    );
    assert_eq!(timer["rows"][0][1].as_f64(), Some(10.0), "{timer}");
    assert_eq!(timer["rows"][0][2].as_f64(), Some(40.0), "{timer}");
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
