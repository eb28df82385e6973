//! The CLI's one way to write a file: whole or not at all. Every file the
//! CLI writes (variants and manifests, the state file, the `--html` page)
//! goes to a temporary file in the target's folder, readable by all, is
//! synced to disk, then renamed over the target: a reader, or a run after a
//! crash, sees the old file or the new one, never half of one.
//!
//! A temporary file's name holds its writer's process id, so the next run
//! removes what a killed run left ([`remove_stale_temps`]) and never what a
//! run still writing holds.

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Prefix of the temporary files, followed by the writing process's id and
/// `-`.
pub const TEMP_PREFIX: &str = ".resize-tmp-";

/// A failed write: which step, on which path (the folder, the temporary
/// file or the target), and the system's error.
#[derive(Debug)]
pub struct WriteError {
    /// What could not be done, as a message says it after "cannot".
    pub what: &'static str,
    pub path: PathBuf,
    pub error: std::io::Error,
}

/// Writes `bytes` to `path` whole or not at all (see the module doc). The
/// folder must exist.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    // A path with a file name has a parent; "" is the current folder.
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fn fail<'p>(what: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> WriteError + 'p {
        move |error| WriteError {
            what,
            path: path.to_path_buf(),
            error,
        }
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!("{TEMP_PREFIX}{}-", std::process::id()))
        .tempfile_in(dir)
        .map_err(fail("create a temporary file in", dir))?;
    // Readable by all, as a file the user wrote would be (temporary files
    // are created private): a web server serves the variants and the page.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o644))
            .map_err(fail("write", tmp.path()))?;
    }
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_data())
        .map_err(fail("write", tmp.path()))?;
    // On failure the temporary file is deleted as it is dropped.
    tmp.persist(path)
        .map_err(|e| fail("rename a temporary file to", path)(e.error))?;
    Ok(())
}

/// Whether a file name is a temporary file's.
pub fn is_temp(name: &OsStr) -> bool {
    name.to_str().is_some_and(|n| n.starts_with(TEMP_PREFIX))
}

/// Deletes temporary files a killed run left under `root`: those whose
/// writer is no longer running, never a concurrent run's.
pub fn remove_stale_temps(root: &Path) {
    let Ok(entries) = fs::read_dir(root) else { return };
    for entry in entries.flatten() {
        let Ok(ft) = entry.file_type() else { continue };
        if ft.is_dir() {
            remove_stale_temps(&entry.path());
        } else if ft.is_file() && writer_is_gone(&entry.file_name(), &entry.metadata().ok()) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Whether a temporary file's writer has ended: the process named in its
/// name is not running (Linux: no `/proc/<pid>`; elsewhere the file is
/// over a day old). Files of older releases (no process id) are stale.
fn writer_is_gone(name: &OsStr, m: &Option<fs::Metadata>) -> bool {
    let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(TEMP_PREFIX)) else {
        return false;
    };
    let Some(pid) = rest.split_once('-').and_then(|(p, _)| p.parse::<u32>().ok()) else {
        return true;
    };
    if pid == std::process::id() {
        return false;
    }
    if cfg!(target_os = "linux") {
        return !Path::new(&format!("/proc/{pid}")).exists();
    }
    let age = m
        .as_ref()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.elapsed().ok());
    age.is_some_and(|a| a > std::time::Duration::from_secs(24 * 3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_whole_files_readable_by_all_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        write(&path, b"old").unwrap();
        write(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o644);
        }
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a.txt"]);
        // A missing folder: said, with the folder's path, and nothing written.
        let missing = dir.path().join("no/such/b.txt");
        let e = write(&missing, b"x").unwrap_err();
        assert_eq!(
            (e.what, e.path.as_path()),
            ("create a temporary file in", dir.path().join("no/such").as_path())
        );
    }
}
