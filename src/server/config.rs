//! The server's configuration: one TOML file, every setting with a default, flags on
//! top. `metricstore serve --print-config` prints the effective configuration.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use std::time::Duration;

use crate::server::retention::RetentionSettings;
use crate::{DurabilityConfig, FsyncPolicy, StorageConfig};

/// Everything `metricstore serve` can be told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Where the store keeps its files.
    pub data_dir: PathBuf,
    /// HTTP listen address.
    pub http_addr: SocketAddr,
    /// Whether to listen for StatsD.
    pub statsd_enabled: bool,
    /// StatsD UDP listen address.
    pub statsd_addr: SocketAddr,
    /// Seconds between StatsD flushes.
    pub statsd_flush_secs: u64,
    /// Largest request body accepted, in bytes (after decompression for compressed
    /// bodies).
    pub max_body_bytes: usize,
    /// Seconds a query may run before it is cancelled.
    pub query_timeout_secs: u64,
    /// Where `COPY ... TO` from HTTP and Flight SQL clients may write local files;
    /// empty = `<data_dir>/exports`. Object store URLs (`s3://...`) are not limited
    /// by it. A client's export never lands elsewhere on this machine.
    pub export_dir: PathBuf,
    /// A bearer token every HTTP and Flight SQL request must carry
    /// (`authorization: Bearer <token>`), except the `/-/healthy` and `/-/ready`
    /// probes; unset = no authentication. `METRICSTORE_AUTH_TOKEN` overrides it, so
    /// that the secret need not sit in a file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<String>,
    /// The Arrow Flight SQL (gRPC) endpoint.
    pub flight: FlightSettings,
    /// The storage engine.
    pub storage: StorageSettings,
    /// The write-ahead log and checkpoints.
    pub durability: DurabilitySettings,
    /// The cold tier: where aging rows go as Parquet.
    pub tier: TierSettings,
    /// Alert rules and where their notifications go.
    pub alerting: AlertingSettings,
}

/// Alerting ([`crate::alert::AlertingConfig`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertingSettings {
    /// Evaluate rules; off = no rules, no notifications.
    pub enabled: bool,
    /// YAML rule files (Prometheus' shape with `sql`), re-read by `POST /-/reload`.
    pub rule_files: Vec<PathBuf>,
    /// Alertmanager base URLs (`http://host:9093`); alerts go to `/api/v2/alerts`.
    pub alertmanager_urls: Vec<String>,
    /// Webhook URLs that get Alertmanager's webhook JSON.
    pub webhook_urls: Vec<String>,
    /// Seconds between evaluations of groups that name no interval.
    pub evaluation_interval_secs: u64,
    /// Seconds between re-sends of a firing alert.
    pub resend_delay_secs: u64,
    /// This server's URL as receivers should link to it (`generatorURL`); empty =
    /// `http://<http_addr>`.
    pub external_url: String,
    /// Write the `alerts` history table.
    pub history: bool,
}

impl Default for AlertingSettings {
    fn default() -> Self {
        AlertingSettings {
            enabled: true,
            rule_files: Vec::new(),
            alertmanager_urls: Vec::new(),
            webhook_urls: Vec::new(),
            evaluation_interval_secs: 60,
            resend_delay_secs: 60,
            external_url: String::new(),
            history: true,
        }
    }
}

impl AlertingSettings {
    /// The alerting configuration of a server at `http_addr` keeping its files in
    /// `data_dir` (`<data_dir>/alerts`).
    pub fn to_config(
        &self,
        data_dir: &std::path::Path,
        http_addr: SocketAddr,
    ) -> crate::alert::AlertingConfig {
        use crate::alert::{Receiver, ReceiverKind};
        let receivers = self
            .alertmanager_urls
            .iter()
            .map(|url| (ReceiverKind::Alertmanager, url))
            .chain(
                self.webhook_urls
                    .iter()
                    .map(|url| (ReceiverKind::Webhook, url)),
            )
            .map(|(kind, url)| Receiver {
                kind,
                url: url.clone(),
            })
            .collect();
        crate::alert::AlertingConfig {
            rule_files: self.rule_files.clone(),
            default_interval: Duration::from_secs(self.evaluation_interval_secs.max(1)),
            resend_delay: Duration::from_secs(self.resend_delay_secs),
            state_dir: Some(data_dir.join("alerts")),
            external_url: if self.external_url.is_empty() {
                format!("http://{http_addr}")
            } else {
                self.external_url.clone()
            },
            receivers,
            history: self.history,
            ..crate::alert::AlertingConfig::default()
        }
    }
}

