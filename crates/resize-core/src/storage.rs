//! The seam to the outside world: a small [`Storage`] trait the adapters
//! implement (S3, a directory), its error, and an in-memory implementation
//! for tests and embedding. It knows nothing of images or keys.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

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
    /// User metadata, name → value.
    pub metadata: &'a [(&'a str, &'a str)],
}

/// Where sources are read from and variants written to.
pub trait Storage {
    /// Reads a whole object.
    fn get(&self, key: &str) -> Result<Vec<u8>, StorageError>;

    /// Writes a whole object. Implementations must never leave a partial
    /// object visible under `key`.
    fn put(&self, key: &str, object: Object<'_>) -> Result<(), StorageError>;

    /// Whether the variant at `variant` is already up to date for `source`
    /// (for files: newer than the source). The default says no, so every
    /// run rebuilds.
    fn is_current(&self, source: &str, variant: &str) -> Result<bool, StorageError> {
        let _ = (source, variant);
        Ok(false)
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
}

/// A [`Storage`] in memory, for tests and embedding.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    objects: Mutex<BTreeMap<String, StoredObject>>,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> MemoryStorage {
        MemoryStorage::default()
    }

    /// Stores `bytes` under `key` with no metadata.
    pub fn insert(&self, key: &str, bytes: Vec<u8>) {
        self.lock().insert(
            key.to_owned(),
            StoredObject {
                bytes,
                content_type: "application/octet-stream".to_owned(),
                metadata: BTreeMap::new(),
            },
        );
    }

    /// A copy of the object at `key`.
    pub fn object(&self, key: &str) -> Option<StoredObject> {
        self.lock().get(key).cloned()
    }

    /// Every stored key, sorted.
    pub fn stored_keys(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, StoredObject>> {
        // A panic while holding the lock cannot leave the map half-updated
        // (every update is one insert), so a poisoned lock is still usable.
        self.objects.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Storage for MemoryStorage {
    fn get(&self, key: &str) -> Result<Vec<u8>, StorageError> {
        self.lock()
            .get(key)
            .map(|o| o.bytes.clone())
            .ok_or_else(|| StorageError::NotFound(key.to_owned()))
    }

    fn put(&self, key: &str, object: Object<'_>) -> Result<(), StorageError> {
        let stored = StoredObject {
            bytes: object.bytes.to_vec(),
            content_type: object.content_type.to_owned(),
            metadata: object
                .metadata
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        self.lock().insert(key.to_owned(), stored);
        Ok(())
    }
}
