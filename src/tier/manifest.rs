//! The cold tier's manifest: which Parquet files hold which table's rows, and up to
//! when each table has been moved out of memory.
//!
//! Stored as JSON at `<root>/_manifest/<version, 20 digits>.json`. A commit writes the
//! next version as a new object and never rewrites one, so a reader sees either the
//! old or the new manifest whole; the newest version is the one with the highest
//! number. Only one process tiers a root (MetricStore does not rely on conditional
//! puts, which not every store offers).

use std::collections::BTreeMap;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};

use super::TierError;

/// One Parquet file of a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path below the root.
    pub path: String,
    /// Earliest and latest row time (ms).
    pub min_time: i64,
    /// Latest row time (ms).
    pub max_time: i64,
    /// Rows in the file.
    pub rows: u64,
    /// File size in bytes.
    pub bytes: u64,
}

/// A table's cold part.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TableManifest {
    /// Rows before this time (ms) are in the files below, never in memory.
    pub tiered_until: i64,
    /// Tag columns the files hold, in order.
    pub tags: Vec<String>,
    /// Field columns the files hold, in order.
    pub fields: Vec<String>,
    /// The files, oldest first.
    pub files: Vec<FileEntry>,
    /// Raw retention has deleted rows before this time (ms) for some or all series:
    /// raw data is complete only from here on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_deleted_before: Option<i64>,
    /// Rollup files by level name (`5m`, `1h`); see [`super::rollup`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub levels: BTreeMap<String, LevelManifest>,
}

/// A table's rollup files of one level.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LevelManifest {
    /// Bucket width (ms).
    pub width_ms: i64,
    /// Tag columns the files hold, in order.
    pub tags: Vec<String>,
    /// Fields whose rollup columns the files hold, in order.
    pub fields: Vec<String>,
    /// The files, oldest first.
    pub files: Vec<FileEntry>,
}

/// One version of the manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Increases by one per commit; 0 = nothing tiered yet.
    pub version: u64,
    /// Per table.
    pub tables: BTreeMap<String, TableManifest>,
}

const DIR: &str = "_manifest";

fn version_path(root: &Path, version: u64) -> Path {
    root.clone()
        .join(DIR)
        .join(format!("{version:020}.json").as_str())
}

impl Manifest {
    /// The newest manifest under `root`, or an empty one.
    pub async fn load(store: &dyn ObjectStore, root: &Path) -> Result<Manifest, TierError> {
        let prefix = root.clone().join(DIR);
        let listed: Vec<_> = store.list(Some(&prefix)).try_collect().await?;
        let newest = listed
            .iter()
            .filter_map(|m| {
                m.location
                    .filename()?
                    .strip_suffix(".json")?
                    .parse::<u64>()
                    .ok()
            })
            .max();
        let Some(version) = newest else {
            return Ok(Manifest::default());
        };
        let path = version_path(root, version);
        let bytes = store.get(&path).await?.bytes().await?;
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| TierError::Manifest {
                path: path.to_string(),
                message: e.to_string(),
            })?;
        if manifest.version != version {
            return Err(TierError::Manifest {
                path: path.to_string(),
                message: format!("holds version {}", manifest.version),
            });
        }
        Ok(manifest)
    }

    /// Writes this manifest as version `self.version` (which must be new).
    pub async fn commit(&self, store: &dyn ObjectStore, root: &Path) -> Result<(), TierError> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| TierError::Manifest {
            path: version_path(root, self.version).to_string(),
            message: e.to_string(),
        })?;
        store
            .put(&version_path(root, self.version), bytes.into())
            .await?;
        Ok(())
    }

    /// Deletes manifest versions older than `keep_from` (best effort: a leftover old
    /// version is harmless).
    pub async fn remove_older(store: &dyn ObjectStore, root: &Path, keep_from: u64) {
        for version in keep_from.saturating_sub(16)..keep_from {
            let _ = store.delete(&version_path(root, version)).await;
        }
    }

    /// Every object the manifest references (garbage collection keeps these).
    pub fn referenced(&self) -> std::collections::HashSet<&str> {
        self.tables
            .values()
            .flat_map(|t| {
                let levels = t.levels.values().flat_map(|l| &l.files);
                t.files.iter().chain(levels).map(|f| f.path.as_str())
            })
            .collect()
    }

    /// When rows of `table` start being hot (`None`: nothing tiered).
    pub fn tiered_until(&self, table: &str) -> Option<i64> {
        self.tables.get(table).map(|t| t.tiered_until)
    }
}
