//! The core's `Storage` over the file system: sources are read where the
//! walk found them, variants are written under the output root atomically
//! (temporary file in the same directory, then rename).
//!
//! Files keep no user metadata; the output root's state file
//! (`state.rs`) keeps it for them. A variant the state file records as it
//! is now has that metadata, and the core judges it as it judges an S3
//! object (source, source version, fingerprint); any other says it has
//! none (`metadata: None`), and the core judges it current when it is no
//! older than its source. A source's version is the MD5 of its bytes,
//! what S3 reports as the ETag of a single-part upload. Listing and
//! deleting are not needed by a local run and stay unsupported.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::{ErrorKind, Read};
use std::path::{Component, Path, PathBuf};

use resize_core::adapter::{content_version, VersionHasher};
use resize_core::{Fetched, Meta, Object, Storage, StorageError};

use crate::atomic::{self, remove_stale_temps, TEMP_PREFIX};
use crate::state::{is_own_file, nanos, Entry, State, STATE_FILE};
use crate::walk::SourceFile;

/// Each walked source's path, and what a state file records of it when
/// it is an earlier run's variant (`SourceFile::recorded`).
type Walked = HashMap<String, (PathBuf, Option<BTreeMap<String, String>>)>;

/// The walked source files, read where the walk found them: a source's
/// version is the MD5 of its bytes, and one that is an earlier run's
/// variant carries that run's record, which the job's recursion guard
/// reads. Any other key is not here. Never written.
pub struct SourceFiles {
    files: Walked,
}

impl SourceFiles {
    pub fn new(files: &[SourceFile]) -> SourceFiles {
        SourceFiles {
            files: files
                .iter()
                .map(|f| (f.key.clone(), (f.path.clone(), f.recorded.clone())))
                .collect(),
        }
    }

    /// The source `key`'s metadata, hashing its bytes as they are read
    /// rather than holding them whole; `None` when `key` is no walked file.
    fn head_source(&self, key: &str) -> Option<Result<Option<Meta>, StorageError>> {
        let (path, recorded) = self.files.get(key)?;
        let mut file = match fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => return Some(Ok(None)),
            Err(e) => return Some(Err(io_error(e, key, path, "read"))),
        };
        let hashed = file
            .metadata()
            .map_err(|e| io_error(e, key, path, "look at"))
            .and_then(|m| {
                let mut hasher = VersionHasher::new();
                let mut buf = vec![0; 256 * 1024];
                loop {
                    match file.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => hasher.update(&buf[..n]),
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => return Err(io_error(e, key, path, "read")),
                    }
                }
                let mut found = meta(&m, Some(hasher.finish()));
                found.metadata.clone_from(recorded);
                Ok(Some(found))
            });
        Some(hashed)
    }
}

impl Storage for SourceFiles {
    fn head(&self, key: &str) -> Result<Option<Meta>, StorageError> {
        self.head_source(key).unwrap_or(Ok(None))
    }

    fn get(&self, key: &str, limit: u64) -> Result<Fetched, StorageError> {
        let (path, recorded) = self
            .files
            .get(key)
            .ok_or_else(|| StorageError::NotFound(key.to_owned()))?;
        read_file(key, path, limit, recorded.clone())
    }

    fn put(&self, _key: &str, _object: Object<'_>) -> Result<(), StorageError> {
        Err(StorageError::Unsupported("write to the source files"))
    }
}

/// The output folder: variants and manifests under its root, written
/// whole or not at all, never over a source file, their metadata kept in
/// the root's state file.
pub struct OutDir {
    root: PathBuf,
    /// Canonical paths of every source, which no output may replace.
    source_paths: HashSet<PathBuf>,
    pub state: State,
}

impl OutDir {
    pub fn new(out: &Path, files: &[SourceFile], dry_run: bool) -> anyhow::Result<OutDir> {
        if !dry_run {
            use anyhow::Context;
            fs::create_dir_all(out)
                .with_context(|| format!("cannot create the output folder {}", out.display()))?;
            // A read-only folder is said once, before any work, rather than
            // by every image's first write.
            tempfile::Builder::new()
                .prefix(&format!("{TEMP_PREFIX}{}-probe-", std::process::id()))
                .tempfile_in(out)
                .with_context(|| format!("cannot write to the output folder {}", out.display()))?;
        }
        let root = fs::canonicalize(out).unwrap_or_else(|_| out.to_path_buf());
        if !dry_run {
            remove_stale_temps(&root);
        }
        Ok(OutDir {
            state: State::load(&root),
            source_paths: files
                .iter()
                .filter_map(|f| fs::canonicalize(&f.path).ok())
                .collect(),
            root,
        })
    }

