//! One key from source to stored variants, in two steps every adapter
//! shares: [`plan_job`] reads the source and decides (what exists, what is
//! stale and why, what would be written), [`carry_out`] renders and
//! writes what the plan says. [`run_job`] is both; a dry run is the plan
//! alone. [`remove_variants`] deletes a removed source's variants.
//!
//! Requests per source, for a store that keeps metadata (S3): one ranged
//! GET of the source's first [`HEADER_BYTES`] (its size is checked before
//! the body is read; a header longer than that costs a GET of the whole),
//! one HEAD per
//! planned variant (every one: a variant another source made must not be
//! overwritten, so each is looked at; sent together through
//! [`Storage::head_many`]), then, when any output is written, a GET of the
//! whole source and one PUT per written output. A duplicate delivery
//! stops after the HEADs.

use std::any::Any;
use std::fmt;
use std::ops::ControlFlow;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::budget::{MemoryBudget, OverBudget};
use crate::keys::{KeyTooLong, NotASource, SourceKey};
use crate::manifest::{manifest_owner, Manifest, ManifestEntry};
use crate::pixels::{self, Only, Probe, RenderError};
use crate::recipe::{Fingerprint, Recipe};
use crate::storage::{Fetched, Meta, Object, Storage, StorageError};
use crate::values::Format;

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

/// Why a key was not processed. Skips are normal outcomes, not failures;
/// the type is an [`Error`](std::error::Error) so that a caller who wants
/// a source or nothing can use `?`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Skip {
    /// The key is not a source under the recipe's key rules.
    #[error(transparent)]
    NotASource(#[from] NotASource),
    /// Every variant exists and is up to date.
    #[error("all variants are up to date")]
    UpToDate,
    /// The source is narrower than every requested width (upscale policy `skip`).
    #[error("source is {width} px wide, narrower than every requested width")]
    TooNarrow {
        /// The oriented source width.
        width: u32,
    },
    /// The object carries the metadata of one of our variants.
    #[error("object is a variant made by resize")]
    IsVariant,
    /// The object carries no metadata of ours, but its name and pixel size
    /// are those of a variant of a source beside it: `a-720.jpg`, 720 px
    /// wide and as tall as `a.jpg` is at that width (±1 px, which also
    /// catches the 2019 Lambda's 2199-px outputs). A store without metadata
    /// (files without the state file) or a variant made by another tool.
    #[error("looks like a {width} px variant of `{of}` (its name and size), not a source")]
    LooksLikeVariant {
        /// The source it would be made from.
        of: String,
        /// The width its name says.
        width: u32,
    },
    /// The source was gone when the job came to read it (deleted after
    /// the event was sent, or while a run was under way).
    #[error("source no longer exists")]
    Gone,
    /// Removal: the source exists again (a late event), so its variants stay.
    #[error("source exists again; variants kept")]
    Reappeared,
}

/// One job (one source key) failed. Messages name the key and the step;
/// the cause follows as the error's source (print with [`error_chain`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// Reading the source failed.
    #[error("cannot read `{key}`")]
    Get {
        /// The source key.
        key: String,
        /// The storage error.
        #[source]
        source: StorageError,
    },
    /// Writing a variant failed.
    #[error("cannot write `{key}`")]
    Put {
        /// The variant key.
        key: String,
        /// The storage error.
        #[source]
        source: StorageError,
    },
    /// Looking at a variant (or, for a removal, the source) failed.
    #[error("cannot check `{key}`")]
    Check {
        /// The key looked at.
        key: String,
        /// The storage error.
        #[source]
        source: StorageError,
    },
    /// Listing a removed source's variants failed.
    #[error("cannot list `{prefix}`")]
    List {
        /// The prefix listed.
        prefix: String,
        /// The storage error.
        #[source]
        source: StorageError,
    },
    /// Deleting a variant failed.
    #[error("cannot delete `{key}`")]
    Delete {
        /// The variant key.
        key: String,
        /// The storage error.
        #[source]
        source: StorageError,
    },
    /// The source could not be rendered.
    #[error("cannot render `{key}`")]
    Render {
        /// The source key.
        key: String,
        /// Why.
        #[source]
        source: RenderError,
    },
    /// The source needs more memory than the whole budget, even alone.
    #[error("cannot render `{key}`")]
    Memory {
        /// The source key.
        key: String,
        /// What it needs and what there is.
        #[source]
        source: OverBudget,
    },
    /// An output key would be longer than storage keys may be.
    #[error(transparent)]
    KeyTooLong(#[from] KeyTooLong),
    /// A variant key holds a variant of another source (`a.jpg` and
    /// `a.png` make the same keys); it is never overwritten.
    #[error(
        "its outputs would overwrite those of `{owner}` (`{variant}` was made from it); rename one of them"
    )]
    Taken {
        /// The variant key.
        variant: String,
        /// The source its metadata names.
        owner: String,
    },
    /// The manifest's key holds a document resize did not write; it is
    /// never overwritten.
    #[error(
        "`{key}` exists and is not a manifest made by resize; it is never overwritten (move it, or choose another MANIFEST_TEMPLATE)"
    )]
    NotAManifest {
        /// The manifest key.
        key: String,
    },
    /// A codec panicked; the message is the panic's.
    #[error("internal error while processing `{key}` (panic: {message})")]
    Panic {
        /// The source key.
        key: String,
        /// The panic's message.
        message: String,
    },
}

impl JobError {
    /// Whether retrying could succeed (storage trouble) rather than the
    /// input being at fault.
    pub fn is_transient(&self) -> bool {
        match self {
            JobError::Get { source, .. }
            | JobError::Put { source, .. }
            | JobError::Check { source, .. }
            | JobError::List { source, .. }
            | JobError::Delete { source, .. } => source.is_transient(),
            JobError::Render { .. }
            | JobError::Memory { .. }
            | JobError::KeyTooLong(_)
            | JobError::Taken { .. }
            | JobError::NotAManifest { .. }
            | JobError::Panic { .. } => false,
        }
    }
}

/// An error and its causes, `: `-joined (like anyhow's `{:#}`). No message
/// in this crate repeats its source, so nothing is printed twice. Both
/// adapters print errors this way.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// One variant of a source: where it goes and what it is. The same record
/// describes a planned variant (`bytes` is `None`) and a written one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Variant {
    /// Its key.
    pub key: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The encoding.
    pub format: Format,
    /// Encoded size, once written.
    pub bytes: Option<u64>,
}

/// The variants `recipe` makes for `source`, whose header gave `probe`:
/// each size ascending, in each format in recipe order. Empty when the
/// source is narrower than every width (upscale `skip`).
pub fn plan_variants(recipe: &Recipe, source: &SourceKey, probe: &Probe) -> Result<Vec<Variant>, JobError> {
    let mut out = Vec::new();
    for size in pixels::sizes(recipe, probe) {
        for &format in recipe.formats() {
            out.push(Variant {
                key: source.output_key(size.width, size.height, format)?,
                width: size.width,
                height: size.height,
                format,
                bytes: None,
            });
        }
    }
    Ok(out)
}

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
/// ([`Recipe::fingerprint`]). A store that keeps metadata is judged by it
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
/// [`plan_job`]; the dry run, the write step and both adapters read it and
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

/// A variant in a [`Plan`], with what its key holds now and what the run
/// does with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    /// The variant.
    pub variant: Variant,
    /// What its key holds.
    pub found: Found,
    /// Whether it is written.
    pub decision: Decision,
}

/// A source's manifest, in a [`Plan`] (what its key holds) or a
/// [`Report`] (written: its size too).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestOutput {
    /// The manifest's key.
    pub key: String,
    /// What the key held when the job planned.
    pub found: Found,
    /// Whether the run writes it.
    pub decision: Decision,
    /// Its size, once written.
    pub bytes: Option<u64>,
}

/// The source `key` is a variant of by its name and pixel size, when it
/// carries no metadata of ours: a name that reads as an output at a width
/// within 1 px of its own, beside a source whose upright size at that width
/// gives its height (±1 px). Only names within a pixel of their width cost
/// a look at a neighbour, so `beach-2019.jpg` and `IMG_1234-2.jpg` beside
/// `IMG_1234.jpg` are read as sources without one. A neighbour that cannot
/// be read is no parent.
fn named_parent<S: Storage + ?Sized>(
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

/// What [`carry_out`] will do.
#[derive(Debug)]
#[non_exhaustive]
pub enum Action {
    /// Render and write the listed variants that are not current (every
    /// one when the run is forced), then the manifest when the recipe
    /// writes one; at least one variant or the manifest is stale. The list
    /// holds every variant of the source, current ones included, so a
    /// plan shows all.
    Write(Vec<Planned>),
    /// Nothing to do, for a normal reason.
    Skip(Skip),
    /// The job cannot go on.
    Fail(JobError),
}

/// The decision for one key, made before anything is written. It borrows
/// the recipe that made it, which [`carry_out`] uses: a plan cannot be
/// carried out under another recipe than the one that decided it.
#[derive(Debug)]
pub struct Plan<'r> {
    /// The source key.
    pub key: String,
    /// Bytes read from the source (0 when nothing was read).
    pub bytes_in: u64,
    /// What to do.
    pub action: Action,
    /// The source's manifest, when the recipe writes one and the plan got
    /// as far as looking at it.
    pub manifest: Option<ManifestOutput>,
    /// The recipe the plan was made with.
    recipe: &'r Recipe,
    /// The source as read, for [`carry_out`].
    source: Option<Fetched>,
    /// Where [`carry_out`] is admitted before rendering.
    budget: MemoryBudget,
    /// Outputs found current by modification time in a store without
    /// their metadata, to [`Storage::adopt`] with the source's version:
    /// each key and the fingerprint it is current for.
    adopt: Vec<(String, Fingerprint)>,
    version: Option<String>,
    /// What the manifest needs besides the written variants: the source's
    /// upright size and the stored size of each planned variant (in plan
    /// order; `None` when missing or the store did not say).
    upright: (u32, u32),
    sizes: Vec<Option<u64>>,
}

