//! The seam to the outside world: a small [`Storage`] trait the adapters
//! implement (S3, a directory), its error, and an in-memory implementation
//! for tests and embedding. It knows nothing of images or keys.
//!
//! The contract is on [`Storage`].

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

/// A storage operation failed. `message` says what failed and does not
/// repeat the client's error, which follows as the [`source`]; print the
/// whole with [`error_chain`](crate::job::error_chain).
///
/// [`source`]: std::error::Error::source
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// No object has this key.
    #[error("no object at `{0}`")]
    NotFound(String),
    /// The object is larger than the reader's limit; nothing was read.
    #[error("`{key}` is {size} bytes, over the limit of {limit}")]
    TooLarge {
        /// The key.
        key: String,
        /// Its size in bytes.
        size: u64,
        /// The limit given to [`Storage::get`].
        limit: u64,
    },
    /// This store cannot do the operation at all.
    #[error("this storage cannot {0}")]
    Unsupported(&'static str),
    /// A failure that may pass (throttling, 5xx, timeouts, refused connections).
    #[error("{message}")]
    Transient {
        /// What failed, without the client's error.
        message: String,
        /// The client's error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A failure retrying will not fix (permissions, bad request).
    #[error("{message}")]
    Permanent {
        /// What failed, without the client's error.
        message: String,
        /// The client's error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl StorageError {
    /// Whether retrying later could succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StorageError::Transient { .. })
    }
}

/// An object to store.
#[derive(Clone, Copy, Debug)]
pub struct Object<'a> {
    /// The encoded file.
    pub bytes: &'a [u8],
    /// Its `Content-Type`.
    pub content_type: &'a str,
    /// User metadata, name → value (names lower-case ASCII).
    pub metadata: &'a [(&'a str, &'a str)],
}

/// What a store knows of an object besides its bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    /// Changes whenever the content may have (S3: the ETag; a source file:
    /// the MD5 of its bytes, [`content_version`]; a recorded output file:
    /// its modification time and length). `None` when the store has none.
    pub version: Option<String>,
    /// Size in bytes, when known.
    pub size: Option<u64>,
    /// Last modification, when known.
    pub modified: Option<SystemTime>,
    /// User metadata as put; `None` for a store that keeps none.
    pub metadata: Option<BTreeMap<String, String>>,
}

impl Meta {
    /// One user metadata value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.metadata.as_ref()?.get(name).map(String::as_str)
    }
}

/// The version of `bytes` for a store that has none of its own (files):
/// their MD5 in lower-case hex, which is what S3 reports as the ETag of an
/// object uploaded in one part (and [`Meta::version`] of an S3 object
/// holds, without quotes). A folder and its copy in S3 then name their
/// sources' versions alike.
///
/// ```
/// assert_eq!(resize_core::adapter::content_version(b""), "d41d8cd98f00b204e9800998ecf8427e");
/// ```
pub fn content_version(bytes: &[u8]) -> String {
    let mut hasher = VersionHasher::new();
    hasher.update(bytes);
    hasher.finish()
}

/// [`content_version`] of bytes that arrive in pieces (a file read a
/// buffer at a time, never whole in memory).
///
/// ```
/// let mut h = resize_core::adapter::VersionHasher::new();
/// h.update(b"pho");
/// h.update(b"to");
/// assert_eq!(h.finish(), resize_core::adapter::content_version(b"photo"));
/// ```
#[derive(Clone, Debug, Default)]
pub struct VersionHasher(md5::Md5);

impl VersionHasher {
    /// A hasher that has seen no bytes yet.
    pub fn new() -> VersionHasher {
        VersionHasher::default()
    }

    /// Hashes the next bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        md5::Digest::update(&mut self.0, bytes);
    }

    /// The version: lower-case hex MD5.
    pub fn finish(self) -> String {
        md5::Digest::finalize(self.0)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// A whole object and what the store knows of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// Version, size and metadata, from the same response as the bytes.
    pub meta: Meta,
}

