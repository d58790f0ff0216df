//! Garbage collection: Parquet objects under the cold root that the manifest does
//! not reference are deleted.
//!
//! They are leftovers: files a failed tiering run wrote before its manifest commit,
//! or replaced files whose deletion failed. Collection runs at the start of a tiering
//! run, under the run lock, so it never sees a file a concurrent run has written but
//! not yet committed; and only when leftovers may exist (the first run after open,
//! and the run after one that failed or could not delete a file), since it lists the
//! whole cold root. Only objects laid out like the tier's own
//! (`<table>/level=<l>/date=<d>/<name>.parquet`) are candidates: anything else a
//! user keeps under the root is left alone.

use futures::TryStreamExt;
use object_store::ObjectStoreExt;

use super::{ColdTier, TierError};

/// Whether `path` is laid out like a file the tier writes.
fn is_tier_file(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    parts.len() == 4
        && parts[1].starts_with("level=")
        && parts[2].starts_with("date=")
        && parts[3].ends_with(".parquet")
}

impl ColdTier {
    /// Deletes unreferenced tier files; returns how many. Call with the run lock held.
    pub(super) async fn collect_garbage(&self) -> Result<usize, TierError> {
        let manifest = self.manifest();
        let referenced = manifest.referenced();
        let listed: Vec<_> = self.store.list(Some(&self.root)).try_collect().await?;
        let mut deleted = 0;
        for meta in listed {
            let path = meta.location.as_ref();
            if is_tier_file(path) && !referenced.contains(path) {
                self.store.delete(&meta.location).await?;
                tracing::info!(path, "deleted unreferenced cold file");
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::is_tier_file;

    #[test]
    fn only_tier_layout_is_collected() {
        assert!(is_tier_file("cpu/level=raw/date=2026-01-01/1-2.parquet"));
        assert!(is_tier_file("cpu/level=5m/date=2026-01-01/1-2.v7.parquet"));
        assert!(!is_tier_file("_manifest/00000000000000000001.json"));
        assert!(!is_tier_file("exports/cpu.parquet"));
        assert!(!is_tier_file("cpu/level=raw/date=2026-01-01/notes.txt"));
    }
}
