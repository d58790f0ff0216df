//! Tiering against an object store that fails its N-th call, for every N through a
//! run: nothing is lost or duplicated, the next run finishes the job, and a restart
//! (a new cold tier over the same store) reads the same data.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arrow::util::pretty::pretty_format_batches;
use async_trait::async_trait;
use datafusion::execution::object_store::ObjectStoreUrl;
use futures::stream::BoxStream;
use metricstore::storage::Storage;
use metricstore::tier::ColdTier;
use metricstore::{StorageConfig, TagSet, TierConfig, WriteBatch};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

const START: i64 = 1_767_225_600_000;
const HOUR: i64 = 3_600_000;

/// Fails call number `fail_at` (counting from 1), then works again.
#[derive(Debug)]
struct FailingStore {
    inner: Arc<InMemory>,
    calls: AtomicUsize,
    fail_at: AtomicUsize,
}

impl fmt::Display for FailingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FailingStore")
    }
}

impl FailingStore {
    fn check(&self) -> object_store::Result<()> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.fail_at.load(Ordering::SeqCst) {
            return Err(object_store::Error::Generic {
                store: "FailingStore",
                source: format!("injected failure of call {n}").into(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl ObjectStore for FailingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.check()?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.check()?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.check()?;
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        match self.check() {
            Ok(()) => self.inner.delete_stream(locations),
            Err(e) => Box::pin(futures::stream::once(async move { Err(e) })),
        }
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        match self.check() {
            Ok(()) => self.inner.list(prefix),
            Err(e) => Box::pin(futures::stream::once(async move { Err(e) })),
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.check()?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.check()?;
        self.inner.copy_opts(from, to, options).await
    }
}

fn storage() -> Arc<Storage> {
    let storage = Arc::new(Storage::new(StorageConfig {
        chunk_size: 32,
        ..StorageConfig::default()
    }));
    for step in 0..(2 * 24 * 4) {
        let mut b = WriteBatch::new();
        for host in 0..3 {
            let tags = TagSet::new([("host", format!("h{host}"))]).unwrap();
            b.series("cpu", tags, &["user"])
                .push(START + step * 15 * 60_000, &[(step * (host + 1)) as f64])
                .unwrap();
        }
        storage.write(&b).unwrap();
    }
    storage
}

fn config() -> TierConfig {
    TierConfig {
        policies: metricstore::tier::Policies::hot_for_all(Duration::from_secs(6 * 3600)),
        ..TierConfig::new(std::env::temp_dir())
    }
}

async fn answer(storage: &Arc<Storage>, cold: &Arc<ColdTier>) -> String {
    let ctx = metricstore::query::session(storage.clone(), Some(cold.clone())).unwrap();
    let q = "SELECT host, count(*), sum(user), min(time), max(time) FROM cpu GROUP BY host ORDER BY host";
    let batches = ctx.sql(q).await.unwrap().collect().await.unwrap();
    pretty_format_batches(&batches).unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failing_call_is_survived() {
    let reference = {
        let storage = storage();
        let cold = Arc::new(
            ColdTier::with_store(
                config(),
                Arc::new(InMemory::new()),
                ObjectStoreUrl::parse("metricstore-cold://").unwrap(),
            )
            .await
            .unwrap(),
        );
        answer(&storage, &cold).await
    };
    let now = START + 2 * 24 * HOUR;
    let mut fail_at = 1;
    loop {
        let storage = storage();
        let inner = Arc::new(InMemory::new());
        let store = Arc::new(FailingStore {
            inner: inner.clone(),
            calls: AtomicUsize::new(0),
            fail_at: AtomicUsize::new(usize::MAX),
        });
        let url = ObjectStoreUrl::parse("metricstore-cold://").unwrap();
        let cold = Arc::new(
            ColdTier::with_store(config(), store.clone(), url.clone())
                .await
                .unwrap(),
        );
        // Count the calls of the tiering run only.
        store.calls.store(0, Ordering::SeqCst);
        store.fail_at.store(fail_at, Ordering::SeqCst);
        let failed = cold.run(&storage, now).await.is_err();
        store.fail_at.store(usize::MAX, Ordering::SeqCst);
        assert_eq!(
            answer(&storage, &cold).await,
            reference,
            "after failing call {fail_at}"
        );
        // The next run finishes the job; a restart reads the same manifest.
        cold.run(&storage, now).await.unwrap();
        assert_eq!(
            answer(&storage, &cold).await,
            reference,
            "rerun after call {fail_at}"
        );
        assert!(storage.tiered_until("cpu").is_some());
        let reopened = Arc::new(ColdTier::with_store(config(), store, url).await.unwrap());
        assert_eq!(reopened.manifest().version, cold.manifest().version);
        assert_eq!(
            answer(&storage, &reopened).await,
            reference,
            "restart after call {fail_at}"
        );
        if !failed {
            // Every call of a whole run has been failed once.
            assert!(fail_at > 3, "a run makes more than {fail_at} calls");
            break;
        }
        fail_at += 1;
    }
}
