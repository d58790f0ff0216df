//! The 15 TSBS cpu-only queries as DataFusion SQL, with seeded random windows and hosts.

use super::super::Rng;
use super::{FIELDS, HOUR_MS, TABLE, TsbsConfig};

const MINUTE_MS: i64 = 60_000;

/// The 15 TSBS cpu-only queries. Variant names spell the TSBS name's numbers with
/// underscores (`SingleGroupby5_8_1` is `single-groupby-5-8-1`: 5 fields, 8 hosts, 1 hour).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueryKind {
    /// max(usage_user) per minute, 1 host, 1 hour.
    SingleGroupby1_1_1,
    /// max(usage_user) per minute, 1 host, 12 hours.
    SingleGroupby1_1_12,
    /// max(usage_user) per minute, 8 hosts, 1 hour.
    SingleGroupby1_8_1,
    /// max of 5 fields per minute, 1 host, 1 hour.
    SingleGroupby5_1_1,
    /// max of 5 fields per minute, 1 host, 12 hours.
    SingleGroupby5_1_12,
    /// max of 5 fields per minute, 8 hosts, 1 hour.
    SingleGroupby5_8_1,
    /// max of all 10 fields per hour, 1 host, 8 hours.
    CpuMaxAll1,
    /// max of all 10 fields per hour, 8 hosts, 8 hours.
    CpuMaxAll8,
    /// avg(usage_user) per host per hour, all hosts, 12 hours.
    DoubleGroupby1,
    /// avg of 5 fields per host per hour, all hosts, 12 hours.
    DoubleGroupby5,
    /// avg of all 10 fields per host per hour, all hosts, 12 hours.
    DoubleGroupbyAll,
    /// Rows with usage_user > 90, 1 host, 12 hours.
    HighCpu1,
    /// Rows with usage_user > 90, all hosts, 12 hours.
    HighCpuAll,
    /// The newest row of every host.
    Lastpoint,
    /// max(usage_user) per minute over all hosts before a random end, newest 5 minutes.
    GroupbyOrderbyLimit,
}

impl QueryKind {
    /// Every query, in the order of the TSBS documentation.
    pub const ALL: [QueryKind; 15] = [
        QueryKind::SingleGroupby1_1_1,
        QueryKind::SingleGroupby1_1_12,
        QueryKind::SingleGroupby1_8_1,
        QueryKind::SingleGroupby5_1_1,
        QueryKind::SingleGroupby5_1_12,
        QueryKind::SingleGroupby5_8_1,
        QueryKind::CpuMaxAll1,
        QueryKind::CpuMaxAll8,
        QueryKind::DoubleGroupby1,
        QueryKind::DoubleGroupby5,
        QueryKind::DoubleGroupbyAll,
        QueryKind::HighCpu1,
        QueryKind::HighCpuAll,
        QueryKind::Lastpoint,
        QueryKind::GroupbyOrderbyLimit,
    ];

