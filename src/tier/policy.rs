//! Retention policies: which rows stay hot for how long, how long raw rows stay in
//! the cold tier, and which rollup levels exist.
//!
//! A policy matches by table-name glob and, optionally, a series selector
//! (`{env="dev", job=~"batch.*"}`, Prometheus semantics: anchored regexes, a missing
//! label reads as empty). The first policy that matches wins; the default covers the
//! rest.
//!
//! The hot window is a property of a whole table (each table has one
//! `tiered_until`, which is what keeps every row in exactly one tier), so it comes
//! from the first policy that matches the table and has no series selector. Raw
//! retention and rollup levels apply per series: a policy with a selector can keep the
//! `env="dev"` series of a table for a week and the rest for a year.

use std::fmt;
use std::time::Duration;

use crate::storage::Matcher;

use super::TierError;

/// A series selector of a policy: the text as the user wrote it and its matchers.
#[derive(Debug, Clone)]
pub struct SeriesSelector {
    text: String,
    matchers: Vec<Matcher>,
}

impl SeriesSelector {
    /// Parses `{label="value", ...}` (matchers `=`, `!=`, `=~`, `!~`).
    pub fn parse(text: &str) -> Result<SeriesSelector, TierError> {
        let bad = |why: String| TierError::Config(format!("series selector {text:?}: {why}"));
        let expr = promql_parser::parser::parse(text).map_err(bad)?;
        let promql_parser::parser::Expr::VectorSelector(vs) = expr else {
            return Err(bad("expected `{label=\"value\", ...}`".into()));
        };
        if vs.name.is_some() || !vs.matchers.or_matchers.is_empty() {
            return Err(bad(
                "name the tables with the policy's table glob; `or` is not supported".into(),
            ));
        }
        let matchers = vs
            .matchers
            .matchers
            .iter()
            .map(|m| Matcher::from_promql(m).map_err(|e| bad(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SeriesSelector {
            text: text.to_string(),
            matchers,
        })
    }

    /// The selector as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Its matchers, for the label index.
    pub fn matchers(&self) -> &[Matcher] {
        &self.matchers
    }

    /// Whether a series with these labels is selected (`label` looks one up).
    pub fn matches<'a>(&self, label: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.matchers.iter().all(|m| m.matches(label(m.name())))
    }
}

impl PartialEq for SeriesSelector {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

/// A resolution level of rollups: one row per series and `width` bucket, kept for
/// `keep_for` (`None`: forever).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollupLevel {
    /// Bucket width, a whole number of seconds.
    pub width: Duration,
    /// How long rollup rows stay in the cold tier.
    pub keep_for: Option<Duration>,
}

impl RollupLevel {
    /// The level's name in paths and the manifest: `5m`, `1h`, `1d`, `90s`.
    pub fn name(&self) -> String {
        compact_duration(self.width)
    }
}

/// `300s` → `5m`: the largest unit that divides the duration.
pub fn compact_duration(d: Duration) -> String {
    let secs = d.as_secs();
    for (unit, len) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs >= len && secs.is_multiple_of(len) {
            return format!("{}{unit}", secs / len);
        }
    }
    format!("{secs}s")
}

/// How long rows stay in each place.
#[derive(Debug, Clone, PartialEq)]
pub struct RetentionPolicy {
    /// Table name glob: `*` matches any run of characters, `?` one character.
    pub tables: String,
    /// Only these series of the tables (`None`: all of them).
    pub series: Option<SeriesSelector>,
    /// How long rows stay in memory.
    pub hot_for: Duration,
    /// How long raw rows stay in the cold tier (`None`: forever).
    pub raw_for: Option<Duration>,
    /// Rollup levels, finest first.
    pub levels: Vec<RollupLevel>,
}

impl RetentionPolicy {
    /// Every table and series, hot for `hot_for`, raw kept forever, no rollups.
    pub fn all(hot_for: Duration) -> RetentionPolicy {
        RetentionPolicy {
            tables: "*".into(),
            series: None,
            hot_for,
            raw_for: None,
            levels: Vec::new(),
        }
    }

    /// Whether the policy covers `table` (any of its series).
    pub fn covers_table(&self, table: &str) -> bool {
        glob(&self.tables, table)
    }