/// Where sources are read from and variants written to.
///
/// # Contract
///
/// - **Blocking and stateless.** Every call stands alone: no call relies on
///   an earlier one, in any order, from any thread (`Storage: Sync`). What
///   the job needs from one call for a later one (the source's version)
///   it keeps itself and passes in.
/// - **Never partial.** [`Storage::put`] makes the whole object visible under
///   its key or nothing: S3 does so by nature, a directory through a
///   temporary file renamed into place. A reader never sees half a file.
/// - **Versions.** [`Meta::version`] changes whenever an object's content
///   may have changed (S3: the ETag; a source file: the MD5 of its bytes).
///   The job stamps a source's version on its variants and calls a variant
///   current when it names the same version.
/// - **Metadata.** A store that keeps user metadata returns it in
///   [`Meta::metadata`] exactly as it was put (names lower-case); a store
///   that cannot keep it (files) returns `None` there, and then the job
///   compares [`Meta::modified`] instead.
/// - **Errors.** A missing object is `Ok(None)` from [`Storage::head`] and
///   [`StorageError::NotFound`] from [`Storage::get`]. Throttling, 5xx,
///   timeouts and refused connections are [`StorageError::Transient`]
///   (retry later); the rest is [`StorageError::Permanent`]. A store that
///   cannot list or delete says [`StorageError::Unsupported`].
pub trait Storage: Sync {
    /// What the store knows of `key`; `None` when nothing is there.
    fn head(&self, key: &str) -> Result<Option<Meta>, StorageError>;

    /// [`Storage::head`] of each key, answers in the same order. The
    /// default asks one after another; a store whose requests can overlap
    /// (S3) sends them together, so a job's look at its variants costs one
    /// round trip.
    fn head_many(&self, keys: &[&str]) -> Vec<Result<Option<Meta>, StorageError>> {
        keys.iter().map(|k| self.head(k)).collect()
    }

    /// Reads a whole object of at most `limit` bytes. A larger one is
    /// [`StorageError::TooLarge`] and is not read (its size is known before
    /// the body arrives).
    fn get(&self, key: &str, limit: u64) -> Result<Fetched, StorageError>;

    /// Reads the first `max` bytes of an object of at most `limit` bytes
    /// (all of it when shorter), with what the store knows of the whole
    /// object: [`Meta::size`] is the whole object's. A plan reads no more
    /// of a source than its header this way, and a rerun over current
    /// variants no more than that. A store that cannot read part of an
    /// object gives it whole (the default).
    fn get_start(&self, key: &str, max: u64, limit: u64) -> Result<Fetched, StorageError> {
        let _ = max;
        self.get(key, limit)
    }

    /// Writes a whole object, replacing any at `key`. Never leaves a
    /// partial object visible under `key`.
    fn put(&self, key: &str, object: Object<'_>) -> Result<(), StorageError>;

    /// [`Storage::put`] of each object, answers in the same order. The
    /// default puts one after another; a store whose requests can overlap
    /// (S3) sends them together, so a job's variants cost one round trip.
    fn put_many(&self, objects: &[(&str, Object<'_>)]) -> Vec<Result<(), StorageError>> {
        objects
            .iter()
            .map(|(key, object)| self.put(key, *object))
            .collect()
    }

    /// Remembers `metadata` for the object now at `key`, for a store that
    /// keeps none of its own: the job calls it for each variant it found
    /// current by modification time (a store without a record of it), so
    /// that the next run judges it by its metadata. The default does
    /// nothing, as a store with metadata needs nothing.
    fn adopt(&self, key: &str, metadata: &[(&str, &str)]) -> Result<(), StorageError> {
        let _ = (key, metadata);
        Ok(())
    }

    /// Calls `each` with every key that starts with `prefix`, in the
    /// store's order, a page at a time, until `each` breaks. The default
    /// is [`StorageError::Unsupported`].
    fn list(&self, prefix: &str, each: &mut dyn FnMut(&str) -> ControlFlow<()>) -> Result<(), StorageError> {
        let _ = (prefix, each);
        Err(StorageError::Unsupported("list objects"))
    }

    /// Deletes `key`; deleting a missing key is not an error. The default
    /// is [`StorageError::Unsupported`].
    fn delete(&self, key: &str) -> Result<(), StorageError> {
        let _ = key;
        Err(StorageError::Unsupported("delete objects"))
    }
}

/// An object as [`MemoryStorage`] keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredObject {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// The `Content-Type`.
    pub content_type: String,
    /// User metadata.
    pub metadata: BTreeMap<String, String>,
    /// Its version: the store's write counter when it was written.
    pub version: u64,
}

/// A [`Storage`] in memory, for tests and embedding. It lists and deletes.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    inner: Mutex<Objects>,
}

#[derive(Debug, Default)]
struct Objects {
    map: BTreeMap<String, StoredObject>,
    writes: u64,
}

impl Objects {
    fn insert(
        &mut self,
        key: &str,
        bytes: Vec<u8>,
        content_type: String,
        metadata: BTreeMap<String, String>,
    ) {
        self.writes += 1;
        let object = StoredObject {
            bytes,
            content_type,
            metadata,
            version: self.writes,
        };
        self.map.insert(key.to_owned(), object);
    }
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> MemoryStorage {
        MemoryStorage::default()
    }

