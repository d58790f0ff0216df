//! The HTTP API against an in-process server on a free loopback port.

use std::io::Write;
use std::time::Duration;

use metricstore::server::ServerConfig;
use serde_json::Value;

mod common;
use common::server::Server;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[tokio::test]
async fn line_protocol_in_sql_out() {
    let server = Server::start(Server::without_statsd()).await;
    let lines = "cpu,host=a,region=eu usage=1.5,idle=90i 1000\ncpu,host=b usage=2 1000\n";
    let (status, _, _) = server
        .request("POST", "/write?db=x&precision=ms", &[], lines.as_bytes())
        .await;
    assert_eq!(status, 204);
    let gz = gzip(b"cpu,host=a,region=eu usage=3 2000000");
    let (status, _, _) = server
        .request(
            "POST",
            "/api/v2/write?bucket=x&precision=us",
            &[("Content-Encoding", "gzip")],
            &gz,
        )
        .await;
    assert_eq!(status, 204);

    // A partial write: good lines are stored, bad ones named by line and column.
    let (status, body) = server
        .json(
            "POST",
            "/write?precision=ms",
            "cpu,host=c usage=4 3000\ncpu,host=c usage=\"x\" 4000\nbad line\n",
        )
        .await;
    assert_eq!(status, 400);
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with("partial write: 1 points written, 2 rejected"),
        "{message}"
    );
    assert!(message.contains("line 2, column"), "{message}");

    let (status, body) = server
        .json(
            "POST",
            "/api/v1/sql",
            "SELECT host, region, time, usage, idle FROM cpu ORDER BY host, time",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["columns"],
        serde_json::json!(["host", "region", "time", "usage", "idle"])
    );
    assert_eq!(body["types"][2], "Timestamp(ms, \"UTC\")");
    assert_eq!(
        body["rows"],
        serde_json::json!([
            ["a", "eu", "1970-01-01T00:00:01Z", 1.5, 90.0],
            ["a", "eu", "1970-01-01T00:00:02Z", 3.0, null],
            ["b", null, "1970-01-01T00:00:01Z", 2.0, null],
            ["c", null, "1970-01-01T00:00:03Z", 4.0, null],
        ])
    );

    let (status, head, csv) = server
        .request(
            "GET",
            "/api/v1/sql?q=SELECT%20host%2C%20usage%20FROM%20cpu%20WHERE%20host%3D%27b%27",
            &[("Accept", "text/csv")],
            b"",
        )
        .await;
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/csv"));
    assert_eq!(String::from_utf8(csv).unwrap(), "host,usage\nb,2.0\n");

    let (status, _, ipc) = server
        .request(
            "POST",
            "/api/v1/sql?format=arrow",
            &[],
            b"SELECT count(*) AS n FROM cpu",
        )
        .await;
    assert_eq!(status, 200);
    let reader =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(ipc), None).unwrap();
    let batches: Vec<_> = reader.collect::<Result<_, _>>().unwrap();
    let table = arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    assert!(table.contains("| 4 |"), "{table}");

    let (status, body) = server
        .json("POST", "/api/v1/sql", "SELECT nope FROM cpu")
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["status"], "error");
    assert!(body["error"].as_str().unwrap().contains("nope"), "{body}");

    // SET would change the session every client shares: refused, and nothing changed.
    let (status, body) = server
        .json(
            "POST",
            "/api/v1/sql",
            "SET datafusion.execution.batch_size = 7",
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("shares"), "{body}");
    let (status, body) = server
        .json(
            "POST",
            "/api/v1/sql",
            "SHOW datafusion.execution.batch_size",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"][0][1], "8192", "{body}");

    // Clients export under <data_dir>/exports, never elsewhere on the machine.
    let outside = server.data_dir().join("outside.csv");
    for target in [outside.to_string_lossy().into_owned(), "../x.csv".into()] {
        let sql = format!("COPY (SELECT host FROM cpu) TO '{target}' STORED AS CSV");
        let (status, body) = server.json("POST", "/api/v1/sql", &sql).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body["error"].as_str().unwrap().contains("exports"),
            "{body}"
        );
    }
    assert!(!outside.exists());
    let (status, body) = server
        .json(
            "POST",
            "/api/v1/sql",
            "COPY (SELECT host FROM cpu ORDER BY host, time) TO 'day/hosts.csv' STORED AS CSV",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"], serde_json::json!([[4]]));
    let written = server.data_dir().join("exports/day/hosts.csv");
    let csv = std::fs::read_to_string(&written).unwrap();
    assert_eq!(csv, "host\na\na\nb\nc\n");

    let (status, body) = server
        .json(
            "POST",
            "/api/v1/sql",
            "SELECT 'NaN'::double AS n, '-inf'::double AS m",
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["rows"], serde_json::json!([["NaN", "-Inf"]]));
    server.stop().await;
}

