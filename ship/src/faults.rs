//! [`FaultyStore`]: an object store that fails, hangs or is slow on command, wrapped
//! around a real one, for tests of what shipping, restoring and replicas do when the
//! object store misbehaves. [`FaultPlan`] says what happens to each request now.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::{BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

/// What happens to requests now; change it at any time.
#[derive(Debug, Default)]
pub struct FaultPlan {
    fail: AtomicBool,
    hang: AtomicBool,
    lose_answers: AtomicBool,
    delay_ms: AtomicU64,
    requests: AtomicU64,
    failed: AtomicU64,
}

impl FaultPlan {
    /// Every request fails with an error (or succeeds again).
    pub fn fail_all(&self, on: bool) {
        self.fail.store(on, Ordering::SeqCst);
    }

    /// Every request hangs until it is cancelled (a time limit) (or answers again).
    pub fn hang(&self, on: bool) {
        self.hang.store(on, Ordering::SeqCst);
    }

    /// Every create (a put that must not overwrite, as an index is written) is done,
    /// then answered with an error, as when an answer is lost (a time limit, a dropped
    /// connection after the store committed).
    pub fn lose_answers(&self, on: bool) {
        self.lose_answers.store(on, Ordering::SeqCst);
    }

    /// Every request waits this long first (zero: none).
    pub fn delay(&self, delay: Duration) {
        self.delay_ms.store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Requests seen.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// Requests failed on purpose.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::SeqCst)
    }
}

/// An object store that obeys a [`FaultPlan`] before passing each request on.
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    plan: Arc<FaultPlan>,
}

impl FaultyStore {
    /// `inner`, misbehaving as `plan` says.
    pub fn wrap(inner: Arc<dyn ObjectStore>, plan: Arc<FaultPlan>) -> Arc<dyn ObjectStore> {
        Arc::new(FaultyStore { inner, plan })
    }

    async fn gate(&self, op: &str) -> object_store::Result<()> {
        self.plan.requests.fetch_add(1, Ordering::SeqCst);
        let delay = self.plan.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if self.plan.hang.load(Ordering::SeqCst) {
            // Until the caller's time limit cancels it.
            std::future::pending::<()>().await;
        }
        if self.plan.fail.load(Ordering::SeqCst) {
            self.plan.failed.fetch_add(1, Ordering::SeqCst);
            return Err(object_store::Error::Generic {
                store: "faulty",
                source: format!("injected failure of {op}").into(),
            });
        }
        Ok(())
    }
}

impl FaultyStore {
    /// A stream of one injected error, if every request fails now (for the requests
    /// that answer with a stream).
    fn failing_stream<T: Send + 'static>(
        &self,
        op: &'static str,
    ) -> Option<BoxStream<'static, object_store::Result<T>>> {
        if !self.plan.fail.load(Ordering::SeqCst) {
            return None;
        }
        self.plan.failed.fetch_add(1, Ordering::SeqCst);
        let error = object_store::Error::Generic {
            store: "faulty",
            source: format!("injected failure of {op}").into(),
        };
        Some(futures_util::stream::once(async move { Err(error) }).boxed())
    }
}

impl std::fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.gate("put").await?;
        let create = matches!(opts.mode, object_store::PutMode::Create);
        let done = self.inner.put_opts(location, payload, opts).await?;
        if create && self.plan.lose_answers.load(Ordering::SeqCst) {
            self.plan.failed.fetch_add(1, Ordering::SeqCst);
            return Err(object_store::Error::Generic {
                store: "faulty",
                source: "injected loss of the answer to a put that was done".into(),
            });
        }
        Ok(done)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.gate("put_multipart").await?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.gate("get").await?;
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        if let Some(failed) = self.failing_stream("delete") {
            return failed;
        }
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        if let Some(failed) = self.failing_stream("list") {
            return failed;
        }
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.gate("list").await?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.gate("copy").await?;
        self.inner.copy_opts(from, to, options).await
    }
}
