//! Alerting through the public API: rule kinds over recorded metric patterns, the
//! state machine driven by explicit evaluation times (no sleeps), restart persistence,
//! delivery to a webhook that is down and comes back, `metricstore rules test`, and a
//! real Alertmanager (Debian's `prometheus-alertmanager`, which `.ci/run` installs;
//! skipped without it unless `METRICSTORE_CI` is set).

use std::sync::Arc;
use std::time::{Duration, Instant};

use metricstore::alert::notify::Backoff;
use metricstore::alert::{AlertState, Alerting, AlertingConfig, Receiver, ReceiverKind, RuleGroup};
use metricstore::{MetricStore, TagSet, WriteBatch};

const MIN: i64 = 60_000;
/// A recent base time, so that every sample lies in the store's windows.
const T0: i64 = 1_700_000_000_000;

/// Writes `values` one minute apart from T0 (`None` = gap) to `table{host}`.
fn record(store: &MetricStore, table: &str, host: &str, values: &[Option<f64>]) {
    let mut batch = WriteBatch::new();
    for (i, v) in values.iter().enumerate() {
        if let Some(v) = v {
            let tags = TagSet::new([("host", host)]).unwrap();
            batch.add_sample(table, tags, "value", T0 + i as i64 * MIN, *v);
        }
    }
    store.write(&batch).unwrap();
}

fn all(v: &[f64]) -> Vec<Option<f64>> {
    v.iter().copied().map(Some).collect()
}

/// The patterns: flat, spike, slow rise, counter reset, gap (stops after 5 min).
fn patterns(store: &MetricStore, table: &str) {
    record(store, table, "flat", &all(&[50.0; 12]));
    let mut spike = vec![50.0; 12];
    spike[6] = 99.0;
    record(store, table, "spike", &all(&spike));
    record(
        store,
        table,
        "rise",
        &all(&(0..12).map(|i| 40.0 + 6.0 * i as f64).collect::<Vec<_>>()),
    );
    record(
        store,
        table,
        "reset",
        &all(&[
            10.0, 20.0, 30.0, 40.0, 2.0, 12.0, 22.0, 32.0, 42.0, 52.0, 62.0, 72.0,
        ]),
    );
    let mut gap: Vec<Option<f64>> = vec![Some(50.0); 5];
    gap.extend([None; 7]);
    record(store, table, "gap", &gap);
}

async fn alerting(store: &Arc<MetricStore>, yaml: &str, config: AlertingConfig) -> Arc<Alerting> {
    let a = Alerting::new(store.clone(), config).await.unwrap();
    a.put_group(RuleGroup::parse(yaml).unwrap()).await.unwrap();
    a
}

/// Hosts of `alert` in `state` after evaluating at `at`.
async fn hosts_at(a: &Alerting, at: i64, alert: &str, state: AlertState) -> Vec<String> {
    a.evaluate_at(at).await.unwrap();
    let mut out = Vec::new();
    for g in a.groups() {
        for r in g.rules.iter().filter(|r| r.rule.alert == alert) {
            for i in r.state.lock().instances().filter(|i| i.state == state) {
                out.push(i.labels.get("host").cloned().unwrap_or_default());
            }
        }
    }
    out.sort();
    out
}

fn group(alert: &str, sql: &str, extra: &str) -> String {
    format!("name: g\nrules:\n- alert: {alert}\n  sql: \"{sql}\"\n{extra}")
}

