//! What a key holds and what the run does with it, as rules without I/O:
//! [`judge`] reads an output's metadata (or its modification time) and
//! [`decide`] is the one staleness rule.

use std::fmt;

use crate::recipe::Fingerprint;
use crate::storage::Meta;

/// User metadata every variant carries: the key of its source. A job
/// refuses objects carrying it as sources, and never overwrites a variant
/// whose value names another source.
pub const META_SOURCE: &str = "resize-source";

/// User metadata naming the version of the source a variant was made from
/// (S3: its ETag, hence the name, kept so that variants written by earlier
/// releases stay current).
pub const META_SOURCE_VERSION: &str = "resize-source-etag";

/// User metadata holding the [`Fingerprint`] of the recipe a variant was
/// made with, for its format. A variant is current only while it matches.
pub const META_FINGERPRINT: &str = "resize-fingerprint";

/// What a planned variant's key holds now.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Found {
    /// Nothing.
    Missing,
    /// A variant of this version of this source.
    Current,
    /// A variant of another version of this source.
    OtherVersion,
    /// A variant of this version of this source made with other settings
    /// or another pipeline version (or before variants recorded their
    /// fingerprint).
    OtherFingerprint,
    /// An object that records no source (not made by resize).
    Unrecorded,
    /// A file older than the source (stores without metadata).
    Older,
    /// A variant of another source, named here; never overwritten.
    OtherSource(String),
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Found::Missing => f.write_str("missing"),
            Found::Current => f.write_str("current"),
            Found::OtherVersion => f.write_str("made from another version of the source"),
            Found::OtherFingerprint => f.write_str("made with other settings"),
            Found::Unrecorded => f.write_str("not made by resize"),
            Found::Older => f.write_str("older than the source"),
            Found::OtherSource(owner) => write!(f, "a variant of `{owner}`"),
        }
    }
}

/// What a variant's key holds, judged from the source's and the variant's
/// [`Meta`] alone, for a variant the recipe makes with `fingerprint`
/// ([`Recipe::fingerprint`](crate::recipe::Recipe::fingerprint)). A store that keeps metadata is judged by it
/// (which source, which version, which fingerprint); one that keeps none
/// (files without a state record) by modification times.
pub fn judge(source_key: &str, source: &Meta, variant: Option<&Meta>, fingerprint: Fingerprint) -> Found {
    let Some(v) = variant else { return Found::Missing };
    if v.metadata.is_none() {
        return match (source.modified, v.modified) {
            (Some(s), Some(m)) if m >= s => Found::Current,
            _ => Found::Older,
        };
    }
    match v.get(META_SOURCE) {
        None => Found::Unrecorded,
        Some(owner) if owner != source_key => Found::OtherSource(owner.to_owned()),
        Some(_) => match (source.version.as_deref(), v.get(META_SOURCE_VERSION)) {
            (Some(s), Some(r)) if s == r => {
                if v.get(META_FINGERPRINT) == Some(fingerprint.to_string().as_str()) {
                    Found::Current
                } else {
                    Found::OtherFingerprint
                }
            }
            _ => Found::OtherVersion,
        },
    }
}

/// Whether a planned output is written, and why. Made once, by
/// [`plan_job`](super::plan_job); the dry run, the write step and both adapters read it and
/// never decide again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision {
    /// Current: left as it is.
    Keep,
    /// Not current (its [`Found`] says how): written.
    Stale,
    /// Current, but the run is forced: written.
    Forced,
    /// A current variant whose size the store did not give, which the
    /// manifest lists: written again, so its size is known.
    SizeUnknown,
    /// A current manifest whose variants are written: written with them.
    VariantsChanged,
}

impl Decision {
    /// Whether the output is written.
    pub fn writes(self) -> bool {
        self != Decision::Keep
    }
}

impl Decision {
    /// How a report names it (`forced`, `size unknown`, …).
    pub fn name(self) -> &'static str {
        match self {
            Decision::Keep => "keep",
            Decision::Stale => "stale",
            Decision::Forced => "forced",
            Decision::SizeUnknown => "size unknown",
            Decision::VariantsChanged => "its variants change",
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The one staleness rule: what the run does with each planned variant
/// and with the manifest (`None` when the recipe writes none), from what
/// their keys hold, the sizes the store gave (a manifest lists every
/// variant's size) and whether the run is forced.
pub(super) fn decide(
    found: &[Found],
    sizes: &[Option<u64>],
    manifest: Option<&Found>,
    force: bool,
) -> (Vec<Decision>, Option<Decision>) {
    let variants: Vec<Decision> = found
        .iter()
        .zip(sizes)
        .map(|(found, size)| match found {
            Found::Current if force => Decision::Forced,
            Found::Current if manifest.is_some() && size.is_none() => Decision::SizeUnknown,
            Found::Current => Decision::Keep,
            _ => Decision::Stale,
        })
        .collect();
    let manifest = manifest.map(|found| match found {
        _ if force => Decision::Forced,
        Found::Current if variants.iter().any(|d| d.writes()) => Decision::VariantsChanged,
        Found::Current => Decision::Keep,
        _ => Decision::Stale,
    });
    (variants, manifest)
}
