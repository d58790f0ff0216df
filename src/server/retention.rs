//! Retention policies as users write them: in the `[tier]` section of the config
//! file and in the body of `GET/PUT /api/v1/admin/retention`. Both convert to and
//! from [`crate::tier::Policies`] here, so the two spellings cannot drift apart.
//!
//! ```toml
//! [tier.retention]
//! hot_for_secs = 86400              # default policy
//! raw_for_secs = 7776000            # raw rows in cold for 90 days (absent: forever)
//! levels = [{ width_secs = 300, keep_for_secs = 2592000 }, { width_secs = 3600 }]
//!
//! [[tier.retention.policies]]                # first match wins
//! tables = "node_*"
//! series = '{env="dev"}'             # optional: only these series
//! raw_for_secs = 604800
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::tier::{Policies, RetentionPolicy, RollupLevel, SeriesSelector, TierError};

/// One rollup level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelSettings {
    /// Bucket width in seconds (divides a day: 60, 300, 3600, ...).
    pub width_secs: u64,
    /// Seconds the level's rows are kept; absent = forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_for_secs: Option<u64>,
}

/// One retention policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySettings {
    /// Table name glob (`*`, `?`).
    pub tables: String,
    /// Series selector (`{env="dev"}`); absent = every series of the tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<String>,
    /// Seconds rows stay in memory; absent = the default's. Ignored for policies
    /// with a series selector: the hot window is per table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hot_for_secs: Option<u64>,
    /// Seconds raw rows stay in the cold tier; absent = forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_for_secs: Option<u64>,
    /// Rollup levels, finest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub levels: Vec<LevelSettings>,
}

/// The default policy and the list, as one document; every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSettings {
    /// Seconds rows of tables no policy names stay in memory.
    pub hot_for_secs: u64,
    /// Seconds raw rows stay in the cold tier unless a policy says otherwise; absent =
    /// forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_for_secs: Option<u64>,
    /// Rollup levels of series no policy names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub levels: Vec<LevelSettings>,
    /// First match wins.
    pub policies: Vec<PolicySettings>,
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn levels(list: &[LevelSettings]) -> Vec<RollupLevel> {
    list.iter()
        .map(|l| RollupLevel {
            width: secs(l.width_secs),
            keep_for: l.keep_for_secs.map(secs),
        })
        .collect()
}

fn level_settings(list: &[RollupLevel]) -> Vec<LevelSettings> {
    list.iter()
        .map(|l| LevelSettings {
            width_secs: l.width.as_secs(),
            keep_for_secs: l.keep_for.map(|d| d.as_secs()),
        })
        .collect()
}

impl RetentionSettings {
    /// Validated policies; errors name the policy and what is wrong with it.
    pub fn to_policies(&self) -> Result<Policies, TierError> {
        let default = RetentionPolicy {
            tables: "*".into(),
            series: None,
            hot_for: secs(self.hot_for_secs),
            raw_for: self.raw_for_secs.map(secs),
            levels: levels(&self.levels),
        };
        let list = self
            .policies
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let series = match &p.series {
                    Some(text) => Some(SeriesSelector::parse(text).map_err(|e| {
                        TierError::Config(format!("policy {i} ({:?}): {e}", p.tables))
                    })?),
                    None => None,
                };
                Ok(RetentionPolicy {
                    tables: p.tables.clone(),
                    series,
                    hot_for: secs(p.hot_for_secs.unwrap_or(self.hot_for_secs)),
                    raw_for: p.raw_for_secs.map(secs),
                    levels: levels(&p.levels),
                })
            })
            .collect::<Result<Vec<_>, TierError>>()?;
        Policies::new(list, default)
    }

    /// The settings that describe `policies`.
    pub fn from_policies(policies: &Policies) -> RetentionSettings {
        let default = policies.default_policy();
        RetentionSettings {
            hot_for_secs: default.hot_for.as_secs(),
            raw_for_secs: default.raw_for.map(|d| d.as_secs()),
            levels: level_settings(&default.levels),
            policies: policies
                .list()
                .iter()
                .map(|p| PolicySettings {
                    tables: p.tables.clone(),
                    series: p.series.as_ref().map(|s| s.text().to_string()),
                    hot_for_secs: p.series.is_none().then_some(p.hot_for.as_secs()),
                    raw_for_secs: p.raw_for.map(|d| d.as_secs()),
                    levels: level_settings(&p.levels),
                })
                .collect(),
        }
    }
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings::from_policies(&Policies::default())
    }
}
