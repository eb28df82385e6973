//! Looking at the store for a plan: [`read_header`] reads and probes the
//! source's start, [`named_parent`] tells a variant without our metadata
//! by its name and size, and [`look`] gives what every planned key holds
//! (a manifest's by [`judge_manifest`]). Reads, never writes.

use super::judge::{judge, Found, META_SOURCE};
use super::outcome::{JobError, Skip, Stop, Variant};
use crate::manifest::manifest_owner;
use crate::pixels::{self, Probe, RenderError};
use crate::recipe::{Fingerprint, Recipe};
use crate::storage::{Fetched, Meta, Storage, StorageError};

/// How much of a source a plan reads first: enough for the headers of
/// nearly every photo (a phone's EXIF block is 10 to 60 KiB), one ranged
/// GET on S3.
pub const HEADER_BYTES: u64 = 64 * 1024;

/// Whether `fetched` holds only the start of its object.
pub(super) fn is_partial(fetched: &Fetched) -> bool {
    fetched
        .meta
        .size
        .is_some_and(|size| size > fetched.bytes.len() as u64)
}

/// The whole object's size as the store gave it (the bytes' length for a
/// store that did not say).
fn size_of(fetched: &Fetched) -> u64 {
    fetched.meta.size.unwrap_or(fetched.bytes.len() as u64)
}

/// Reads the rest of a source whose start a plan read: the whole object,
/// which must still be the version the plan judged by (a source replaced
/// in between is left to the next run, which its upload starts anyway).
pub(super) fn read_whole(
    storage: &dyn Storage,
    key: &str,
    limit: u64,
    planned: &Meta,
) -> Result<Fetched, StorageError> {
    let whole = storage.get(key, limit)?;
    if whole.meta.version != planned.version {
        return Err(StorageError::Transient {
            message: format!("`{key}` changed while it was read; the next run takes the new version"),
            source: None,
        });
    }
    Ok(whole)
}

/// A failed read of a source, as the plan reports it.
fn fetch_error(key: &str, e: StorageError) -> Stop {
    match e {
        StorageError::NotFound(_) => Skip::Gone.into(),
        StorageError::TooLarge { size, limit, .. } => JobError::Render {
            key: key.to_owned(),
            source: RenderError::TooManyBytes { size, limit },
        }
        .into(),
        source => JobError::Get {
            key: key.to_owned(),
            source,
        }
        .into(),
    }
}

/// Reads the source's first bytes and probes them: the header is all a
/// plan needs when the variants turn out current (a rerun reads no more of
/// a source). A header longer than that is read whole. Counts what it
/// reads into `bytes_in`.
pub(super) fn read_header(
    storage: &dyn Storage,
    recipe: &Recipe,
    key: &str,
    bytes_in: &mut u64,
) -> Result<(Fetched, Probe), Stop> {
    let render_err = |source: RenderError| JobError::Render {
        key: key.to_owned(),
        source,
    };
    let limit = recipe.limits().max_input_bytes;
    let mut fetched = storage
        .get_start(key, HEADER_BYTES, limit)
        .map_err(|e| fetch_error(key, e))?;
    *bytes_in = fetched.bytes.len() as u64;
    if fetched.meta.get(META_SOURCE).is_some() {
        return Err(Skip::IsVariant.into());
    }
    if is_partial(&fetched) {
        match pixels::probe_start(&fetched.bytes, size_of(&fetched), recipe.limits()) {
            Ok(Some(probe)) => return Ok((fetched, probe)),
            // Over a limit: said from the header, the rest never read.
            Err(e @ (RenderError::TooManyBytes { .. } | RenderError::TooManyPixels { .. })) => {
                return Err(render_err(e).into())
            }
            // Anything else the whole file tells better.
            Ok(None) | Err(_) => {}
        }
        fetched = read_whole(storage, key, limit, &fetched.meta).map_err(|e| fetch_error(key, e))?;
        *bytes_in += fetched.bytes.len() as u64;
    }
    let probe = pixels::probe(&fetched.bytes, recipe.limits()).map_err(render_err)?;
    Ok((fetched, probe))
}

/// The source `key` is a variant of by its name and pixel size, when it
/// carries no metadata of ours: a name that reads as an output at a width
/// within 1 px of its own, beside a source whose upright size at that width
/// gives its height (±1 px). Only names within a pixel of their width cost
/// a look at a neighbour, so `beach-2019.jpg` and `IMG_1234-2.jpg` beside
/// `IMG_1234.jpg` are read as sources without one. A neighbour that cannot
/// be read is no parent.
pub(super) fn named_parent<S: Storage + ?Sized>(
    storage: &S,
    recipe: &Recipe,
    key: &str,
    probe: &Probe,
) -> Option<(String, u32)> {
    let near = |a: u32, b: u32| a.abs_diff(b) <= 1;
    for (parent, width) in recipe.named_parents(key) {
        if !near(width, probe.width) || storage.head(&parent).ok().flatten().is_none() {
            continue;
        }
        let limit = recipe.limits().max_input_bytes;
        let Ok(fetched) = storage.get_start(&parent, HEADER_BYTES, limit) else {
            continue;
        };
        let size = fetched.meta.size.unwrap_or(fetched.bytes.len() as u64);
        let from_start = pixels::probe_start(&fetched.bytes, size, recipe.limits())
            .ok()
            .flatten();
        let Some(parent_probe) = from_start.or_else(|| {
            let whole = storage.get(&parent, limit).ok()?;
            pixels::probe(&whole.bytes, recipe.limits()).ok()
        }) else {
            continue;
        };
        if parent_probe.width < width.saturating_sub(1) || parent_probe.width == 0 {
            continue;
        }
        let height = crate::geometry::height_for(parent_probe.width, parent_probe.height, width);
        if near(height, probe.height) {
            return Some((parent, width));
        }
    }
    None
}

