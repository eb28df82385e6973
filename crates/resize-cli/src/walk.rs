//! Turns INPUT arguments into (key, path) pairs: a file's key is its path
//! relative to its INPUT directory, `/`-separated, or its name for a file
//! argument.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::report::ImageLine;

/// One source file.
pub struct SourceFile {
    pub key: String,
    pub path: PathBuf,
}

pub struct Walked {
    /// Sources, sorted by key.
    pub files: Vec<SourceFile>,
    /// Files that could not become keys (non-UTF-8 names, duplicates).
    pub errors: Vec<ImageLine>,
}

/// Walks the inputs. The output directory is never walked into, so a run
/// whose output sits inside its input cannot pick up its own outputs.
pub fn walk(inputs: &[PathBuf], out: Option<&Path>) -> anyhow::Result<Walked> {
    let out = out.and_then(|o| fs::canonicalize(o).ok());
    let mut files: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut errors = Vec::new();
    for input in inputs {
        let meta = fs::metadata(input).with_context(|| format!("cannot read input `{}`", input.display()))?;
        let mut found = Vec::new();
        if meta.is_dir() {
            collect(input, Path::new(""), out.as_deref(), &mut found, &mut errors)?;
        } else if meta.is_file() {
            let Some(name) = input.file_name() else {
                bail!("input `{}` has no file name", input.display());
            };
            found.push((PathBuf::from(name), input.clone()));
        } else {
            bail!("input `{}` is neither a file nor a directory", input.display());
        }
        for (rel, path) in found {
            match key_of(&rel) {
                Some(key) => {
                    if let Some(first) = files.get(&key) {
                        errors.push(ImageLine::failed(
                            &key,
                            format!(
                                "key also comes from `{}`; `{}` is not processed",
                                first.display(),
                                path.display()
                            ),
                        ));
                    } else {
                        files.insert(key, path);
                    }
                }
                None => errors.push(ImageLine::failed(
                    &rel.to_string_lossy(),
                    "file name is not valid UTF-8".to_owned(),
                )),
            }
        }
    }
    Ok(Walked {
        files: files
            .into_iter()
            .map(|(key, path)| SourceFile { key, path })
            .collect(),
        errors,
    })
}

fn collect(
    dir: &Path,
    rel: &Path,
    out: Option<&Path>,
    found: &mut Vec<(PathBuf, PathBuf)>,
    errors: &mut Vec<ImageLine>,
) -> anyhow::Result<()> {
    // The output directory met *inside* an input is not searched; an input
    // that is the output directory itself (an in-place run) or lies inside
    // it is, and the key rules keep its outputs from being taken as sources.
    if let (Some(out), Ok(canonical)) = (out, fs::canonicalize(dir)) {
        if !rel.as_os_str().is_empty() && canonical == out {
            return Ok(());
        }
    }
    let mut entries: Vec<_> = match fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(Result::ok).collect(),
        Err(e) => {
            errors.push(ImageLine::failed(
                &rel.to_string_lossy(),
                format!("cannot list directory: {e}"),
            ));
            return Ok(());
        }
    };
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let rel = rel.join(entry.file_name());
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        if file_type.is_dir() {
            collect(&path, &rel, out, found, errors)?;
        } else if file_type.is_file() || (file_type.is_symlink() && path.is_file()) {
            // Symlinked directories are not followed: they can form cycles.
            if !crate::fs_storage::is_own_file(&entry.file_name()) {
                found.push((rel, path));
            }
        }
    }
    Ok(())
}

fn key_of(rel: &Path) -> Option<String> {
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    Some(parts?.join("/"))
}