    /// Stores `bytes` under `key` with no metadata.
    pub fn insert(&self, key: &str, bytes: Vec<u8>) {
        self.lock()
            .insert(key, bytes, "application/octet-stream".to_owned(), BTreeMap::new());
    }

    /// A copy of the object at `key`.
    pub fn object(&self, key: &str) -> Option<StoredObject> {
        self.lock().map.get(key).cloned()
    }

    /// Every stored key, sorted.
    pub fn stored_keys(&self) -> Vec<String> {
        self.lock().map.keys().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Objects> {
        // A panic while holding the lock cannot leave the map half-updated
        // (every update is one insert or remove), so a poisoned lock is
        // still usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn meta_of(o: &StoredObject) -> Meta {
    Meta {
        version: Some(o.version.to_string()),
        size: Some(o.bytes.len() as u64),
        modified: None,
        metadata: Some(o.metadata.clone()),
    }
}

impl Storage for MemoryStorage {
    fn head(&self, key: &str) -> Result<Option<Meta>, StorageError> {
        Ok(self.lock().map.get(key).map(meta_of))
    }

    fn get(&self, key: &str, limit: u64) -> Result<Fetched, StorageError> {
        let objects = self.lock();
        let o = objects
            .map
            .get(key)
            .ok_or_else(|| StorageError::NotFound(key.to_owned()))?;
        let size = o.bytes.len() as u64;
        if size > limit {
            return Err(StorageError::TooLarge {
                key: key.to_owned(),
                size,
                limit,
            });
        }
        Ok(Fetched {
            bytes: o.bytes.clone(),
            meta: meta_of(o),
        })
    }

    /// Reads part of an object, as S3 does, so that the core's tests take
    /// the path S3 takes.
    fn get_start(&self, key: &str, max: u64, limit: u64) -> Result<Fetched, StorageError> {
        let mut fetched = self.get(key, limit)?;
        fetched.bytes.truncate(usize::try_from(max).unwrap_or(usize::MAX));
        Ok(fetched)
    }

    fn put(&self, key: &str, object: Object<'_>) -> Result<(), StorageError> {
        let metadata = object
            .metadata
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.lock().insert(
            key,
            object.bytes.to_vec(),
            object.content_type.to_owned(),
            metadata,
        );
        Ok(())
    }

    fn list(&self, prefix: &str, each: &mut dyn FnMut(&str) -> ControlFlow<()>) -> Result<(), StorageError> {
        // A snapshot, so `each` may call back into the store.
        let keys: Vec<String> = self
            .lock()
            .map
            .range(prefix.to_owned()..)
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        for k in &keys {
            if each(k).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.lock().map.remove(key);
        Ok(())
    }
}
