//! A real Prometheus (Debian's `prometheus`, which `.ci/run` installs) scrapes itself
//! and remote_writes to MetricStore; the samples MetricStore stores for a few series
//! must equal, timestamp for timestamp and bit for bit, what Prometheus returns for
//! them from its own TSDB.
//!
//! Without a `prometheus` binary the test is skipped with a note, unless
//! `METRICSTORE_CI` is set (CI must run it).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use metricstore::server::{ServerConfig, serve};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn get(addr: SocketAddr, method: &str, path: &str, body: &str) -> Option<(u16, Value)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.ok()?;
    stream.write_all(body.as_bytes()).await.ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.ok()?;
    let split = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let status = std::str::from_utf8(response.get(9..12)?)
        .ok()?
        .parse()
        .ok()?;
    let head = String::from_utf8_lossy(&response[..split]).to_lowercase();
    let mut body = response[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Some((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = body.windows(2).position(|w| w == b"\r\n") {
        let Ok(size) = usize::from_str_radix(String::from_utf8_lossy(&body[..eol]).trim(), 16)
        else {
            break;
        };
        if size == 0 || body.len() < eol + 2 + size {
            break;
        }
        out.extend_from_slice(&body[eol + 2..eol + 2 + size]);
        body = body.get(eol + 4 + size..).unwrap_or_default();
    }
    out
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_prometheus(dir: &Path, port: u16, write_url: &str) -> Prometheus {
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n\
             remote_write:\n  - url: {write_url}\n    queue_config:\n      batch_send_deadline: 1s\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start prometheus");
    Prometheus(child)
}

/// `(ms, value bits)` of one series from MetricStore's SQL.
async fn from_metricstore(addr: SocketAddr, table: &str) -> BTreeMap<i64, u64> {
    let sql = format!(
        "SELECT CAST(time AS BIGINT) AS t, value FROM \"{table}\" \
         WHERE job = 'prometheus' ORDER BY t"
    );
    let Some((200, body)) = get(addr, "POST", "/api/v1/sql", &sql).await else {
        return BTreeMap::new();
    };
    body["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|row| Some((row[0].as_i64()?, value_bits(&row[1])?)))
        .collect()
}

/// JSON numbers, or Prometheus' spellings of non-finite values, as bits.
fn value_bits(v: &Value) -> Option<u64> {
    let f = match v {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => match s.as_str() {
            "NaN" => f64::NAN,
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            other => other.parse().ok()?,
        },
        _ => return None,
    };
    Some(f.to_bits())
}

/// The raw samples Prometheus holds for `table{job="prometheus"}` (a range selector
/// returns stored samples, not evaluated steps).
async fn from_prometheus(addr: SocketAddr, table: &str) -> BTreeMap<i64, u64> {
    let query = format!("{table}{{job=\"prometheus\"}}[10m]");
    let path = format!("/api/v1/query?query={}", urlencode(&query));
    let (status, body) = get(addr, "GET", &path, "")
        .await
        .expect("prometheus answers");
    assert_eq!(status, 200, "{body}");
    let result = body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(result.len(), 1, "{table}: {body}");
    result[0]["values"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|pair| {
            let seconds = pair[0].as_f64()?;
            Some(((seconds * 1000.0).round() as i64, value_bits(&pair[1])?))
        })
        .collect()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_remote_write_stores_what_prometheus_holds() {
    if Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("METRICSTORE_CI").is_none(),
            "prometheus is not installed but CI must run this test"
        );
        println!("note: no prometheus binary; skipping (apt-get install prometheus)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig {
        statsd_enabled: false,
        data_dir: dir.path().join("metricstore"),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        // No Flight SQL: its default port is fixed and these servers run in parallel.
        flight: metricstore::server::config::FlightSettings {
            enabled: false,
            ..Default::default()
        },
        ..ServerConfig::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (ready, addr) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(serve(
        config,
        async {
            let _ = stopped.await;
        },
        move |running| {
            let _ = ready.send(running.http_addr);
        },
    ));
    let addr = addr.await.unwrap();
    let port = free_port();
    let prometheus = start_prometheus(dir.path(), port, &format!("http://{addr}/api/v1/write"));
    let prom_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    // Poll until a few scrapes have reached MetricStore.
    let tables = ["up", "prometheus_tsdb_head_series", "go_goroutines"];
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut enough = true;
        for table in tables {
            enough &= from_metricstore(addr, table).await.len() >= 5;
        }
        if enough {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no remote_write samples after 2 minutes; see {}",
            dir.path().join("prometheus.log").display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for table in tables {
        let ours = from_metricstore(addr, table).await;
        let newest = *ours.keys().next_back().unwrap();
        let theirs: BTreeMap<i64, u64> = from_prometheus(prom_addr, table)
            .await
            .into_iter()
            .filter(|(t, _)| *t <= newest)
            .collect();
        assert_eq!(ours, theirs, "{table}: MetricStore vs Prometheus");
    }
    drop(prometheus);
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
