//! Real components for resize's tests, shared by every crate that talks
//! to S3: a `moto_server` child process on a loopback port (moto from
//! PyPI, installed into `<workspace>/.venv` by `.ci/run` and `cargo xtask
//! ci`), a [`World`] of one bucket with a client for the test's own calls,
//! an S3 proxy that counts requests and injects faults ([`proxy`]), a local
//! Lambda Runtime API ([`runtime_api`]), both on hyper, the workspace's
//! fixtures, large sources made from them ([`large`]), and manifests
//! checked against their schema ([`manifest`], jsonschema from the same
//! `.venv`).
//!
//! A dev-dependency only; nothing here ships.

pub mod large;
pub mod manifest;
pub mod proxy;
pub mod runtime_api;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
pub use manifest::{assert_valid_manifest, validate_manifest};

/// How long a test waits for an answer, a server or an exit.
pub const WAIT: Duration = Duration::from_secs(60);

/// The bucket every [`World`] creates.
pub const BUCKET: &str = "resize-photos";

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The bytes of `fixtures/<rel>`.
pub fn fixture(rel: &str) -> Vec<u8> {
    let path = workspace_root().join("fixtures").join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()))
}

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A tokio runtime with `workers` threads and a listener on a free
/// loopback port: what the test servers (the Runtime API, the S3 proxy)
/// run on.
pub(crate) fn loopback_server(
    workers: usize,
) -> std::io::Result<(tokio::runtime::Runtime, tokio::net::TcpListener, u16)> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind(("127.0.0.1", 0)))?;
    let port = listener.local_addr()?.port();
    Ok((runtime, listener, port))
}

/// Copies a child's output into a shared string, line by line.
pub fn capture(stream: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            lock(&into).push_str(&String::from_utf8_lossy(&line));
            line.clear();
        }
    });
}

// ---------------------------------------------------------------- moto ----

/// A `moto_server` child process, killed on drop.
pub struct Moto {
    child: Child,
    pub port: u16,
    log: Arc<Mutex<String>>,
}

fn moto_binary() -> PathBuf {
    let path = std::env::var_os("MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv/bin/moto_server"));
    assert!(
        path.is_file(),
        "moto_server not found at {} (set MOTO_SERVER to override). The Lambda tests need a real \
         S3-compatible server: run `.ci/run` or `cargo xtask ci`, which install moto into \
         <workspace>/.venv, or `python3 -m venv .venv && .venv/bin/pip install 'moto[server]'`.",
        path.display()
    );
    path
}