#[tokio::test]
async fn prometheus_metadata_api() {
    let server = Server::start(Server::without_statsd()).await;
    let lines = "up,job=api,instance=a value=1 1000\nup,job=api,instance=b value=1 1000\nup,job=db value=0 5000000\nhttp_requests_total,job=api,code=200 value=10 1000\n";
    let (status, _, _) = server
        .request("POST", "/write?precision=ms", &[], lines.as_bytes())
        .await;
    assert_eq!(status, 204);

    let (_, body) = server.json("GET", "/api/v1/labels", "").await;
    assert_eq!(
        body["data"],
        serde_json::json!(["__name__", "code", "instance", "job"])
    );
    let (_, body) = server.json("GET", "/api/v1/labels?match[]=up", "").await;
    assert_eq!(
        body["data"],
        serde_json::json!(["__name__", "instance", "job"])
    );
    let (_, body) = server
        .json("GET", "/api/v1/label/__name__/values", "")
        .await;
    assert_eq!(
        body["data"],
        serde_json::json!(["http_requests_total", "up"])
    );
    let (_, body) = server
        .json(
            "GET",
            "/api/v1/label/job/values?match[]=up%7Binstance%3D~%22a%7Cb%22%7D",
            "",
        )
        .await;
    assert_eq!(body["data"], serde_json::json!(["api"]));
    // start/end keep series whose samples overlap the range.
    let (_, body) = server
        .json(
            "GET",
            "/api/v1/label/job/values?match[]=up&start=100&end=6000",
            "",
        )
        .await;
    assert_eq!(body["data"], serde_json::json!(["db"]));

    let (status, _, body) = server
        .request(
            "POST",
            "/api/v1/series",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            b"match[]=%7B__name__%3D~%22up%7Chttp.*%22%2Cjob%3D%22api%22%7D",
        )
        .await;
    assert_eq!(status, 200);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 3, "{body}");
    assert!(
        body["data"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!({"__name__": "up", "instance": "a", "job": "api"}))
    );

    let (status, body) = server.json("GET", "/api/v1/series", "").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "no match[] parameter provided");
    let (status, body) = server.json("GET", "/api/v1/series?match[]=up%7B", "").await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid match[]"),
        "{body}"
    );

    let (_, body) = server.json("GET", "/api/v1/status/tsdb", "").await;
    assert_eq!(body["data"]["headStats"]["numSeries"], 4);
    assert_eq!(
        body["data"]["seriesCountByMetricName"][0],
        serde_json::json!({"name": "up", "value": 3})
    );
    assert_eq!(body["data"]["metricstore"]["series"], 4);

    let (status, _, metrics) = server.request("GET", "/metrics", &[], b"").await;
    assert_eq!(status, 200);
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(
        metrics.contains("metricstore_ingested_samples_total{protocol=\"line_protocol\"} 4"),
        "{metrics}"
    );
    assert!(metrics.contains("metricstore_series 4"), "{metrics}");
    let (status, _, _) = server.request("GET", "/-/healthy", &[], b"").await;
    assert_eq!(status, 200);
    server.stop().await;
}

