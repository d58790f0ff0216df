//! Rule files: the YAML shape Prometheus users know, with `sql` where Prometheus has
//! `expr`.
//!
//! ```yaml
//! groups:
//!   - name: node
//!     interval: 30s
//!     rules:
//!       - alert: HighCpu
//!         sql: SELECT host, usage AS value FROM latest('cpu') WHERE usage > 90
//!         for: 5m
//!         keep_firing_for: 2m
//!         labels: { severity: page }
//!         annotations:
//!           summary: "CPU of {{ $labels.host }} at {{ $value }}%"
//! ```
//!
//! This module only parses and checks the shape; whether the SQL plans is
//! [`super::eval`]'s business.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::AlertError;
use super::template::Template;

/// A rule file: groups of rules.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// The groups, each evaluated on its own schedule.
    #[serde(default)]
    pub groups: Vec<RuleGroup>,
}

/// Rules evaluated together, one after the other, every `interval`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleGroup {
    /// Unique among all groups.
    pub name: String,
    /// How often the group is evaluated; the configured default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<PromDuration>,
    /// The rules, evaluated in order.
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// One alerting rule: every row its SQL returns is a firing (or pending) instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The alert's name (label `alertname`); unique within its group.
    pub alert: String,
    /// The query. String columns are the instance's labels; its value is the numeric
    /// column `value`, or the only numeric one.
    pub sql: String,
    /// How long an instance must be returned before it fires (pending until then).
    #[serde(default, rename = "for", skip_serializing_if = "PromDuration::is_zero")]
    pub for_: PromDuration,
    /// How long a firing instance keeps firing after the query stops returning it.
    #[serde(default, skip_serializing_if = "PromDuration::is_zero")]
    pub keep_firing_for: PromDuration,
    /// Labels added to every instance (templated).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations of every instance (templated).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl RuleFile {
    /// Parses YAML (JSON is YAML too) and checks the shape.
    pub fn parse(text: &str) -> Result<RuleFile, AlertError> {
        let file: RuleFile =
            serde_yaml_ng::from_str(text).map_err(|e| AlertError::Parse(e.to_string()))?;
        let mut names = std::collections::BTreeSet::new();
        for group in &file.groups {
            if !names.insert(group.name.as_str()) {
                return Err(AlertError::Invalid(format!(
                    "group {:?} appears twice",
                    group.name
                )));
            }
            group.check()?;
        }
        Ok(file)
    }
}

impl RuleGroup {
    /// Parses one group from YAML or JSON and checks it.
    pub fn parse(text: &str) -> Result<RuleGroup, AlertError> {
        let group: RuleGroup =
            serde_yaml_ng::from_str(text).map_err(|e| AlertError::Parse(e.to_string()))?;
        group.check()?;
        Ok(group)
    }

    /// Refuses empty names, duplicate alert names, zero intervals and templates that
    /// do not parse.
    pub fn check(&self) -> Result<(), AlertError> {
        let bad = |m: String| Err(AlertError::Invalid(format!("group {:?}: {m}", self.name)));
        if self.name.trim().is_empty() {
            return Err(AlertError::Invalid("a group needs a name".into()));
        }
        if self.interval.is_some_and(|i| i.0.is_zero()) {
            return bad("interval must be positive".into());
        }
        let mut alerts = std::collections::BTreeSet::new();
        for rule in &self.rules {
            if rule.alert.trim().is_empty() {
                return bad("a rule needs an `alert` name".into());
            }
            if !alerts.insert(rule.alert.as_str()) {
                return bad(format!("alert {:?} appears twice", rule.alert));
            }
            if rule.sql.trim().is_empty() {
                return bad(format!("alert {:?} has no `sql`", rule.alert));
            }
            for text in rule.labels.values().chain(rule.annotations.values()) {
                Template::parse(text)
                    .map_err(|e| AlertError::Invalid(format!("alert {:?}: {e}", rule.alert)))?;
            }
        }
        Ok(())
    }
}