    /// The TSBS name, e.g. `single-groupby-1-1-1`.
    pub fn name(self) -> &'static str {
        match self {
            QueryKind::SingleGroupby1_1_1 => "single-groupby-1-1-1",
            QueryKind::SingleGroupby1_1_12 => "single-groupby-1-1-12",
            QueryKind::SingleGroupby1_8_1 => "single-groupby-1-8-1",
            QueryKind::SingleGroupby5_1_1 => "single-groupby-5-1-1",
            QueryKind::SingleGroupby5_1_12 => "single-groupby-5-1-12",
            QueryKind::SingleGroupby5_8_1 => "single-groupby-5-8-1",
            QueryKind::CpuMaxAll1 => "cpu-max-all-1",
            QueryKind::CpuMaxAll8 => "cpu-max-all-8",
            QueryKind::DoubleGroupby1 => "double-groupby-1",
            QueryKind::DoubleGroupby5 => "double-groupby-5",
            QueryKind::DoubleGroupbyAll => "double-groupby-all",
            QueryKind::HighCpu1 => "high-cpu-1",
            QueryKind::HighCpuAll => "high-cpu-all",
            QueryKind::Lastpoint => "lastpoint",
            QueryKind::GroupbyOrderbyLimit => "groupby-orderby-limit",
        }
    }

    /// The query with this TSBS name.
    pub fn from_name(name: &str) -> Option<QueryKind> {
        QueryKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// The SQL of one instance of `kind` over the data of `config`.
///
/// `rng_seed` picks the time window (inside the generated range, aligned to the minute
/// from its start; clamped to the whole range when the data is shorter than the
/// window) and the hosts. Timestamps are RFC 3339 literals compared with `time`.
///
/// `lastpoint` is emitted in the portable join form every SQL engine runs; the store's
/// `latest('cpu')` table function answers it without a join, see [`lastpoint_fast_sql`].
pub fn query_sql(config: &TsbsConfig, kind: QueryKind, rng_seed: u64) -> String {
    let mut rng = Rng::new(rng_seed);
    match kind {
        QueryKind::SingleGroupby1_1_1 => single_groupby(config, &mut rng, 1, 1, 1),
        QueryKind::SingleGroupby1_1_12 => single_groupby(config, &mut rng, 1, 1, 12),
        QueryKind::SingleGroupby1_8_1 => single_groupby(config, &mut rng, 1, 8, 1),
        QueryKind::SingleGroupby5_1_1 => single_groupby(config, &mut rng, 5, 1, 1),
        QueryKind::SingleGroupby5_1_12 => single_groupby(config, &mut rng, 5, 1, 12),
        QueryKind::SingleGroupby5_8_1 => single_groupby(config, &mut rng, 5, 8, 1),
        QueryKind::CpuMaxAll1 => cpu_max_all(config, &mut rng, 1),
        QueryKind::CpuMaxAll8 => cpu_max_all(config, &mut rng, 8),
        QueryKind::DoubleGroupby1 => double_groupby(config, &mut rng, 1),
        QueryKind::DoubleGroupby5 => double_groupby(config, &mut rng, 5),
        QueryKind::DoubleGroupbyAll => double_groupby(config, &mut rng, FIELDS.len()),
        QueryKind::HighCpu1 => high_cpu(config, &mut rng, true),
        QueryKind::HighCpuAll => high_cpu(config, &mut rng, false),
        QueryKind::Lastpoint => format!(
            "SELECT c.* FROM {TABLE} c \
             JOIN (SELECT hostname, max(time) AS t FROM {TABLE} GROUP BY hostname) m \
             ON c.hostname = m.hostname AND c.time = m.t"
        ),
        QueryKind::GroupbyOrderbyLimit => {
            let end = random_end(config, &mut rng);
            format!(
                "SELECT date_bin(INTERVAL '1 minute', time) AS minute, max(usage_user) \
                 FROM {TABLE} WHERE time < '{}' \
                 GROUP BY minute ORDER BY minute DESC LIMIT 5",
                rfc3339(end)
            )
        }
    }
}

/// `lastpoint` through the store's `latest(table)` table function, which reads each
/// series' newest row directly instead of joining the table with its per-host maximum.
pub fn lastpoint_fast_sql() -> &'static str {
    "SELECT * FROM latest('cpu')"
}

fn single_groupby(
    config: &TsbsConfig,
    rng: &mut Rng,
    fields: usize,
    hosts: usize,
    hours: i64,
) -> String {
    let (start, end) = window(config, rng, hours * HOUR_MS);
    let hosts = host_predicate(config, rng, hosts);
    format!(
        "SELECT date_bin(INTERVAL '1 minute', time) AS minute, {} FROM {TABLE} \
         WHERE {hosts} AND {} GROUP BY minute ORDER BY minute",
        aggregates("max", fields),
        time_range(start, end)
    )
}

fn cpu_max_all(config: &TsbsConfig, rng: &mut Rng, hosts: usize) -> String {
    let (start, end) = window(config, rng, 8 * HOUR_MS);
    let hosts = host_predicate(config, rng, hosts);
    format!(
        "SELECT date_bin(INTERVAL '1 hour', time) AS hour, {} FROM {TABLE} \
         WHERE {hosts} AND {} GROUP BY hour ORDER BY hour",
        aggregates("max", FIELDS.len()),
        time_range(start, end)
    )
}

