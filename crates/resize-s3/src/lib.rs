//! S3 behind resize-core's [`Storage`] trait.
//!
//! [`S3Store`] is one bucket. The core is synchronous, so each call is
//! driven to completion on a tokio runtime through its [`Handle`]: call it
//! from a blocking thread (`spawn_blocking`, a plain thread), never from
//! inside an async task. [`client`] builds the SDK client the way the
//! function and the CLI need it: credentials and region from the default
//! chain, `AWS_ENDPOINT_URL_S3` honoured (the SDK reads it), path-style
//! URLs on request, standard retries and timeouts.
//!
//! Errors are sorted into not found, transient (5xx, 429, throttling,
//! timeouts, dropped connections: worth a retry) and permanent (the rest).
//! Throttling (`503 SlowDown` and kin) gets more patience than the SDK's
//! three attempts: each operation is tried again, with growing pauses,
//! for as long as the store's patience lasts ([`S3Store::with_patience`]).
//! S3 takes about 3,500 writes a second per prefix, and a wide backfill or
//! a burst of uploads meets that limit; the SDK has one attempt count for
//! every retryable error, and its retry quota stops retrying altogether
//! when many requests are throttled at once.
//! Metadata values are percent-encoded to ASCII on the way in and decoded
//! on the way out, since S3 carries them as HTTP headers.

use std::collections::BTreeMap;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::ops::ControlFlow;
use std::time::{Duration, Instant, SystemTime};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::get_object::{GetObjectError, GetObjectOutput};
use aws_sdk_s3::operation::head_object::{HeadObjectError, HeadObjectOutput};
use aws_sdk_s3::primitives::ByteStream;
pub use aws_sdk_s3::Client;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use resize_core::{Fetched, Meta, Object, Storage, StorageError};
use tokio::runtime::Handle;

/// Characters kept as they are in metadata values; everything else is
/// percent-encoded, since S3 sends metadata as HTTP headers (ASCII only).
const META_SAFE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Encodes a metadata value (a key, an ETag) for an HTTP header.
pub fn encode_meta(value: &str) -> String {
    utf8_percent_encode(value, META_SAFE).to_string()
}

/// Decodes a value written by [`encode_meta`].
pub fn decode_meta(value: &str) -> String {
    percent_decode_str(value).decode_utf8_lossy().into_owned()
}

/// How [`client`] sets up the SDK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientOptions {
    /// Path-style URLs (`http://host/bucket/key`), for S3-compatible stores
    /// on an IP address.
    pub force_path_style: bool,
    /// Longest one request attempt may take before it is retried.
    pub attempt_timeout: Duration,
    /// When set, the longest a request without a body (HEAD, GET up to its
    /// headers, LIST, DELETE) may wait for its answer before it is tried
    /// again, and the longest a GET's body may go without a byte; PUTs
    /// keep `attempt_timeout` (for [`S3Store::with_put_timeout`]), since
    /// an upload's time grows with its size. A server that accepts
    /// connections and never answers then fails a check in three answer
    /// timeouts, while an honest slow transfer goes on as long as bytes
    /// arrive.
    pub answer_timeout: Option<Duration>,
    /// Longest one operation may take, all attempts together.
    pub timeout: Duration,
}

/// An S3 client from the default chain (environment, profile, the
/// function's role). Standard retries (3 attempts, exponential backoff from 100 ms with
/// jitter) absorb passing errors; the timeouts keep a stalled connection
/// from using up an invocation.
pub async fn client(options: ClientOptions) -> Client {
    let sdk = sdk_config(options).await;
    build(&sdk, options)
}

/// [`client`], once the default chain has given credentials: a run that
/// is about to list and write can say "no credentials" before any work,
/// rather than fail every request (the Lambda always has its role's).
pub async fn client_with_credentials(options: ClientOptions) -> Result<Client, BucketError> {
    use aws_sdk_s3::config::ProvideCredentials;
    let sdk = sdk_config(options).await;
    // `AWS_REGION=` (set, empty) is the same mistake as no region at all.
    if sdk.region().is_none_or(|r| r.as_ref().is_empty()) {
        return Err(BucketError::NoRegion);
    }
    // Without a provider the client signs nothing: nothing to check.
    if let Some(provider) = sdk.credentials_provider() {
        provider
            .provide_credentials()
            .await
            .map_err(|e| BucketError::NoCredentials(Box::new(e)))?;
    }
    Ok(build(&sdk, options))
}

