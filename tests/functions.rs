//! The time-series SQL functions against naive re-implementations, over random series
//! with counter resets, irregular gaps, NULL values (rows without the field) and several
//! series spread over the scan's partitions.
//!
//! The naive versions below are written from Prometheus' definitions (functions.go:
//! `extrapolatedRate`, `instantValue`, `resets`, `linearRegression`) in the most direct
//! way, independently of `src/query/functions`.

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int64Type};
use futures::TryStreamExt;
use metricstore::ingest::line_protocol::{Precision, parse_strict};
use metricstore::{Config, MetricStore, StorageConfig};
use proptest::prelude::*;

/// One series: `(ms, value)`, `None` for a row without `value`.
type Points = Vec<(i64, Option<f64>)>;

fn series() -> impl Strategy<Value = Points> {
    prop::collection::vec((1i64..30_000, 0u32..12, 0u32..1000), 0..40).prop_map(|steps| {
        let (mut t, mut v) = (0i64, 0.0f64);
        let mut out = Vec::new();
        for (gap, kind, inc) in steps {
            t += gap;
            match kind {
                0 => out.push((t, None)),
                // A counter reset: restart below the current value.
                1 => {
                    v = (inc % 50) as f64;
                    out.push((t, Some(v)));
                }
                _ => {
                    v += inc as f64;
                    out.push((t, Some(v)));
                }
            }
        }
        out
    })
}

fn store_with(all: &[Points]) -> MetricStore {
    let config = Config {
        storage: StorageConfig {
            chunk_size: 8,
            ..StorageConfig::default()
        },
        ..Config::default()
    };
    let store = MetricStore::open(config).expect("open");
    let mut lines = String::from("m,host=zz value=1 1\n");
    for (i, points) in all.iter().enumerate() {
        for (t, v) in points {
            match v {
                Some(v) => lines.push_str(&format!("m,host=h{i:02} value={v} {t}\n")),
                None => lines.push_str(&format!("m,host=h{i:02} other=1 {t}\n")),
            }
        }
    }
    let batch = parse_strict(&lines, Precision::Millisecond, 0).expect("parse");
    store.write(&batch).expect("write");
    store
}

/// Samples in seconds, sorted by time then value, NULLs dropped.
fn samples(points: &[(i64, Option<f64>)]) -> Vec<(f64, f64)> {
    let mut s: Vec<(i64, f64)> = points
        .iter()
        .filter_map(|(t, v)| v.map(|v| (*t, v)))
        .collect();
    s.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    s.into_iter().map(|(t, v)| (t as f64 / 1e3, v)).collect()
}