#[tokio::test]
async fn overload_and_oversized_bodies_are_refused() {
    let mut config = Server::without_statsd();
    config.storage.memory_limit_bytes = 50_000;
    config.max_body_bytes = 20_000;
    let server = Server::start(config).await;
    let mut refused = None;
    for round in 0..200 {
        let lines: String = (0..50)
            .map(|s| format!("m,s={s} v={round} {}\n", round * 1000))
            .collect();
        let (status, head, body) = server
            .request("POST", "/write?precision=ms", &[], lines.as_bytes())
            .await;
        if status != 204 {
            refused = Some((status, head, String::from_utf8_lossy(&body).to_string()));
            break;
        }
    }
    let (status, head, body) = refused.expect("the memory limit is reached");
    assert_eq!(status, 429, "{body}");
    assert!(head.contains("retry-after: 5"), "{head}");
    assert!(body.contains("memory limit reached"), "{body}");

    let big = vec![b'x'; 30_000];
    let (status, _, _) = server.request("POST", "/write", &[], &big).await;
    assert_eq!(status, 413);
    let bomb = gzip(&vec![b'#'; 100_000]);
    let (status, _, body) = server
        .request("POST", "/write", &[("Content-Encoding", "gzip")], &bomb)
        .await;
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    server.stop().await;
}

#[tokio::test]
async fn remote_write_one_and_two() {
    use metricstore::ingest::remote_write::{MetricType, encode_v1, encode_v2};
    let server = Server::start(Server::without_statsd()).await;
    let labels = |job: &str| {
        vec![
            ("__name__".to_string(), "up".to_string()),
            ("job".to_string(), job.to_string()),
        ]
    };
    let stale = f64::from_bits(metricstore::model::STALE_NAN_BITS);
    let v1 = encode_v1(
        &[(labels("a"), vec![(1_000, 1.0), (2_000, stale)])],
        &[("up".into(), MetricType::Gauge)],
    );
    let (status, _, body) = server
        .request(
            "POST",
            "/api/v1/write",
            &[
                ("Content-Type", "application/x-protobuf"),
                ("Content-Encoding", "snappy"),
            ],
            &v1,
        )
        .await;
    assert_eq!(status, 204, "{}", String::from_utf8_lossy(&body));
    let v2 = encode_v2(&[(labels("b"), vec![(1_000, 5.0)])], &[]);
    let (status, head, _) = server
        .request(
            "POST",
            "/api/v1/write",
            &[
                (
                    "Content-Type",
                    "application/x-protobuf;proto=io.prometheus.write.v2.Request",
                ),
                ("Content-Encoding", "snappy"),
            ],
            &v2,
        )
        .await;
    assert_eq!(status, 204);
    assert!(
        head.contains("x-prometheus-remote-write-samples-written: 1"),
        "{head}"
    );
    // The stale marker reads as NULL in SQL.
    let (_, body) = server
        .json(
            "POST",
            "/api/v1/sql",
            "SELECT job, time, value FROM up ORDER BY job, time",
        )
        .await;
    assert_eq!(
        body["rows"],
        serde_json::json!([
            ["a", "1970-01-01T00:00:01Z", 1.0],
            ["a", "1970-01-01T00:00:02Z", null],
            ["b", "1970-01-01T00:00:01Z", 5.0]
        ])
    );
    // Malformed: all or nothing, with what and where.
    let mut broken = v1.clone();
    broken.truncate(v1.len() / 2);
    let (status, body) = {
        let (s, _, b) = server
            .request(
                "POST",
                "/api/v1/write",
                &[("Content-Type", "application/x-protobuf")],
                &broken,
            )
            .await;
        (s, String::from_utf8_lossy(&b).to_string())
    };
    assert_eq!(status, 400, "{body}");
    let (status, _, _) = server
        .request(
            "POST",
            "/api/v1/write",
            &[("Content-Type", "text/plain")],
            &v1,
        )
        .await;
    assert_eq!(status, 415);
    server.stop().await;
}