    /// Records the metadata of the variant file now at `path` (`key`).
    fn record(&self, key: &str, path: &Path, metadata: &[(&str, &str)]) -> Result<(), StorageError> {
        let m = fs::metadata(path).map_err(|e| io_error(e, key, path, "look at"))?;
        let entry = Entry {
            metadata: metadata
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            size: m.len(),
            modified_ns: nanos(m.modified().ok()).unwrap_or_default(),
        };
        self.state
            .record(key, entry)
            .map_err(|e| io_error(e, STATE_FILE, Path::new(STATE_FILE), "update"))
    }

    /// Where `key` may be written: under the root, not one of the CLI's
    /// own files, not a source file.
    fn writable(&self, key: &str) -> Result<PathBuf, StorageError> {
        let path = out_path(&self.root, key).ok_or_else(|| StorageError::Permanent {
            message: format!("key `{key}` would leave the output directory"),
            source: None,
        })?;
        // The CLI's own files (the state file, temporary and lock files)
        // are never an output: a source named `.resize-state.jpg` would
        // otherwise put its manifest over the state file.
        if path.file_name().is_some_and(is_own_file) {
            return Err(StorageError::Permanent {
                message: format!("`{key}` has the name of one of resize-cli's own files"),
                source: None,
            });
        }
        // `out_path` joined a relative key to the root: there is a parent.
        let parent = path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(parent).map_err(|e| io_error(e, key, parent, "create the folder"))?;
        let target = fs::canonicalize(parent).map(|p| p.join(path.file_name().unwrap_or_default()));
        if target.is_ok_and(|t| self.source_paths.contains(&t)) {
            return Err(StorageError::Permanent {
                message: format!("refusing to overwrite source file `{}`", path.display()),
                source: None,
            });
        }
        Ok(path)
    }
}

impl Storage for OutDir {
    fn head(&self, key: &str) -> Result<Option<Meta>, StorageError> {
        let Some(path) = out_path(&self.root, key) else {
            return Ok(None);
        };
        match fs::metadata(&path) {
            Ok(m) => {
                let mut found = meta(&m, None);
                // Trusted only while the file is the one recorded.
                if let Some(entry) = self.state.get(key).filter(|e| e.describes(&m)) {
                    found.version = nanos(found.modified).map(|t| format!("{t}-{}", m.len()));
                    found.metadata = Some(entry.metadata);
                }
                Ok(Some(found))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(e, key, &path, "look at")),
        }
    }

    /// A file under the root (a manifest the core reads to tell whose it is).
    fn get(&self, key: &str, limit: u64) -> Result<Fetched, StorageError> {
        let path = out_path(&self.root, key).ok_or_else(|| StorageError::NotFound(key.to_owned()))?;
        read_file(key, &path, limit, None)
    }

    fn put(&self, key: &str, object: Object<'_>) -> Result<(), StorageError> {
        let path = self.writable(key)?;
        atomic::write(&path, object.bytes).map_err(|e| io_error(e.error, key, &e.path, e.what))?;
        self.record(key, &path, object.metadata)
    }

    fn adopt(&self, key: &str, metadata: &[(&str, &str)]) -> Result<(), StorageError> {
        let path = out_path(&self.root, key).ok_or_else(|| StorageError::NotFound(key.to_owned()))?;
        self.record(key, &path, metadata)
    }
}

/// A folder run's store: a walked source where the walk found it (a
/// source's neighbour, read to tell whether it is a variant, is read by
/// its key too), any other key under the output folder, which takes every
/// write.
pub struct LocalRun {
    pub sources: SourceFiles,
    pub out: OutDir,
}

impl Storage for LocalRun {
    fn head(&self, key: &str) -> Result<Option<Meta>, StorageError> {
        match self.sources.head_source(key) {
            Some(found) => found,
            None => self.out.head(key),
        }
    }

    fn get(&self, key: &str, limit: u64) -> Result<Fetched, StorageError> {
        if self.sources.files.contains_key(key) {
            return self.sources.get(key, limit);
        }
        self.out.get(key, limit)
    }