fn double_groupby(config: &TsbsConfig, rng: &mut Rng, fields: usize) -> String {
    let (start, end) = window(config, rng, 12 * HOUR_MS);
    format!(
        "SELECT date_bin(INTERVAL '1 hour', time) AS hour, hostname, {} FROM {TABLE} \
         WHERE {} GROUP BY hour, hostname ORDER BY hour, hostname",
        aggregates("avg", fields),
        time_range(start, end)
    )
}

fn high_cpu(config: &TsbsConfig, rng: &mut Rng, one_host: bool) -> String {
    let (start, end) = window(config, rng, 12 * HOUR_MS);
    let host = if one_host {
        format!(" AND {}", host_predicate(config, rng, 1))
    } else {
        String::new()
    };
    format!(
        "SELECT * FROM {TABLE} WHERE usage_user > 90.0{host} AND {}",
        time_range(start, end)
    )
}

/// `max(usage_user) AS max_usage_user, ...` over the first `fields` fields.
fn aggregates(function: &str, fields: usize) -> String {
    FIELDS
        .iter()
        .take(fields)
        .map(|f| format!("{function}({f}) AS {function}_{f}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn time_range(start: i64, end: i64) -> String {
    format!("time >= '{}' AND time < '{}'", rfc3339(start), rfc3339(end))
}

/// `hostname = 'host_3'` or `hostname IN ('host_1', 'host_9', ...)` for `n` distinct
/// random hosts (all of them when the scale is smaller than `n`).
fn host_predicate(config: &TsbsConfig, rng: &mut Rng, n: usize) -> String {
    let scale = config.scale.max(1);
    let mut hosts: Vec<usize> = if n >= scale {
        (0..scale).collect()
    } else {
        let mut chosen = Vec::with_capacity(n);
        while chosen.len() < n {
            let h = rng.index(scale);
            if !chosen.contains(&h) {
                chosen.push(h);
            }
        }
        chosen
    };
    hosts.sort_unstable();
    match hosts.as_slice() {
        [one] => format!("hostname = 'host_{one}'"),
        many => {
            let list: Vec<String> = many.iter().map(|h| format!("'host_{h}'")).collect();
            format!("hostname IN ({})", list.join(", "))
        }
    }
}

/// A random `[start, start + len)` inside the data, minute-aligned from its start; the
/// whole range when the data is shorter than `len`.
fn window(config: &TsbsConfig, rng: &mut Rng, len: i64) -> (i64, i64) {
    let (data_start, data_end) = (config.start_ms, config.end_ms());
    let slack = data_end.saturating_sub(data_start).saturating_sub(len);
    if slack < 0 {
        return (data_start, data_end);
    }
    let minutes = rng.below((slack / MINUTE_MS) as u64 + 1) as i64;
    let start = data_start + minutes * MINUTE_MS;
    (start, start + len)
}

/// A random minute-aligned end time in `(start, end]` of the data.
fn random_end(config: &TsbsConfig, rng: &mut Rng) -> i64 {
    let (data_start, data_end) = (config.start_ms, config.end_ms());
    let minutes = data_end.saturating_sub(data_start) / MINUTE_MS;
    if minutes < 1 {
        return data_end;
    }
    data_start + (1 + rng.below(minutes as u64) as i64) * MINUTE_MS
}

/// `2026-01-01T05:00:00Z` (with `.123` when there are milliseconds).
pub(crate) fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let (hh, mm, ss) = (sod / 3600, sod % 3600 / 60, sod % 60);
    if millis == 0 {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{millis:03}Z")
    }
}

/// Proleptic Gregorian date of a day number since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`), to avoid a date-time dependency for one formatting need.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(super::super::START_2026_MS), "2026-01-01T00:00:00Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400_000 + 5_025), "2000-02-29T00:00:05.025Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn names_are_the_tsbs_names_and_unique() {
        let names: std::collections::HashSet<&str> =
            QueryKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(names.len(), 15);
        for kind in QueryKind::ALL {
            assert_eq!(QueryKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(QueryKind::SingleGroupby5_8_1.name(), "single-groupby-5-8-1");
    }

    #[test]
    fn each_query_mentions_what_it_computes() {
        let config = TsbsConfig::quick();
        let q = |kind| query_sql(&config, kind, 11);
        let sql = q(QueryKind::SingleGroupby1_1_1);
        assert!(
            sql.starts_with(
                "SELECT date_bin(INTERVAL '1 minute', time) AS minute, max(usage_user)"
            )
        );
        assert!(
            sql.contains("hostname = 'host_") && sql.ends_with("GROUP BY minute ORDER BY minute")
        );
        assert!(!q(QueryKind::SingleGroupby1_1_12).contains("usage_system"));
        assert_eq!(
            q(QueryKind::SingleGroupby1_8_1).matches("'host_").count(),
            8
        );
        let five = q(QueryKind::SingleGroupby5_8_1);
        assert!(five.contains("max(usage_iowait)") && !five.contains("usage_irq"));
        let all = q(QueryKind::CpuMaxAll8);
        assert!(all.contains("INTERVAL '1 hour'") && all.contains("max(usage_guest_nice)"));
        assert_eq!(all.matches("'host_").count(), 8);
        let dg = q(QueryKind::DoubleGroupbyAll);
        assert!(dg.contains("avg(usage_guest_nice)") && dg.contains("GROUP BY hour, hostname"));
        assert!(!dg.contains("'host_"));
        assert!(q(QueryKind::DoubleGroupby1).contains("avg(usage_user)"));
        let high = q(QueryKind::HighCpu1);
        assert!(high.contains("usage_user > 90.0") && high.contains("hostname = 'host_"));
        assert!(!q(QueryKind::HighCpuAll).contains("hostname"));
        assert!(q(QueryKind::Lastpoint).contains("max(time)"));
        assert!(q(QueryKind::GroupbyOrderbyLimit).ends_with("ORDER BY minute DESC LIMIT 5"));
        assert_eq!(lastpoint_fast_sql(), "SELECT * FROM latest('cpu')");
    }

    /// Every `'...Z'` literal of a query, as milliseconds, by matching against the
    /// formatter over the generated range.
    fn times(config: &TsbsConfig, sql: &str) -> Vec<i64> {
        let mut out = Vec::new();
        let mut t = config.start_ms;
        while t <= config.end_ms() {
            if sql.contains(&format!("'{}'", rfc3339(t))) {
                out.push(t);
            }
            t += MINUTE_MS;
        }
        out
    }

    #[test]
    fn windows_stay_inside_the_data_and_follow_the_seed() {
        let config = TsbsConfig::quick();
        for seed in 0..20 {
            let sql = query_sql(&config, QueryKind::SingleGroupby1_1_12, seed);
            let t = times(&config, &sql);
            assert_eq!(t.len(), 2, "{sql}");
            assert_eq!(t[1] - t[0], 12 * HOUR_MS);
            let end = times(
                &config,
                &query_sql(&config, QueryKind::GroupbyOrderbyLimit, seed),
            );
            assert_eq!(end.len(), 1);
            assert!(end[0] > config.start_ms);
        }
        let a = query_sql(&config, QueryKind::CpuMaxAll8, 1);
        assert_eq!(a, query_sql(&config, QueryKind::CpuMaxAll8, 1));
        assert_ne!(a, query_sql(&config, QueryKind::CpuMaxAll8, 2));
    }

    #[test]
    fn short_data_clamps_the_window_and_small_scales_use_every_host() {
        let config = TsbsConfig {
            scale: 3,
            duration_ms: 30 * MINUTE_MS,
            ..TsbsConfig::standard()
        };
        let sql = query_sql(&config, QueryKind::SingleGroupby5_8_1, 4);
        assert_eq!(times(&config, &sql), [config.start_ms, config.end_ms()]);
        assert!(
            sql.contains("hostname IN ('host_0', 'host_1', 'host_2')"),
            "{sql}"
        );
    }
}