/// The most a manifest is read for, to tell ours from another document
/// (ours are a few KiB: 16 widths × 3 formats and a placeholder).
const MANIFEST_READ_LIMIT: u64 = 1024 * 1024;

/// What a manifest's key holds, like [`judge`] for a variant; a document
/// resize did not write, or a manifest of another source, fails the job.
/// A stored file without metadata is read to tell whose it is, then judged
/// by its modification time.
fn judge_manifest(
    storage: &dyn Storage,
    recipe: &Recipe,
    key: &str,
    source: &Meta,
    manifest_key: &str,
    head: Option<&Meta>,
) -> Result<Found, JobError> {
    let owner = match head {
        Some(m) if m.metadata.is_none() => {
            let fetched = match storage.get(manifest_key, MANIFEST_READ_LIMIT) {
                Ok(f) => Some(f.bytes),
                // Larger than any manifest of ours.
                Err(StorageError::TooLarge { .. }) => None,
                // Gone since the HEAD: nothing to protect.
                Err(StorageError::NotFound(_)) => return Ok(Found::Missing),
                Err(source) => {
                    return Err(JobError::Check {
                        key: manifest_key.to_owned(),
                        source,
                    })
                }
            };
            Some(fetched.as_deref().and_then(manifest_owner))
        }
        _ => None,
    };
    let found = match owner {
        Some(None) => Found::Unrecorded,
        Some(Some(owner)) if owner != key => Found::OtherSource(owner),
        _ => judge(key, source, head, recipe.manifest_fingerprint()),
    };
    match found {
        Found::Unrecorded => Err(JobError::NotAManifest {
            key: manifest_key.to_owned(),
        }),
        Found::OtherSource(owner) => Err(JobError::Taken {
            variant: manifest_key.to_owned(),
            owner,
        }),
        found => Ok(found),
    }
}

/// What a plan's keys hold: per variant (in plan order) its [`Found`],
/// the fingerprint it was judged by when it is current only by
/// modification time (a store without its metadata: to be recorded with
/// it), and its stored size; then the manifest's key, [`Found`] and the
/// same by-time flag, when the recipe writes one.
pub(super) struct Looked<'k> {
    pub(super) found: Vec<Found>,
    pub(super) by_time: Vec<Option<Fingerprint>>,
    pub(super) sizes: Vec<Option<u64>>,
    pub(super) manifest: Option<(&'k str, Found, bool)>,
}

/// Looks at every planned key: one HEAD each, sent together (the
/// manifest's with the variants': one round trip). A key holding another
/// source's variant fails the job; it is never overwritten.
pub(super) fn look<'k>(
    storage: &dyn Storage,
    recipe: &Recipe,
    key: &str,
    source: &Meta,
    variants: &[Variant],
    manifest_key: Option<&'k str>,
) -> Result<Looked<'k>, JobError> {
    let mut keys: Vec<&str> = variants.iter().map(|v| v.key.as_str()).collect();
    keys.extend(manifest_key);
    let mut heads = storage.head_many(&keys).into_iter();
    let mut next_head = |key: &str| {
        heads
            .next()
            .unwrap_or_else(|| {
                Err(StorageError::Permanent {
                    message: "the store answered fewer heads than it was asked".to_owned(),
                    source: None,
                })
            })
            .map_err(|source| JobError::Check {
                key: key.to_owned(),
                source,
            })
    };
    let mut looked = Looked {
        found: Vec::with_capacity(variants.len()),
        by_time: Vec::with_capacity(variants.len()),
        sizes: Vec::with_capacity(variants.len()),
        manifest: None,
    };
    for variant in variants {
        let head = next_head(&variant.key)?;
        let fingerprint = recipe.fingerprint(variant.format);
        let by_time = head.as_ref().is_some_and(|m| m.metadata.is_none());
        looked.by_time.push(by_time.then_some(fingerprint));
        looked.sizes.push(head.as_ref().and_then(|m| m.size));
        let judged = judge(key, source, head.as_ref(), fingerprint);
        if let Found::OtherSource(owner) = judged {
            return Err(JobError::Taken {
                variant: variant.key.clone(),
                owner,
            });
        }
        looked.found.push(judged);
    }
    if let Some(manifest_key) = manifest_key {
        let head = next_head(manifest_key)?;
        let judged = judge_manifest(storage, recipe, key, source, manifest_key, head.as_ref())?;
        let by_time = head.is_some_and(|m| m.metadata.is_none());
        looked.manifest = Some((manifest_key, judged, by_time));
    }
    Ok(looked)
}