#[tokio::test]
async fn threshold_over_a_window() {
    let store = Arc::new(MetricStore::in_memory());
    patterns(&store, "cpu");
    let sql = "SELECT host, avg(value) AS value FROM cpu \
               WHERE time > eval_time() - interval '3 minutes' AND time <= eval_time() \
               GROUP BY host HAVING avg(value) > 70";
    let a = alerting(
        &store,
        &group("HighCpu", sql, ""),
        AlertingConfig {
            history: false,
            ..Default::default()
        },
    )
    .await;
    let firing = AlertState::Firing;
    // At 4 min: rise averages 52, spike not yet: nothing.
    assert!(
        hosts_at(&a, T0 + 4 * MIN, "HighCpu", firing)
            .await
            .is_empty()
    );
    // At 7 min the spike (99) lifts the 3-minute average to 66.3: still below.
    assert!(
        !hosts_at(&a, T0 + 7 * MIN, "HighCpu", firing)
            .await
            .contains(&"spike".into())
    );
    // At 11 min the slow rise averages 94 and the reset counter 62: only rise.
    assert_eq!(
        hosts_at(&a, T0 + 11 * MIN, "HighCpu", firing).await,
        ["rise"]
    );
    // The same plan, back in time: nothing fires again at 4 min (resolved).
    assert!(
        hosts_at(&a, T0 + 4 * MIN, "HighCpu", firing)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn latest_state_threshold_and_absence() {
    let store = Arc::new(MetricStore::in_memory());
    patterns(&store, "cpu");
    let latest = "SELECT host, value FROM latest('cpu') WHERE value > 70";
    // Absent: the newest sample is older than 3 minutes at evaluation time.
    let absent = "SELECT host, (CAST(eval_time() AS BIGINT) - CAST(max(time) AS BIGINT)) / 1000.0 AS value \
                  FROM cpu WHERE time <= eval_time() GROUP BY host \
                  HAVING max(time) < eval_time() - interval '3 minutes'";
    let yaml = format!(
        "name: g\nrules:\n- alert: Hot\n  sql: \"{latest}\"\n- alert: Absent\n  sql: \"{absent}\"\n"
    );
    let a = alerting(
        &store,
        &yaml,
        AlertingConfig {
            history: false,
            ..Default::default()
        },
    )
    .await;
    let at = T0 + 11 * MIN;
    assert_eq!(
        hosts_at(&a, at, "Hot", AlertState::Firing).await,
        ["reset", "rise"]
    );
    assert_eq!(
        hosts_at(&a, at, "Absent", AlertState::Firing).await,
        ["gap"]
    );
    let g = a.group("g").unwrap();
    let gap = g.rules[1].state.lock().instances().next().unwrap().value;
    assert_eq!(gap, 7.0 * 60.0, "seconds since the last sample");
    // Earlier, while gap still reported, it was not absent.
    assert!(
        hosts_at(&a, T0 + 5 * MIN, "Absent", AlertState::Firing)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn trend_disk_full_within_four_hours() {
    let store = Arc::new(MetricStore::in_memory());
    // Free bytes: flat stays; "filling" loses 1 GB a minute from 100 GB (gone in 100 min);
    // "slow" loses 1 MB a minute.
    record(&store, "disk_free", "flat", &all(&[100e9; 12]));
    record(
        &store,
        "disk_free",
        "filling",
        &all(&(0..12).map(|i| 100e9 - 1e9 * i as f64).collect::<Vec<_>>()),
    );
    record(
        &store,
        "disk_free",
        "slow",
        &all(&(0..12).map(|i| 100e9 - 1e6 * i as f64).collect::<Vec<_>>()),
    );
    let sql = "SELECT host, predict_linear(value, time, 4 * 3600) AS value FROM disk_free \
               WHERE time > eval_time() - interval '10 minutes' AND time <= eval_time() \
               GROUP BY host HAVING predict_linear(value, time, 4 * 3600) < 0";
    let deriv = "SELECT host, deriv(value, time) AS value FROM disk_free \
                 WHERE time > eval_time() - interval '10 minutes' AND time <= eval_time() \
                 GROUP BY host HAVING deriv(value, time) < -1000000";
    let yaml = format!(
        "name: g\nrules:\n- alert: DiskFull\n  sql: \"{sql}\"\n- alert: Shrinking\n  sql: \"{deriv}\"\n"
    );
    let a = alerting(
        &store,
        &yaml,
        AlertingConfig {
            history: false,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        hosts_at(&a, T0 + 11 * MIN, "DiskFull", AlertState::Firing).await,
        ["filling"]
    );
    assert_eq!(
        hosts_at(&a, T0 + 11 * MIN, "Shrinking", AlertState::Firing).await,
        ["filling"]
    );
}

#[tokio::test]
async fn anomaly_k_standard_deviations() {
    let store = Arc::new(MetricStore::in_memory());
    // Noise around 50, then a spike at minute 10 for "spike".
    let noise: Vec<f64> = (0..12)
        .map(|i| 50.0 + if i % 2 == 0 { 1.0 } else { -1.0 })
        .collect();
    record(&store, "lat", "calm", &all(&noise));
    let mut spike = noise.clone();
    spike[10] = 80.0;
    record(&store, "lat", "spike", &all(&spike));
    // The newest sample against the mean and deviation of the 10 minutes before it.
    let sql = "WITH w AS (SELECT host, avg(value) AS m, stddev(value) AS s FROM lat \
               WHERE time > eval_time() - interval '11 minutes' AND time < eval_time() GROUP BY host), \
               now AS (SELECT host, last(value, time) AS v FROM lat \
               WHERE time > eval_time() - interval '1 minute' AND time <= eval_time() GROUP BY host) \
               SELECT now.host, zscore(v, m, s) AS value FROM now JOIN w ON now.host = w.host \
               WHERE abs(zscore(v, m, s)) > 3";
    let a = alerting(
        &store,
        &group("Anomaly", sql, ""),
        AlertingConfig {
            history: false,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        hosts_at(&a, T0 + 10 * MIN, "Anomaly", AlertState::Firing).await,
        ["spike"]
    );
    assert!(
        hosts_at(&a, T0 + 9 * MIN, "Anomaly", AlertState::Firing)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn for_and_keep_firing_for_and_the_alerts_table() {
    let store = Arc::new(MetricStore::in_memory());
    // Over 90 from minute 2 to minute 6.
    record(
        &store,
        "cpu",
        "a",
        &all(&[
            10.0, 10.0, 95.0, 95.0, 95.0, 95.0, 95.0, 10.0, 10.0, 10.0, 10.0, 10.0,
        ]),
    );
    let sql = "SELECT host, value FROM cpu WHERE time = eval_time() AND value > 90";
    let extra = "  for: 2m\n  keep_firing_for: 2m\n  labels: {severity: page}\n";
    let a = alerting(
        &store,
        &group("High", sql, extra),
        AlertingConfig::default(),
    )
    .await;
    let mut seen = Vec::new();
    for m in 0..12 {
        a.evaluate_at(T0 + m * MIN).await.unwrap();
        let g = a.group("g").unwrap();
        let s = g.rules[0].state.lock().instances().next().map(|i| i.state);
        seen.push(s);
    }
    use AlertState::*;
    assert_eq!(
        seen,
        [
            None,
            None,
            Some(Pending),
            Some(Pending),
            Some(Firing),
            Some(Firing),
            Some(Firing),
            Some(Firing),
            Some(Firing),
            Some(Resolved),
            Some(Resolved),
            Some(Resolved)
        ]
    );
    let batches = store
        .sql(
            "SELECT alertstate, count(*) AS n FROM alerts WHERE alertname = 'High' \
              AND severity = 'page' AND host = 'a' GROUP BY alertstate ORDER BY alertstate",
        )
        .await
        .unwrap();
    let text = arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    assert!(text.contains("| firing     | 5 |"), "{text}");
    assert!(text.contains("| pending    | 2 |"), "{text}");
}

#[tokio::test]
async fn state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MetricStore::in_memory());
    record(&store, "cpu", "a", &all(&[95.0; 6]));
    let sql = "SELECT host, value FROM latest('cpu') WHERE value > 90";
    let config = AlertingConfig {
        state_dir: Some(dir.path().into()),
        history: false,
        ..Default::default()
    };
    let a = alerting(&store, &group("High", sql, "  for: 5m\n"), config.clone()).await;
    a.evaluate_at(T0).await.unwrap();
    a.evaluate_at(T0 + 3 * MIN).await.unwrap();
    a.stop().unwrap();
    drop(a);
    // The API group and its pending instance come back; `for` counts from T0.
    let b = Alerting::new(store.clone(), config).await.unwrap();
    let g = b.group("g").expect("API group reloaded");
    assert_eq!(
        g.rules[0]
            .state
            .lock()
            .instances()
            .next()
            .unwrap()
            .active_at,
        T0
    );
    assert_eq!(
        hosts_at(&b, T0 + 5 * MIN, "High", AlertState::Firing).await,
        ["a"]
    );
}

#[tokio::test]
async fn invalid_rules_are_refused_with_the_planners_message() {
    let store = Arc::new(MetricStore::in_memory());
    record(&store, "cpu", "a", &all(&[1.0]));
    let a = Alerting::new(store, AlertingConfig::default())
        .await
        .unwrap();
    let err = a
        .put_group(RuleGroup::parse(&group("X", "SELECT nope FROM cpu", "")).unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope") && err.contains("g/X"), "{err}");
    let err = a
        .put_group(RuleGroup::parse(&group("X", "SELECT host FROM cpu", "")).unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no numeric column"), "{err}");
    assert!(a.groups().is_empty());
}

/// A webhook receiver on `port` recording every body it gets.
async fn webhook(
    port: u16,
    got: Arc<parking_lot::Mutex<Vec<serde_json::Value>>>,
) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let got = got.clone();
            async move {
                got.lock().push(serde_json::from_str(&body).unwrap());
                "ok"
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    })
}

#[tokio::test]
async fn a_webhook_that_was_down_still_gets_the_resolved_notification() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let store = Arc::new(MetricStore::in_memory());
    record(&store, "cpu", "a", &all(&[95.0, 10.0]));
    let sql = "SELECT host, value FROM cpu WHERE time = eval_time() AND value > 90";
    let config = AlertingConfig {
        receivers: vec![Receiver {
            kind: ReceiverKind::Webhook,
            url: format!("http://127.0.0.1:{port}/hook"),
        }],
        backoff: Backoff {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(100),
            timeout: Duration::from_secs(2),
        },
        history: false,
        ..Default::default()
    };
    let a = alerting(
        &store,
        &group(
            "High",
            sql,
            "  annotations: {summary: '{{ $labels.host }} at {{ $value }}'}\n",
        ),
        config,
    )
    .await;
    a.start();
    // Fires, then resolves, while the receiver is down; evaluation is not held up.
    let started = Instant::now();
    a.evaluate_at(T0).await.unwrap();
    a.evaluate_at(T0 + MIN).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    let got = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let server = webhook(port, got.clone()).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let alert = loop {
        if let Some(body) = got.lock().last().cloned() {
            break body;
        }
        assert!(Instant::now() < deadline, "no notification arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(alert["status"], "resolved", "{alert}");
    assert_eq!(alert["alerts"][0]["labels"]["alertname"], "High");
    assert_eq!(alert["alerts"][0]["annotations"]["summary"], "a at 95");
    let _ = a.stop();
    server.abort();
}

#[test]
fn rules_test_subcommand_passes_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rules.yml"),
        "groups:\n- name: cpu\n  rules:\n  - alert: HighCpu\n    sql: SELECT host, value FROM cpu WHERE time = eval_time() AND value > 90\n    for: 2m\n    labels: {severity: page}\n    annotations: {summary: '{{ $labels.host }} at {{ $value }}'}\n",
    )
    .unwrap();
    let test = |expect_host: &str| {
        format!(
            "rule_files: [rules.yml]\nevaluation_interval: 1m\ntests:\n- interval: 1m\n  input_series:\n  - series: 'cpu{{host=\"a\"}}'\n    values: '50 95 95 95 95'\n  - series: 'cpu{{host=\"b\"}}'\n    values: '50x4'\n  alert_rule_test:\n  - eval_time: 2m\n    alertname: HighCpu\n    exp_alerts: []\n  - eval_time: 3m\n    alertname: HighCpu\n    exp_alerts:\n    - exp_labels: {{host: {expect_host}, severity: page}}\n      exp_annotations: {{summary: '{expect_host} at 95'}}\n"
        )
    };
    let run = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_metricstore"))
            .args(["rules", "test"])
            .arg(&path)
            .output()
            .unwrap()
    };
    let ok = run("ok.yml", test("a"));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("2 checks, 0 failed"));
    let bad = run("bad.yml", test("b"));
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stdout).contains("FAILED"));
}