/// Prometheus' extrapolatedRate, transcribed; `range` in seconds.
fn naive_extrapolated(
    s: &[(f64, f64)],
    range: Option<(f64, f64)>,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    let mut result = s[s.len() - 1].1 - s[0].1;
    if is_counter {
        let mut prev = s[0].1;
        for p in &s[1..] {
            if p.1 < prev {
                result += prev;
            }
            prev = p.1;
        }
    }
    let (first_t, last_t) = (s[0].0, s[s.len() - 1].0);
    let sampled = last_t - first_t;
    if sampled <= 0.0 {
        return None;
    }
    let Some((start, end)) = range else {
        return Some(if is_rate { result / sampled } else { result });
    };
    let mut to_start = first_t - start;
    let mut to_end = end - last_t;
    let avg = sampled / (s.len() - 1) as f64;
    if to_start >= avg * 1.1 {
        to_start = avg / 2.0;
    }
    if is_counter && result > 0.0 && s[0].1 >= 0.0 {
        let to_zero = sampled * (s[0].1 / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= avg * 1.1 {
        to_end = avg / 2.0;
    }
    let mut factor = (sampled + to_start + to_end) / sampled;
    if is_rate {
        factor /= end - start;
    }
    Some(result * factor)
}

fn naive_irate(s: &[(f64, f64)]) -> Option<f64> {
    let [.., (t0, v0), (t1, v1)] = s else {
        return None;
    };
    let inc = if v1 < v0 { *v1 } else { v1 - v0 };
    (t1 > t0).then(|| inc / (t1 - t0))
}

fn naive_resets(s: &[(f64, f64)]) -> Option<i64> {
    if s.is_empty() {
        return None;
    }
    Some(s.windows(2).filter(|w| w[1].1 < w[0].1).count() as i64)
}

/// Textbook least squares (single pass of raw sums) around `origin`.
fn naive_regression(s: &[(f64, f64)], origin: f64) -> Option<(f64, f64)> {
    if s.len() < 2 {
        return None;
    }
    if s.iter().all(|p| p.1 == s[0].1) {
        return Some((0.0, s[0].1));
    }
    let n = s.len() as f64;
    let (mut sx, mut sy, mut sxy, mut sxx) = (0.0, 0.0, 0.0, 0.0);
    for &(t, v) in s {
        let x = t - origin;
        sx += x;
        sy += v;
        sxy += x * v;
        sxx += x * x;
    }
    let den = n * sxx - sx * sx;
    if den == 0.0 {
        return None;
    }
    let slope = (n * sxy - sx * sy) / den;
    Some((slope, (sy - slope * sx) / n))
}

fn naive_percentile(s: &[(f64, f64)], q: f64) -> Option<f64> {
    let mut v: Vec<f64> = s.iter().map(|p| p.1).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    (n > 0).then(|| v[((q * n as f64).ceil() as usize).clamp(1, n) - 1])
}

fn close(got: Option<f64>, want: Option<f64>, scale: f64) -> bool {
    match (got, want) {
        (None, None) => true,
        (Some(g), Some(w)) => (g - w).abs() <= 1e-9 * (g.abs() + w.abs()) + 1e-9 * scale,
        _ => false,
    }
}

fn f64_column(batch: &RecordBatch, i: usize) -> Vec<Option<f64>> {
    batch
        .column(i)
        .as_primitive::<Float64Type>()
        .iter()
        .collect()
}

async fn query(store: &MetricStore, sql: &str) -> RecordBatch {
    let stream = store
        .sql_stream(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    // The stream's schema, so that an empty result is an empty batch.
    let schema = stream.schema();
    let batches: Vec<RecordBatch> = stream.try_collect().await.expect("execute");
    arrow::compute::concat_batches(&schema, &batches).expect("concat")
}

const Q: f64 = 0.9;
// The range [10 s, 700 s] as Prometheus would see it from an evaluation at 700 s.
const RANGE: (f64, f64) = (10.0, 700.0);

async fn check(all: Vec<Points>) -> Result<(), TestCaseError> {
    let store = store_with(&all);
    let mut groups: Vec<(String, Points)> = all
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("h{i:02}"), p.clone()))
        .collect();
    groups.push(("zz".to_string(), vec![(1, Some(1.0))]));
    let sql = format!(
        "SELECT CAST(host AS VARCHAR) AS h, rate(value, time) AS c1, increase(value, time) AS c2, \
         delta(value, time) AS c3, irate(value, time) AS c4, deriv(value, time) AS c5, \
         predict_linear(value, time, 60) AS c6, percentile(value, {Q}) AS c7, \
         first(value, time) AS c8, last(value, time) AS c9, \
         rate(value, time, to_timestamp_millis(10000), to_timestamp_millis(700000)) AS c10, \
         increase(value, time, to_timestamp_millis(10000), to_timestamp_millis(700000)) AS c11, \
         delta(value, time, to_timestamp_millis(10000), to_timestamp_millis(700000)) AS c12, \
         sketch_quantile(quantile_sketch(value), {Q}) AS c13, \
         m4(value, time)['min'] AS c14, m4(value, time)['max'] AS c15, \
         resets(value, time) AS c16 \
         FROM m WHERE time >= to_timestamp_millis(10000) AND time <= to_timestamp_millis(700000) \
         GROUP BY host ORDER BY host"
    );
    let batch = query(&store, &sql).await;
    let hosts = arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Utf8)
        .expect("host as Utf8");
    let hosts: Vec<String> = hosts
        .as_string::<i32>()
        .iter()
        .map(|h| h.unwrap_or_default().to_string())
        .collect();
    let cols: Vec<Vec<Option<f64>>> = (1..=15).map(|i| f64_column(&batch, i)).collect();
    let resets: Vec<Option<i64>> = batch
        .column(16)
        .as_primitive::<Int64Type>()
        .iter()
        .collect();
    let mut row = 0;
    for (host, points) in &groups {
        let in_range: Points = points
            .iter()
            .filter(|(t, _)| (10_000..=700_000).contains(t))
            .cloned()
            .collect();
        if in_range.is_empty() {
            continue; // no row at all in the time range: no group
        }
        prop_assert_eq!(&hosts[row], host);
        let s = samples(&in_range);
        let scale = s.iter().map(|p| p.1.abs()).fold(1.0, f64::max);
        let last_t = s.last().map(|p| p.0);
        let reg = last_t.and_then(|t| naive_regression(&s, t));
        let want = [
            naive_extrapolated(&s, None, true, true),
            naive_extrapolated(&s, None, true, false),
            naive_extrapolated(&s, None, false, false),
            naive_irate(&s),
            s.first()
                .and_then(|p| naive_regression(&s, p.0))
                .map(|r| r.0),
            reg.map(|(slope, intercept)| intercept + slope * 60.0),
            naive_percentile(&s, Q),
            s.iter().min_by(|a, b| a.0.total_cmp(&b.0)).map(|p| p.1),
            s.iter().max_by(|a, b| a.0.total_cmp(&b.0)).map(|p| p.1),
            naive_extrapolated(&s, Some(RANGE), true, true),
            naive_extrapolated(&s, Some(RANGE), true, false),
            naive_extrapolated(&s, Some(RANGE), false, false),
        ];
        let names = [
            "rate",
            "increase",
            "delta",
            "irate",
            "deriv",
            "predict_linear",
            "percentile",
            "first",
            "last",
            "rate[range]",
            "increase[range]",
            "delta[range]",
        ];
        for (k, w) in want.iter().enumerate() {
            // Regression results are compared with a tolerance scaled by the values,
            // since the two formulas round differently.
            let tol = if k == 4 || k == 5 { scale * 1e3 } else { scale };
            prop_assert!(
                close(cols[k][row], *w, tol),
                "{} of {}: got {:?}, want {:?}, samples {:?}",
                names[k],
                host,
                cols[k][row],
                w,
                s
            );
        }
        let exact = naive_percentile(&s, Q);
        match (cols[12][row], exact) {
            (Some(est), Some(exact)) => prop_assert!(
                (est - exact).abs() <= 0.01 * exact.abs() * (1.0 + 1e-9),
                "sketch p{} of {}: {} vs {}",
                Q,
                host,
                est,
                exact
            ),
            (got, want) => prop_assert_eq!(got, want),
        }
        let min = s.iter().map(|p| p.1).reduce(f64::min);
        let max = s.iter().map(|p| p.1).reduce(f64::max);
        prop_assert_eq!(cols[13][row], min);
        prop_assert_eq!(cols[14][row], max);
        prop_assert_eq!(resets[row], naive_resets(&s));
        row += 1;
    }
    prop_assert_eq!(row, hosts.len());

    // date_bin buckets as ranges: Prometheus' increase/rate over each minute.
    let batch = query(
        &store,
        "SELECT CAST(host AS VARCHAR) AS h, to_unixtime(date_bin(interval '60 seconds', time)) AS b, \
         increase(value, time, date_bin(interval '60 seconds', time), \
                  date_bin(interval '60 seconds', time) + interval '60 seconds') AS inc, \
         rate(value, time, date_bin(interval '60 seconds', time), \
              date_bin(interval '60 seconds', time) + interval '60 seconds') AS r \
         FROM m GROUP BY h, b ORDER BY h, b",
    )
    .await;
    let mut buckets: std::collections::BTreeMap<(String, i64), Points> = Default::default();
    for (host, points) in &groups {
        for &(t, v) in points {
            buckets
                .entry((host.clone(), t.div_euclid(60_000) * 60))
                .or_default()
                .push((t, v));
        }
    }
    let hosts = arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Utf8)
        .expect("host as Utf8");
    let hosts = hosts.as_string::<i32>();
    let starts = batch.column(1).as_primitive::<Int64Type>();
    let (inc, rate) = (f64_column(&batch, 2), f64_column(&batch, 3));
    prop_assert_eq!(batch.num_rows(), buckets.len());
    for (row, ((host, start), points)) in buckets.iter().enumerate() {
        prop_assert_eq!(hosts.value(row), host.as_str());
        prop_assert_eq!(starts.value(row), *start);
        let s = samples(points);
        let scale = s.iter().map(|p| p.1.abs()).fold(1.0, f64::max);
        let range = Some((*start as f64, *start as f64 + 60.0));
        let want_inc = naive_extrapolated(&s, range, true, false);
        let want_rate = naive_extrapolated(&s, range, true, true);
        prop_assert!(
            close(inc[row], want_inc, scale),
            "increase {host} {start}: {:?} vs {want_inc:?}",
            inc[row]
        );
        prop_assert!(
            close(rate[row], want_rate, scale),
            "rate {host} {start}: {:?} vs {want_rate:?}",
            rate[row]
        );
    }

    // All series in one group: samples from every partition merge into one state.
    let batch = query(
        &store,
        &format!(
            "SELECT increase(value, time) AS a, percentile(value, {Q}) AS b, \
             last(value, time) AS c, resets(value, time) AS d FROM m"
        ),
    )
    .await;
    let merged: Points = groups.iter().flat_map(|(_, p)| p.clone()).collect();
    let s = samples(&merged);
    let scale = s.iter().map(|p| p.1.abs()).fold(1.0, f64::max);
    prop_assert!(close(
        f64_column(&batch, 0)[0],
        naive_extrapolated(&s, None, true, false),
        scale
    ));
    prop_assert_eq!(f64_column(&batch, 1)[0], naive_percentile(&s, Q));
    prop_assert_eq!(f64_column(&batch, 2)[0], s.last().map(|p| p.1));
    prop_assert_eq!(
        batch.column(3).as_primitive::<Int64Type>().value(0),
        naive_resets(&s).unwrap_or(0)
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn functions_match_naive(all in prop::collection::vec(series(), 1..5)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(check(all))?;
    }
}
