//! A real Alertmanager (Debian's `prometheus-alertmanager`, which `.ci/run` installs)
//! receives an alert that fires and then resolves; its own API (`/api/v2/alerts`)
//! must show the alert active, then no longer active.
//!
//! Without the binary the test is skipped with a note, unless `METRICSTORE_CI` is set
//! (CI must run it).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use metricstore::alert::notify::Backoff;
use metricstore::alert::{Alerting, AlertingConfig, Receiver, ReceiverKind, RuleGroup};
use metricstore::{MetricStore, TagSet, WriteBatch};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BINARY: &str = "prometheus-alertmanager";

/// `GET path` → (status, JSON body); `None` while nothing listens.
async fn get(addr: SocketAddr, path: &str) -> Option<(u16, Value)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let head = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.ok()?;
    let split = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let status = std::str::from_utf8(response.get(9..12)?)
        .ok()?
        .parse()
        .ok()?;
    let body = &response[split + 4..];
    Some((status, serde_json::from_slice(body).unwrap_or(Value::Null)))
}

struct Alertmanager(Child);

impl Drop for Alertmanager {
    fn drop(&mut self) {
        // Stopped by the PID we started, nothing broader.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn cpu(store: &MetricStore, value: f64) {
    let mut batch = WriteBatch::new();
    batch.add_sample(
        "cpu",
        TagSet::new([("host", "a")]).unwrap(),
        "usage",
        now_ms(),
        value,
    );
    store.write(&batch).unwrap();
}

/// Polls Alertmanager's alerts until `done` holds for the `HighCpu` alerts.
async fn wait_for(addr: SocketAddr, what: &str, done: impl Fn(&[Value]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((200, Value::Array(alerts))) = get(addr, "/api/v2/alerts").await {
            let ours: Vec<Value> = alerts
                .into_iter()
                .filter(|a| a["labels"]["alertname"] == "HighCpu")
                .collect();
            if done(&ours) {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "Alertmanager never showed the alert {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn alertmanager_shows_the_alert_fire_and_resolve() {
    if Command::new(BINARY).arg("--version").output().is_err() {
        assert!(
            std::env::var_os("METRICSTORE_CI").is_none(),
            "{BINARY} is missing: .ci/run installs Debian's prometheus-alertmanager"
        );
        eprintln!("skipped: no {BINARY} binary (apt-get install prometheus-alertmanager)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(
        &config,
        "route:\n  receiver: 'null'\nreceivers:\n  - name: 'null'\n",
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let log = std::fs::File::create(dir.path().join("alertmanager.log")).unwrap();
    let _am = Alertmanager(
        Command::new(BINARY)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start alertmanager"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(get(addr, "/-/ready").await, Some((200, _))) {
        assert!(
            Instant::now() < deadline,
            "Alertmanager did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let store = Arc::new(MetricStore::in_memory());
    // A rule over latest('cpu') plans against the table, so it must exist first.
    cpu(&store, 50.0);
    let alerting = Alerting::new(
        store.clone(),
        AlertingConfig {
            receivers: vec![Receiver {
                kind: ReceiverKind::Alertmanager,
                url: format!("http://{addr}"),
            }],
            backoff: Backoff {
                initial: Duration::from_millis(50),
                max: Duration::from_millis(500),
                timeout: Duration::from_secs(5),
            },
            history: false,
            ..AlertingConfig::default()
        },
    )
    .await
    .unwrap();
    alerting
        .put_group(
            RuleGroup::parse(
                "name: node\nrules:\n- alert: HighCpu\n  sql: SELECT host, usage AS value FROM latest('cpu') WHERE usage > 90\n  labels: {severity: page}\n  annotations: {summary: 'CPU of {{ $labels.host }} at {{ $value }}'}\n",
            )
            .unwrap(),
        )
        .await
        .unwrap();
    alerting.start();

    cpu(&store, 95.0);
    alerting.evaluate_at(now_ms()).await.unwrap();
    wait_for(addr, "firing", |ours| {
        ours.len() == 1
            && ours[0]["status"]["state"] == "active"
            && ours[0]["labels"]["host"] == "a"
            && ours[0]["labels"]["severity"] == "page"
            && ours[0]["annotations"]["summary"] == "CPU of a at 95"
            && ours[0]["generatorURL"]
                .as_str()
                .is_some_and(|u| u.contains("/api/v1/sql?q="))
    })
    .await;

    cpu(&store, 10.0);
    alerting.evaluate_at(now_ms()).await.unwrap();
    // Alertmanager 0.25 leaves resolved alerts out of its listing; a build that kept
    // them would show `endsAt` in the past.
    wait_for(addr, "resolved", |ours| {
        ours.iter().all(|a| {
            a["endsAt"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .is_some_and(|t| t.timestamp_millis() <= now_ms())
        })
    })
    .await;
    alerting.stop().unwrap();
}