impl Plan<'_> {
    /// Whether [`carry_out`] will write the manifest: the plan writes and
    /// decided so ([`ManifestOutput::decision`]).
    pub fn writes_manifest(&self) -> bool {
        matches!(self.action, Action::Write(_)) && self.manifest.as_ref().is_some_and(|m| m.decision.writes())
    }
}

/// The one staleness rule: what the run does with each planned variant
/// and with the manifest (`None` when the recipe writes none), from what
/// their keys hold, the sizes the store gave (a manifest lists every
/// variant's size) and whether the run is forced.
fn decide(
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

/// Options for [`plan_job`] and [`run_job`].
#[derive(Clone, Debug, Default)]
pub struct JobOptions {
    /// Rebuild variants even when they are current (never those of
    /// another source).
    pub force: bool,
    /// Shared by the jobs rendering at once: [`carry_out`] waits until the
    /// source's estimated working set fits, and fails the job when it could
    /// never fit. Unlimited by default.
    pub budget: MemoryBudget,
}

/// What happened to one key.
#[derive(Debug)]
#[non_exhaustive]
pub enum Outcome {
    /// Variants were written.
    Written(Vec<Variant>),
    /// A removed source's variants were deleted (their keys).
    Deleted(Vec<String>),
    /// The key was not processed, for a normal reason.
    Skipped(Skip),
    /// Processing failed.
    Failed(JobError),
}

/// The report of one job.
#[derive(Debug)]
pub struct Report {
    /// The source key.
    pub key: String,
    /// Bytes read from the source (0 when skipped before reading).
    pub bytes_in: u64,
    /// What happened.
    pub outcome: Outcome,
    /// The manifest written, if one was (with the variants, or alone for
    /// variants already current).
    pub manifest: Option<ManifestOutput>,
}

/// Plans one key: check the key, read the source (refusing one over the
/// size limit unread, or one that is itself a variant), probe its header,
/// list the variants and look at each. Never writes; never panics (a
/// codec's panic is the plan's failure). A dry run is this alone.
///
/// ```
/// use resize_core::{carry_out, plan_job, Action, Found, JobOptions, MemoryStorage, Recipe, Skip, Width};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let mut jpeg = Vec::new();
/// # image::RgbImage::from_pixel(800, 600, image::Rgb([10, 120, 200]))
/// #     .write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)?;
/// let store = MemoryStorage::new();
/// store.insert("a.jpg", jpeg);
/// let recipe = Recipe::builder().widths(&[Width::new(360).expect("a valid width")]).build()?;
/// let plan = plan_job(&store, &recipe, "a.jpg", JobOptions::default());
/// let Action::Write(planned) = &plan.action else { panic!("{:?}", plan.action) };
/// assert_eq!((planned[0].variant.key.as_str(), &planned[0].found), ("a-360.jpg", &Found::Missing));
/// carry_out(&store, plan);
/// // Written from this version of the source: the next plan has nothing to do.
/// let again = plan_job(&store, &recipe, "a.jpg", JobOptions::default());
/// assert!(matches!(again.action, Action::Skip(Skip::UpToDate)));
/// # Ok(()) }
/// ```
pub fn plan_job<'r>(storage: &dyn Storage, recipe: &'r Recipe, key: &str, options: JobOptions) -> Plan<'r> {
    let mut plan = Plan {
        key: key.to_owned(),
        bytes_in: 0,
        action: Action::Skip(Skip::UpToDate),
        manifest: None,
        recipe,
        source: None,
        budget: options.budget.clone(),
        adopt: Vec::new(),
        version: None,
        upright: (0, 0),
        sizes: Vec::new(),
    };
    let decided = contain(key, || plan_steps(storage, recipe, key, options, &mut plan));
    plan.action = match decided {
        Ok(Ok(variants)) => Action::Write(variants),
        Ok(Err(skip)) => Action::Skip(skip),
        Err(e) => Action::Fail(e),
    };
    if !matches!(plan.action, Action::Write(_)) {
        plan.source = None;
    }
    plan
}

/// How much of a source a plan reads first: enough for the headers of
/// nearly every photo (a phone's EXIF block is 10 to 60 KiB), one ranged
/// GET on S3.
pub const HEADER_BYTES: u64 = 64 * 1024;