    /// Checks the policy on its own; `what` names it in errors.
    pub fn validate(&self, what: &str) -> Result<(), TierError> {
        let bad = |why: String| Err(TierError::Config(format!("{what}: {why}")));
        if self.tables.is_empty() {
            return bad("empty table glob".into());
        }
        for (i, level) in self.levels.iter().enumerate() {
            let secs = level.width.as_secs();
            if secs == 0 || level.width.subsec_nanos() != 0 {
                return bad(format!(
                    "level {i}: width must be a whole, positive number of seconds"
                ));
            }
            if !86_400u64.is_multiple_of(secs) && !secs.is_multiple_of(86_400) {
                return bad(format!(
                    "level {}: width must divide a day (or be whole days) so buckets align with days",
                    level.name()
                ));
            }
            if let Some(prev) = i.checked_sub(1).map(|p| self.levels[p])
                && (secs <= prev.width.as_secs() || !secs.is_multiple_of(prev.width.as_secs()))
            {
                return bad(format!(
                    "level {} must be coarser than and a multiple of level {}",
                    level.name(),
                    prev.name()
                ));
            }
        }
        Ok(())
    }
}

impl fmt::Display for RetentionPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tables {:?}", self.tables)?;
        if let Some(s) = &self.series {
            write!(f, " series {}", s.text())?;
        }
        Ok(())
    }
}

/// The policies in force, first match wins, and the default for the rest.
#[derive(Debug, Clone, PartialEq)]
pub struct Policies {
    list: Vec<RetentionPolicy>,
    default: RetentionPolicy,
}

impl Policies {
    /// Validates and builds: every policy must be well formed, and none may be
    /// shadowed whole by an earlier one with the same glob and selector.
    pub fn new(
        list: Vec<RetentionPolicy>,
        mut default: RetentionPolicy,
    ) -> Result<Policies, TierError> {
        for (i, p) in list.iter().enumerate() {
            p.validate(&format!("policy {i} ({p})"))?;
            if list[..i]
                .iter()
                .any(|q| q.tables == p.tables && q.series == p.series)
            {
                return Err(TierError::Config(format!(
                    "policy {i} ({p}) repeats an earlier policy (first match wins, so it would never apply)"
                )));
            }
        }
        default.tables = "*".into();
        default.series = None;
        default.validate("default policy")?;
        Ok(Policies { list, default })
    }

    /// Every table hot for `hot_for`, raw kept forever, no rollups.
    pub fn hot_for_all(hot_for: Duration) -> Policies {
        Policies {
            list: Vec::new(),
            default: RetentionPolicy::all(hot_for),
        }
    }

    /// The policies, first match wins.
    pub fn list(&self) -> &[RetentionPolicy] {
        &self.list
    }

    /// The policy of tables and series no other policy matches.
    pub fn default_policy(&self) -> &RetentionPolicy {
        &self.default
    }

    /// How long rows of `table` stay hot: the first table-wide policy that matches.
    pub fn hot_for(&self, table: &str) -> Duration {
        self.list
            .iter()
            .find(|p| p.series.is_none() && p.covers_table(table))
            .map_or(self.default.hot_for, |p| p.hot_for)
    }

    /// The policies that can apply to series of `table`, in order, ending with the
    /// first table-wide one (or the default): a series takes the first whose
    /// selector matches it.
    pub fn for_table(&self, table: &str) -> Vec<&RetentionPolicy> {
        let mut out = Vec::new();
        for p in self.list.iter().filter(|p| p.covers_table(table)) {
            out.push(p);
            if p.series.is_none() {
                return out;
            }
        }
        out.push(&self.default);
        out
    }

    /// The policy of one series of `table` (`label` looks its labels up).
    pub fn for_series<'a>(
        &self,
        table: &str,
        label: impl Fn(&str) -> Option<&'a str> + Copy,
    ) -> &RetentionPolicy {
        self.for_table(table)
            .into_iter()
            .find(|p| p.series.as_ref().is_none_or(|s| s.matches(label)))
            .unwrap_or(&self.default)
    }
}