/// How rows age out of memory ([`crate::TierConfig`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TierSettings {
    /// Move aging rows to Parquet; off = everything stays in memory.
    pub enabled: bool,
    /// Directory of the Parquet files and manifest; empty = `<data_dir>/cold`.
    pub dir: PathBuf,
    /// An object store URL instead of `dir`: `s3://bucket/prefix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Object store options (`aws_endpoint`, `aws_region`, `aws_access_key_id`,
    /// `aws_secret_access_key`, `aws_allow_http`, ...; `AWS_*` environment variables
    /// apply too). Also used by `COPY ... TO 's3://...'`.
    pub store_options: std::collections::BTreeMap<String, String>,
    /// Seconds between tiering runs (`POST /api/v1/admin/tier` runs one now).
    pub interval_secs: u64,
    /// The default policy and the per-table / per-series ones (`[tier.retention]`).
    pub retention: RetentionSettings,
}

impl Default for TierSettings {
    fn default() -> Self {
        TierSettings {
            enabled: true,
            dir: PathBuf::new(),
            url: None,
            store_options: Default::default(),
            interval_secs: 600,
            retention: RetentionSettings::default(),
        }
    }
}

impl TierSettings {
    /// The engine's configuration for `data_dir`, `None` when disabled.
    pub fn to_config(
        &self,
        data_dir: &std::path::Path,
    ) -> Result<Option<crate::TierConfig>, ConfigError> {
        if !self.enabled {
            return Ok(None);
        }
        let policies = self
            .retention
            .to_policies()
            .map_err(|e| ConfigError::Invalid(format!("[tier]: {e}")))?;
        Ok(Some(crate::TierConfig {
            dir: if self.dir.as_os_str().is_empty() {
                data_dir.join("cold")
            } else {
                self.dir.clone()
            },
            url: self.url.clone(),
            store_options: self.store_options.clone(),
            policies,
        }))
    }
}

/// The Arrow Flight SQL endpoint: queries, prepared statements, metadata and bulk
/// ingest over gRPC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlightSettings {
    /// Whether to listen for Flight SQL.
    pub enabled: bool,
    /// gRPC listen address.
    pub addr: SocketAddr,
    /// Send tag columns as plain strings instead of dictionaries, for clients that
    /// cannot read dictionary-encoded results. Dictionaries are several times cheaper
    /// to send.
    pub hydrate_dictionaries: bool,
}

impl Default for FlightSettings {
    fn default() -> Self {
        FlightSettings {
            enabled: true,
            addr: SocketAddr::from(([127, 0, 0, 1], 50051)),
            hydrate_dictionaries: false,
        }
    }
}

/// How the hot tier survives restarts ([`crate::DurabilityConfig`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DurabilitySettings {
    /// Keep a WAL and checkpoints under `data_dir`; off = memory only, lost on exit.
    pub enabled: bool,
    /// `always` (fsync before acknowledging), `interval` (fsync every
    /// `fsync_interval_ms`: a power failure loses at most that window, a process crash
    /// nothing) or `never` (leave it to the OS).
    pub fsync: FsyncPolicy,
    /// Milliseconds between syncs under `interval`.
    pub fsync_interval_ms: u64,
    /// Bytes per WAL segment file.
    pub segment_bytes: u64,
    /// Seconds between checkpoints; 0 = only at shutdown and on request.
    pub checkpoint_interval_secs: u64,
    /// Refuse to start when recovery finds damage, instead of starting with what
    /// could be read.
    pub refuse_on_corruption: bool,
}

