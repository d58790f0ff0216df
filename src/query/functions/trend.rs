//! Trend functions: `deriv` and `predict_linear`, by least-squares linear regression
//! of value on time (seconds), as Prometheus computes them.
//!
//! ```sql
//! -- per-second slope of free disk space over the last hour
//! SELECT host, deriv(value, time) FROM disk_free
//! WHERE time > now() - interval '1 hour' GROUP BY host;
//!
//! -- alert if the disk fills within 4 hours: the value 4 h after the last sample
//! SELECT host FROM disk_free WHERE time > now() - interval '1 hour'
//! GROUP BY host HAVING predict_linear(value, time, 4 * 3600) < 0;
//!
//! -- Prometheus' predict_linear(disk_free[1h], 14400) evaluated at now()
//! SELECT host, predict_linear(value, time, 14400, now()) FROM disk_free
//! WHERE time > now() - interval '1 hour' GROUP BY host;
//! ```
//!
//! `deriv(value, time)` is the slope in units per second. `predict_linear(value, time,
//! t_seconds [, at])` is the fitted line's value `t_seconds` after `at`; Prometheus
//! uses the evaluation time for `at`, which an aggregate does not know, so without it
//! `at` is the group's last sample time (a documented difference). `t_seconds` must be
//! a constant. Both need two samples (NULL otherwise), give slope 0 for a constant
//! series (as Prometheus), and NULL when all samples share one timestamp.
//!
//! The regression is computed in two passes around the means (Prometheus uses Kahan
//! sums of raw offsets instead): the results agree to rounding.

use datafusion::logical_expr::AggregateUDF;

use super::samples::{Kind, SampleAggregate};

/// The trend aggregates.
pub fn functions() -> Vec<AggregateUDF> {
    [Kind::Deriv, Kind::PredictLinear]
        .into_iter()
        .map(SampleAggregate::udaf)
        .collect()
}

/// Slope (per second) and intercept at `origin` (ns) of the least-squares line, or
/// `None` with fewer than two samples or no spread in time.
pub(crate) fn regression(samples: &[(i64, f64)], origin: i64) -> Option<(f64, f64)> {
    if samples.len() < 2 {
        return None;
    }
    let first = samples[0].1;
    if samples.iter().all(|s| s.1 == first) && !first.is_infinite() {
        return Some((0.0, first));
    }
    let n = samples.len() as f64;
    let x = |t: i64| (t - origin) as f64 / 1e9;
    let mean_x = samples.iter().map(|s| x(s.0)).sum::<f64>() / n;
    let mean_y = samples.iter().map(|s| s.1).sum::<f64>() / n;
    let (mut cov, mut var) = (0.0, 0.0);
    for &(t, v) in samples {
        let dx = x(t) - mean_x;
        cov += dx * (v - mean_y);
        var += dx * dx;
    }
    if var == 0.0 {
        return None;
    }
    let slope = cov / var;
    Some((slope, mean_y - slope * mean_x))
}

/// Prometheus' `deriv`.
pub(crate) fn deriv(samples: &[(i64, f64)]) -> Option<f64> {
    let origin = samples.first()?.0;
    regression(samples, origin).map(|(slope, _)| slope)
}

/// Prometheus' `predict_linear` with `at` as the evaluation time (default: the last
/// sample's time).
pub(crate) fn predict_linear(samples: &[(i64, f64)], horizon: f64, at: Option<i64>) -> Option<f64> {
    let at = at.or(samples.last().map(|s| s.0))?;
    regression(samples, at).map(|(slope, intercept)| intercept + slope * horizon)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn hand_computed() {
        // y = 2x + 1 at x = 0, 10, 20 s (origin 1000 s): slope 2.
        let s: Vec<_> = [0, 10, 20]
            .iter()
            .map(|&x| ((1000 + x) * S, 2.0 * x as f64 + 1.0))
            .collect();
        assert_eq!(deriv(&s), Some(2.0));
        // Last sample at 1020 s has value 41; 5 s later: 51.
        assert_eq!(predict_linear(&s, 5.0, None), Some(51.0));
        // Evaluated at 1030 s, 10 s ahead: 2 * 40 + 1 = 81.
        assert_eq!(predict_linear(&s, 10.0, Some(1030 * S)), Some(81.0));
        // Points (0,0), (1,1), (2,0): slope 0 by least squares; (0,0),(1,2),(2,2): 1.
        let s = vec![(0, 0.0), (S, 2.0), (2 * S, 2.0)];
        assert_eq!(deriv(&s), Some(1.0));
    }

    #[test]
    fn degenerate() {
        assert_eq!(deriv(&[]), None);
        assert_eq!(deriv(&[(0, 1.0)]), None);
        assert_eq!(deriv(&[(0, 1.0), (S, 1.0)]), Some(0.0));
        assert_eq!(deriv(&[(S, 1.0), (S, 2.0)]), None);
    }
}
