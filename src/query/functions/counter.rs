//! Counter functions: `rate`, `irate`, `increase`, `delta`, `resets`.
//!
//! Aggregates over `(value, time)`; each group is one series (see [`super`]).
//!
//! ```sql
//! -- per-second rate over the last 5 minutes, no extrapolation
//! SELECT host, rate(value, time) FROM http_requests_total
//! WHERE time > now() - interval '5 minutes' GROUP BY host;
//!
//! -- Prometheus' rate(http_requests_total[1m]) evaluated at the end of each minute
//! SELECT host, date_bin(interval '1 minute', time) AS bucket,
//!        rate(value, time, date_bin(interval '1 minute', time),
//!             date_bin(interval '1 minute', time) + interval '1 minute')
//! FROM http_requests_total GROUP BY host, bucket;
//!
//! SELECT host, irate(value, time), resets(value, time) FROM m GROUP BY host;
//! ```
//!
//! # Range boundaries
//! Prometheus knows the range `[start, end]` of `rate(x[5m])` and extrapolates the
//! sampled increase towards its edges. An aggregate only sees samples, so:
//! - `rate|increase|delta(value, time)`: **no extrapolation**. `increase` and `delta`
//!   are the (reset-adjusted) difference between the last and first samples, and
//!   `rate` is `increase` divided by the time between them (seconds).
//! - `rate|increase|delta(value, time, range_start, range_end)`: Prometheus'
//!   `extrapolatedRate`, exactly: extrapolate to each edge when the first/last sample
//!   is within 1.1 × the average sample interval of it, otherwise by half an average
//!   interval; never extrapolate a counter below zero; `rate` divides by
//!   `range_end - range_start`. The bounds should be constant in a group (e.g. the
//!   `date_bin` bucket and bucket + width); if they vary, the smallest start and the
//!   largest end are used. A sample outside the range counts as being on its edge.
//!
//! Differences from Prometheus: the range is closed (`date_bin` buckets are
//! `[start, end)`, Prometheus' ranges are `(start, end]`), so a sample exactly on a
//! bucket edge belongs to the later bucket rather than the earlier one; samples with
//! equal timestamps (impossible within one series) are ordered by value; a result that
//! Prometheus would compute as a division by zero (all samples at one instant, or an
//! empty range) is NULL. Fewer than two samples give NULL, as Prometheus gives no
//! result, except `resets`, which is 0 for one sample.
//!
//! Counter resets: whenever a sample is lower than the previous one, the counter is
//! taken to have restarted from zero, so the previous value is added back (Prometheus'
//! rule). `delta` is for gauges and ignores resets. `irate` uses the last two samples
//! (after a reset, the last value itself is the increase).

use datafusion::logical_expr::AggregateUDF;

use super::samples::{Kind, SampleAggregate};

/// The counter aggregates.
pub fn functions() -> Vec<AggregateUDF> {
    [
        Kind::Rate,
        Kind::Irate,
        Kind::Increase,
        Kind::Delta,
        Kind::Resets,
    ]
    .into_iter()
    .map(SampleAggregate::udaf)
    .collect()
}

const NANOS: f64 = 1e9;