async fn sdk_config(options: ClientOptions) -> aws_config::SdkConfig {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    let https = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest())
        // Every client the chain makes (S3, STS, SSO, the instance metadata
        // service) uses this one.
        .http_client(https)
        // The SDK's first pause is a second; a tenth, doubling with jitter,
        // gets a passing fault retried sooner, and throttling that lasts
        // is waited out by `S3Store::patiently`.
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(100)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(options.answer_timeout.unwrap_or(options.attempt_timeout))
                .operation_timeout(options.timeout)
                .build(),
        )
        .load()
        .await
}

fn build(sdk: &aws_config::SdkConfig, options: ClientOptions) -> Client {
    let config = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(options.force_path_style)
        .build();
    Client::from_conf(config)
}

/// Why a bucket cannot be used, found before any work ([`check_bucket`]).
#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    /// The default chain found no credentials.
    #[error(
        "no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run where a role provides them)"
    )]
    NoCredentials(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The default chain found no region.
    #[error("no AWS region set: set AWS_REGION (or a region in your AWS profile, AWS_PROFILE)")]
    NoRegion,
    /// No bucket has this name.
    #[error("bucket `{0}` does not exist")]
    Missing(String),
    /// The credentials may not use the bucket (or list it: `what`).
    #[error("access denied: cannot {what} bucket `{bucket}` with these credentials")]
    Denied {
        /// The bucket.
        bucket: String,
        /// `reach` or `list`.
        what: &'static str,
    },
    /// Anything else (network, endpoint).
    #[error("cannot reach bucket `{bucket}` (gave up after {:.1} s)", elapsed.as_secs_f64())]
    Unreachable {
        /// The bucket.
        bucket: String,
        /// How long the check tried, every attempt together (the SDK's
        /// own message names only its last attempt's timeout).
        elapsed: Duration,
        /// The SDK's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Asks where `bucket` lives and whether these credentials may use it
/// (HeadBucket), and, when `list_prefix` is given, whether they may list
/// it there (ListObjectsV2 of one key). Returns a client for the bucket's
/// region: the SDK signs for one region and does not follow S3's
/// redirects, so a bucket elsewhere needs its own client.
pub async fn check_bucket(
    client: &Client,
    bucket: &str,
    list_prefix: Option<&str>,
) -> Result<Client, BucketError> {
    let answered_region = |raw: Option<&HttpResponse>| {
        raw.and_then(|r| r.headers().get("x-amz-bucket-region"))
            .map(str::to_owned)
    };
    let started = Instant::now();
    let region = match client.head_bucket().bucket(bucket).send().await {
        Ok(out) => out.bucket_region().map(str::to_owned),
        Err(e) => {
            let status = e.raw_response().map(|r| r.status().as_u16());
            match (status, answered_region(e.raw_response())) {
                // Elsewhere: 301 (or 400 for a request signed for another
                // region), with the bucket's region in a header.
                (Some(301 | 307 | 400), Some(region)) => Some(region),
                (Some(404), _) => return Err(BucketError::Missing(bucket.to_owned())),
                (Some(403), _) => {
                    return Err(BucketError::Denied {
                        bucket: bucket.to_owned(),
                        what: "reach",
                    })
                }
                _ => {
                    return Err(BucketError::Unreachable {
                        bucket: bucket.to_owned(),
                        elapsed: started.elapsed(),
                        source: Box::new(e),
                    })
                }
            }
        }
    };
    let here = client.config().region().map(|r| r.as_ref().to_owned());
    let client = match region {
        Some(region) if here.as_deref() != Some(region.as_str()) => {
            let config = client
                .config()
                .to_builder()
                .region(aws_sdk_s3::config::Region::new(region))
                .build();
            Client::from_conf(config)
        }
        _ => client.clone(),
    };
    if let Some(prefix) = list_prefix {
        let listed = client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .max_keys(1)
            .send()
            .await;
        if let Err(e) = listed {
            return Err(match e.raw_response().map(|r| r.status().as_u16()) {
                Some(403) => BucketError::Denied {
                    bucket: bucket.to_owned(),
                    what: "list",
                },
                Some(404) => BucketError::Missing(bucket.to_owned()),
                _ => BucketError::Unreachable {
                    bucket: bucket.to_owned(),
                    elapsed: started.elapsed(),
                    source: Box::new(e),
                },
            });
        }
    }
    Ok(client)
}

/// How long an operation keeps trying while S3 throttles it, unless the
/// store is told otherwise ([`S3Store::with_patience`]).
pub const DEFAULT_PATIENCE: Duration = Duration::from_secs(60);

/// The first pause after a throttled attempt; each next one doubles, up to
/// [`LONGEST_PAUSE`]. Each pause is drawn between half and all of that,
/// so clients throttled together do not come back together.
const FIRST_PAUSE: Duration = Duration::from_millis(50);
const LONGEST_PAUSE: Duration = Duration::from_secs(5);

/// One bucket (or a folder of it, [`S3Store::with_prefix`]) as a
/// [`Storage`]. Cheap to clone (the client is shared).
#[derive(Clone, Debug)]
pub struct S3Store {
    client: Client,
    bucket: String,
    /// Put before every key: the store's keys are relative to it.
    prefix: String,
    handle: Handle,
    cache_control: Option<String>,
    patience: Duration,
    requests: RequestLimit,
    /// A key whose reads ask for one version of it (store-relative key,
    /// version id): a Batch Operations task names the version it means.
    pinned: Option<(String, String)>,
    /// A PUT's attempt timeout when it differs from the client's (which is
    /// then the answer timeout of [`ClientOptions::answer_timeout`]).
    put_timeout: Option<Duration>,
}

/// The most S3 requests in flight at once, shared by the stores given it
/// ([`S3Store::with_request_limit`]): one image's HEADs and PUTs run
/// together, and many images' together stay within it.
#[derive(Clone, Debug)]
pub struct RequestLimit(std::sync::Arc<tokio::sync::Semaphore>);

impl RequestLimit {
    /// At most `n` requests at once (at least one).
    pub fn new(n: usize) -> RequestLimit {
        RequestLimit(std::sync::Arc::new(tokio::sync::Semaphore::new(n.max(1))))
    }
}

/// The version id S3 gives an object in a bucket that never had
/// versioning enabled.
pub const NULL_VERSION: &str = "null";

/// Requests in flight per store unless it is given a shared limit.
pub const DEFAULT_REQUESTS: usize = 32;

impl S3Store {
    /// `bucket` through `client`, its calls run on `handle`'s runtime.
    pub fn new(client: Client, bucket: &str, handle: Handle) -> S3Store {
        S3Store {
            client,
            bucket: bucket.to_owned(),
            prefix: String::new(),
            handle,
            cache_control: None,
            patience: DEFAULT_PATIENCE,
            requests: RequestLimit::new(DEFAULT_REQUESTS),
            pinned: None,
            put_timeout: None,
        }
    }

    /// PUTs get `attempt` per attempt rather than the client's attempt
    /// timeout (see [`ClientOptions::answer_timeout`]).
    pub fn with_put_timeout(mut self, attempt: Duration) -> S3Store {
        self.put_timeout = Some(attempt);
        self
    }

    /// Reads of `key` (GET and HEAD) ask for `version_id`, so the bytes
    /// rendered are that version's even if another is uploaded meanwhile.
    /// A version that no longer exists reads as missing.
    pub fn with_version(mut self, key: &str, version_id: &str) -> S3Store {
        self.pinned = Some((key.to_owned(), version_id.to_owned()));
        self
    }

    /// The version id of `key` as it is now (HEAD): `None` when there is
    /// no such object, [`NULL_VERSION`] in a bucket that never had
    /// versioning (S3 sends no version id there).
    pub async fn current_version(&self, key: &str) -> Result<Option<String>, StorageError> {
        let full = self.full(key);
        match self.head_object(&full, None).await {
            Ok(out) => Ok(Some(out.version_id().unwrap_or(NULL_VERSION).to_owned())),
            Err(e) => match self.read_error(e, &full, "head").await {
                StorageError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    /// The version id reads of `key` ask for, if it is pinned.
    fn version_of(&self, key: &str) -> Option<String> {
        self.pinned
            .as_ref()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    /// Sorts a failed read like [`classify`], after telling a missing key
    /// from a forbidden one: without `s3:ListBucket` S3 answers a read of
    /// a missing key with 403, so on 403 the store lists the key itself
    /// (which a prefix-scoped `s3:ListBucket` allows) and reports it
    /// missing when it is not there. A pinned version that is now a delete
    /// marker (405) is missing too.
    async fn read_error<E>(&self, e: SdkError<E, HttpResponse>, full: &str, op: &str) -> StorageError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let status = e.raw_response().map(|r| r.status().as_u16());
        let missing = match status {
            Some(403) => self.absent(full).await,
            Some(405) => self.pinned.as_ref().is_some_and(|(k, _)| self.full(k) == full),
            _ => false,
        };
        if missing {
            StorageError::NotFound(full.to_owned())
        } else {
            classify(e, full, op)
        }
    }

    /// Whether listing `full` as a prefix shows that no object has that
    /// key; `false` when the listing itself fails (the read's own error
    /// then stands).
    async fn absent(&self, full: &str) -> bool {
        let listed = self
            .patiently(|| {
                self.client
                    .list_objects_v2()
                    .bucket(&self.bucket)
                    .prefix(full)
                    .max_keys(1)
                    .send()
            })
            .await;
        match listed {
            Ok(out) => out.contents().first().and_then(|o| o.key()) != Some(full),
            Err(_) => false,
        }
    }

    /// Shares `limit` on requests in flight with the other stores given it.
    pub fn with_request_limit(mut self, limit: &RequestLimit) -> S3Store {
        self.requests = limit.clone();
        self
    }

    /// Roots the store at `prefix`: key `k` is the bucket's `{prefix}k`
    /// (give the `/` a folder needs), and a listing names keys without it.
    pub fn with_prefix(mut self, prefix: &str) -> S3Store {
        self.prefix = prefix.to_owned();
        self
    }

    /// How long an operation keeps trying while S3 throttles it (pauses
    /// included); other errors get the SDK's attempts only.
    pub fn with_patience(mut self, patience: Duration) -> S3Store {
        self.patience = patience;
        self
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Runs `attempt` until it succeeds, fails other than by throttling,
    /// or the next pause would outlast the store's patience.
    async fn patiently<T, E, F, Fut>(&self, mut attempt: F) -> Result<T, SdkError<E, HttpResponse>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata,
    {
        let started = Instant::now();
        let mut pause = FIRST_PAUSE;
        loop {
            // The semaphore is never closed; were it, the request would
            // simply go unbounded.
            let permit = self.requests.0.acquire().await.ok();
            let result = attempt().await;
            drop(permit);
            match result {
                Err(e) if is_throttling(&e) => {
                    let wait = jittered(pause);
                    if started.elapsed() + wait > self.patience {
                        return Err(e);
                    }
                    tokio::time::sleep(wait).await;
                    pause = (pause * 2).min(LONGEST_PAUSE);
                }
                done => return done,
            }
        }
    }

    /// Sets the `Cache-Control` of every object this store puts.
    pub fn with_cache_control(mut self, value: &str) -> S3Store {
        self.cache_control = Some(value.to_owned());
        self
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// A GET of `key` (at `full` in the bucket), of its pinned version if
    /// it has one, of `range` if given.
    async fn get_object(
        &self,
        key: &str,
        full: &str,
        range: Option<String>,
    ) -> Result<GetObjectOutput, SdkError<GetObjectError, HttpResponse>> {
        let version = self.version_of(key);
        self.patiently(|| {
            self.client
                .get_object()
                .bucket(&self.bucket)
                .key(full)
                .set_range(range.clone())
                .set_version_id(version.clone())
                .send()
        })
        .await
    }

    /// A HEAD of `full` in the bucket, of `version` if given.
    async fn head_object(
        &self,
        full: &str,
        version: Option<String>,
    ) -> Result<HeadObjectOutput, SdkError<HeadObjectError, HttpResponse>> {
        self.patiently(|| {
            self.client
                .head_object()
                .bucket(&self.bucket)
                .key(full)
                .set_version_id(version.clone())
                .send()
        })
        .await
    }

    async fn get_async(&self, key: &str, limit: u64) -> Result<Fetched, StorageError> {
        let full = self.full(key);
        let out = match self.get_object(key, &full, None).await {
            Ok(out) => out,
            Err(e) => return Err(self.read_error(e, &full, "get").await),
        };
        let size = length(out.content_length());
        fetched(out, key, &full, size, limit, self.idle()).await
    }

    /// A ranged GET of the first `max` bytes; the metadata's size is the
    /// whole object's (from `Content-Range`).
    async fn get_start_async(&self, key: &str, max: u64, limit: u64) -> Result<Fetched, StorageError> {
        let full = self.full(key);
        let range = format!("bytes=0-{}", max.saturating_sub(1));
        let out = match self.get_object(key, &full, Some(range)).await {
            Ok(out) => out,
            // An empty object has no byte 0: S3 answers 416. Read it whole.
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 416) => {
                return self.get_async(key, limit).await;
            }
            Err(e) => return Err(self.read_error(e, &full, "get").await),
        };
        let part = length(out.content_length());
        // `bytes 0-65535/1234567`: the whole object's size after the slash.
        // Without a range in the answer, the answer is the whole object.
        let size = match out.content_range() {
            Some(r) => r.rsplit_once('/').and_then(|(_, n)| n.parse().ok()),
            None => part,
        };
        let mut fetched = fetched(out, key, &full, size, limit, self.idle()).await?;
        // A server that ignores ranges sends it all; keep what was asked.
        fetched.bytes.truncate(usize::try_from(max).unwrap_or(usize::MAX));
        Ok(fetched)
    }

    async fn head_async(&self, key: &str) -> Result<Option<Meta>, StorageError> {
        let full = self.full(key);
        match self.head_object(&full, self.version_of(key)).await {
            Ok(out) => Ok(Some(meta(
                out.e_tag(),
                length(out.content_length()),
                out.last_modified(),
                out.metadata(),
            ))),
            // Without `s3:ListBucket` (which least privilege leaves out), S3
            // answers a HEAD of a missing key with 403, not 404. The function
            // may read every key it looks at, so 403 here means "absent".
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 403) => Ok(None),
            // Otherwise as a read (a pinned version now a delete marker is missing).
            Err(e) => match self.read_error(e, &full, "head").await {
                StorageError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    /// The longest a GET's body may go without a byte: the client's attempt
    /// timeout (the answer timeout when there is one), 30 s if it has none.
    fn idle(&self) -> Duration {
        self.client
            .config()
            .timeout_config()
            .and_then(|t| t.operation_attempt_timeout())
            .unwrap_or(Duration::from_secs(30))
    }

    /// What a PUT changes in the client's configuration: its attempt
    /// timeout, when the store has one of its own.
    fn put_override(&self) -> aws_sdk_s3::config::Builder {
        let mut config = aws_sdk_s3::config::Builder::new();
        if let Some(attempt) = self.put_timeout {
            config = config.timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(attempt)
                    .build(),
            );
        }
        config
    }

    async fn put_async(&self, key: &str, object: Object<'_>) -> Result<(), StorageError> {
        self.put_owned(Owned::of(key, object)).await
    }

    async fn put_owned(&self, object: Owned) -> Result<(), StorageError> {
        let full = self.full(&object.key);
        self.patiently(|| {
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(&full)
                // `Bytes` clones share one copy for every attempt.
                .body(ByteStream::from(object.body.clone()))
                .content_type(&object.content_type)
                .set_cache_control(self.cache_control.clone())
                .set_metadata(Some(object.metadata.clone()))
                .customize()
                .config_override(self.put_override())
                .send()
        })
        .await
        .map_err(|e| classify(e, &full, "put"))?;
        Ok(())
    }

    async fn list_async(
        &self,
        prefix: &str,
        each: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<(), StorageError> {
        let full = self.full(prefix);
        let mut token: Option<String> = None;
        loop {
            let out = self
                .patiently(|| {
                    self.client
                        .list_objects_v2()
                        .bucket(&self.bucket)
                        .prefix(&full)
                        .set_continuation_token(token.clone())
                        .send()
                })
                .await
                .map_err(|e| classify(e, &full, "list"))?;
            for key in out.contents().iter().filter_map(|o| o.key()) {
                // Every listed key starts with the store's prefix.
                let key = key.strip_prefix(self.prefix.as_str()).unwrap_or(key);
                if each(key).is_break() {
                    return Ok(());
                }
            }
            match out.next_continuation_token() {
                Some(t) if out.is_truncated() == Some(true) => token = Some(t.to_owned()),
                _ => return Ok(()),
            }
        }
    }

    async fn delete_async(&self, key: &str) -> Result<(), StorageError> {
        let full = self.full(key);
        self.patiently(|| self.client.delete_object().bucket(&self.bucket).key(&full).send())
            .await
            .map_err(|e| classify(e, &full, "delete"))?;
        Ok(())
    }
}

impl Storage for S3Store {
    fn head(&self, key: &str) -> Result<Option<Meta>, StorageError> {
        self.handle.block_on(self.head_async(key))
    }

    /// All at once, each on its own task: one round trip for a job's
    /// variants rather than one per variant.
    fn head_many(&self, keys: &[&str]) -> Vec<Result<Option<Meta>, StorageError>> {
        self.handle.block_on(async {
            let tasks: Vec<_> = keys
                .iter()
                .map(|k| {
                    let (store, key) = (self.clone(), (*k).to_owned());
                    tokio::spawn(async move { store.head_async(&key).await })
                })
                .collect();
            let mut out = Vec::with_capacity(tasks.len());
            for (task, key) in tasks.into_iter().zip(keys) {
                out.push(task.await.unwrap_or_else(|e| {
                    Err(StorageError::Transient {
                        message: format!("s3 head `{key}` did not finish"),
                        source: Some(Box::new(e)),
                    })
                }));
            }
            out
        })
    }

    fn get(&self, key: &str, limit: u64) -> Result<Fetched, StorageError> {
        self.handle.block_on(self.get_async(key, limit))
    }

    /// A ranged GET: a plan reads no more of a source than its header.
    fn get_start(&self, key: &str, max: u64, limit: u64) -> Result<Fetched, StorageError> {
        self.handle.block_on(self.get_start_async(key, max, limit))
    }

    /// S3 makes an object visible whole or not at all.
    fn put(&self, key: &str, object: Object<'_>) -> Result<(), StorageError> {
        self.handle.block_on(self.put_async(key, object))
    }

    /// All at once, each on its own task (within the request limit).
    fn put_many(&self, objects: &[(&str, Object<'_>)]) -> Vec<Result<(), StorageError>> {
        self.handle.block_on(async {
            let tasks: Vec<_> = objects
                .iter()
                .map(|(key, object)| {
                    let (store, owned) = (self.clone(), Owned::of(key, *object));
                    tokio::spawn(async move { store.put_owned(owned).await })
                })
                .collect();
            let mut out = Vec::with_capacity(tasks.len());
            for (task, (key, _)) in tasks.into_iter().zip(objects) {
                out.push(task.await.unwrap_or_else(|e| {
                    Err(StorageError::Transient {
                        message: format!("s3 put `{key}` did not finish"),
                        source: Some(Box::new(e)),
                    })
                }));
            }
            out
        })
    }

    /// ListObjectsV2, a page (up to 1,000 keys) at a time.
    fn list(&self, prefix: &str, each: &mut dyn FnMut(&str) -> ControlFlow<()>) -> Result<(), StorageError> {
        self.handle.block_on(self.list_async(prefix, each))
    }

    fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.handle.block_on(self.delete_async(key))
    }
}

/// A GET's answer as the core's [`Fetched`], the object being `size` bytes:
/// one over `limit` is refused before its body is read (the size arrives
/// with the headers; dropping the body closes it).
async fn fetched(
    out: GetObjectOutput,
    key: &str,
    full: &str,
    size: Option<u64>,
    limit: u64,
    idle: Duration,
) -> Result<Fetched, StorageError> {
    if let Some(size) = size.filter(|&s| s > limit) {
        return Err(StorageError::TooLarge {
            key: key.to_owned(),
            size,
            limit,
        });
    }
    let meta = meta(out.e_tag(), size, out.last_modified(), out.metadata());
    // The body is read outside the SDK's timeouts (they end with the
    // headers): each chunk must come within `idle`, however long the whole
    // transfer takes.
    let mut body = out.body;
    let mut bytes = Vec::with_capacity(usize::try_from(size.unwrap_or(0)).unwrap_or(0));
    let started = Instant::now();
    loop {
        match tokio::time::timeout(idle, body.next()).await {
            Ok(None) => break,
            Ok(Some(Ok(chunk))) => bytes.extend_from_slice(&chunk),
            Ok(Some(Err(e))) => {
                return Err(StorageError::Transient {
                    message: format!("cannot read body of `{full}`"),
                    source: Some(Box::new(e)),
                })
            }
            Err(_) => {
                return Err(StorageError::Transient {
                    message: format!(
                        "reading the body of `{full}` stopped: no data for {:.0} s ({} bytes in {:.1} s)",
                        idle.as_secs_f64(),
                        bytes.len(),
                        started.elapsed().as_secs_f64()
                    ),
                    source: None,
                })
            }
        }
    }
    Ok(Fetched { bytes, meta })
}

/// An object to put, owned, so its request can run on a task of its own.
struct Owned {
    key: String,
    body: bytes::Bytes,
    content_type: String,
    metadata: std::collections::HashMap<String, String>,
}

impl Owned {
    fn of(key: &str, object: Object<'_>) -> Owned {
        Owned {
            key: key.to_owned(),
            body: bytes::Bytes::copy_from_slice(object.bytes),
            content_type: object.content_type.to_owned(),
            metadata: object
                .metadata
                .iter()
                .map(|(k, v)| ((*k).to_owned(), encode_meta(v)))
                .collect(),
        }
    }
}

/// What a GET or a HEAD response says of the object: the ETag without
/// its quotes, and the metadata decoded with lower-case names.
fn meta(
    etag: Option<&str>,
    size: Option<u64>,
    modified: Option<&aws_sdk_s3::primitives::DateTime>,
    metadata: Option<&std::collections::HashMap<String, String>>,
) -> Meta {
    Meta {
        version: etag.map(|e| e.trim_matches('"').to_owned()),
        size,
        modified: modified.and_then(|t| SystemTime::try_from(*t).ok()),
        metadata: Some(
            metadata
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.to_lowercase(), decode_meta(v)))
                .collect::<BTreeMap<_, _>>(),
        ),
    }
}

fn length(content_length: Option<i64>) -> Option<u64> {
    content_length.and_then(|n| u64::try_from(n).ok())
}

/// Whether S3 asked us to slow down: the throttling codes, `429`, or
/// `503` (S3's `SlowDown`; a HEAD's answer has no body to name it).
fn is_throttling<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    let SdkError::ServiceError(_) = e else {
        return false;
    };
    let status = e.raw_response().map(|r| r.status().as_u16());
    matches!(status, Some(429 | 503))
        || matches!(
            e.code(),
            Some(
                "SlowDown"
                    | "Throttling"
                    | "ThrottlingException"
                    | "RequestLimitExceeded"
                    | "TooManyRequests"
            )
        )
}

/// A pause drawn between half and all of `pause`.
fn jittered(pause: Duration) -> Duration {
    // A fresh `RandomState` is randomly keyed: its hash of nothing is a
    // random number, which is all the jitter needs.
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let fraction = 0.5 + (random % 1024) as f64 / 2048.0;
    pause.mul_f64(fraction)
}

/// Sorts an SDK error into the core's kinds.
fn classify<E>(e: SdkError<E, HttpResponse>, key: &str, op: &str) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = e.code().map(str::to_owned);
    // The SDK error follows as the source, so `error_chain` prints its
    // causes after this message; the message adds only what S3 answered.
    let message = match (&code, status) {
        (Some(c), Some(s)) => format!("s3 {op} `{key}` failed: {c} (http {s})"),
        (None, Some(s)) => format!("s3 {op} `{key}` failed: http {s}"),
        (Some(c), None) => format!("s3 {op} `{key}` failed: {c}"),
        (None, None) => format!("s3 {op} `{key}` failed"),
    };
    let transient = match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(_) => {
            status.is_some_and(|s| s >= 500 || s == 429)
                || matches!(
                    code.as_deref(),
                    Some("SlowDown" | "RequestTimeout" | "Throttling" | "InternalError")
                )
        }
        _ => false,
    };
    // A missing bucket is a configuration problem, not a missing object.
    let not_found = code.as_deref() != Some("NoSuchBucket")
        && (status == Some(404) || matches!(code.as_deref(), Some("NoSuchKey" | "NotFound")));
    let source: Option<Box<dyn std::error::Error + Send + Sync>> = Some(Box::new(e));
    if not_found {
        StorageError::NotFound(key.to_owned())
    } else if transient {
        StorageError::Transient { message, source }
    } else {
        StorageError::Permanent { message, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_values_round_trip_through_ascii() {
        for value in [
            "original/trips/a b.jpg",
            "ünïcødé/日本.jpg",
            "100%+#?&=.jpg",
            "9b2cf5-3",
        ] {
            let encoded = encode_meta(value);
            assert!(encoded.is_ascii() && !encoded.contains(' '), "{encoded}");
            assert_eq!(decode_meta(&encoded), value);
        }
        assert_eq!(encode_meta("original/a-b_c.d~e.jpg"), "original/a-b_c.d~e.jpg");
    }
}