impl Default for DurabilitySettings {
    fn default() -> Self {
        let d = DurabilityConfig::new("");
        DurabilitySettings {
            enabled: true,
            fsync: d.fsync,
            fsync_interval_ms: d.fsync_interval.as_millis() as u64,
            segment_bytes: d.segment_bytes,
            checkpoint_interval_secs: d.checkpoint_interval.map_or(0, |i| i.as_secs()),
            refuse_on_corruption: d.refuse_on_corruption,
        }
    }
}

impl DurabilitySettings {
    /// The engine's configuration for `data_dir`, `None` when disabled.
    pub fn to_config(&self, data_dir: &std::path::Path) -> Option<DurabilityConfig> {
        self.enabled.then(|| DurabilityConfig {
            dir: data_dir.to_path_buf(),
            fsync: self.fsync,
            fsync_interval: Duration::from_millis(self.fsync_interval_ms.max(1)),
            segment_bytes: self.segment_bytes,
            checkpoint_interval: (self.checkpoint_interval_secs > 0)
                .then(|| Duration::from_secs(self.checkpoint_interval_secs)),
            refuse_on_corruption: self.refuse_on_corruption,
        })
    }
}

/// The storage settings of [`StorageConfig`], as they appear in the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// Rows per sealed chunk.
    pub chunk_size: usize,
    /// Chunks also seal when a row crosses a multiple of this span (ms).
    pub chunk_span_ms: i64,
    /// How late a sample may arrive behind its series' newest (ms).
    pub out_of_order_window_ms: i64,
    /// Bytes the hot tier may hold; 0 = no limit.
    pub memory_limit_bytes: usize,
    /// Series per table; 0 = no limit.
    pub max_series_per_table: usize,
    /// Distinct values per tag key and table; 0 = no limit.
    pub max_tag_values_per_key: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            data_dir: PathBuf::from("./data"),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 9201)),
            statsd_enabled: true,
            statsd_addr: SocketAddr::from(([127, 0, 0, 1], 8125)),
            statsd_flush_secs: 10,
            max_body_bytes: 64 << 20,
            query_timeout_secs: 60,
            export_dir: PathBuf::new(),
            auth_token: None,
            flight: FlightSettings::default(),
            storage: StorageSettings::default(),
            durability: DurabilitySettings::default(),
            tier: TierSettings::default(),
            alerting: AlertingSettings::default(),
        }
    }
}

impl Default for StorageSettings {
    fn default() -> Self {
        let d = StorageConfig::default();
        StorageSettings {
            chunk_size: d.chunk_size,
            chunk_span_ms: d.chunk_span_ms,
            out_of_order_window_ms: d.out_of_order_window_ms,
            memory_limit_bytes: 0,
            max_series_per_table: 0,
            max_tag_values_per_key: 0,
        }
    }
}

impl StorageSettings {
    /// The engine's configuration.
    pub fn to_config(&self) -> StorageConfig {
        let limit = |n: usize| (n > 0).then_some(n);
        StorageConfig {
            chunk_size: self.chunk_size.max(1),
            chunk_span_ms: self.chunk_span_ms,
            out_of_order_window_ms: self.out_of_order_window_ms,
            memory_limit: limit(self.memory_limit_bytes),
            max_series_per_table: limit(self.max_series_per_table),
            max_tag_values_per_key: limit(self.max_tag_values_per_key),
        }
    }
}