#[tokio::test]
async fn statsd_packets_become_rows() {
    let config = ServerConfig {
        statsd_enabled: true,
        statsd_flush_secs: 1,
        ..ServerConfig::default()
    };
    let server = Server::start(config).await;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let target = server.statsd.unwrap();
    socket
        .send_to(b"requests:1|c|#route:/a\nrequests:2|c|@0.5|#route:/a\nlatency:10|ms\nlatency:30|ms\nbroken line", target)
        .await
        .unwrap();
    // Poll until a flush has stored the rows.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = server
            .json("POST", "/api/v1/sql", "SELECT route, value FROM requests")
            .await;
        if status == 200 && body["rows"].as_array().is_some_and(|r| !r.is_empty()) {
            assert_eq!(body["rows"][0], serde_json::json!(["/a", 5.0]));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no StatsD rows: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, body) = server
        .json(
            "POST",
            "/api/v1/sql",
            "SELECT count, sum, min, max FROM latency",
        )
        .await;
    assert_eq!(
        body["rows"][0],
        serde_json::json!([2.0, 40.0, 10.0, 30.0]),
        "{body}"
    );
    let (_, _, metrics) = server.request("GET", "/metrics", &[], b"").await;
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(
        metrics.contains("metricstore_statsd_bad_lines_total 1"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn remote_write_over_the_memory_limit_is_retryable() {
    use metricstore::ingest::remote_write::encode_v1;
    let mut config = Server::without_statsd();
    config.storage.memory_limit_bytes = 50_000;
    let server = Server::start(config).await;
    let mut refused = None;
    for round in 0..200i64 {
        let series: Vec<_> = (0..50)
            .map(|s| {
                let labels = vec![
                    ("__name__".to_string(), "m".to_string()),
                    ("s".to_string(), s.to_string()),
                ];
                (labels, vec![(round * 1000, round as f64)])
            })
            .collect();
        let body = encode_v1(&series, &[]);
        let (status, head, body) = server
            .request(
                "POST",
                "/api/v1/write",
                &[("Content-Type", "application/x-protobuf")],
                &body,
            )
            .await;
        if status != 204 {
            refused = Some((status, head, String::from_utf8_lossy(&body).to_string()));
            break;
        }
    }
    // 503 with Retry-After: Prometheus retries it (a 429 would drop the batch).
    let (status, head, body) = refused.expect("the memory limit is reached");
    assert_eq!(status, 503, "{body}");
    assert!(head.contains("retry-after: 5"), "{head}");
    assert!(body.contains("memory limit reached"), "{body}");
    let (_, _, metrics) = server.request("GET", "/metrics", &[], b"").await;
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(
        metrics.contains("metricstore_rejected_samples_total{reason=\"memory_limit\"} 50"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn refused_samples_are_reported_and_the_rest_is_stored() {
    use metricstore::ingest::remote_write::encode_v1;
    let server = Server::start(Server::without_statsd()).await;
    let snappy = [
        ("Content-Type", "application/x-protobuf"),
        ("Content-Encoding", "snappy"),
    ];
    let labels = |job: &str| {
        vec![
            ("__name__".to_string(), "up".to_string()),
            ("job".to_string(), job.to_string()),
        ]
    };
    let now = 100_000_000;
    let first = encode_v1(&[(labels("a"), vec![(now, 1.0)])], &[]);
    let (status, _, _) = server
        .request("POST", "/api/v1/write", &snappy, &first)
        .await;
    assert_eq!(status, 204);
    // Series a's sample is far older than its newest: refused; b is stored.
    let mixed = encode_v1(
        &[
            (labels("a"), vec![(now - 86_400_000, 2.0)]),
            (labels("b"), vec![(now, 3.0)]),
        ],
        &[],
    );
    let (status, _, body) = server
        .request("POST", "/api/v1/write", &snappy, &mixed)
        .await;
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("stored 1 samples, refused 1") && body.contains("too old"),
        "{body}"
    );
    // Line protocol: the same, next to a malformed line.
    let lines = format!(
        "up,job=a value=4 {}\nup,job=c value=5 {now}\nnot a line\n",
        now - 86_400_000
    );
    let (status, body) = server.json("POST", "/write?precision=ms", &lines).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["written"], 1, "{body}");
    assert_eq!(body["errors"].as_array().map(Vec::len), Some(2), "{body}");
    let (_, body) = server
        .json(
            "POST",
            "/api/v1/sql",
            "SELECT job, value FROM up ORDER BY job",
        )
        .await;
    assert_eq!(
        body["rows"],
        serde_json::json!([["a", 1.0], ["b", 3.0], ["c", 5.0]])
    );
    let (_, _, metrics) = server.request("GET", "/metrics", &[], b"").await;
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(metrics.contains("reason=\"too_old\"} 2"), "{metrics}");
    server.stop().await;
}

#[tokio::test]
async fn retention_policies_and_tiering_over_http() {
    let server = Server::start(Server::without_statsd()).await;
    let (status, body) = server.json("GET", "/api/v1/admin/retention", "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["hot_for_secs"], 86_400);
    let repeated = r#"{"hot_for_secs": 60, "policies": [
        {"tables": "cpu*", "hot_for_secs": 60}, {"tables": "cpu*", "hot_for_secs": 5}]}"#;
    let (status, body) = server
        .json("PUT", "/api/v1/admin/retention", repeated)
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("repeats"),
        "{body}"
    );
    let bad_selector = r#"{"hot_for_secs": 60, "policies": [
        {"tables": "cpu*", "series": "{host=~\"(\"}", "raw_for_secs": 60}]}"#;
    let (status, body) = server
        .json("PUT", "/api/v1/admin/retention", bad_selector)
        .await;
    assert_eq!(status, 400, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("policy 0") && error.contains("series selector"),
        "{body}"
    );
    let bad_level =
        r#"{"hot_for_secs": 60, "levels": [{"width_secs": 3600}, {"width_secs": 300}]}"#;
    let (status, body) = server
        .json("PUT", "/api/v1/admin/retention", bad_level)
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("coarser"),
        "{body}"
    );
    let policies = r#"{"hot_for_secs": 86400, "levels": [{"width_secs": 300, "keep_for_secs": 2592000}],
        "policies": [{"tables": "cpu*", "hot_for_secs": 3600},
                     {"tables": "*", "series": "{env=\"dev\"}", "raw_for_secs": 604800}]}"#;
    let (status, body) = server
        .json("PUT", "/api/v1/admin/retention", policies)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["policies"][0]["tables"], "cpu*");
    assert_eq!(body["data"]["policies"][1]["series"], "{env=\"dev\"}");
    assert_eq!(body["data"]["policies"][1]["raw_for_secs"], 604_800);
    assert_eq!(body["data"]["levels"][0]["keep_for_secs"], 2_592_000);

    let mut lines = String::new();
    for i in 0..48 {
        lines.push_str(&format!("cpu,host=a usage={i} {}\n", i * 3_600_000));
        lines.push_str(&format!("mem,host=a used={i} {}\n", i * 3_600_000));
    }
    let (status, _, _) = server
        .request("POST", "/write?precision=ms", &[], lines.as_bytes())
        .await;
    assert_eq!(status, 204);
    // As of hour 48: cpu keeps one hour hot, mem (default) a day.
    let (status, body) = server
        .json("POST", "/api/v1/admin/tier?now=172800000", "")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["tables"], 2, "{body}");
    assert_eq!(body["data"]["rows"], 47 + 24, "{body}");
    for table in ["cpu", "mem"] {
        let (_, body) = server
            .json(
                "POST",
                "/api/v1/sql",
                &format!("SELECT count(*) FROM {table}"),
            )
            .await;
        assert_eq!(body["rows"][0][0], 48, "{table}: {body}");
    }

    // The cold files vanish: a query needing them fails naming the cold tier, unless
    // it accepts a partial answer, which then says what is missing. (The query reads
    // rows: a bare count(*) is answered from Parquet footers, which stay cached.)
    std::fs::remove_dir_all(server.data_dir().join("cold/cpu")).unwrap();
    let rows = "SELECT count(*) FROM cpu WHERE usage >= 0";
    let (status, body) = server.json("POST", "/api/v1/sql", rows).await;
    assert_ne!(status, 200, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("cold tier"),
        "{body}"
    );
    let (status, head, body) = server
        .request(
            "POST",
            "/api/v1/sql?partial_response=true",
            &[],
            rows.as_bytes(),
        )
        .await;
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"][0][0], 1, "only the hot hour: {body}");
    let warning = body["warnings"][0].as_str().unwrap();
    assert!(
        warning.contains("partial result") && warning.contains("cold tier"),
        "{body}"
    );
    assert!(
        head.contains("x-metricstore-warning: partial result"),
        "{head}"
    );
    server.stop().await;
}
