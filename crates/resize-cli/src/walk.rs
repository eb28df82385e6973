//! Turns INPUT arguments into (key, path) pairs: a file's key is its path
//! relative to its INPUT directory, `/`-separated, or its name for a file
//! argument.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::report::ImageLine;
use crate::state::{recorded, Entry};

/// One source file.
pub struct SourceFile {
    pub key: String,
    pub path: PathBuf,
    /// The metadata a state file records for this very file when it is a
    /// variant an earlier run wrote (the file unchanged since): the store
    /// hands it out as the file's metadata, so the job skips it as a
    /// variant, as it skips an S3 object carrying ours.
    pub recorded: Option<BTreeMap<String, String>>,
    /// Named on the command line (not found by walking a folder): a file
    /// the run cannot process is then a failure, not a skip.
    pub named: bool,
}

/// The state files met on the way to a file: each output root (a folder
/// holding `.resize-state.json`) with the variants it records.
#[derive(Clone, Default)]
struct Roots(Vec<(PathBuf, std::rc::Rc<BTreeMap<String, Entry>>)>);

impl Roots {
    /// The roots at `dir` and above it (for an input given by name, which
    /// may lie inside an earlier run's output root).
    fn above(dir: &Path) -> Roots {
        let mut roots = Roots::default();
        if let Ok(dir) = fs::canonicalize(dir) {
            let mut found: Vec<_> = dir
                .ancestors()
                .filter_map(|a| Some((a.to_path_buf(), recorded(a)?)))
                .collect();
            found.reverse();
            roots.0 = found.into_iter().map(|(a, e)| (a, std::rc::Rc::new(e))).collect();
        }
        roots
    }

    /// These roots and `dir`'s own, if it has a state file.
    fn with(&self, dir: &Path) -> Roots {
        let mut roots = self.clone();
        // The input folder's own state file was read by `above`: read each
        // file once (a big folder's state file is megabytes of JSON).
        let Ok(dir) = fs::canonicalize(dir) else {
            return roots;
        };
        if roots.0.last().is_some_and(|(last, _)| *last == dir) {
            return roots;
        }
        if let Some(entries) = recorded(&dir) {
            roots.0.push((dir, std::rc::Rc::new(entries)));
        }
        roots
    }

    /// What the innermost root records for the file at `path`, if it is
    /// the file recorded.
    fn variant(&self, path: &Path) -> Option<BTreeMap<String, String>> {
        if self.0.is_empty() {
            return None;
        }
        let canonical = fs::canonicalize(path).ok()?;
        let file = fs::metadata(&canonical).ok()?;
        self.0.iter().rev().find_map(|(root, entries)| {
            let key = key_of(canonical.strip_prefix(root).ok()?)?;
            let entry = entries.get(&key)?;
            entry.describes(&file).then(|| entry.metadata.clone())
        })
    }
}

pub struct Walked {
    /// Sources, sorted by key.
    pub files: Vec<SourceFile>,
    /// Files that could not become keys (non-UTF-8 names, duplicates).
    pub errors: Vec<ImageLine>,
}

/// Walks the inputs. The output directory is never walked into, so a run
/// whose output sits inside its input cannot pick up its own outputs; any
/// other output root met (an in-place run's, an earlier run's with another
/// `--out`) is walked, and the files its state file records as variants
/// carry that record ([`SourceFile::recorded`]).
pub fn walk(inputs: &[PathBuf], out: Option<&Path>) -> anyhow::Result<Walked> {
    let out = out.and_then(|o| fs::canonicalize(o).ok());
    // Key → (path, what a state file records of it, named).
    let mut files: BTreeMap<String, (PathBuf, Option<Metadata>, bool)> = BTreeMap::new();
    let mut errors = Vec::new();
    for input in inputs {
        let meta = fs::metadata(input).with_context(|| format!("cannot read input `{}`", input.display()))?;
        let mut found = Vec::new();
        if meta.is_dir() {
            let roots = Roots::above(input);
            collect(
                input,
                Path::new(""),
                out.as_deref(),
                &roots,
                &mut found,
                &mut errors,
            )?;
        } else if meta.is_file() {
            let Some(name) = input.file_name() else {
                bail!("input `{}` has no file name", input.display());
            };
            let parent = input
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let recorded = Roots::above(parent).variant(input);
            found.push((PathBuf::from(name), input.clone(), recorded, true));
        } else {
            bail!("input `{}` is neither a file nor a directory", input.display());
        }
        for (rel, path, recorded, named) in found {
            match key_of(&rel) {
                Some(key) => {
                    let same = |first: &Path| {
                        first == path
                            || fs::canonicalize(first)
                                .ok()
                                .is_some_and(|f| fs::canonicalize(&path).ok() == Some(f))
                    };
                    if let Some((first, _, was_named)) = files.get_mut(&key) {
                        // The same file given twice (a file and its folder, a
                        // folder twice) is one job, named if named once.
                        if same(first) {
                            *was_named |= named;
                            continue;
                        }
                        errors.push(ImageLine::failed(
                            &key,
                            format!(
                                "key also comes from `{}`; `{}` is not processed",
                                first.display(),
                                path.display()
                            ),
                        ));
                    } else {
                        files.insert(key, (path, recorded, named));
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
            .map(|(key, (path, recorded, named))| SourceFile {
                key,
                path,
                recorded,
                named,
            })
            .collect(),
        errors,
    })
}

/// A file found: its path relative to its input, its path, and what a
/// state file records of it.
type Found = (PathBuf, PathBuf, Option<Metadata>, bool);

/// User metadata, name → value.
type Metadata = BTreeMap<String, String>;

fn collect(
    dir: &Path,
    rel: &Path,
    out: Option<&Path>,
    roots: &Roots,
    found: &mut Vec<Found>,
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
            errors.push(ImageLine::folder_failed(
                &rel.to_string_lossy(),
                format!("cannot list directory: {e}"),
            ));
            return Ok(());
        }
    };
    entries.sort_by_key(|e| e.file_name());
    let roots = roots.with(dir);
    for entry in entries {
        let path = entry.path();
        let rel = rel.join(entry.file_name());
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        if file_type.is_dir() {
            collect(&path, &rel, out, &roots, found, errors)?;
        } else if file_type.is_symlink() && !path.exists() && has_image_extension(&rel) {
            // A link to a photo that is gone is a photo missing, not a file
            // to pass over in silence.
            let target = fs::read_link(&path)
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            errors.push(ImageLine::failed(
                &rel.to_string_lossy(),
                format!("is a symbolic link to `{target}`, which does not exist"),
            ));
        } else if file_type.is_file() || (file_type.is_symlink() && path.is_file()) {
            // Symlinked directories are not followed: they can form cycles.
            if !crate::state::is_own_file(&entry.file_name()) {
                let recorded = roots.variant(&path);
                found.push((rel, path, recorded, false));
            }
        }
    }
    Ok(())
}

fn has_image_extension(rel: &Path) -> bool {
    rel.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        resize_core::adapter::SOURCE_EXTENSIONS
            .iter()
            .any(|s| s.eq_ignore_ascii_case(e))
    })
}

fn key_of(rel: &Path) -> Option<String> {
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    Some(parts?.join("/"))
}
