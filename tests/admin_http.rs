//! Admin surfaces over HTTP on an in-process server: rule groups through the
//! alerting API (`PUT/DELETE /api/v1/admin/rules/{group}`, `/api/v1/rules`,
//! `/api/v1/alerts`, `/-/reload`), and `metricstore export` (the real binary) writing
//! Parquet through the server.

mod common;

use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray};
use arrow::datatypes::Float64Type;
use common::server::Server;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

const START: i64 = 1_767_225_600_000; // 2026-01-01

async fn write_cpu(server: &Server, hosts: &[(&str, f64)], points: i64) {
    let mut lines = String::new();
    for i in 0..points {
        for (host, base) in hosts {
            lines.push_str(&format!(
                "cpu,host={host} usage={} {}\n",
                base + i as f64,
                START + i * 60_000
            ));
        }
    }
    let (status, _, body) = server
        .request("POST", "/write?precision=ms", &[], lines.as_bytes())
        .await;
    assert_eq!(status, 204, "{}", String::from_utf8_lossy(&body));
}

/// Polls `GET /api/v1/alerts` until `pred` holds (the scheduler evaluates on its own
/// clock), failing after a generous deadline.
async fn poll_alerts(server: &Server, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = server.json("GET", "/api/v1/alerts", "").await;
        assert_eq!(status, 200, "{body}");
        let alerts = body["data"]["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if pred(&alerts) {
            return alerts;
        }
        assert!(
            Instant::now() < deadline,
            "alerts never matched: {alerts:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_groups_are_managed_over_http() {
    let server = Server::start(Server::without_statsd()).await;
    write_cpu(&server, &[("a", 10.0), ("b", 95.0)], 3).await;

    let group = "name: cpu\ninterval: 100ms\nrules:\n  - alert: HighCpu\n    sql: >-\n      SELECT host, max(usage) AS value FROM cpu GROUP BY host HAVING max(usage) > 90\n    labels:\n      severity: page\n    annotations:\n      summary: '{{ $labels.host }} at {{ $value }}'\n";
    let (status, _, body) = server
        .request("PUT", "/api/v1/admin/rules/cpu", &[], group.as_bytes())
        .await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));

    let alerts = poll_alerts(&server, |a| !a.is_empty()).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["labels"]["alertname"], "HighCpu");
    assert_eq!(alerts[0]["labels"]["host"], "b");
    assert_eq!(alerts[0]["labels"]["severity"], "page");
    assert_eq!(alerts[0]["annotations"]["summary"], "b at 97");
    assert_eq!(alerts[0]["state"], "firing");

    let (status, body) = server.json("GET", "/api/v1/rules", "").await;
    assert_eq!(status, 200, "{body}");
    let groups = body["data"]["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{body}");
    assert_eq!(groups[0]["name"], "cpu");
    assert_eq!(groups[0]["file"], "api");
    assert_eq!(groups[0]["rules"][0]["name"], "HighCpu");
    assert_eq!(groups[0]["rules"][0]["state"], "firing");

    // Replacing the group keeps the name; a rule that does not plan is refused with
    // the planner's message and leaves the old group in place.
    let bad =
        "rules:\n  - alert: Broken\n    sql: SELECT host, usage AS value FROM no_such_table\n";
    let (status, body) = server.json("PUT", "/api/v1/admin/rules/cpu", bad).await;
    assert_eq!(status, 400, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("no_such_table"), "{error}");
    let no_value = "rules:\n  - alert: NoValue\n    sql: SELECT host FROM cpu\n";
    let (status, body) = server
        .json("PUT", "/api/v1/admin/rules/cpu", no_value)
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("numeric"),
        "{body}"
    );
    let renamed = "name: other\nrules: []\n";
    let (status, body) = server.json("PUT", "/api/v1/admin/rules/cpu", renamed).await;
    assert_eq!(status, 400, "{body}");
    let (_, body) = server.json("GET", "/api/v1/rules", "").await;
    assert_eq!(body["data"]["groups"][0]["rules"][0]["name"], "HighCpu");

    let (status, body) = server.json("POST", "/-/reload", "").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.json("DELETE", "/api/v1/admin/rules/cpu", "").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.json("DELETE", "/api/v1/admin/rules/cpu", "").await;
    assert_eq!(status, 404, "{body}");
    poll_alerts(&server, |a| a.is_empty()).await;
    let (_, body) = server.json("GET", "/api/v1/rules", "").await;
    assert_eq!(
        body["data"]["groups"].as_array().unwrap().len(),
        0,
        "{body}"
    );
    server.stop().await;
}

fn export(server: &Server, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_metricstore"))
        .arg("export")
        .args(args)
        .args(["--server", &format!("http://{}", server.addr)])
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_command_writes_parquet_through_the_server() {
    let server = Server::start(Server::without_statsd()).await;
    write_cpu(&server, &[("a", 1.0), ("b", 100.0)], 60).await;
    // A relative path lands under the server's export directory.
    let file = server.data_dir().join("exports/cpu.parquet");
    let start = (START + 10 * 60_000).to_string();
    let out = export(
        &server,
        &[
            "--table",
            "cpu",
            "--start",
            &start,
            "--end",
            "2026-01-01T00:30:00Z",
            "--to",
            "cpu.parquet",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("exported 40 rows"), "{stdout}");

    // Minutes 10..29 of both hosts, exactly the values written.
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&file).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let mut sum = 0.0;
    let mut rows = 0;
    for batch in reader {
        let batch = batch.unwrap();
        let usage = batch.column_by_name("usage").unwrap();
        rows += usage.len();
        sum += usage
            .as_primitive::<Float64Type>()
            .iter()
            .flatten()
            .sum::<f64>();
    }
    assert_eq!(rows, 40);
    let expected: f64 = (10..30).map(|i| 1.0 + i as f64 + 100.0 + i as f64).sum();
    assert_eq!(sum, expected);

    let out = export(
        &server,
        &["--table", "cpu", "--start", "soon", "--to", "x.parquet"],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--start \"soon\""), "{stderr}");
    let out = export(&server, &["--table", "nope", "--to", "x.parquet"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("nope") && stderr.contains("refused"),
        "{stderr}"
    );
    server.stop().await;
}