    fn put(&self, key: &str, object: Object<'_>) -> Result<(), StorageError> {
        self.out.put(key, object)
    }

    fn adopt(&self, key: &str, metadata: &[(&str, &str)]) -> Result<(), StorageError> {
        self.out.adopt(key, metadata)
    }
}

/// The path of `key` under `root`; `None` for a key that would leave it
/// (absolute, `..`, `.`, or a NUL the OS would cut the name at). The core
/// refuses such keys already; this is the second lock on the door.
fn out_path(root: &Path, key: &str) -> Option<PathBuf> {
    let rel = Path::new(key);
    (!key.is_empty() && !key.contains('\0') && rel.components().all(|c| matches!(c, Component::Normal(_))))
        .then(|| root.join(rel))
}

/// What the file system knows of a file; the version is the caller's.
fn meta(m: &fs::Metadata, version: Option<String>) -> Meta {
    Meta {
        version,
        size: Some(m.len()),
        modified: m.modified().ok(),
        metadata: None,
    }
}

/// Reads the file of `key` at `path`, whole, held to `limit`; its version
/// is the MD5 of its bytes, its metadata `recorded`.
fn read_file(
    key: &str,
    path: &Path,
    limit: u64,
    recorded: Option<BTreeMap<String, String>>,
) -> Result<Fetched, StorageError> {
    let mut file = match fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(StorageError::NotFound(key.to_owned())),
        Err(e) => return Err(io_error(e, key, path, "read")),
    };
    let m = file.metadata().map_err(|e| io_error(e, key, path, "read"))?;
    if m.len() > limit {
        return Err(StorageError::TooLarge {
            key: key.to_owned(),
            size: m.len(),
            limit,
        });
    }
    // The size is known and checked: one allocation, no doubling.
    let mut bytes = Vec::with_capacity(usize::try_from(m.len()).unwrap_or(0));
    // A file that grew since it was looked at is still held to the limit.
    (&mut file)
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(e, key, path, "read"))?;
    if bytes.len() as u64 > limit {
        return Err(StorageError::TooLarge {
            key: key.to_owned(),
            size: bytes.len() as u64,
            limit,
        });
    }
    let version = content_version(&bytes);
    let mut meta = meta(&m, Some(version));
    meta.metadata = recorded;
    Ok(Fetched { bytes, meta })
}

/// A file system error on `path` (the file of `key`). The message names the
/// path, not the key: the job's own error names the key already, and a
/// full path tells which folder is read-only or missing.
fn io_error(e: std::io::Error, key: &str, path: &Path, what: &str) -> StorageError {
    // The io error follows as the source; `error_chain` prints it after the message.
    let message = format!("cannot {what} {}", path.display());
    let source: Option<Box<dyn std::error::Error + Send + Sync>> = Some(Box::new(e));
    match source
        .as_deref()
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .map(|e| e.kind())
    {
        Some(ErrorKind::NotFound) => StorageError::NotFound(key.to_owned()),
        Some(ErrorKind::Interrupted | ErrorKind::TimedOut | ErrorKind::WouldBlock) => {
            StorageError::Transient { message, source }
        }
        _ => StorageError::Permanent { message, source },
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// No key, however odd (`..`, `//`, backslashes, NUL, absolute,
        /// very long), names a file outside the output root.
        #[test]
        fn outputs_stay_under_the_root(key in "(\\.\\.|\\.|/|//|\\\\|\\x00|[a-z]{1,8}|\\PC){0,12}|[a/.]{200,1100}") {
            let root = Path::new("/srv/out");
            if let Some(path) = out_path(root, &key) {
                prop_assert!(path.starts_with(root), "{:?}", path);
                prop_assert!(path.components().skip(root.components().count()).all(|c| matches!(c, Component::Normal(_))), "{:?}", path);
                prop_assert!(!key.contains('\0'));
            }
        }
    }

    #[test]
    fn escaping_keys_have_no_path() {
        for key in [
            "../x.jpg",
            "a/../../x.jpg",
            "/etc/passwd",
            "./a.jpg",
            "a\0b.jpg",
            "",
        ] {
            assert_eq!(out_path(Path::new("/srv/out"), key), None, "{key:?}");
        }
        assert_eq!(
            out_path(Path::new("/srv/out"), "a/b-360.jpg"),
            Some(PathBuf::from("/srv/out/a/b-360.jpg"))
        );
    }
}
