//! The core's `Storage` over the file system: sources are read where the
//! walk found them, variants are written under the output root atomically
//! (temporary file in the same directory, then rename).
//!
//! Files keep no user metadata, so `head` says so (`metadata: None`) and
//! the core judges a variant current when it is no older than its source.
//! A file's version is its modification time and length. Listing and
//! deleting are not needed by a local run and stay unsupported.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Component, Path, PathBuf};

use std::time::UNIX_EPOCH;

use resize_core::{Fetched, Meta, Object, Storage, StorageError};

use crate::walk::SourceFile;

/// Prefix of the temporary files; stale ones (from a killed run) are
/// removed when the next run starts.
const TEMP_PREFIX: &str = ".resize-tmp-";

pub fn is_temp_name(name: &OsStr) -> bool {
    name.to_str().is_some_and(|n| n.starts_with(TEMP_PREFIX))
}

pub struct FsStorage {
    out: PathBuf,
    sources: HashMap<String, PathBuf>,
    /// Canonical paths of every source, which no output may replace.
    source_paths: HashSet<PathBuf>,
}

impl FsStorage {
    pub fn new(out: &Path, files: &[SourceFile], dry_run: bool) -> anyhow::Result<FsStorage> {
        if !dry_run {
            fs::create_dir_all(out)?;
        }
        let out = fs::canonicalize(out).unwrap_or_else(|_| out.to_path_buf());
        if !dry_run {
            remove_stale_temps(&out);
        }
        Ok(FsStorage {
            sources: files.iter().map(|f| (f.key.clone(), f.path.clone())).collect(),
            source_paths: files
                .iter()
                .filter_map(|f| fs::canonicalize(&f.path).ok())
                .collect(),
            out,
        })
    }

    fn out_path(&self, key: &str) -> Option<PathBuf> {
        out_path(&self.out, key)
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

impl FsStorage {
    /// The file behind `key`: a walked source, else a path under the output root.
    fn path(&self, key: &str) -> Option<PathBuf> {
        self.sources.get(key).cloned().or_else(|| self.out_path(key))
    }
}

/// What the file system knows of a file.
fn meta(m: &fs::Metadata) -> Meta {
    let modified = m.modified().ok();
    let stamp = modified
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Meta {
        version: Some(format!("{stamp}-{}", m.len())),
        size: Some(m.len()),
        modified,
        metadata: None,
    }
}

impl Storage for FsStorage {
    fn head(&self, key: &str) -> Result<Option<Meta>, StorageError> {
        let Some(path) = self.path(key) else {
            return Ok(None);
        };
        match fs::metadata(&path) {
            Ok(m) => Ok(Some(meta(&m))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(e, key, "look at")),
        }
    }

    fn get(&self, key: &str, limit: u64) -> Result<Fetched, StorageError> {
        let path = self
            .sources
            .get(key)
            .ok_or_else(|| StorageError::NotFound(key.to_owned()))?;
        let m = fs::metadata(path).map_err(|e| io_error(e, key, "read"))?;
        if m.len() > limit {
            return Err(StorageError::TooLarge {
                key: key.to_owned(),
                size: m.len(),
                limit,
            });
        }
        let bytes = fs::read(path).map_err(|e| io_error(e, key, "read"))?;
        Ok(Fetched {
            bytes,
            meta: meta(&m),
        })
    }

    fn put(&self, key: &str, object: Object<'_>) -> Result<(), StorageError> {
        let path = self.out_path(key).ok_or_else(|| StorageError::Permanent {
            message: format!("key `{key}` would leave the output directory"),
            source: None,
        })?;
        let parent = path.parent().unwrap_or(&self.out);
        fs::create_dir_all(parent).map_err(|e| io_error(e, key, "create directory for"))?;
        let target = fs::canonicalize(parent).map(|p| p.join(path.file_name().unwrap_or_default()));
        if target.is_ok_and(|t| self.source_paths.contains(&t)) {
            return Err(StorageError::Permanent {
                message: format!("refusing to overwrite source file `{}`", path.display()),
                source: None,
            });
        }
        let mut tmp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(parent)
            .map_err(|e| io_error(e, key, "create temporary file for"))?;
        tmp.write_all(object.bytes)
            .and_then(|()| tmp.as_file().sync_data())
            .map_err(|e| io_error(e, key, "write"))?;
        tmp.persist(&path)
            .map_err(|e| io_error(e.error, key, "rename into place"))?;
        Ok(())
    }
}

fn io_error(e: std::io::Error, key: &str, what: &str) -> StorageError {
    // The io error follows as the source; `error_chain` prints it after the message.
    let message = format!("cannot {what} `{key}`");
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

/// Deletes temporary files a killed run left under `root`.
fn remove_stale_temps(root: &Path) {
    let Ok(entries) = fs::read_dir(root) else { return };
    for entry in entries.flatten() {
        let Ok(ft) = entry.file_type() else { continue };
        if ft.is_dir() {
            remove_stale_temps(&entry.path());
        } else if ft.is_file() && is_temp_name(&entry.file_name()) {
            let _ = fs::remove_file(entry.path());
        }
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