/// Whether `fetched` holds only the start of its object.
fn is_partial(fetched: &Fetched) -> bool {
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
fn read_whole(storage: &dyn Storage, key: &str, limit: u64, planned: &Meta) -> Result<Fetched, StorageError> {
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
fn fetch_error<T>(key: &str, e: StorageError) -> Result<Result<T, Skip>, JobError> {
    match e {
        StorageError::NotFound(_) => Ok(Err(Skip::Gone)),
        StorageError::TooLarge { size, limit, .. } => Err(JobError::Render {
            key: key.to_owned(),
            source: RenderError::TooManyBytes { size, limit },
        }),
        source => Err(JobError::Get {
            key: key.to_owned(),
            source,
        }),
    }
}

fn plan_steps(
    storage: &dyn Storage,
    recipe: &Recipe,
    key: &str,
    options: JobOptions,
    plan: &mut Plan<'_>,
) -> Result<Result<Vec<Planned>, Skip>, JobError> {
    let source = match recipe.source_key(key) {
        Ok(s) => s,
        Err(skip) => return Ok(Err(skip.into())),
    };
    let render_err = |source: RenderError| JobError::Render {
        key: key.to_owned(),
        source,
    };
    // The first bytes: the header, which is all a plan needs when the
    // variants turn out current (a rerun reads no more of a source).
    let limit = recipe.limits().max_input_bytes;
    let mut fetched = match storage.get_start(key, HEADER_BYTES, limit) {
        Ok(f) => f,
        Err(e) => return fetch_error(key, e),
    };
    plan.bytes_in = fetched.bytes.len() as u64;
    if fetched.meta.get(META_SOURCE).is_some() {
        return Ok(Err(Skip::IsVariant));
    }
    let from_start = if is_partial(&fetched) {
        match pixels::probe_start(&fetched.bytes, size_of(&fetched), recipe.limits()) {
            Ok(probe) => probe,
            // Over a limit: said from the header, the rest never read.
            Err(e @ (RenderError::TooManyBytes { .. } | RenderError::TooManyPixels { .. })) => {
                return Err(render_err(e))
            }
            // Anything else the whole file tells better.
            Err(_) => None,
        }
    } else {
        None
    };
    let probe = match from_start {
        Some(probe) => probe,
        None => {
            if is_partial(&fetched) {
                fetched = match read_whole(storage, key, limit, &fetched.meta) {
                    Ok(f) => f,
                    Err(e) => return fetch_error(key, e),
                };
                plan.bytes_in += fetched.bytes.len() as u64;
            }
            pixels::probe(&fetched.bytes, recipe.limits()).map_err(render_err)?
        }
    };
    if let Some((of, width)) = named_parent(storage, recipe, key, &probe) {
        return Ok(Err(Skip::LooksLikeVariant { of, width }));
    }
    let variants = plan_variants(recipe, &source, &probe)?;
    if variants.is_empty() {
        return Ok(Err(Skip::TooNarrow { width: probe.width }));
    }
    let mut keys: Vec<&str> = variants.iter().map(|v| v.key.as_str()).collect();
    // The manifest's HEAD goes with the variants': one round trip.
    keys.extend(source.manifest_key());
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
    // What each key holds, and which are current only by modification
    // time (a store without their metadata).
    let mut found = Vec::with_capacity(variants.len());
    let mut by_time = Vec::with_capacity(variants.len());
    for variant in &variants {
        let head = next_head(&variant.key)?;
        by_time.push(head.as_ref().is_some_and(|m| m.metadata.is_none()));
        plan.sizes.push(head.as_ref().and_then(|m| m.size));
        let judged = judge(
            key,
            &fetched.meta,
            head.as_ref(),
            recipe.fingerprint(variant.format),
        );
        if let Found::OtherSource(owner) = judged {
            return Err(JobError::Taken {
                variant: variant.key.clone(),
                owner,
            });
        }
        found.push(judged);
    }
    let manifest = match source.manifest_key() {
        Some(manifest_key) => {
            let head = next_head(manifest_key)?;
            let judged = judge_manifest(storage, recipe, key, &fetched.meta, manifest_key, head.as_ref())?;
            let by_time = head.is_some_and(|m| m.metadata.is_none());
            Some((manifest_key, judged, by_time))
        }
        None => None,
    };
    let (decisions, manifest_decision) = decide(
        &found,
        &plan.sizes,
        manifest.as_ref().map(|(_, f, _)| f),
        options.force,
    );
    let mut planned = Vec::with_capacity(variants.len());
    for (((variant, found), decision), by_time) in variants.into_iter().zip(found).zip(decisions).zip(by_time)
    {
        // Kept as current by time: recorded with today's metadata, which a
        // store without it judges by next time.
        if by_time && decision == Decision::Keep {
            plan.adopt
                .push((variant.key.clone(), recipe.fingerprint(variant.format)));
        }
        planned.push(Planned {
            variant,
            found,
            decision,
        });
    }
    if let (Some((manifest_key, found, by_time)), Some(decision)) = (manifest, manifest_decision) {
        if by_time && decision == Decision::Keep {
            plan.adopt
                .push((manifest_key.to_owned(), recipe.manifest_fingerprint()));
        }
        plan.manifest = Some(ManifestOutput {
            key: manifest_key.to_owned(),
            found,
            decision,
            bytes: None,
        });
    }
    plan.version.clone_from(&fetched.meta.version);
    plan.upright = (probe.width, probe.height);
    let manifest_writes = plan.manifest.as_ref().is_some_and(|m| m.decision.writes());
    if !manifest_writes && planned.iter().all(|p| !p.decision.writes()) {
        return Ok(Err(Skip::UpToDate));
    }
    plan.source = Some(fetched);
    Ok(Ok(planned))
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

/// Carries out a plan: renders the planned variants that are not current
/// (all when forced) and writes them, with metadata naming the source, its
/// version and the recipe's fingerprint ([`META_SOURCE`],
/// [`META_SOURCE_VERSION`], [`META_FINGERPRINT`]); each is rendered exactly
/// as it would be among all the others. A plan that skips or fails
/// becomes the report as it is. Never panics. Rendering uses rayon's global
/// pool (see [`render`](crate::pixels::render)).
pub fn carry_out(storage: &dyn Storage, plan: Plan<'_>) -> Report {
    let Plan {
        key,
        mut bytes_in,
        action,
        manifest,
        recipe,
        source,
        budget,
        adopt,
        version,
        upright,
        sizes,
    } = plan;
    let failed = |key: String, bytes_in: u64, e: JobError| Report {
        key,
        bytes_in,
        outcome: Outcome::Failed(e),
        manifest: None,
    };
    // Kept as current by time, now recorded with today's metadata (what a
    // store without metadata needs to judge them by it next time). Not for
    // a failed plan.
    if matches!(action, Action::Skip(Skip::UpToDate) | Action::Write(_)) {
        for (output, fingerprint) in &adopt {
            let fingerprint = fingerprint.to_string();
            let metadata = variant_metadata(&key, version.as_deref(), &fingerprint);
            if let Err(source) = storage.adopt(output, &metadata) {
                let e = JobError::Put {
                    key: output.clone(),
                    source,
                };
                return failed(key, bytes_in, e);
            }
        }
    }
    let (outcome, manifest) = match (action, source) {
        (Action::Write(planned), Some(source)) => {
            let job = Job {
                storage,
                recipe,
                key: &key,
                budget: &budget,
                manifest,
                upright,
                sizes,
            };
            let mut read = 0;
            let outcome = match contain(&key, || job.write(planned, source, &mut read)) {
                Ok((written, manifest)) => (Outcome::Written(written), manifest),
                Err(e) => (Outcome::Failed(e), None),
            };
            bytes_in += read;
            outcome
        }
        // `plan_job` keeps the source exactly when the action is `Write`.
        (Action::Write(_), None) => (Outcome::Skipped(Skip::UpToDate), None),
        (Action::Skip(skip), _) => (Outcome::Skipped(skip), None),
        (Action::Fail(e), _) => (Outcome::Failed(e), None),
    };
    Report {
        key,
        bytes_in,
        outcome,
        manifest,
    }
}

/// What writing a plan's outputs needs besides the plan's variants.
struct Job<'a> {
    storage: &'a dyn Storage,
    recipe: &'a Recipe,
    key: &'a str,
    budget: &'a MemoryBudget,
    manifest: Option<ManifestOutput>,
    upright: (u32, u32),
    sizes: Vec<Option<u64>>,
}

impl Job<'_> {
    /// Renders and writes the stale variants, then the manifest (when the
    /// recipe writes one) once every variant is stored: its presence means
    /// the set is complete.
    fn write(
        self,
        planned: Vec<Planned>,
        source: Fetched,
        read: &mut u64,
    ) -> Result<(Vec<Variant>, Option<ManifestOutput>), JobError> {
        let Job {
            storage,
            recipe,
            key,
            budget,
            manifest,
            upright,
            sizes,
        } = self;
        let render_error = |source| JobError::Render {
            key: key.to_owned(),
            source,
        };
        // As the plan decided.
        let stale: Vec<bool> = planned.iter().map(|p| p.decision.writes()).collect();
        let mut variants: Vec<Variant> = planned
            .iter()
            .zip(&stale)
            .filter(|(_, stale)| **stale)
            .map(|(p, _)| p.variant.clone())
            .collect();
        let manifest = manifest.filter(|m| m.decision.writes());
        // The plan read the header only: now the rest.
        let source = if is_partial(&source) {
            let whole = read_whole(storage, key, recipe.limits().max_input_bytes, &source.meta).map_err(
                |source| JobError::Get {
                    key: key.to_owned(),
                    source,
                },
            )?;
            *read = whole.bytes.len() as u64;
            whole
        } else {
            source
        };
        // Held until every rendition is written: the encoded bytes are part
        // of the estimate. Without a limit, nothing is estimated.
        let _admission = match budget.bytes() {
            None => None,
            Some(_) => {
                let needs = pixels::working_set(&source.bytes, recipe).map_err(render_error)?;
                Some(budget.admit(needs).map_err(|source| JobError::Memory {
                    key: key.to_owned(),
                    source,
                })?)
            }
        };
        let Fetched { bytes, meta } = source;
        let wanted: Vec<(u32, Format)> = variants.iter().map(|v| (v.width, v.format)).collect();
        let rendered = pixels::render_selected(bytes, recipe, Only::These(&wanted), manifest.is_some())
            .map_err(render_error)?;
        let renditions = rendered.renditions;
        // `render_selected` and `plan_variants` walk the same sizes and
        // formats in the same order, so the lists pair up one to one.
        variants.truncate(renditions.len());
        let fingerprints: Vec<String> = variants
            .iter()
            .map(|v| recipe.fingerprint(v.format).to_string())
            .collect();
        let metadata: Vec<Vec<(&str, &str)>> = fingerprints
            .iter()
            .map(|f| variant_metadata(key, meta.version.as_deref(), f))
            .collect();
        let objects: Vec<(&str, Object<'_>)> = variants
            .iter()
            .zip(&renditions)
            .zip(&metadata)
            .map(|((v, r), metadata)| {
                debug_assert_eq!((v.width, v.height, v.format), (r.width, r.height, r.format));
                let object = Object {
                    bytes: &r.bytes,
                    content_type: r.content_type(),
                    metadata,
                };
                (v.key.as_str(), object)
            })
            .collect();
        let written = storage.put_many(&objects);
        drop(objects);
        for ((v, r), result) in variants.iter_mut().zip(&renditions).zip(written) {
            result.map_err(|source| JobError::Put {
                key: v.key.clone(),
                source,
            })?;
            v.bytes = Some(r.bytes.len() as u64);
        }
        let Some(mut manifest) = manifest else {
            return Ok((variants, None));
        };
        let placeholders = rendered.placeholders.ok_or_else(|| {
            render_error(RenderError::Placeholder {
                width: upright.0,
                height: upright.1,
                message: "the render made none".to_owned(),
            })
        })?;
        // Every planned variant, with its size: written now, or stored.
        let entries = planned
            .iter()
            .zip(&sizes)
            .zip(&stale)
            .map(|((p, size), stale)| {
                let v = &p.variant;
                // A stale variant's stored object is the old one: only what
                // was just written counts for it.
                let written = variants.iter().find(|w| w.key == v.key).and_then(|w| w.bytes);
                let size = if *stale { &None } else { size };
                // Stale variants were just written and current ones have a
                // stored size (`stale` above); a render that made fewer
                // sizes than the plan leaves one unknown: no manifest then,
                // rather than one that lists a variant that is not there.
                let bytes = written.or(*size).ok_or_else(|| JobError::Check {
                    key: v.key.clone(),
                    source: StorageError::Permanent {
                        message: "its size is unknown, so the manifest is not written".to_owned(),
                        source: None,
                    },
                })?;
                Ok(ManifestEntry {
                    key: v.key.clone(),
                    format: v.format,
                    width: v.width,
                    height: v.height,
                    bytes,
                    fingerprint: recipe.fingerprint(v.format),
                })
            })
            .collect::<Result<Vec<_>, JobError>>()?;
        let document = Manifest {
            key: manifest.key.clone(),
            source: key.to_owned(),
            version: meta.version.clone(),
            width: upright.0,
            height: upright.1,
            variants: entries,
            placeholders,
        }
        .to_json();
        let fingerprint = recipe.manifest_fingerprint().to_string();
        let metadata = variant_metadata(key, meta.version.as_deref(), &fingerprint);
        let object = Object {
            bytes: document.as_bytes(),
            content_type: "application/json",
            metadata: &metadata,
        };
        storage
            .put(&manifest.key, object)
            .map_err(|source| JobError::Put {
                key: manifest.key.clone(),
                source,
            })?;
        manifest.bytes = Some(document.len() as u64);
        Ok((variants, Some(manifest)))
    }
}

/// The user metadata of a variant of `key` at `version`.
fn variant_metadata<'a>(
    key: &'a str,
    version: Option<&'a str>,
    fingerprint: &'a str,
) -> Vec<(&'static str, &'a str)> {
    let mut metadata = vec![(META_SOURCE, key), (META_FINGERPRINT, fingerprint)];
    if let Some(version) = version {
        metadata.push((META_SOURCE_VERSION, version));
    }
    metadata
}

/// Runs one key through the recipe: [`plan_job`], then [`carry_out`].
/// Never panics on bad input; every failure is in the report.
///
/// ```
/// use resize_core::{run_job, JobOptions, MemoryStorage, Outcome, Recipe, Replacement, Width};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let mut jpeg = Vec::new();
/// # image::RgbImage::from_pixel(1600, 900, image::Rgb([10, 120, 200]))
/// #     .write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)?;
/// let store = MemoryStorage::new();
/// store.insert("original/trips/a.jpg", jpeg);
/// let recipe = Recipe::builder()
///     .widths(&[360, 720].map(|w| Width::new(w).expect("a valid width")))
///     .replacements(vec![Replacement::parse("original:resized")?])
///     .build()?;
/// let report = run_job(&store, &recipe, "original/trips/a.jpg", JobOptions::default());
/// assert!(matches!(report.outcome, Outcome::Written(ref v) if v.len() == 2));
/// assert!(store.object("resized/trips/a-360.jpg").is_some());
/// assert!(store.object("resized/trips/a-720.jpg").is_some());
/// # Ok(()) }
/// ```
pub fn run_job(storage: &dyn Storage, recipe: &Recipe, key: &str, options: JobOptions) -> Report {
    carry_out(storage, plan_job(storage, recipe, key, options))
}

/// A source was removed: deletes the variants whose metadata names it,
/// found by listing its output prefix, and its manifest (first). Keeps them when the source exists
/// again (events come at least once and in no set order, so a late
/// removal must not delete a new upload's variants). Needs a store that
/// lists, deletes and keeps metadata; others fail with
/// [`StorageError::Unsupported`].
pub fn remove_variants(storage: &dyn Storage, recipe: &Recipe, key: &str) -> Report {
    let outcome = match contain(key, || removal(storage, recipe, key)) {
        Ok(Ok(deleted)) => Outcome::Deleted(deleted),
        Ok(Err(skip)) => Outcome::Skipped(skip),
        Err(e) => Outcome::Failed(e),
    };
    Report {
        key: key.to_owned(),
        bytes_in: 0,
        outcome,
        manifest: None,
    }
}

fn removal(storage: &dyn Storage, recipe: &Recipe, key: &str) -> Result<Result<Vec<String>, Skip>, JobError> {
    let source = match recipe.source_key(key) {
        Ok(s) => s,
        Err(skip) => return Ok(Err(skip.into())),
    };
    let check = |k: &str| {
        storage.head(k).map_err(|source| JobError::Check {
            key: k.to_owned(),
            source,
        })
    };
    if check(key)?.is_some() {
        return Ok(Err(Skip::Reappeared));
    }
    let prefix = source.output_prefix();
    let mut candidates = Vec::new();
    storage
        .list(&prefix, &mut |k| {
            if recipe.looks_like_output(k) {
                candidates.push(k.to_owned());
            }
            ControlFlow::Continue(())
        })
        .map_err(|source| JobError::List {
            prefix: prefix.clone(),
            source,
        })?;
    // The manifest goes first: it says the set is complete, which stops
    // being true with the first variant deleted.
    if let Some(manifest) = source.manifest_key() {
        candidates.retain(|c| c != manifest);
        candidates.insert(0, manifest.to_owned());
    }
    let mut deleted = Vec::new();
    for candidate in candidates {
        // Only objects whose metadata names this source are ours to delete.
        if check(&candidate)?.is_some_and(|m| m.get(META_SOURCE) == Some(key)) {
            storage.delete(&candidate).map_err(|source| JobError::Delete {
                key: candidate.clone(),
                source,
            })?;
            deleted.push(candidate);
        }
    }
    Ok(Ok(deleted))
}

/// Runs `f`, turning a panic (a codec's bug) into this key's failure so
/// the rest of the batch still runs. The panic hook has printed it already.
fn contain<T>(key: &str, f: impl FnOnce() -> Result<T, JobError>) -> Result<T, JobError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        Err(JobError::Panic {
            key: key.to_owned(),
            message: panic_message(panic.as_ref()),
        })
    })
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned())
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;
    use crate::fixtures::fixture;
    use crate::storage::MemoryStorage;

    /// The one staleness rule, case by case: what two variants and the
    /// manifest hold, the sizes the store gave, forced or not.
    #[test]
    fn decide_is_the_one_staleness_rule() {
        use Decision::{Forced, Keep, SizeUnknown, Stale, VariantsChanged};
        use Found::{Current, Missing, Older, OtherFingerprint};
        let known = [Some(1), Some(2)];
        #[allow(clippy::type_complexity)]
        let check = |found: [Found; 2],
                     sizes: [Option<u64>; 2],
                     manifest: Option<Found>,
                     force: bool,
                     want: ([Decision; 2], Option<Decision>)| {
            let (variants, m) = decide(&found, &sizes, manifest.as_ref(), force);
            assert_eq!(
                (variants.as_slice(), m),
                (want.0.as_slice(), want.1),
                "{found:?} {sizes:?} {manifest:?} {force}"
            );
        };
        // One case a line: what the two variants and the manifest hold,
        // the sizes, forced, and the decisions.
        #[rustfmt::skip]
        let cases = [
            ([Current, Current], known, None, false, ([Keep, Keep], None)),
            ([Current, Current], known, Some(Current), false, ([Keep, Keep], Some(Keep))),
            ([Current, Missing], known, None, false, ([Keep, Stale], None)),
            ([Current, Older], known, Some(Current), false, ([Keep, Stale], Some(VariantsChanged))),
            ([Current, Current], known, Some(Missing), false, ([Keep, Keep], Some(Stale))),
            ([OtherFingerprint, Current], known, Some(OtherFingerprint), false, ([Stale, Keep], Some(Stale))),
            ([Current, Current], known, Some(Current), true, ([Forced, Forced], Some(Forced))),
            ([Missing, Current], known, None, true, ([Stale, Forced], None)),
            // A size the store did not give matters only to a manifest.
            ([Current, Current], [Some(1), None], None, false, ([Keep, Keep], None)),
            ([Current, Current], [Some(1), None], Some(Current), false, ([Keep, SizeUnknown], Some(VariantsChanged))),
        ];
        for (found, sizes, manifest, force, want) in cases {
            check(found, sizes, manifest, force, want);
        }
    }

    fn recipe(settings: &[(&str, &str)]) -> Recipe {
        Recipe::from_lookup(|n| {
            settings
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| (*v).to_owned())
        })
        .unwrap()
    }

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let mut out = Vec::new();
        image::RgbImage::from_pixel(width, height, image::Rgb([30, 90, 200]))
            .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Jpeg)
            .unwrap();
        out
    }

    /// A store that fails or panics in one operation and otherwise is `inner`.
    struct Faulty {
        inner: MemoryStorage,
        op: &'static str,
        transient: bool,
    }

    impl Faulty {
        fn fail(&self, op: &str, key: &str) -> Result<(), StorageError> {
            if op != self.op {
                return Ok(());
            }
            if self.transient && op == "head" {
                panic!("head of {key} exploded");
            }
            let message = format!("{op} {key} refused");
            Err(if self.transient {
                StorageError::Transient {
                    message,
                    source: None,
                }
            } else {
                StorageError::Permanent {
                    message,
                    source: None,
                }
            })
        }
    }

    impl Storage for Faulty {
        fn head(&self, key: &str) -> Result<Option<Meta>, StorageError> {
            self.fail("head", key)?;
            self.inner.head(key)
        }
        fn get(&self, key: &str, limit: u64) -> Result<Fetched, StorageError> {
            self.fail("get", key)?;
            self.inner.get(key, limit)
        }
        fn put(&self, key: &str, object: Object<'_>) -> Result<(), StorageError> {
            self.fail("put", key)?;
            self.inner.put(key, object)
        }
    }

    fn describe(report: &Report) -> String {
        match &report.outcome {
            Outcome::Written(v) => {
                let sizes: Vec<String> = v
                    .iter()
                    .map(|w| format!("{}x{} {}", w.width, w.height, w.format))
                    .collect();
                format!("written {}", sizes.join(", "))
            }
            Outcome::Deleted(keys) => format!("deleted {}", keys.join(" ")),
            Outcome::Skipped(s) => format!("skipped: {s}"),
            Outcome::Failed(e) => format!("failed (transient: {}): {}", e.is_transient(), error_chain(e)),
        }
    }

    /// Runs `key` against a store holding `objects` and describes the outcome
    /// and the keys stored afterwards.
    #[track_caller]
    fn check(objects: &[(&str, Vec<u8>)], key: &str, expect: &str) {
        let store = MemoryStorage::new();
        for (k, v) in objects {
            store.insert(k, v.clone());
        }
        let r = recipe(&[
            ("SIZES", "100,200"),
            ("REPLACEMENTS", "original:resized"),
            ("FORMATS", "jpeg,webp"),
            ("MAX_INPUT_BYTES", "100000"),
        ]);
        let report = run_job(&store, &r, key, JobOptions::default());
        let got = format!("{}\nstored: {}", describe(&report), store.stored_keys().join(" "));
        assert_eq!(got, expect);
    }

    /// A store that records every read: (operation, key, bytes returned).
    #[derive(Default)]
    struct Counting {
        inner: MemoryStorage,
        reads: std::sync::Mutex<Vec<(&'static str, String, usize)>>,
    }

    impl Counting {
        fn take(&self) -> Vec<(&'static str, String, usize)> {
            std::mem::take(&mut *self.reads.lock().unwrap())
        }
    }

    impl Storage for Counting {
        fn head(&self, key: &str) -> Result<Option<Meta>, StorageError> {
            self.inner.head(key)
        }
        fn get(&self, key: &str, limit: u64) -> Result<Fetched, StorageError> {
            let f = self.inner.get(key, limit)?;
            self.reads
                .lock()
                .unwrap()
                .push(("get", key.to_owned(), f.bytes.len()));
            Ok(f)
        }
        fn get_start(&self, key: &str, max: u64, limit: u64) -> Result<Fetched, StorageError> {
            let f = self.inner.get_start(key, max, limit)?;
            self.reads
                .lock()
                .unwrap()
                .push(("start", key.to_owned(), f.bytes.len()));
            Ok(f)
        }
        fn put(&self, key: &str, object: Object<'_>) -> Result<(), StorageError> {
            self.inner.put(key, object)
        }
    }

    /// A plan reads a source's first 64 KiB; when every variant is current
    /// that is all (a JPEG's or PNG's header is in it), and a render reads
    /// the rest. A WebP keeps its orientation after its pixels: read whole.
    #[test]
    fn plans_read_headers_and_reruns_nothing_more() {
        let store = Counting::default();
        let big = fixture("phone-orient6.jpg");
        let small = fixture("photo-4x3.jpg");
        let webp = fixture("still.webp");
        assert!(big.len() > 2 * HEADER_BYTES as usize && small.len() < HEADER_BYTES as usize);
        store.inner.insert("big.jpg", big.clone());
        store.inner.insert("small.jpg", small.clone());
        store.inner.insert("still.webp", webp.clone());
        let r = recipe(&[("SIZES", "100,200")]);
        let head = HEADER_BYTES as usize;
        // (key, reads of the first run, reads of a rerun)
        type Reads = Vec<(&'static str, String, usize)>;
        // A WebP is read whole every time (after its start, unless that was all).
        let mut webp_reads: Reads = vec![("start", "still.webp".into(), webp.len().min(head))];
        if webp.len() > head {
            webp_reads.push(("get", "still.webp".into(), webp.len()));
        }
        let cases: [(&str, Reads, Reads); 3] = [
            (
                "big.jpg",
                vec![
                    ("start", "big.jpg".into(), head),
                    ("get", "big.jpg".into(), big.len()),
                ],
                vec![("start", "big.jpg".into(), head)],
            ),
            (
                "small.jpg",
                vec![("start", "small.jpg".into(), small.len())],
                vec![("start", "small.jpg".into(), small.len())],
            ),
            ("still.webp", webp_reads.clone(), webp_reads),
        ];
        for (key, first, rerun) in cases {
            let report = run_job(&store, &r, key, JobOptions::default());
            assert!(
                matches!(report.outcome, Outcome::Written(_)),
                "{key}: {}",
                describe(&report)
            );
            assert_eq!(store.take(), first, "{key}: first run");
            let total: usize = first.iter().map(|r| r.2).sum();
            assert_eq!(report.bytes_in, total as u64, "{key}: bytes in");
            let again = run_job(&store, &r, key, JobOptions::default());
            assert!(
                matches!(again.outcome, Outcome::Skipped(Skip::UpToDate)),
                "{key}: {}",
                describe(&again)
            );
            assert_eq!(store.take(), rerun, "{key}: rerun");
        }
        // The header says what the whole file says, orientation included.
        let whole = pixels::probe(&big, r.limits()).unwrap();
        let start = pixels::probe_start(&big[..head], big.len() as u64, r.limits()).unwrap();
        assert_eq!(start, Some(whole));
        assert_eq!(whole.exif_orientation, 6);
    }

    /// A source replaced between its header and the rest is left to the
    /// next run (transient), never written from a mix of versions.
    #[test]
    fn a_source_replaced_mid_job_is_left_to_the_next_run() {
        let store = MemoryStorage::new();
        store.insert("big.jpg", fixture("phone-orient6.jpg"));
        let r = recipe(&[("SIZES", "100")]);
        let plan = plan_job(&store, &r, "big.jpg", JobOptions::default());
        store.insert("big.jpg", fixture("phone-orient6.jpg"));
        let report = carry_out(&store, plan);
        match &report.outcome {
            Outcome::Failed(e) => {
                assert!(e.is_transient(), "{e}");
                assert!(
                    error_chain(e).contains("changed while it was read"),
                    "{}",
                    error_chain(e)
                );
            }
            _ => panic!("{}", describe(&report)),
        }
        assert_eq!(store.stored_keys(), ["big.jpg"]);
    }

    #[test]
    fn jobs() {
        check(
            &[("original/a.jpg", jpeg(400, 300))],
            "original/a.jpg",
            "written 100x75 jpeg, 100x75 webp, 200x150 jpeg, 200x150 webp\n\
             stored: original/a.jpg resized/a-100.jpg resized/a-100.webp resized/a-200.jpg resized/a-200.webp",
        );
        check(
            &[("original/a.jpg", jpeg(150, 100))],
            "original/a.jpg",
            "written 100x67 jpeg, 100x67 webp\nstored: original/a.jpg resized/a-100.jpg resized/a-100.webp",
        );
        check(
            &[("original/a.jpg", jpeg(50, 50))],
            "original/a.jpg",
            "skipped: source is 50 px wide, narrower than every requested width\nstored: original/a.jpg",
        );
        check(
            &[("original/a.txt", b"hello".to_vec())],
            "original/a.txt",
            "skipped: not an image: extension is not one of jpg, jpeg, png, webp, gif, tif, tiff\nstored: original/a.txt",
        );
        check(
            &[("resized/a-100.jpg", jpeg(100, 75))],
            "resized/a-100.jpg",
            "skipped: under destination prefix `resized`\nstored: resized/a-100.jpg",
        );
        check(
            &[("original/a.jpg", b"not a jpeg at all".to_vec())],
            "original/a.jpg",
            "failed (transient: false): cannot render `original/a.jpg`: unsupported format: not a JPEG, PNG, WebP, GIF or TIFF file\nstored: original/a.jpg",
        );
        check(
            &[("original/big.jpg", vec![0xff; 100_001])],
            "original/big.jpg",
            "failed (transient: false): cannot render `original/big.jpg`: input is 100001 bytes, over the limit of 100000 bytes\nstored: original/big.jpg",
        );
        check(
            &[],
            "original/missing.jpg",
            "skipped: source no longer exists\nstored: ",
        );
    }

    #[test]
    fn variants_carry_content_type_and_their_source_and_its_version() {
        let store = MemoryStorage::new();
        store.insert("original/trips/a b.jpg", jpeg(400, 300));
        let version = store
            .object("original/trips/a b.jpg")
            .unwrap()
            .version
            .to_string();
        let r = recipe(&[
            ("SIZES", "100"),
            ("REPLACEMENTS", "original:resized"),
            ("FORMATS", "jpeg,webp"),
        ]);
        run_job(&store, &r, "original/trips/a b.jpg", JobOptions::default());
        for (key, ct) in [
            ("resized/trips/a b-100.jpg", "image/jpeg"),
            ("resized/trips/a b-100.webp", "image/webp"),
        ] {
            let o = store.object(key).unwrap();
            assert_eq!(o.content_type, ct);
            let meta = |n: &str| o.metadata.get(n).cloned();
            assert_eq!(meta(META_SOURCE).as_deref(), Some("original/trips/a b.jpg"));
            assert_eq!(meta(META_SOURCE_VERSION), Some(version.clone()));
            let format = if key.ends_with(".jpg") {
                Format::Jpeg
            } else {
                Format::WebP
            };
            assert_eq!(meta(META_FINGERPRINT), Some(r.fingerprint(format).to_string()));
        }
    }

    /// A recipe change rewrites exactly the variants whose bytes it
    /// changes: (settings of the first run, of the second, what the second
    /// writes and why the rest was stale).
    #[test]
    fn a_recipe_change_rewrites_what_it_affects_and_nothing_else() {
        #[track_caller]
        fn check(first: &[(&str, &str)], second: &[(&str, &str)], expect: &str) {
            let store = MemoryStorage::new();
            store.insert("a.png", {
                let mut out = Vec::new();
                image::RgbaImage::from_fn(400, 300, |x, y| {
                    image::Rgba([x as u8, y as u8, 90, (x + y) as u8])
                })
                .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
                .unwrap();
                out
            });
            let base = [("SIZES", "100,200"), ("FORMATS", "jpeg,webp")];
            // The first of a name wins: changes before the base.
            let with = |changes: &[(&str, &str)]| {
                let mut settings = changes.to_vec();
                settings.extend_from_slice(&base);
                recipe(&settings)
            };
            let one = with(first);
            let report = run_job(&store, &one, "a.png", JobOptions::default());
            assert!(
                matches!(report.outcome, Outcome::Written(_)),
                "{}",
                describe(&report)
            );
            let two = with(second);
            let plan = plan_job(&store, &two, "a.png", JobOptions::default());
            let why: Vec<String> = match &plan.action {
                Action::Write(planned) => planned
                    .iter()
                    .filter(|p| p.found != Found::Current)
                    .map(|p| format!("{}: {}", p.variant.key, p.found))
                    .collect(),
                _ => Vec::new(),
            };
            let got = format!("{}\n{}", describe(&carry_out(&store, plan)), why.join("\n"));
            assert_eq!(got.trim_end(), expect);
        }
        check(&[], &[], "skipped: all variants are up to date");
        check(
            &[],
            &[("SIZES", "100,150,200")],
            "written 150x113 jpeg, 150x113 webp\na-150.jpg: missing\na-150.webp: missing",
        );
        check(
            &[("SIZES", "100,150,200")],
            &[],
            "skipped: all variants are up to date",
        );
        check(
            &[],
            &[("JPEG_QUALITY", "70")],
            "written 100x75 jpeg, 200x150 jpeg\n\
             a-100.jpg: made with other settings\na-200.jpg: made with other settings",
        );
        check(
            &[],
            &[("WEBP_QUALITY", "60")],
            "written 100x75 webp, 200x150 webp\n\
             a-100.webp: made with other settings\na-200.webp: made with other settings",
        );
        check(
            &[],
            &[("BACKGROUND", "000000")],
            "written 100x75 jpeg, 200x150 jpeg\n\
             a-100.jpg: made with other settings\na-200.jpg: made with other settings",
        );
        check(
            &[("FORMATS", "jpeg")],
            &[],
            "written 100x75 webp, 200x150 webp\na-100.webp: missing\na-200.webp: missing",
        );
        // Settings that decide which variants exist, not their bytes.
        check(
            &[],
            &[("UPSCALE", "source")],
            "skipped: all variants are up to date",
        );
        check(
            &[],
            &[("MAX_PIXELS", "200000")],
            "skipped: all variants are up to date",
        );
    }

    /// The fingerprint is a fixed function of the pipeline version and
    /// the settings that shape a variant's bytes: pinned for the defaults,
    /// and changed by each such setting alone.
    #[test]
    fn fingerprints_are_pinned_and_follow_their_settings() {
        let default = recipe(&[]);
        assert_eq!(default.fingerprint(Format::Jpeg).to_string(), "0543bc77aaa566da");
        assert_eq!(default.fingerprint(Format::WebP).to_string(), "9ee8f973039fc8c6");
        assert_eq!(default.fingerprint(Format::Png).to_string(), "d1b8b98d808274b5");
        // (setting, formats whose fingerprint it changes)
        for (setting, value, changes) in [
            ("JPEG_QUALITY", "70", &[Format::Jpeg][..]),
            ("WEBP_QUALITY", "60", &[Format::WebP]),
            ("BACKGROUND", "000000", &[Format::Jpeg]),
            ("SIZES", "480,960", &[]),
            ("UPSCALE", "source", &[]),
            ("KEY_TEMPLATE", "{dir}/{width}/{stem}.{ext}", &[]),
            ("MAX_PIXELS", "1000000", &[]),
        ] {
            let other = recipe(&[(setting, value)]);
            for format in [Format::Jpeg, Format::WebP, Format::Png] {
                assert_eq!(
                    other.fingerprint(format) != default.fingerprint(format),
                    changes.contains(&format),
                    "{setting}={value} for {format}"
                );
            }
        }
    }

    #[test]
    fn storage_failures_keep_their_kind_and_panics_their_message() {
        for (op, transient, expect) in [
            ("put", true, "failed (transient: true): cannot write `resized/a-100.jpg`: put resized/a-100.jpg refused"),
            ("put", false, "failed (transient: false): cannot write `resized/a-100.jpg`: put resized/a-100.jpg refused"),
            ("get", true, "failed (transient: true): cannot read `original/a.jpg`: get original/a.jpg refused"),
            ("head", false, "failed (transient: false): cannot check `resized/a-100.jpg`: head resized/a-100.jpg refused"),
            (
                "head",
                true,
                "failed (transient: false): internal error while processing `original/a.jpg` (panic: head of resized/a-100.jpg exploded)",
            ),
        ] {
            let inner = MemoryStorage::new();
            inner.insert("original/a.jpg", jpeg(400, 300));
            let store = Faulty { inner, op, transient };
            let r = recipe(&[("SIZES", "100"), ("REPLACEMENTS", "original:resized")]);
            let report = run_job(&store, &r, "original/a.jpg", JobOptions::default());
            assert_eq!(describe(&report), expect);
        }
    }

    /// Objects without our metadata named like outputs: skipped as a
    /// variant when a source beside them has their size at the width their
    /// name says (±1 px), sources otherwise.
    #[test]
    fn names_and_sizes_tell_variants_without_metadata() {
        #[track_caller]
        fn check(store: &[(&str, (u32, u32))], key: &str, expect: Option<(&str, u32)>) {
            let storage = MemoryStorage::new();
            for (k, (w, h)) in store {
                storage.insert(k, jpeg(*w, *h));
            }
            let r = recipe(&[("SIZES", "100")]);
            let plan = plan_job(&storage, &r, key, JobOptions::default());
            let got = match plan.action {
                Action::Skip(Skip::LooksLikeVariant { of, width }) => Some((of, width)),
                _ => None,
            };
            assert_eq!(
                got,
                expect.map(|(of, w)| (of.to_owned(), w)),
                "{key} among {store:?}"
            );
        }
        let a = ("a.jpg", (1280, 720));
        // Exactly a variant's size, and the 2019 Lambda's one pixel short.
        check(&[a, ("a-720.jpg", (720, 405))], "a-720.jpg", Some(("a.jpg", 720)));
        check(
            &[a, ("a-1200.jpg", (1199, 674))],
            "a-1200.jpg",
            Some(("a.jpg", 1200)),
        );
        // A variant in another format, of an upper-case source.
        check(
            &[("A.JPG", (1280, 720)), ("A-720.webp", (720, 405))],
            "A-720.webp",
            Some(("A.JPG", 720)),
        );
        // Another shape, another width, no neighbour, a neighbour narrower
        // than the name's width: sources.
        check(&[a, ("a-720.jpg", (720, 540))], "a-720.jpg", None);
        check(&[a, ("a-720.jpg", (640, 360))], "a-720.jpg", None);
        check(&[("a-720.jpg", (720, 405))], "a-720.jpg", None);
        check(
            &[("IMG_1234.jpg", (1280, 720)), ("IMG_1234-2.jpg", (1280, 720))],
            "IMG_1234-2.jpg",
            None,
        );
        check(
            &[("beach.jpg", (1280, 720)), ("beach-2019.jpg", (2019, 1136))],
            "beach-2019.jpg",
            None,
        );
    }

    #[test]
    fn current_variants_are_not_rebuilt_unless_forced_or_the_source_changes() {
        let store = MemoryStorage::new();
        store.insert("a.jpg", jpeg(400, 300));
        let r = recipe(&[("SIZES", "100,200")]);
        let run = |force| {
            describe(&run_job(
                &store,
                &r,
                "a.jpg",
                JobOptions {
                    force,
                    ..JobOptions::default()
                },
            ))
        };
        assert_eq!(run(false), "written 100x75 jpeg, 200x150 jpeg");
        let version = |k: &str| store.object(k).unwrap().version;
        let first = version("a-100.jpg");
        assert_eq!(run(false), "skipped: all variants are up to date");
        assert_eq!(version("a-100.jpg"), first, "a current variant is not rewritten");
        assert_eq!(run(true), "written 100x75 jpeg, 200x150 jpeg");
        store.insert("a.jpg", jpeg(400, 300));
        let plan = plan_job(&store, &r, "a.jpg", JobOptions::default());
        let Action::Write(planned) = &plan.action else {
            panic!("{plan:?}")
        };
        assert!(
            planned.iter().all(|p| p.found == Found::OtherVersion),
            "{planned:?}"
        );
        assert_eq!(
            describe(&carry_out(&store, plan)),
            "written 100x75 jpeg, 200x150 jpeg"
        );
    }

    #[test]
    fn variants_of_another_source_are_never_overwritten() {
        let store = MemoryStorage::new();
        store.insert("a.png", jpeg(400, 300));
        store.insert("a.jpg", jpeg(400, 300));
        let r = recipe(&[("SIZES", "100")]);
        let run = |key, force| {
            describe(&run_job(
                &store,
                &r,
                key,
                JobOptions {
                    force,
                    ..JobOptions::default()
                },
            ))
        };
        assert_eq!(run("a.jpg", false), "written 100x75 jpeg");
        let before = store.object("a-100.jpg");
        for force in [false, true] {
            assert_eq!(
                run("a.png", force),
                "failed (transient: false): its outputs would overwrite those of `a.jpg` \
                 (`a-100.jpg` was made from it); rename one of them"
            );
        }
        assert_eq!(store.object("a-100.jpg"), before);
    }

    #[test]
    fn objects_carrying_variant_metadata_are_not_sources() {
        let store = MemoryStorage::new();
        let object = jpeg(400, 300);
        let meta = [(META_SOURCE, "elsewhere/a.jpg")];
        store
            .put(
                "b.jpg",
                Object {
                    bytes: &object,
                    content_type: "image/jpeg",
                    metadata: &meta,
                },
            )
            .unwrap();
        let report = run_job(
            &store,
            &recipe(&[("SIZES", "100")]),
            "b.jpg",
            JobOptions::default(),
        );
        assert_eq!(describe(&report), "skipped: object is a variant made by resize");
        assert_eq!(store.stored_keys(), ["b.jpg"]);
    }

    /// `judge` from the source's and a variant's metadata: (store keeps
    /// metadata, variant metadata or modified time) → found.
    #[test]
    fn judging_variants() {
        use std::time::{Duration, SystemTime};
        let t = |s: u64| Some(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        let with = |pairs: &[(&str, &str)]| Meta {
            version: None,
            size: None,
            modified: t(5),
            metadata: Some(
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
        };
        let file = |modified| Meta {
            modified,
            ..Meta::default()
        };
        let s3_source = Meta {
            version: Some("e1".to_owned()),
            ..with(&[])
        };
        let fp = recipe(&[]).fingerprint(Format::Jpeg);
        let today = fp.to_string();
        let cases: Vec<(Meta, Option<Meta>, Found)> = vec![
            (s3_source.clone(), None, Found::Missing),
            (s3_source.clone(), Some(with(&[])), Found::Unrecorded),
            (
                s3_source.clone(),
                Some(with(&[
                    (META_SOURCE, "k.jpg"),
                    (META_SOURCE_VERSION, "e1"),
                    (META_FINGERPRINT, &today),
                ])),
                Found::Current,
            ),
            (
                s3_source.clone(),
                Some(with(&[
                    (META_SOURCE, "k.jpg"),
                    (META_SOURCE_VERSION, "e1"),
                    (META_FINGERPRINT, "0123456789abcdef"),
                ])),
                Found::OtherFingerprint,
            ),
            // Written before variants recorded fingerprints.
            (
                s3_source.clone(),
                Some(with(&[(META_SOURCE, "k.jpg"), (META_SOURCE_VERSION, "e1")])),
                Found::OtherFingerprint,
            ),
            // Another version wins over another fingerprint.
            (
                s3_source.clone(),
                Some(with(&[
                    (META_SOURCE, "k.jpg"),
                    (META_SOURCE_VERSION, "e0"),
                    (META_FINGERPRINT, "0123456789abcdef"),
                ])),
                Found::OtherVersion,
            ),
            (
                s3_source.clone(),
                Some(with(&[(META_SOURCE, "k.jpg"), (META_SOURCE_VERSION, "e0")])),
                Found::OtherVersion,
            ),
            (
                s3_source.clone(),
                Some(with(&[(META_SOURCE, "k.jpg")])),
                Found::OtherVersion,
            ),
            (
                s3_source.clone(),
                Some(with(&[(META_SOURCE, "k.png"), (META_SOURCE_VERSION, "e1")])),
                Found::OtherSource("k.png".to_owned()),
            ),
            (
                with(&[]),
                Some(with(&[(META_SOURCE, "k.jpg")])),
                Found::OtherVersion,
            ),
            (file(t(5)), Some(file(t(6))), Found::Current),
            (file(t(5)), Some(file(t(5))), Found::Current),
            (file(t(5)), Some(file(t(4))), Found::Older),
            (file(None), Some(file(t(4))), Found::Older),
            (file(t(5)), None, Found::Missing),
        ];
        for (source, variant, expect) in cases {
            assert_eq!(
                judge("k.jpg", &source, variant.as_ref(), fp),
                expect,
                "{source:?} {variant:?}"
            );
        }
    }

    #[test]
    fn removal_deletes_only_the_sources_variants() {
        let store = MemoryStorage::new();
        let r = recipe(&[("SIZES", "100,200"), ("REPLACEMENTS", "original:resized")]);
        store.insert("original/a.jpg", jpeg(400, 300));
        store.insert("original/a-b.jpg", jpeg(400, 300));
        for key in ["original/a.jpg", "original/a-b.jpg"] {
            run_job(&store, &r, key, JobOptions::default());
        }
        store.insert("resized/a-300.jpg", b"someone else's".to_vec());
        let remove = |key| describe(&remove_variants(&store, &r, key));
        assert_eq!(
            remove("original/a.jpg"),
            "skipped: source exists again; variants kept"
        );
        assert_eq!(
            remove("resized/a-100.jpg"),
            "skipped: under destination prefix `resized`"
        );
        store.delete("original/a.jpg").unwrap();
        assert_eq!(
            remove("original/a.jpg"),
            "deleted resized/a-100.jpg resized/a-200.jpg"
        );
        assert_eq!(
            store.stored_keys(),
            [
                "original/a-b.jpg",
                "resized/a-300.jpg",
                "resized/a-b-100.jpg",
                "resized/a-b-200.jpg"
            ]
        );
        assert_eq!(remove("original/a.jpg"), "deleted ");
        let faulty = Faulty {
            inner: MemoryStorage::new(),
            op: "none",
            transient: false,
        };
        assert_eq!(
            describe(&remove_variants(&faulty, &r, "original/a.jpg")),
            "failed (transient: false): cannot list `resized/a-`: this storage cannot list objects"
        );
    }

    /// One step of a manifest scenario: what a run of `key` does (variants
    /// written, the manifest written, or the skip or failure) and which
    /// keys the store holds afterwards.
    fn manifest_step(store: &dyn Storage, r: &Recipe, key: &str, force: bool) -> String {
        let options = JobOptions {
            force,
            ..JobOptions::default()
        };
        let report = run_job(store, r, key, options);
        let manifest = match &report.manifest {
            Some(m) => format!(" + manifest {} (was {})", m.key, m.found),
            None => String::new(),
        };
        format!("{}{manifest}", describe(&report))
    }

    fn manifest_recipe(extra: &[(&'static str, &'static str)]) -> Recipe {
        let mut settings = vec![
            ("SIZES", "100,200"),
            ("REPLACEMENTS", "original:resized"),
            ("FORMATS", "jpeg,webp"),
            ("MANIFEST", "true"),
        ];
        settings.extend_from_slice(extra);
        recipe(&settings)
    }

    /// The manifest comes after the variants, lists every one with its
    /// stored size, carries the variants' metadata guard, and is judged
    /// current like them; turning manifests on for current variants writes
    /// the manifest alone.
    #[test]
    fn manifests_follow_their_variants() {
        let store = MemoryStorage::new();
        store.insert("original/a.jpg", jpeg(400, 300));
        let off = recipe(&[
            ("SIZES", "100,200"),
            ("REPLACEMENTS", "original:resized"),
            ("FORMATS", "jpeg,webp"),
        ]);
        let on = manifest_recipe(&[]);
        let steps = [
            (&off, false, "written 100x75 jpeg, 100x75 webp, 200x150 jpeg, 200x150 webp"),
            (&on, false, "written  + manifest resized/a.json (was missing)"),
            (&on, false, "skipped: all variants are up to date"),
            (&on, true, "written 100x75 jpeg, 100x75 webp, 200x150 jpeg, 200x150 webp + manifest resized/a.json (was current)"),
        ];
        let mut variant_versions = Vec::new();
        for (i, (r, force, expect)) in steps.into_iter().enumerate() {
            assert_eq!(
                manifest_step(&store, r, "original/a.jpg", force),
                expect,
                "step {i}"
            );
            let versions: Vec<u64> = ["a-100.jpg", "a-100.webp", "a-200.jpg", "a-200.webp"]
                .iter()
                .map(|k| store.object(&format!("resized/{k}")).unwrap().version)
                .collect();
            variant_versions.push(versions);
        }
        // The manifest-only step left every variant as it was.
        assert_eq!(variant_versions[0], variant_versions[1]);
        let stored = store.object("resized/a.json").unwrap();
        assert_eq!(stored.content_type, "application/json");
        assert_eq!(
            stored.metadata.get(META_SOURCE).map(String::as_str),
            Some("original/a.jpg")
        );
        assert_eq!(
            stored.metadata.get(META_FINGERPRINT),
            Some(&on.manifest_fingerprint().to_string())
        );
        let text = String::from_utf8(stored.bytes.clone()).unwrap();
        assert_eq!(manifest_owner(&stored.bytes).as_deref(), Some("original/a.jpg"));
        for (key, width) in [("a-100.jpg", 100), ("a-200.webp", 200)] {
            let bytes = store.object(&format!("resized/{key}")).unwrap().bytes.len();
            let entry = format!(r#""relative": "{key}", "url": "{key}""#);
            assert!(text.contains(&entry), "{key} in\n{text}");
            let sized = format!(
                r#""width": {width}, "height": {}, "bytes": {bytes},"#,
                width * 3 / 4
            );
            assert!(text.contains(&sized), "{sized} in\n{text}");
        }
        assert!(text.contains(r#""srcset": {"jpeg": "a-100.jpg 100w, a-200.jpg 200w", "webp": "a-100.webp 100w, a-200.webp 200w"}"#), "{text}");
        assert!(
            text.contains(r#""width": 400,"#) && text.contains(r#""aspect_ratio": 1.333333,"#),
            "{text}"
        );
        assert!(text.contains(r##""color": "#1e5ac8""##), "{text}");
        // Other settings: the variants and the manifest are made again.
        let q = manifest_recipe(&[("JPEG_QUALITY", "70")]);
        assert_eq!(
            manifest_step(&store, &q, "original/a.jpg", false),
            "written 100x75 jpeg, 200x150 jpeg + manifest resized/a.json (was made with other settings)"
        );
        // A removed source takes its manifest with its variants.
        store.delete("original/a.jpg").unwrap();
        assert_eq!(
            describe(&remove_variants(&store, &q, "original/a.jpg")),
            "deleted resized/a.json resized/a-100.jpg resized/a-100.webp resized/a-200.jpg resized/a-200.webp"
        );
        assert!(store.stored_keys().is_empty(), "{:?}", store.stored_keys());
    }

    /// What a manifest key may hold before a run, and what the run does:
    /// a document resize did not write, or another source's manifest, is
    /// never overwritten (and nothing of the source is written); a source
    /// with no variant gets no manifest.
    #[test]
    fn manifest_keys_that_are_not_ours() {
        #[track_caller]
        fn check(
            settings: &[(&'static str, &'static str)],
            objects: &[(&str, Vec<u8>)],
            key: &str,
            expect: &str,
        ) {
            let store = MemoryStorage::new();
            for (k, v) in objects {
                store.insert(k, v.clone());
            }
            let got = format!(
                "{}\nstored: {}",
                manifest_step(&store, &manifest_recipe(settings), key, false),
                store.stored_keys().join(" ")
            );
            assert_eq!(got, expect);
        }
        let photo = jpeg(400, 300);
        let ours_for_b = {
            let store = MemoryStorage::new();
            store.insert("original/b.jpg", photo.clone());
            let _ = run_job(
                &store,
                &manifest_recipe(&[]),
                "original/b.jpg",
                JobOptions::default(),
            );
            store.object("resized/b.json").unwrap().bytes
        };
        check(
            &[],
            &[("original/a.jpg", photo.clone()), ("resized/a.json", b"{\"mine\": true}".to_vec())],
            "original/a.jpg",
            "failed (transient: false): `resized/a.json` exists and is not a manifest made by resize; it is never overwritten (move it, or choose another MANIFEST_TEMPLATE)\nstored: original/a.jpg resized/a.json",
        );
        // Even our own document, copied without its metadata, is not taken.
        check(
            &[],
            &[("original/a.jpg", photo.clone()), ("resized/a.json", ours_for_b)],
            "original/a.jpg",
            "failed (transient: false): `resized/a.json` exists and is not a manifest made by resize; it is never overwritten (move it, or choose another MANIFEST_TEMPLATE)\nstored: original/a.jpg resized/a.json",
        );
        check(
            &[],
            &[("original/a.jpg", jpeg(80, 60))],
            "original/a.jpg",
            "skipped: source is 80 px wide, narrower than every requested width\nstored: original/a.jpg",
        );
        check(
            &[("MANIFEST_TEMPLATE", "{dir}/manifests/{stem}.json")],
            &[("original/trips/a b.jpg", photo.clone())],
            "original/trips/a b.jpg",
            "written 100x75 jpeg, 100x75 webp, 200x150 jpeg, 200x150 webp + manifest resized/trips/manifests/a b.json (was missing)\nstored: original/trips/a b.jpg resized/trips/a b-100.jpg resized/trips/a b-100.webp resized/trips/a b-200.jpg resized/trips/a b-200.webp resized/trips/manifests/a b.json",
        );
        check(
            &[],
            &[("original/a.json", b"{}".to_vec())],
            "original/a.json",
            "skipped: not an image: extension is not one of jpg, jpeg, png, webp, gif, tif, tiff\nstored: original/a.json",
        );
    }

    /// A manifest of another source at the key (its metadata says whose)
    /// fails the job, naming the owner, like a colliding variant.
    #[test]
    fn another_sources_manifest_is_kept() {
        let store = MemoryStorage::new();
        let r = manifest_recipe(&[("MANIFEST_TEMPLATE", "{dir}/{stem}.json")]);
        store.insert("original/a.png", jpeg(400, 300));
        assert!(matches!(
            run_job(&store, &r, "original/a.png", JobOptions::default()).outcome,
            Outcome::Written(_)
        ));
        // `a.jpg` makes the same keys; its variants go, its manifest stays.
        store.insert("original/a.jpg", jpeg(400, 300));
        for k in ["a-100.jpg", "a-100.webp", "a-200.jpg", "a-200.webp"] {
            store.delete(&format!("resized/{k}")).unwrap();
        }
        assert_eq!(
            manifest_step(&store, &r, "original/a.jpg", true),
            "failed (transient: false): its outputs would overwrite those of `original/a.png` (`resized/a.json` was made from it); rename one of them"
        );
        assert_eq!(
            manifest_owner(&store.object("resized/a.json").unwrap().bytes).as_deref(),
            Some("original/a.png")
        );
    }

    /// A store that keeps no metadata (files without a state record): a
    /// manifest's key is read to tell whose document it holds.
    struct NoMetadata(MemoryStorage);

    impl Storage for NoMetadata {
        fn head(&self, key: &str) -> Result<Option<Meta>, StorageError> {
            Ok(self.0.head(key)?.map(|m| Meta { metadata: None, ..m }))
        }
        fn get(&self, key: &str, limit: u64) -> Result<Fetched, StorageError> {
            self.0.get(key, limit)
        }
        fn put(&self, key: &str, object: Object<'_>) -> Result<(), StorageError> {
            self.0.put(key, object)
        }
    }

    #[test]
    fn manifests_without_metadata_are_read_to_tell_whose() {
        let r = manifest_recipe(&[]);
        let photo = jpeg(400, 300);
        let manifest_of = |key: &str| {
            let store = MemoryStorage::new();
            store.insert(key, photo.clone());
            let _ = run_job(&store, &r, key, JobOptions::default());
            let stem = key.trim_start_matches("original/").trim_end_matches(".jpg");
            store.object(&format!("resized/{stem}.json")).unwrap().bytes
        };
        let cases: [(Vec<u8>, &str); 3] = [
            (
                manifest_of("original/b.jpg"),
                "failed (transient: false): its outputs would overwrite those of `original/b.jpg` (`resized/a.json` was made from it); rename one of them",
            ),
            (
                b"{\"generator\": \"someone else\"}".to_vec(),
                "failed (transient: false): `resized/a.json` exists and is not a manifest made by resize; it is never overwritten (move it, or choose another MANIFEST_TEMPLATE)",
            ),
            // Ours, and with no time to judge by: made again.
            (
                manifest_of("original/a.jpg"),
                "written 100x75 jpeg, 100x75 webp, 200x150 jpeg, 200x150 webp + manifest resized/a.json (was older than the source)",
            ),
        ];
        for (document, expect) in cases {
            let store = NoMetadata(MemoryStorage::new());
            store.0.insert("original/a.jpg", photo.clone());
            store.0.insert("resized/a.json", document.clone());
            assert_eq!(manifest_step(&store, &r, "original/a.jpg", false), expect);
            if expect.starts_with("failed") {
                assert_eq!(store.0.object("resized/a.json").unwrap().bytes, document);
            }
        }
    }
}