/// A duration in Prometheus' notation: `90s`, `5m`, `1h30m`, `2d`, `1w`, `250ms`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PromDuration(pub Duration);

impl PromDuration {
    /// Whether it is zero (the default of `for` and `keep_firing_for`).
    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }

    /// Milliseconds.
    pub fn as_millis(&self) -> i64 {
        self.0.as_millis().min(i64::MAX as u128) as i64
    }

    /// Parses Prometheus' notation; a bare number is seconds.
    pub fn parse(text: &str) -> Result<PromDuration, String> {
        let s = text.trim();
        if s.is_empty() {
            return Err("empty duration".into());
        }
        if let Ok(secs) = s.parse::<u64>() {
            return Ok(PromDuration(Duration::from_secs(secs)));
        }
        let mut total: u128 = 0;
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if digits == 0 {
                return Err(format!("invalid duration {text:?}: expected a number"));
            }
            let n: u128 = rest[..digits]
                .parse()
                .map_err(|_| format!("invalid duration {text:?}"))?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let ms: u128 = match &rest[..unit_len] {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                "w" => 7 * 86_400_000,
                "y" => 365 * 86_400_000,
                u => return Err(format!("invalid duration {text:?}: unknown unit {u:?}")),
            };
            rest = &rest[unit_len..];
            total = total.saturating_add(n.saturating_mul(ms));
        }
        let ms = u64::try_from(total).map_err(|_| format!("duration {text:?} is too long"))?;
        Ok(PromDuration(Duration::from_millis(ms)))
    }
}

impl fmt::Display for PromDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
            if ms >= size {
                write!(f, "{}{unit}", ms / size)?;
                ms %= size;
            }
        }
        Ok(())
    }
}

impl Serialize for PromDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // YAML gives `30` as a number and `30s` as a string; accept both.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(s) => Ok(PromDuration(Duration::from_secs(s))),
            Raw::Text(t) => PromDuration::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_prometheus_notation() {
        let ms = |s: &str| PromDuration::parse(s).map(|d| d.as_millis());
        assert_eq!(ms("30s"), Ok(30_000));
        assert_eq!(ms("5m"), Ok(300_000));
        assert_eq!(ms("1h30m"), Ok(5_400_000));
        assert_eq!(ms("250ms"), Ok(250));
        assert_eq!(ms("2d"), Ok(172_800_000));
        assert_eq!(ms("15"), Ok(15_000));
        assert!(ms("5x").is_err());
        assert!(ms("m").is_err());
        assert!(ms("").is_err());
        assert_eq!(PromDuration::parse("1h30m").unwrap().to_string(), "1h30m");
    }

    #[test]
    fn rule_files_parse_and_mistakes_are_named() {
        let file = RuleFile::parse(
            "groups:\n- name: g\n  interval: 30s\n  rules:\n  - alert: A\n    sql: SELECT 1 AS value\n    for: 5m\n    labels: {severity: page}\n",
        )
        .unwrap();
        let rule = &file.groups[0].rules[0];
        assert_eq!(rule.for_.as_millis(), 300_000);
        assert_eq!(file.groups[0].interval.unwrap().as_millis(), 30_000);
        let dup = RuleFile::parse(
            "groups:\n- name: g\n  rules:\n  - {alert: A, sql: x}\n  - {alert: A, sql: y}\n",
        );
        assert!(dup.unwrap_err().to_string().contains("appears twice"));
        let unknown = RuleFile::parse("groups:\n- name: g\n  rulez: []\n");
        assert!(unknown.unwrap_err().to_string().contains("rulez"));
        let bad_template = RuleGroup::parse(
            "{\"name\": \"g\", \"rules\": [{\"alert\": \"A\", \"sql\": \"x\", \"annotations\": {\"s\": \"{{ $nope }}\"}}]}",
        );
        assert!(bad_template.is_err());
    }
}
