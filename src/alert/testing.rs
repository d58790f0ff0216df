//! `metricstore rules test FILE`: rules evaluated over input series on a fresh
//! in-memory store, at explicit times, against expected alerts; the shape of
//! `promtool test rules`.
//!
//! ```yaml
//! rule_files: [rules.yml]          # relative to this file
//! evaluation_interval: 1m
//! tests:
//!   - interval: 1m                 # spacing of input samples, from time 0
//!     input_series:
//!       - series: 'cpu{host="a"}'   # table cpu, tag host, field value
//!         values: '50 60 95 96 97 _ 1+1x3 stale'
//!     alert_rule_test:
//!       - eval_time: 4m
//!         alertname: HighCpu
//!         exp_alerts:
//!           - exp_labels: { host: a, severity: page }
//!             exp_annotations: { summary: "a at 97" }
//! ```
//! Values: a number, `_` (no sample; `_x3` for three), `stale` (a staleness marker),
//! `a+bxn` / `a-bxn` (n + 1 samples from `a` in steps of `b`), `axn` (`a+0xn`).
//! Every rule is evaluated at each multiple of `evaluation_interval` up to the last
//! `eval_time` (so `for` works as in production); at each `eval_time` the firing
//! instances of `alertname` must equal `exp_alerts` (labels without `alertname`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::manager::{Alerting, AlertingConfig};
use super::rule::PromDuration;
use super::state::{AlertState, Labels};
use super::{AlertError, history};
use crate::model::STALE_NAN_BITS;
use crate::{MetricStore, TagSet, WriteBatch};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    rule_files: Vec<PathBuf>,
    #[serde(default)]
    evaluation_interval: Option<PromDuration>,
    tests: Vec<TestGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestGroup {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    interval: Option<PromDuration>,
    #[serde(default)]
    input_series: Vec<InputSeries>,
    #[serde(default)]
    alert_rule_test: Vec<AlertTest>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSeries {
    series: String,
    values: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertTest {
    eval_time: PromDuration,
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<ExpectedAlert>,
}

#[derive(Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord, Clone)]
#[serde(deny_unknown_fields)]
struct ExpectedAlert {
    #[serde(default)]
    exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    exp_annotations: BTreeMap<String, String>,
}

/// What a test file found.
#[derive(Debug, Default)]
pub struct TestReport {
    /// Alert checks run.
    pub checks: usize,
    /// One message per failed check.
    pub failures: Vec<String>,
}

/// Runs the tests of the file at `path`.
pub async fn run_file(path: &Path) -> Result<TestReport, AlertError> {
    let text = std::fs::read_to_string(path).map_err(|source| AlertError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let file: TestFile = serde_yaml_ng::from_str(&text)
        .map_err(|e| AlertError::Parse(format!("{}: {e}", path.display())))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let rule_files: Vec<PathBuf> = file.rule_files.iter().map(|f| base.join(f)).collect();
    let step = file
        .evaluation_interval
        .map_or(60_000, |d| d.as_millis())
        .max(1);
    let mut report = TestReport::default();
    for (n, test) in file.tests.iter().enumerate() {
        let name = test
            .name
            .clone()
            .unwrap_or_else(|| format!("test {}", n + 1));
        run_test(test, &name, &rule_files, step, &mut report).await?;
    }
    Ok(report)
}

async fn run_test(
    test: &TestGroup,
    name: &str,
    rule_files: &[PathBuf],
    step: i64,
    report: &mut TestReport,
) -> Result<(), AlertError> {
    let store = Arc::new(MetricStore::in_memory());
    let interval = test.interval.map_or(60_000, |d| d.as_millis()).max(1);
    let mut batch = WriteBatch::new();
    for input in &test.input_series {
        let (table, tags) =
            parse_series(&input.series).map_err(|e| AlertError::Parse(format!("{name}: {e}")))?;
        let tags = TagSet::new(tags).map_err(|e| AlertError::Parse(format!("{name}: {e}")))?;
        let values =
            parse_values(&input.values).map_err(|e| AlertError::Parse(format!("{name}: {e}")))?;
        for (i, v) in values.into_iter().enumerate() {
            if let Some(v) = v {
                batch.add_sample(table.clone(), tags.clone(), "value", i as i64 * interval, v);
            }
        }
    }
    store
        .write(&batch)
        .map_err(|e| AlertError::Parse(format!("{name}: input series: {e}")))?;
    let alerting = Alerting::new(
        store,
        AlertingConfig {
            rule_files: rule_files.to_vec(),
            history: false,
            ..AlertingConfig::default()
        },
    )
    .await?;
    let checks: BTreeSet<i64> = test
        .alert_rule_test
        .iter()
        .map(|t| t.eval_time.as_millis())
        .collect();
    let last = checks.last().copied().unwrap_or(0);
    let mut times: BTreeSet<i64> = (0..=last / step).map(|i| i * step).collect();
    times.extend(&checks);
    for at in times {
        alerting.evaluate_at(at).await?;
        for check in test
            .alert_rule_test
            .iter()
            .filter(|t| t.eval_time.as_millis() == at)
        {
            report.checks += 1;
            let got = firing(&alerting, &check.alertname);
            let mut want = check.exp_alerts.clone();
            want.sort();
            if got != want {
                report.failures.push(format!(
                    "{name}: alert {:?} at {}: expected {want:?}, got {got:?}",
                    check.alertname, check.eval_time
                ));
            }
        }
    }
    Ok(())
}

/// Firing instances of `alertname`, as expected alerts, sorted.
fn firing(alerting: &Alerting, alertname: &str) -> Vec<ExpectedAlert> {
    let mut out = Vec::new();
    for group in alerting.groups() {
        for rule in group.rules.iter().filter(|r| r.rule.alert == alertname) {
            for instance in rule.state.lock().instances() {
                if instance.state != AlertState::Firing {
                    continue;
                }
                let mut labels = group.alert_labels(rule, instance);
                labels.remove("alertname");
                out.push(ExpectedAlert {
                    exp_labels: labels,
                    exp_annotations: group.annotations(rule, instance),
                });
            }
        }
    }
    out.sort();
    out
}

/// `name{k="v",...}` → table and tags.
pub fn parse_series(text: &str) -> Result<(String, Labels), String> {
    let text = text.trim();
    let (name, rest) = match text.find('{') {
        Some(i) => (&text[..i], &text[i..]),
        None => (text, ""),
    };
    if name.is_empty() || name == history::TABLE {
        return Err(format!(
            "series {text:?}: needs a metric name other than `alerts`"
        ));
    }
    let mut labels = Labels::new();
    if !rest.is_empty() {
        let inner = rest
            .strip_prefix('{')
            .and_then(|r| r.strip_suffix('}'))
            .ok_or_else(|| format!("series {text:?}: unbalanced braces"))?;
        for pair in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| format!("series {text:?}: expected k=\"v\" in {pair:?}"))?;
            let v = v
                .trim()
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .ok_or_else(|| format!("series {text:?}: value of {k} must be quoted"))?;
            labels.insert(k.trim().to_string(), v.to_string());
        }
    }
    Ok((name.to_string(), labels))
}

/// promtool's value notation → one entry per interval (`None` = no sample).
pub fn parse_values(text: &str) -> Result<Vec<Option<f64>>, String> {
    let mut out = Vec::new();
    let bad = |t: &str| format!("invalid value {t:?} in {text:?}");
    for token in text.split_whitespace() {
        if token == "stale" {
            out.push(Some(f64::from_bits(STALE_NAN_BITS)));
        } else if let Some(rest) = token.strip_prefix('_') {
            let n = match rest.strip_prefix('x') {
                Some(n) => n.parse::<usize>().map_err(|_| bad(token))?,
                None if rest.is_empty() => 1,
                None => return Err(bad(token)),
            };
            out.extend(std::iter::repeat_n(None, n));
        } else if let Some((head, n)) = token.split_once('x') {
            let n: usize = n.parse().map_err(|_| bad(token))?;
            // `a+b`, `a-b` or `a`; the sign split skips a leading minus of `a`.
            let split = head[1..].find(['+', '-']).map(|i| i + 1);
            let (a, b) = match split {
                Some(i) => (&head[..i], &head[i..]),
                None => (head, "0"),
            };
            let a: f64 = a.parse().map_err(|_| bad(token))?;
            let b: f64 = b.trim_start_matches('+').parse().map_err(|_| bad(token))?;
            out.extend((0..=n).map(|i| Some(a + b * i as f64)));
        } else {
            out.push(Some(token.parse().map_err(|_| bad(token))?));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promtool_value_notation() {
        assert_eq!(
            parse_values("1 _ 2+3x2 5x1 -1-1x1 _x2").unwrap(),
            vec![
                Some(1.0),
                None,
                Some(2.0),
                Some(5.0),
                Some(8.0),
                Some(5.0),
                Some(5.0),
                Some(-1.0),
                Some(-2.0),
                None,
                None
            ]
        );
        assert!(parse_values("1 zz").is_err());
        let (t, l) = parse_series(r#"cpu{host="a", dc="x"}"#).unwrap();
        assert_eq!(t, "cpu");
        assert_eq!(l.get("dc").map(String::as_str), Some("x"));
        assert!(parse_series("cpu{host=a}").is_err());
    }
}
