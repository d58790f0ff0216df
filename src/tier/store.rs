//! The object stores behind the cold tier and exports.
//!
//! A location is `s3://bucket[/prefix]`, `file:///dir` or a plain directory path;
//! options are object_store's configuration keys (`aws_endpoint`,
//! `aws_access_key_id`, `aws_secret_access_key`, `aws_region`, `aws_allow_http`, ...),
//! on top of the standard `AWS_*` environment variables. [`StoreRegistry`] gives
//! `COPY ... TO 's3://bucket/...'` a store for any bucket, opened on first use with
//! the same options, so exports need no registration step.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;
use url::Url;

use super::TierError;

/// Opens the store at `location` (see the module docs); its root is the location.
pub fn open_store(
    location: &str,
    options: &BTreeMap<String, String>,
) -> Result<Arc<dyn ObjectStore>, TierError> {
    let bad = |why: String| TierError::Config(format!("object store {location:?}: {why}"));
    if let Some(rest) = location.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("no bucket name".into()));
        }
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        for (key, value) in options {
            let key: AmazonS3ConfigKey = key
                .parse()
                .map_err(|_| bad(format!("unknown option {key:?}")))?;
            builder = builder.with_config(key, value);
        }
        let store: Arc<dyn ObjectStore> = Arc::new(builder.build()?);
        let prefix = prefix.trim_matches('/');
        return Ok(if prefix.is_empty() {
            store
        } else {
            Arc::new(PrefixStore::new(store, prefix))
        });
    }
    let dir = match location.strip_prefix("file://") {
        Some(path) => path,
        None if location.contains("://") => {
            return Err(bad(
                "unsupported scheme (use s3://, file:// or a path)".into()
            ));
        }
        None => location,
    };
    if !options.is_empty() {
        return Err(bad("a local directory takes no options".into()));
    }
    std::fs::create_dir_all(dir).map_err(|e| bad(format!("cannot create directory: {e}")))?;
    Ok(Arc::new(
        LocalFileSystem::new_with_prefix(dir)?.with_automatic_cleanup(true),
    ))
}

/// DataFusion's registry plus stores opened on demand for `s3://` URLs.
#[derive(Debug)]
pub struct StoreRegistry {
    inner: DefaultObjectStoreRegistry,
    options: BTreeMap<String, String>,
}

impl StoreRegistry {
    /// A registry opening S3 buckets with `options` (the cold tier's, so one set of
    /// credentials and one endpoint serve both).
    pub fn new(options: BTreeMap<String, String>) -> StoreRegistry {
        StoreRegistry {
            inner: DefaultObjectStoreRegistry::new(),
            options,
        }
    }
}

impl ObjectStoreRegistry for StoreRegistry {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.inner.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> DfResult<Arc<dyn ObjectStore>> {
        self.inner.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> DfResult<Arc<dyn ObjectStore>> {
        if let Ok(store) = self.inner.get_store(url) {
            return Ok(store);
        }
        match (url.scheme(), url.host_str()) {
            ("s3", Some(bucket)) => {
                let store = open_store(&format!("s3://{bucket}"), &self.options)
                    .map_err(|e| DataFusionError::External(Box::new(e)))?;
                let root = Url::parse(&format!("s3://{bucket}"))
                    .map_err(|e| DataFusionError::External(Box::new(e)))?;
                self.inner.register_store(&root, store.clone());
                Ok(store)
            }
            _ => self.inner.get_store(url),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_locations_and_options_are_named() {
        let none = BTreeMap::new();
        let e = open_store("gs://bucket", &none).unwrap_err().to_string();
        assert!(
            e.contains("gs://bucket") && e.contains("unsupported scheme"),
            "{e}"
        );
        let e = open_store("s3://", &none).unwrap_err().to_string();
        assert!(e.contains("no bucket"), "{e}");
        let options = BTreeMap::from([("aws_colour".to_string(), "blue".to_string())]);
        let e = open_store("s3://b/p", &options).unwrap_err().to_string();
        assert!(e.contains("unknown option \"aws_colour\""), "{e}");
        let dir = std::env::temp_dir().join(format!("ms-store-{}", std::process::id()));
        let e = open_store(dir.to_str().unwrap(), &options)
            .unwrap_err()
            .to_string();
        assert!(e.contains("takes no options"), "{e}");
    }
}