impl Default for Policies {
    fn default() -> Self {
        Policies::hot_for_all(Duration::from_secs(24 * 3600))
    }
}

/// `*` and `?` glob matching over chars.
pub(crate) fn glob(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Classic two-pointer match with backtracking to the last star.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_shells() {
        assert!(glob("*", "anything"));
        assert!(glob("node_*", "node_cpu"));
        assert!(!glob("node_*", "go_gc"));
        assert!(glob("a?c*", "abcdef"));
        assert!(glob("*_total", "http_requests_total"));
        assert!(!glob("*_total", "http_requests_totals"));
        assert!(glob("", ""));
        assert!(!glob("", "x"));
    }

    fn hours(h: u64) -> Duration {
        Duration::from_secs(h * 3600)
    }

    fn policy(tables: &str, series: Option<&str>, hot: u64, raw: Option<u64>) -> RetentionPolicy {
        RetentionPolicy {
            tables: tables.into(),
            series: series.map(|s| SeriesSelector::parse(s).unwrap()),
            hot_for: hours(hot),
            raw_for: raw.map(hours),
            levels: Vec::new(),
        }
    }

    #[test]
    fn first_match_wins_per_series_and_hot_window_per_table() {
        let policies = Policies::new(
            vec![
                policy("cpu", Some(r#"{env="dev"}"#), 1, Some(24)),
                policy("c*", None, 2, Some(48)),
                policy("cpu", None, 3, Some(72)),
            ],
            RetentionPolicy::all(hours(4)),
        )
        .unwrap();
        // The selector policy does not set the table's hot window.
        assert_eq!(policies.hot_for("cpu"), hours(2));
        assert_eq!(policies.hot_for("mem"), hours(4));
        let dev = |l: &str| (l == "env").then_some("dev");
        let prod = |l: &str| (l == "env").then_some("prod");
        let none = |_: &str| None;
        assert_eq!(policies.for_series("cpu", dev).raw_for, Some(hours(24)));
        assert_eq!(policies.for_series("cpu", prod).raw_for, Some(hours(48)));
        assert_eq!(policies.for_series("cpu", none).raw_for, Some(hours(48)));
        assert_eq!(policies.for_series("mem", dev).raw_for, None);
        assert_eq!(policies.for_table("cpu").len(), 2);
        assert_eq!(policies.for_table("mem").len(), 1);
    }

    #[test]
    fn invalid_policies_are_refused_by_name() {
        let err = |list, default| Policies::new(list, default).unwrap_err().to_string();
        let e = err(
            vec![policy("", None, 1, None)],
            RetentionPolicy::all(hours(1)),
        );
        assert!(
            e.contains("policy 0") && e.contains("empty table glob"),
            "{e}"
        );
        let e = err(
            vec![policy("a*", None, 1, None), policy("a*", None, 2, None)],
            RetentionPolicy::all(hours(1)),
        );
        assert!(e.contains("policy 1") && e.contains("repeats"), "{e}");
        let mut levels = RetentionPolicy::all(hours(1));
        levels.levels = vec![
            RollupLevel {
                width: Duration::from_secs(3600),
                keep_for: None,
            },
            RollupLevel {
                width: Duration::from_secs(300),
                keep_for: None,
            },
        ];
        let e = err(Vec::new(), levels.clone());
        assert!(e.contains("level 5m must be coarser"), "{e}");
        levels.levels = vec![RollupLevel {
            width: Duration::from_secs(7 * 60),
            keep_for: None,
        }];
        assert!(err(Vec::new(), levels).contains("divide a day"));
        let e = SeriesSelector::parse("cpu{a=\"b\"}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("table glob"), "{e}");
        let e = SeriesSelector::parse("{a=~\"(\"}").unwrap_err().to_string();
        assert!(e.contains("series selector"), "{e}");
    }

    #[test]
    fn level_names_are_compact() {
        let name = |s| {
            RollupLevel {
                width: Duration::from_secs(s),
                keep_for: None,
            }
            .name()
        };
        assert_eq!(name(300), "5m");
        assert_eq!(name(3600), "1h");
        assert_eq!(name(86_400), "1d");
        assert_eq!(name(90), "90s");
    }
}
