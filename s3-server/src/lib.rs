//! An S3-compatible server on loopback, serving the S3 REST API over a directory
//! (`s3s-fs`), for tests and benchmarks of the order store's backups: they reach it
//! through `object_store`'s S3 client exactly as they would reach S3.
//!
//! ```no_run
//! let root = std::env::temp_dir().join("s3-root");
//! let server = orderlog_s3_server::S3Server::start(&root, "backups").expect("started");
//! // s3://backups, with these settings (object_store's configuration keys):
//! for (key, value) in server.client_options() {
//!     println!("{key}={value}");
//! }
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;

/// The access key the server accepts.
pub const ACCESS_KEY: &str = "orderlog-test";
/// Its secret.
pub const SECRET_KEY: &str = "orderlog-test-secret";
/// The region clients sign for.
pub const REGION: &str = "us-east-1";

/// A running server; stopped when dropped.
#[derive(Debug)]
pub struct S3Server {
    addr: SocketAddr,
    bucket: String,
    root: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Why the server did not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// The directory could not be made, or the socket bound.
    Io(std::io::Error),
    /// `s3s-fs` refused the directory.
    Backend(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Io(e) => write!(f, "the S3 server did not start: {e}"),
            StartError::Backend(e) => write!(f, "the S3 server's directory was refused: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

impl From<std::io::Error> for StartError {
    fn from(e: std::io::Error) -> Self {
        StartError::Io(e)
    }
}

impl S3Server {
    /// Serves `root` (created if needed) on a free loopback port, with one bucket,
    /// `bucket` (the directory `root/bucket`), on a thread of its own.
    pub fn start(root: &Path, bucket: &str) -> Result<S3Server, StartError> {
        std::fs::create_dir_all(root.join(bucket))?;
        let fs =
            s3s_fs::FileSystem::new(root).map_err(|e| StartError::Backend(format!("{e:?}")))?;
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("s3-server")
            .enable_all()
            .build()?;
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name("s3-server".into()).spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => listener,
                    Err(e) => {
                        tracing::error!(error = %e, "the S3 server's socket");
                        return;
                    }
                };
                let http = ConnBuilder::new(TokioExecutor::new());
                loop {
                    tokio::select! {
                        _ = &mut stopped => return,
                        accepted = listener.accept() => {
                            let Ok((socket, _)) = accepted else { continue };
                            let conn = http
                                .serve_connection(TokioIo::new(socket), service.clone())
                                .into_owned();
                            tokio::spawn(async move {
                                let _ = conn.await;
                            });
                        }
                    }
                }
            });
        })?;
        Ok(S3Server {
            addr,
            bucket: bucket.to_owned(),
            root: root.to_path_buf(),
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `s3://<bucket>`.
    pub fn url(&self) -> String {
        format!("s3://{}", self.bucket)
    }

    /// The directory holding the bucket's objects (`root/bucket`).
    pub fn bucket_dir(&self) -> PathBuf {
        self.root.join(&self.bucket)
    }

    /// What a client needs besides the URL, as `object_store` configuration keys.
    pub fn client_options(&self) -> Vec<(String, String)> {
        [
            ("aws_endpoint", self.endpoint()),
            ("aws_allow_http", "true".to_owned()),
            ("aws_region", REGION.to_owned()),
            ("aws_access_key_id", ACCESS_KEY.to_owned()),
            ("aws_secret_access_key", SECRET_KEY.to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// The same as the environment variables the `orderlog` tool reads.
    pub fn env(&self) -> Vec<(String, String)> {
        self.client_options().into_iter().map(|(k, v)| (k.to_uppercase(), v)).collect()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
