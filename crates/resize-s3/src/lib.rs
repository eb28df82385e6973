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
//! Metadata values are percent-encoded to ASCII on the way in and decoded
//! on the way out, since S3 carries them as HTTP headers.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::time::{Duration, SystemTime};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
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
    /// Longest one operation may take, all attempts together.
    pub timeout: Duration,
}

/// An S3 client from the default chain (environment, profile, the
/// function's role). Standard retries (3 attempts, exponential backoff with
/// jitter) absorb passing errors; the timeouts keep a stalled connection
/// from using up an invocation.
pub async fn client(options: ClientOptions) -> Client {
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(options.attempt_timeout)
                .operation_timeout(options.timeout)
                .build(),
        )
        .load()
        .await;
    let config = aws_sdk_s3::config::Builder::from(&sdk)
        .force_path_style(options.force_path_style)
        .build();
    Client::from_conf(config)
}

/// One bucket as a [`Storage`]. Cheap to clone (the client is shared).
#[derive(Clone, Debug)]
pub struct S3Store {
    client: Client,
    bucket: String,
    handle: Handle,
    cache_control: Option<String>,
}

impl S3Store {
    /// `bucket` through `client`, its calls run on `handle`'s runtime.
    pub fn new(client: Client, bucket: &str, handle: Handle) -> S3Store {
        S3Store {
            client,
            bucket: bucket.to_owned(),
            handle,
            cache_control: None,
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

    async fn get_async(&self, key: &str, limit: u64) -> Result<Fetched, StorageError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify(e, key, "get"))?;
        let size = length(out.content_length());
        // The length arrives with the headers: an oversized object is
        // refused before its body is read (dropping the body closes it).
        if let Some(size) = size.filter(|&s| s > limit) {
            return Err(StorageError::TooLarge {
                key: key.to_owned(),
                size,
                limit,
            });
        }
        let meta = meta(out.e_tag(), size, out.last_modified(), out.metadata());
        let bytes = out.body.collect().await.map_err(|e| StorageError::Transient {
            message: format!("cannot read body of `{key}`"),
            source: Some(Box::new(e)),
        })?;
        Ok(Fetched {
            bytes: bytes.into_bytes().to_vec(),
            meta,
        })
    }

    async fn head_async(&self, key: &str) -> Result<Option<Meta>, StorageError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
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
            Err(e) => match classify(e, key, "head") {
                StorageError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn put_async(&self, key: &str, object: Object<'_>) -> Result<(), StorageError> {
        let metadata = object
            .metadata
            .iter()
            .map(|(k, v)| ((*k).to_owned(), encode_meta(v)))
            .collect();
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(object.bytes.to_vec()))
            .content_type(object.content_type)
            .set_cache_control(self.cache_control.clone())
            .set_metadata(Some(metadata))
            .send()
            .await
            .map_err(|e| classify(e, key, "put"))?;
        Ok(())
    }

    async fn list_async(
        &self,
        prefix: &str,
        each: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<(), StorageError> {
        let mut token = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| classify(e, prefix, "list"))?;
            for key in out.contents().iter().filter_map(|o| o.key()) {
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
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify(e, key, "delete"))?;
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

    /// S3 makes an object visible whole or not at all.
    fn put(&self, key: &str, object: Object<'_>) -> Result<(), StorageError> {
        self.handle.block_on(self.put_async(key, object))
    }

    /// ListObjectsV2, a page (up to 1,000 keys) at a time.
    fn list(&self, prefix: &str, each: &mut dyn FnMut(&str) -> ControlFlow<()>) -> Result<(), StorageError> {
        self.handle.block_on(self.list_async(prefix, each))
    }

    fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.handle.block_on(self.delete_async(key))
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
