//! [`Target`]: where a backup lives. A URL opens an object store through the
//! `object_store` crate (its S3 client, or a directory), under a prefix; every request
//! has a time limit, and every error names the object.
//!
//! - `s3://bucket/prefix`: S3 or a server that speaks its API. Endpoint, region and
//!   credentials come from the usual environment variables (`AWS_ENDPOINT`,
//!   `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
//!   `AWS_ALLOW_HTTP`, ...), then from the options given, which win. Index objects are
//!   created with `If-None-Match: *`.
//! - `file:///absolute/path`: a directory (created if missing). Objects are written to a
//!   temporary file and renamed into place; an index object is created with a hard link
//!   that fails if the name exists.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::error::{Result, ShipError};

/// The longest a single request may take by default.
pub const REQUEST_TIMEOUT_DEFAULT: Duration = Duration::from_secs(60);

/// A backup's place: an object store and a prefix in it.
#[derive(Debug, Clone)]
pub struct Target {
    url: String,
    store: Arc<dyn ObjectStore>,
    prefix: String,
    timeout: Duration,
}

impl Target {
    /// Opens `url` (`s3://bucket[/prefix]` or `file:///path`); `options` are
    /// `object_store` configuration keys (`aws_endpoint`, `aws_access_key_id`, ...) that
    /// override the environment.
    pub fn open(url: &str, options: &[(String, String)]) -> Result<Target> {
        let bad = |reason: String| ShipError::Url { url: url.to_owned(), reason };
        let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        let prefix = parsed.path().trim_matches('/').to_owned();
        match parsed.scheme() {
            "s3" => {
                if parsed.host_str().is_none_or(str::is_empty) {
                    return Err(bad("no bucket: write s3://bucket/prefix".into()));
                }
                // TLS by rustls with ring, the one provider this build enables; a
                // provider the application installed first is kept.
                let _ = rustls::crypto::ring::default_provider().install_default();
                let mut builder = AmazonS3Builder::from_env()
                    .with_url(url)
                    .with_conditional_put(S3ConditionalPut::ETagMatch);
                for (key, value) in options {
                    let key: AmazonS3ConfigKey =
                        key.parse().map_err(|e| bad(format!("option {key:?}: {e}")))?;
                    builder = builder.with_config(key, value);
                }
                let store = builder.build().map_err(|e| bad(e.to_string()))?;
                Ok(Target::new(url, Arc::new(store), &prefix))
            }
            "file" => {
                if !options.is_empty() {
                    return Err(bad("a file:// target takes no options".into()));
                }
                if parsed.host_str().is_some_and(|h| !h.is_empty()) {
                    return Err(bad("write file:///absolute/path (no host)".into()));
                }
                let dir = parsed.to_file_path().map_err(|()| bad("not a local path".into()))?;
                std::fs::create_dir_all(&dir).map_err(ShipError::io("create directory", &dir))?;
                // Synced: a backup acknowledged (and the log it covers then truncated) must
                // survive a power cut of the machine holding it.
                let store = LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|e| bad(e.to_string()))?
                    .with_fsync(true);
                Ok(Target::new(url, Arc::new(store), ""))
            }
            other => Err(bad(format!("scheme {other:?}: use s3:// or file://"))),
        }
    }

    /// A target over any object store (tests wrap one to inject faults).
    pub fn new(url: &str, store: Arc<dyn ObjectStore>, prefix: &str) -> Target {
        Target {
            url: url.to_owned(),
            store,
            prefix: prefix.trim_matches('/').to_owned(),
            timeout: REQUEST_TIMEOUT_DEFAULT,
        }
    }

    /// The same target with another time limit per request.
    pub fn with_timeout(mut self, timeout: Duration) -> Target {
        self.timeout = timeout;
        self
    }

    /// The URL it was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The object store itself.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    fn path(&self, name: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(name)
        } else {
            ObjectPath::from(format!("{}/{name}", self.prefix))
        }
    }

    /// The name under the prefix of an object's full path.
    fn name_of(&self, path: &ObjectPath) -> String {
        let full = path.as_ref();
        if self.prefix.is_empty() {
            return full.to_owned();
        }
        full.strip_prefix(&self.prefix).map_or(full, |n| n.trim_start_matches('/')).to_owned()
    }

    async fn timed<T>(
        &self,
        op: &'static str,
        name: &str,
        request: impl Future<Output = object_store::Result<T>>,
    ) -> Result<T> {
        self.timed_for(op, name, 0, request).await
    }

    /// [`Target::timed`] for a request moving `bytes`: the time limit grows by a second
    /// per MiB, so a large object on a slow link is not cut off while it moves.
    async fn timed_for<T>(
        &self,
        op: &'static str,
        name: &str,
        bytes: u64,
        request: impl Future<Output = object_store::Result<T>>,
    ) -> Result<T> {
        let limit = self.timeout + Duration::from_secs(bytes >> 20);
        match tokio::time::timeout(limit, request).await {
            Ok(result) => result.map_err(ShipError::store(op, name)),
            Err(_) => Err(ShipError::Timeout {
                op,
                object: name.to_owned(),
                timeout_ms: limit.as_millis() as u64,
            }),
        }
    }

    /// Writes `name` (replacing it if it exists).
    pub async fn put(&self, name: &str, bytes: Bytes) -> Result<()> {
        let path = self.path(name);
        let len = bytes.len() as u64;
        self.timed_for("put", name, len, self.store.put(&path, PutPayload::from_bytes(bytes)))
            .await?;
        Ok(())
    }

    /// Creates `name`: [`ShipError::ObjectStore`] with `AlreadyExists` if it exists.
    pub async fn create(&self, name: &str, bytes: Bytes) -> Result<()> {
        let path = self.path(name);
        let options = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
        self.timed(
            "create",
            name,
            self.store.put_opts(&path, PutPayload::from_bytes(bytes), options),
        )
        .await?;
        Ok(())
    }

    /// Reads the whole of `name`.
    pub async fn get(&self, name: &str) -> Result<Bytes> {
        self.get_sized(name, 0).await
    }

    /// Reads the whole of `name`, expected to be about `bytes` long (its time limit
    /// grows with it).
    pub async fn get_sized(&self, name: &str, bytes: u64) -> Result<Bytes> {
        let path = self.path(name);
        self.timed_for("get", name, bytes, async { self.store.get(&path).await?.bytes().await })
            .await
    }

    /// Deletes `name` (a missing object is not an error).
    pub async fn delete(&self, name: &str) -> Result<()> {
        let path = self.path(name);
        match self.timed("delete", name, self.store.delete(&path)).await {
            Err(ShipError::ObjectStore { source, .. })
                if matches!(*source, object_store::Error::NotFound { .. }) =>
            {
                Ok(())
            }
            other => other,
        }
    }

    /// The names of the "directories" directly under `dir` (their last component).
    pub async fn list_dirs(&self, dir: &str) -> Result<Vec<String>> {
        let path = self.path(dir);
        let listed = self.timed("list", dir, self.store.list_with_delimiter(Some(&path))).await?;
        let mut names: Vec<String> =
            listed.common_prefixes.iter().filter_map(|p| p.filename().map(str::to_owned)).collect();
        names.sort();
        Ok(names)
    }

    /// The names (under the prefix) and sizes of the objects directly under `dir`.
    pub async fn list_objects(&self, dir: &str) -> Result<Vec<(String, u64)>> {
        let path = self.path(dir);
        let listed = self.timed("list", dir, self.store.list_with_delimiter(Some(&path))).await?;
        let mut objects: Vec<(String, u64)> =
            listed.objects.iter().map(|o| (self.name_of(&o.location), o.size)).collect();
        objects.sort();
        Ok(objects)
    }
}

/// Whether `error` says the object does not exist.
pub fn is_not_found(error: &ShipError) -> bool {
    matches!(error, ShipError::ObjectStore { source, .. }
        if matches!(**source, object_store::Error::NotFound { .. }))
}

/// Whether `error` says the object already exists (a create lost to another writer).
pub fn is_already_exists(error: &ShipError) -> bool {
    matches!(error, ShipError::ObjectStore { source, .. }
        if matches!(**source, object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }))
}