impl Moto {
    /// Starts moto on a free loopback port.
    pub fn start() -> Result<Moto, String> {
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port().map_err(|e| format!("cannot bind a loopback port: {e}"))?;
            match Moto::start_on(port) {
                Ok(m) => return Ok(m),
                Err(e) => last = e,
            }
        }
        Err(format!("moto_server did not start: {last}"))
    }

    /// Starts moto on `port` and waits until it answers HTTP.
    pub fn start_on(port: u16) -> Result<Moto, String> {
        let mut child = Command::new(moto_binary())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run moto_server: {e}"))?;
        let log = Arc::new(Mutex::new(String::new()));
        // Both are `Some`: they were piped above, and nothing took them yet.
        if let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) {
            capture(out, Arc::clone(&log));
            capture(err, Arc::clone(&log));
        }
        let mut moto = Moto { child, port, log };
        let started = Instant::now();
        loop {
            if http_get_status(port).is_some_and(|s| s == 200) {
                return Ok(moto);
            }
            if let Ok(Some(status)) = moto.child.try_wait() {
                return Err(format!("moto_server exited ({status}): {}", lock(&moto.log)));
            }
            if started.elapsed() > WAIT {
                return Err(format!(
                    "moto_server did not answer on port {port}: {}",
                    lock(&moto.log)
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until moto has logged every request made before this call
    /// (a marker request is logged after them).
    pub fn sync(&self, client: &Client, rt: &tokio::runtime::Runtime) {
        static MARKS: AtomicU64 = AtomicU64::new(0);
        let mark = format!("sync-marker-{}", MARKS.fetch_add(1, Ordering::Relaxed));
        let _ = rt.block_on(client.head_object().bucket(BUCKET).key(&mark).send());
        let started = Instant::now();
        while self.requests(&format!("HEAD /{BUCKET}/{mark}")) == 0 {
            assert!(started.elapsed() < WAIT, "moto never logged {mark}");
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Requests moto logged whose request line starts with `line_prefix`,
    /// e.g. `PUT /bucket/resized/`.
    pub fn requests(&self, line_prefix: &str) -> usize {
        // werkzeug colours some request lines, so match inside the line.
        lock(&self.log)
            .lines()
            .filter(|l| l.contains(line_prefix))
            .count()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_get_status(port: u16) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

// --------------------------------------------------------------- world ----

/// An S3 server with one bucket, and a client for the test's own calls.
pub struct World {
    pub rt: tokio::runtime::Runtime,
    pub moto: Option<Moto>,
    pub port: u16,
    pub client: Client,
}

pub fn client(port: u16) -> Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .force_path_style(true)
        .build();
    Client::from_conf(config)
}

impl World {
    /// Starts moto and creates [`BUCKET`].
    pub fn new() -> Result<World, String> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start a tokio runtime: {e}"))?;
        let moto = Moto::start()?;
        let port = moto.port;
        let world = World {
            rt,
            moto: Some(moto),
            port,
            client: client(port),
        };
        world.create_bucket()?;
        Ok(world)
    }

    /// The S3 server, unless [`World::kill_moto`] stopped it.
    pub fn moto(&self) -> Option<&Moto> {
        self.moto.as_ref()
    }

    pub fn create_bucket(&self) -> Result<(), String> {
        self.rt
            .block_on(self.client.create_bucket().bucket(BUCKET).send())
            .map(drop)
            .map_err(|e| format!("cannot create bucket {BUCKET}: {e:?}"))
    }

    /// Creates bucket `name` in `region` (moto keeps the region and names
    /// it in HeadBucket's `x-amz-bucket-region`).
    pub fn create_bucket_in(&self, name: &str, region: &str) -> Result<(), String> {
        use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
        let config = CreateBucketConfiguration::builder()
            .location_constraint(BucketLocationConstraint::from(region))
            .build();
        self.rt
            .block_on(
                self.client
                    .create_bucket()
                    .bucket(name)
                    .create_bucket_configuration(config)
                    .send(),
            )
            .map(drop)
            .map_err(|e| format!("cannot create bucket {name} in {region}: {e:?}"))
    }

    /// Kills the S3 server.
    pub fn kill_moto(&mut self) {
        self.moto = None;
    }

    /// Starts a fresh (empty) S3 server on the same port.
    pub fn restart_moto(&mut self) -> Result<(), String> {
        let started = Instant::now();
        let moto = loop {
            match Moto::start_on(self.port) {
                Ok(m) => break m,
                // The old socket may linger for a moment.
                Err(e) if started.elapsed() > WAIT => return Err(format!("moto did not restart: {e}")),
                Err(_) => thread::sleep(Duration::from_millis(200)),
            }
        };
        self.moto = Some(moto);
        self.create_bucket()
    }

    /// Turns versioning on for [`BUCKET`]: every put keeps the one before.
    pub fn enable_versioning(&self) {
        use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
        let config = VersioningConfiguration::builder()
            .status(BucketVersioningStatus::Enabled)
            .build();
        self.rt
            .block_on(
                self.client
                    .put_bucket_versioning()
                    .bucket(BUCKET)
                    .versioning_configuration(config)
                    .send(),
            )
            .unwrap_or_else(|e| panic!("enable versioning: {e:?}"));
    }

    pub fn put(&self, key: &str, bytes: Vec<u8>, metadata: &[(&str, &str)]) {
        let mut req = self
            .client
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .content_type("image/jpeg")
            .body(ByteStream::from(bytes));
        for (k, v) in metadata {
            req = req.metadata(*k, *v);
        }
        self.rt
            .block_on(req.send())
            .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
    }

    /// Puts every object, 32 at a time (no metadata).
    pub fn put_many(&self, objects: &[(String, Vec<u8>)]) {
        for batch in objects.chunks(32) {
            self.rt.block_on(async {
                let tasks: Vec<_> = batch
                    .iter()
                    .map(|(key, bytes)| {
                        let req = self
                            .client
                            .put_object()
                            .bucket(BUCKET)
                            .key(key)
                            .body(ByteStream::from(bytes.clone()));
                        let key = key.clone();
                        tokio::spawn(async move { req.send().await.map_err(|e| format!("put {key}: {e:?}")) })
                    })
                    .collect();
                for task in tasks {
                    if let Err(e) = task.await.map_err(|e| e.to_string()).and_then(|r| r.map(drop)) {
                        panic!("{e}");
                    }
                }
            });
        }
    }

    pub fn put_fixture(&self, key: &str, fixture_path: &str) {
        self.put(key, fixture(fixture_path), &[]);
    }

    pub fn get(&self, key: &str) -> Vec<u8> {
        self.rt
            .block_on(async {
                let out = self.client.get_object().bucket(BUCKET).key(key).send().await?;
                Ok::<_, Box<dyn std::error::Error>>(out.body.collect().await?.into_bytes().to_vec())
            })
            .unwrap_or_else(|e| panic!("get {key}: {e:?}"))
    }

    pub fn head(&self, key: &str) -> Option<aws_sdk_s3::operation::head_object::HeadObjectOutput> {
        match self
            .rt
            .block_on(self.client.head_object().bucket(BUCKET).key(key).send())
        {
            Ok(h) => Some(h),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => None,
            Err(e) => panic!("head {key}: {e:?}"),
        }
    }

    pub fn delete(&self, key: &str) {
        self.rt
            .block_on(self.client.delete_object().bucket(BUCKET).key(key).send())
            .unwrap_or_else(|e| panic!("delete {key}: {e:?}"));
    }

    /// Every key under `prefix`, sorted.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .rt
                .block_on(
                    self.client
                        .list_objects_v2()
                        .bucket(BUCKET)
                        .prefix(prefix)
                        .set_continuation_token(token)
                        .send(),
                )
                .unwrap_or_else(|e| panic!("list {prefix}: {e:?}"));
            keys.extend(out.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
            match out.next_continuation_token() {
                Some(t) if out.is_truncated() == Some(true) => token = Some(t.to_owned()),
                _ => break,
            }
        }
        keys.sort();
        keys
    }

    /// Pixel size of the image at `key`.
    pub fn dimensions(&self, key: &str) -> (u32, u32) {
        let img = image::load_from_memory(&self.get(key)).unwrap_or_else(|e| panic!("decode {key}: {e}"));
        (img.width(), img.height())
    }
}