/// Prometheus' `extrapolatedRate` over time-sorted `(ns, value)` samples; `range` in
/// ns, `None` for no extrapolation. `is_rate` divides by the range (or, without one,
/// by the sampled interval).
pub(crate) fn extrapolated(
    samples: &[(i64, f64)],
    range: Option<(i64, i64)>,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let (first_t, first_v) = samples[0];
    let (last_t, last_v) = samples[samples.len() - 1];
    let mut result = last_v - first_v;
    if is_counter {
        for w in samples.windows(2) {
            if w[1].1 < w[0].1 {
                result += w[0].1;
            }
        }
    }
    let sampled = (last_t - first_t) as f64 / NANOS;
    if sampled <= 0.0 {
        return None;
    }
    let Some((start, end)) = range else {
        return Some(if is_rate { result / sampled } else { result });
    };
    let mut to_start = ((first_t - start) as f64 / NANOS).max(0.0);
    let mut to_end = ((end - last_t) as f64 / NANOS).max(0.0);
    let average = sampled / (samples.len() - 1) as f64;
    let threshold = average * 1.1;
    if to_start >= threshold {
        to_start = average / 2.0;
    }
    if is_counter && result > 0.0 && first_v >= 0.0 {
        // A counter does not go below zero: extrapolate at most to where it was zero.
        let to_zero = sampled * (first_v / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = average / 2.0;
    }
    let mut factor = (sampled + to_start + to_end) / sampled;
    if is_rate {
        let range = (end - start) as f64 / NANOS;
        if range <= 0.0 {
            return None;
        }
        factor /= range;
    }
    Some(result * factor)
}

/// Prometheus' `irate`: per-second increase between the last two samples.
pub(crate) fn irate(samples: &[(i64, f64)]) -> Option<f64> {
    let n = samples.len();
    if n < 2 {
        return None;
    }
    let (prev_t, prev_v) = samples[n - 2];
    let (last_t, last_v) = samples[n - 1];
    let increase = if last_v < prev_v {
        last_v
    } else {
        last_v - prev_v
    };
    let dt = (last_t - prev_t) as f64 / NANOS;
    (dt > 0.0).then(|| increase / dt)
}

/// Number of decreases between consecutive samples; NULL without samples.
pub(crate) fn resets(samples: &[(i64, f64)]) -> Option<i64> {
    if samples.is_empty() {
        return None;
    }
    Some(samples.windows(2).filter(|w| w[1].1 < w[0].1).count() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    /// Samples every 15 s from `t0` seconds.
    fn series(t0: i64, values: &[f64]) -> Vec<(i64, f64)> {
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| ((t0 + 15 * i as i64) * S, v))
            .collect()
    }

    // Hand-computed with Prometheus' extrapolatedRate for rate(x[60s]) at t = 60 s,
    // samples at 5, 20, 35, 50 s: 10, 20, 30, 40. sampled = 45 s, average 15 s,
    // threshold 16.5 s; to_start = 5 s (< threshold), to_zero = 45 * 10/30 = 15 s (not
    // smaller); to_end = 10 s. increase = 30 * (45 + 5 + 10) / 45 = 40, rate = 40/60.
    #[test]
    fn prometheus_hand_computed() {
        let s = series(5, &[10.0, 20.0, 30.0, 40.0]);
        let range = Some((0, 60 * S));
        let inc = extrapolated(&s, range, true, false).unwrap();
        assert!((inc - 40.0).abs() < 1e-12, "{inc}");
        let rate = extrapolated(&s, range, true, true).unwrap();
        assert!((rate - 40.0 / 60.0).abs() < 1e-12, "{rate}");
        // No range: the raw difference and its slope.
        assert_eq!(extrapolated(&s, None, true, false), Some(30.0));
        assert_eq!(extrapolated(&s, None, true, true), Some(30.0 / 45.0));
    }

    // Reset: 10, 20, 5, 15 at 5, 20, 35, 50 s: increase = 15 - 10 + 20 = 25.
    // to_zero = 45 * 10/25 = 18 s > to_start 5 s. Extrapolated: 25 * 60/45.
    #[test]
    fn reset_and_zero_clamp() {
        let s = series(5, &[10.0, 20.0, 5.0, 15.0]);
        assert_eq!(extrapolated(&s, None, true, false), Some(25.0));
        let inc = extrapolated(&s, Some((0, 60 * S)), true, false).unwrap();
        assert!((inc - 25.0 * 60.0 / 45.0).abs() < 1e-12, "{inc}");
        assert_eq!(resets(&s), Some(1));
        // delta ignores the reset: 15 - 10, extrapolated the same way (no zero clamp).
        let d = extrapolated(&s, Some((0, 60 * S)), false, false).unwrap();
        assert!((d - 5.0 * 60.0 / 45.0).abs() < 1e-12, "{d}");
        // irate: the last two samples, 5 -> 15 over 15 s.
        assert_eq!(irate(&s), Some(10.0 / 15.0));
        // irate right after a reset: the last value itself over 15 s.
        assert_eq!(irate(&s[..3]), Some(5.0 / 15.0));
        // Counter starting near zero: 1, 31 at 50, 65 s in (0, 80]: result 30,
        // to_zero = 15 * 1/30 = 0.5 s < to_start (15 s, below threshold 16.5 s).
        // to_end = 15 s. increase = 30 * (15 + 0.5 + 15) / 15 = 61.
        let s = vec![(50 * S, 1.0), (65 * S, 31.0)];
        let inc = extrapolated(&s, Some((35 * S, 80 * S)), true, false).unwrap();
        assert!((inc - 61.0).abs() < 1e-12, "{inc}");
    }

    // Series that starts late: samples at 40, 55 s in [0, 60]: to_start = 40 s is
    // beyond the threshold (16.5 s), so extrapolate by half an interval (7.5 s);
    // to_end = 5 s. values 100, 130 (first_v large, to_zero = 50 s, not smaller).
    // increase = 30 * (15 + 7.5 + 5) / 15 = 55.
    #[test]
    fn late_start_extrapolates_half_an_interval() {
        let s = vec![(40 * S, 100.0), (55 * S, 130.0)];
        let inc = extrapolated(&s, Some((0, 60 * S)), true, false).unwrap();
        assert!((inc - 55.0).abs() < 1e-12, "{inc}");
    }

    #[test]
    fn too_few_samples() {
        let one = series(0, &[1.0]);
        assert_eq!(extrapolated(&one, None, true, true), None);
        assert_eq!(irate(&one), None);
        assert_eq!(resets(&one), Some(0));
        assert_eq!(resets(&[]), None);
        let same_time = vec![(S, 1.0), (S, 2.0)];
        assert_eq!(extrapolated(&same_time, None, true, true), None);
        assert_eq!(irate(&same_time), None);
    }
}
