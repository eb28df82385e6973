//! S3 behind the core's `Storage` trait.
//!
//! The core is synchronous; jobs run on blocking threads (`spawn_blocking`)
//! and each S3 call is driven to completion on the runtime through a
//! `Handle`. Errors are sorted into not found, transient (5xx, throttling,
//! timeouts, refused connections: worth a retry) and permanent.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use resize_core::{Object, Storage, StorageError, META_SOURCE};
use tokio::runtime::Handle;

/// User metadata naming the ETag of the source a variant was made from.
pub const META_SOURCE_ETAG: &str = "resize-source-etag";

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

/// What a HEAD request tells.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Head {
    /// ETag without quotes.
    pub etag: Option<String>,
    /// Size in bytes.
    pub size: Option<u64>,
    /// Content type.
    pub content_type: Option<String>,
    /// Cache-Control.
    pub cache_control: Option<String>,
    /// User metadata, decoded.
    pub metadata: HashMap<String, String>,
}

impl Head {
    /// The source key recorded on a variant, if this object is one.
    pub fn variant_of(&self) -> Option<&str> {
        self.metadata.get(META_SOURCE).map(String::as_str)
    }
}

/// An S3 bucket seen through the async SDK.
#[derive(Clone, Debug)]
pub struct S3 {
    client: Client,
    bucket: String,
}

impl S3 {
    /// Wraps a client for one bucket.
    pub fn new(client: Client, bucket: &str) -> S3 {
        S3 {
            client,
            bucket: bucket.to_owned(),
        }
    }

    /// Reads a whole object and its ETag.
    pub async fn get(&self, key: &str) -> Result<(Vec<u8>, Option<String>), StorageError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify(e, key, "get"))?;
        let etag = out.e_tag().map(|e| e.trim_matches('"').to_owned());
        let bytes = out.body.collect().await.map_err(|e| StorageError::Transient {
            message: format!("cannot read body of `{key}`: {e}"),
            source: Some(Box::new(e)),
        })?;
        Ok((bytes.into_bytes().to_vec(), etag))
    }

    /// Reads an object's metadata; `None` when it does not exist.
    pub async fn head(&self, key: &str) -> Result<Option<Head>, StorageError> {
        self.head_inner(key, false).await
    }

    /// Like [`S3::head`], but 403 Forbidden also counts as absent. Without
    /// `s3:ListBucket` (which least privilege leaves out), S3 answers a HEAD
    /// of a missing key with 403, not 404; for a variant that only means
    /// "make it".
    pub async fn head_variant(&self, key: &str) -> Result<Option<Head>, StorageError> {
        self.head_inner(key, true).await
    }

    async fn head_inner(&self, key: &str, forbidden_is_missing: bool) -> Result<Option<Head>, StorageError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(Head {
                etag: out.e_tag().map(|e| e.trim_matches('"').to_owned()),
                size: out.content_length().and_then(|n| u64::try_from(n).ok()),
                content_type: out.content_type().map(str::to_owned),
                cache_control: out.cache_control().map(str::to_owned),
                metadata: out
                    .metadata()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.to_lowercase(), decode_meta(v)))
                            .collect()
                    })
                    .unwrap_or_default(),
            })),
            Err(e)
                if forbidden_is_missing && e.raw_response().is_some_and(|r| r.status().as_u16() == 403) =>
            {
                Ok(None)
            }
            Err(e) => match classify(e, key, "head") {
                StorageError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    /// Writes an object; S3 makes it visible whole or not at all.
    pub async fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
        cache_control: &str,
        metadata: &[(&str, &str)],
    ) -> Result<(), StorageError> {
        let metadata: HashMap<String, String> = metadata
            .iter()
            .map(|(k, v)| ((*k).to_owned(), encode_meta(v)))
            .collect();
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(bytes))
            .content_type(content_type)
            .cache_control(cache_control)
            .set_metadata(Some(metadata))
            .send()
            .await
            .map_err(|e| classify(e, key, "put"))?;
        Ok(())
    }

    /// Deletes an object (absent objects are not an error in S3).
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify(e, key, "delete"))?;
        Ok(())
    }

    /// Every key starting with `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let mut keys = Vec::new();
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
            keys.extend(out.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
            match out.next_continuation_token() {
                Some(t) if out.is_truncated() == Some(true) => token = Some(t.to_owned()),
                _ => break,
            }
        }
        Ok(keys)
    }
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

/// The core's `Storage` for one source object: remembers the source's
/// ETag when reading it, stamps it on every variant, and calls a variant
/// current when it names this source and ETag.
pub struct RecordStorage<'a> {
    pub s3: &'a S3,
    pub handle: Handle,
    pub cache_control: &'a str,
    pub source_etag: Mutex<Option<String>>,
}

impl RecordStorage<'_> {
    fn etag(&self) -> Option<String> {
        self.source_etag
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl Storage for RecordStorage<'_> {
    fn get(&self, key: &str) -> Result<Vec<u8>, StorageError> {
        let (bytes, etag) = self.handle.block_on(self.s3.get(key))?;
        *self
            .source_etag
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = etag;
        Ok(bytes)
    }

    fn put(&self, key: &str, object: Object<'_>) -> Result<(), StorageError> {
        let etag = self.etag().unwrap_or_default();
        let mut metadata: Vec<(&str, &str)> = object.metadata.to_vec();
        metadata.push((META_SOURCE_ETAG, &etag));
        self.handle.block_on(self.s3.put(
            key,
            object.bytes.to_vec(),
            object.content_type,
            self.cache_control,
            &metadata,
        ))
    }

    fn is_current(&self, source: &str, variant: &str) -> Result<bool, StorageError> {
        let Some(etag) = self.etag() else { return Ok(false) };
        let head = self.handle.block_on(self.s3.head_variant(variant))?;
        Ok(head.is_some_and(|h| {
            h.variant_of() == Some(source) && h.metadata.get(META_SOURCE_ETAG) == Some(&etag)
        }))
    }
}