/// Why a configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// Settings that cannot work together.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl ServerConfig {
    /// The directory clients' local `COPY ... TO` exports go to, absolute (a path
    /// outside it is refused, and `..` cannot climb out of a relative one).
    pub fn export_root(&self) -> PathBuf {
        let dir = if self.export_dir.as_os_str().is_empty() {
            self.data_dir.join("exports")
        } else {
            self.export_dir.clone()
        };
        std::path::absolute(&dir).unwrap_or(dir)
    }

    /// Reads `path`; missing settings take their defaults, unknown ones are errors.
    pub fn from_file(path: &std::path::Path) -> Result<ServerConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Refuses settings that cannot work together.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self
            .auth_token
            .as_deref()
            .is_some_and(|t| t.trim().is_empty())
        {
            return Err(ConfigError::Invalid(
                "auth_token is empty: remove it to disable authentication".into(),
            ));
        }
        if let Some(t) = &self.auth_token
            && (t.trim() != t || t.contains(char::is_control))
        {
            return Err(ConfigError::Invalid(
                "auth_token must not hold spaces at either end or control characters".into(),
            ));
        }
        Ok(())
    }

    /// The configuration as TOML.
    ///
    /// The auth token is printed as `"<redacted>"`: `--print-config` output ends up in
    /// terminals, logs and bug reports.
    pub fn to_toml(&self) -> String {
        let mut shown = self.clone();
        if shown.auth_token.is_some() {
            shown.auth_token = Some("<redacted>".into());
        }
        for (key, value) in shown.tier.store_options.iter_mut() {
            if ["secret", "token", "password"]
                .iter()
                .any(|s| key.contains(s))
            {
                *value = "<redacted>".into();
            }
        }
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot print config: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_configs_hide_the_auth_token() {
        let mut config = ServerConfig {
            auth_token: Some("s3cret-token".into()),
            ..ServerConfig::default()
        };
        config.tier.store_options.extend([
            (
                "aws_secret_access_key".to_string(),
                "s3cret-key".to_string(),
            ),
            ("aws_region".to_string(), "eu-west-1".to_string()),
        ]);
        let text = config.to_toml();
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("eu-west-1"), "{text}");
        assert!(text.contains("auth_token = \"<redacted>\""), "{text}");
    }

    #[test]
    fn defaults_round_trip_through_toml() {
        let config = ServerConfig::default();
        let text = config.to_toml();
        assert!(text.contains("http_addr = \"127.0.0.1:9201\""), "{text}");
        assert!(
            text.contains("[flight]\nenabled = true\naddr = \"127.0.0.1:50051\""),
            "{text}"
        );
        assert!(!text.contains("auth_token"), "{text}");
        assert_eq!(toml::from_str::<ServerConfig>(&text).unwrap(), config);
    }

    #[test]
    fn partial_files_take_defaults_and_unknown_keys_are_refused() {
        let c: ServerConfig =
            toml::from_str("http_addr = \"127.0.0.1:1\"\n[storage]\nchunk_size = 8\n").unwrap();
        assert_eq!(c.http_addr.port(), 1);
        assert_eq!(c.storage.chunk_size, 8);
        assert_eq!(c.statsd_flush_secs, 10);
        let c: ServerConfig =
            toml::from_str("auth_token = \"t\"\n[flight]\nenabled = false\n").unwrap();
        assert_eq!(c.auth_token.as_deref(), Some("t"));
        assert!(!c.flight.enabled);
        assert_eq!(c.flight.addr.port(), 50051);
        // Printed with the token hidden, everything else as it was.
        let mut printed: ServerConfig = toml::from_str(&c.to_toml()).unwrap();
        assert_eq!(printed.auth_token.as_deref(), Some("<redacted>"));
        printed.auth_token = c.auth_token.clone();
        assert_eq!(printed, c);
        let empty: ServerConfig = toml::from_str("auth_token = \"\"").unwrap();
        assert!(empty.check().is_err());
        assert!(c.check().is_ok());
        let err = toml::from_str::<ServerConfig>("htp_addr = 1").unwrap_err();
        assert!(
            err.to_string().contains("unknown field `htp_addr`"),
            "{err}"
        );
    }

    /// Every TOML example in the README is a valid configuration (and its retention
    /// policies validate), so the documentation cannot drift from the code.
    #[test]
    fn readme_examples_parse() {
        let readme = include_str!("../../README.md");
        let mut found = 0;
        for block in readme.split("```toml").skip(1) {
            let text = block.split("```").next().unwrap_or_default();
            let config: ServerConfig = toml::from_str(text)
                .unwrap_or_else(|e| panic!("README example does not parse: {e}\n{text}"));
            config
                .tier
                .to_config(std::path::Path::new("data"))
                .unwrap_or_else(|e| panic!("README example is invalid: {e}\n{text}"));
            found += 1;
        }
        assert!(found >= 1, "no TOML examples in the README");
    }
}
