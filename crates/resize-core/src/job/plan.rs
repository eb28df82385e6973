//! Planning one key: [`plan_job`] reads the source's header, lists its
//! variants, looks at what each key holds and decides, once, what the run
//! writes. Never writes.

use super::judge::{decide, Decision, Found};
use super::look::{look, named_parent, read_header};
use super::outcome::{contain, JobError, ManifestOutput, Skip, Stop, Variant};
use crate::budget::MemoryBudget;
use crate::keys::SourceKey;
use crate::pixels::{self, Probe};
use crate::recipe::{Fingerprint, Recipe};
use crate::storage::{Fetched, Storage};

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

/// What [`carry_out`](super::carry_out) will do.
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
/// the recipe that made it, which [`carry_out`](super::carry_out) uses: a plan cannot be
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
    /// What the write step needs and no caller does.
    pub(super) carry: Carry<'r>,
}

/// What [`carry_out`](super::carry_out) needs from a plan besides its public fields.
#[derive(Debug)]
pub(super) struct Carry<'r> {
    /// The recipe the plan was made with.
    pub(super) recipe: &'r Recipe,
    /// Where [`carry_out`](super::carry_out) is admitted before rendering.
    pub(super) budget: MemoryBudget,
    /// Outputs found current by modification time in a store without
    /// their metadata, to [`Storage::adopt`] with the source's version:
    /// each key and the fingerprint it is current for.
    pub(super) adopt: Vec<(String, Fingerprint)>,
    /// The source's version, which every written output records.
    pub(super) version: Option<String>,
    /// The source as read (its start, or all of it), when the plan writes.
    pub(super) source: Option<Fetched>,
    /// What the manifest needs besides the written variants: the source's
    /// upright size and the stored size of each planned variant (in plan
    /// order; `None` when missing or the store did not say).
    pub(super) upright: (u32, u32),
    pub(super) sizes: Vec<Option<u64>>,
}

impl Plan<'_> {
    /// Whether [`carry_out`](super::carry_out) will write the manifest: the plan writes and
    /// decided so ([`ManifestOutput::decision`]).
    pub fn writes_manifest(&self) -> bool {
        matches!(self.action, Action::Write(_)) && self.manifest.as_ref().is_some_and(|m| m.decision.writes())
    }
}

/// Options for [`plan_job`] and [`run_job`](super::run_job).
#[derive(Clone, Debug, Default)]
pub struct JobOptions {
    /// Rebuild variants even when they are current (never those of
    /// another source).
    pub force: bool,
    /// Shared by the jobs rendering at once: [`carry_out`](super::carry_out) waits until the
    /// source's estimated working set fits, and fails the job when it could
    /// never fit. Unlimited by default.
    pub budget: MemoryBudget,
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
    let mut bytes_in = 0;
    let steps = contain(key, || {
        plan_steps(storage, recipe, key, options.force, &mut bytes_in)
    });
    let mut carry = Carry {
        recipe,
        budget: options.budget,
        adopt: Vec::new(),
        version: None,
        source: None,
        upright: (0, 0),
        sizes: Vec::new(),
    };
    let (action, manifest) = match steps {
        Ok(decided) => {
            let manifest_writes = decided.manifest.as_ref().is_some_and(|m| m.decision.writes());
            let writes = manifest_writes || decided.planned.iter().any(|p| p.decision.writes());
            carry.adopt = decided.adopt;
            carry.version.clone_from(&decided.source.meta.version);
            carry.upright = decided.upright;
            carry.sizes = decided.sizes;
            let action = if writes {
                carry.source = Some(decided.source);
                Action::Write(decided.planned)
            } else {
                Action::Skip(Skip::UpToDate)
            };
            (action, decided.manifest)
        }
        Err(Stop::Skip(skip)) => (Action::Skip(skip), None),
        Err(Stop::Fail(e)) => (Action::Fail(e), None),
    };
    Plan {
        key: key.to_owned(),
        bytes_in,
        action,
        manifest,
        carry,
    }
}

/// What a plan found and decided, when it got as far as deciding.
struct Decided {
    planned: Vec<Planned>,
    manifest: Option<ManifestOutput>,
    adopt: Vec<(String, Fingerprint)>,
    source: Fetched,
    upright: (u32, u32),
    sizes: Vec<Option<u64>>,
}

/// The plan's steps: the key, the source's header, the variants, what
/// their keys hold, the decision.
fn plan_steps(
    storage: &dyn Storage,
    recipe: &Recipe,
    key: &str,
    force: bool,
    bytes_in: &mut u64,
) -> Result<Decided, Stop> {
    let source = recipe.source_key(key).map_err(Skip::from)?;
    let (fetched, probe) = read_header(storage, recipe, key, bytes_in)?;
    if let Some((of, width)) = named_parent(storage, recipe, key, &probe) {
        return Err(Skip::LooksLikeVariant { of, width }.into());
    }
    let variants = plan_variants(recipe, &source, &probe)?;
    if variants.is_empty() {
        return Err(Skip::TooNarrow { width: probe.width }.into());
    }
    let looked = look(
        storage,
        recipe,
        key,
        &fetched.meta,
        &variants,
        source.manifest_key(),
    )?;
    let manifest_found = looked.manifest.as_ref().map(|(_, found, _)| found);
    let (decisions, manifest_decision) = decide(&looked.found, &looked.sizes, manifest_found, force);
    let mut adopt = Vec::new();
    let mut planned = Vec::with_capacity(variants.len());
    let each = variants
        .into_iter()
        .zip(looked.found)
        .zip(decisions)
        .zip(looked.by_time);
    for (((variant, found), decision), by_time) in each {
        // Kept as current by time: recorded with today's metadata, which a
        // store without it judges by next time.
        if let (Some(fingerprint), Decision::Keep) = (by_time, decision) {
            adopt.push((variant.key.clone(), fingerprint));
        }
        planned.push(Planned {
            variant,
            found,
            decision,
        });
    }
    let manifest = looked
        .manifest
        .zip(manifest_decision)
        .map(|((key, found, by_time), decision)| {
            if by_time && decision == Decision::Keep {
                adopt.push((key.to_owned(), recipe.manifest_fingerprint()));
            }
            ManifestOutput {
                key: key.to_owned(),
                found,
                decision,
                bytes: None,
            }
        });
    Ok(Decided {
        planned,
        manifest,
        adopt,
        source: fetched,
        upright: (probe.width, probe.height),
        sizes: looked.sizes,
    })
}
