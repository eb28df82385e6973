//! Carrying out a plan: [`carry_out`] reads the rest of the source, is
//! admitted by the memory budget, renders, puts the variants, then the
//! manifest.

use super::judge::{META_FINGERPRINT, META_SOURCE, META_SOURCE_VERSION};
use super::look::{is_partial, read_whole};
use super::outcome::{contain, JobError, ManifestOutput, Outcome, Report, Skip, Variant};
use super::plan::{Action, Carry, Plan, Planned};
use crate::budget::Admission;
use crate::manifest::{Manifest, ManifestEntry};
use crate::pixels::{self, Only, Placeholders, RenderError, Rendered, Rendition};
use crate::recipe::Recipe;
use crate::storage::{Fetched, Object, Storage, StorageError};
use crate::values::Format;

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
        mut carry,
    } = plan;
    // Kept as current by time, now recorded with today's metadata (what a
    // store without metadata needs to judge them by it next time). Not for
    // a failed plan.
    if matches!(action, Action::Skip(Skip::UpToDate) | Action::Write(_)) {
        if let Err(e) = adopt(storage, &key, &carry) {
            return Report {
                key,
                bytes_in,
                outcome: Outcome::Failed(e),
                manifest: None,
            };
        }
    }
    let (outcome, manifest) = match (action, carry.source.take()) {
        (Action::Write(planned), Some(source)) => {
            let writer = Writer {
                storage,
                recipe: carry.recipe,
                key: &key,
            };
            let mut read = 0;
            let written = contain(&key, || {
                writer.write(&carry, &planned, manifest, source, &mut read)
            });
            bytes_in += read;
            match written {
                Ok((written, manifest)) => (Outcome::Written(written), manifest),
                Err(e) => (Outcome::Failed(e), None),
            }
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

/// Records the outputs a plan found current by time with today's metadata.
fn adopt(storage: &dyn Storage, key: &str, carry: &Carry<'_>) -> Result<(), JobError> {
    for (output, fingerprint) in &carry.adopt {
        let fingerprint = fingerprint.to_string();
        let metadata = variant_metadata(key, carry.version.as_deref(), &fingerprint);
        storage.adopt(output, &metadata).map_err(|source| JobError::Put {
            key: output.clone(),
            source,
        })?;
    }
    Ok(())
}

/// The write step of one key: its store, the recipe and the source key.
struct Writer<'a> {
    storage: &'a dyn Storage,
    recipe: &'a Recipe,
    key: &'a str,
}

impl Writer<'_> {
    /// Writes what the plan decided, in its steps: read the rest of the
    /// source, be admitted, render, put the variants, then the manifest
    /// (when the recipe writes one) once every variant is stored: its
    /// presence means the set is complete.
    fn write(
        &self,
        carry: &Carry<'_>,
        planned: &[Planned],
        manifest: Option<ManifestOutput>,
        source: Fetched,
        read: &mut u64,
    ) -> Result<(Vec<Variant>, Option<ManifestOutput>), JobError> {
        let source = self.read_rest(source, read)?;
        let _admission = self.admit(&source.bytes, carry)?;
        // As the plan decided.
        let mut variants: Vec<Variant> = planned
            .iter()
            .filter(|p| p.decision.writes())
            .map(|p| p.variant.clone())
            .collect();
        let manifest = manifest.filter(|m| m.decision.writes());
        let Fetched { bytes, meta } = source;
        let version = meta.version.as_deref();
        let rendered = self.render(bytes, &variants, manifest.is_some())?;
        // `render_selected` and `plan_variants` walk the same sizes and
        // formats in the same order, so the lists pair up one to one.
        variants.truncate(rendered.renditions.len());
        self.put_variants(&mut variants, &rendered.renditions, version)?;
        let Some(manifest) = manifest else {
            return Ok((variants, None));
        };
        let placeholders = self.placeholders(rendered.placeholders, carry.upright)?;
        let entries = self.manifest_entries(planned, &carry.sizes, &variants)?;
        let manifest = self.put_manifest(manifest, entries, placeholders, carry.upright, version)?;
        Ok((variants, Some(manifest)))
    }

    fn render_error(&self, source: RenderError) -> JobError {
        JobError::Render {
            key: self.key.to_owned(),
            source,
        }
    }

    /// The whole source: the plan read the header only, or all of it.
    fn read_rest(&self, source: Fetched, read: &mut u64) -> Result<Fetched, JobError> {
        if !is_partial(&source) {
            return Ok(source);
        }
        let limit = self.recipe.limits().max_input_bytes;
        let whole =
            read_whole(self.storage, self.key, limit, &source.meta).map_err(|source| JobError::Get {
                key: self.key.to_owned(),
                source,
            })?;
        *read = whole.bytes.len() as u64;
        Ok(whole)
    }

    /// Waits for the memory budget to admit the source's working set, held
    /// until every rendition is written (the encoded bytes are part of the
    /// estimate). Without a limit, nothing is estimated.
    fn admit(&self, bytes: &[u8], carry: &Carry<'_>) -> Result<Option<Admission>, JobError> {
        if carry.budget.bytes().is_none() {
            return Ok(None);
        }
        let needs = pixels::working_set(bytes, self.recipe).map_err(|e| self.render_error(e))?;
        let admitted = carry.budget.admit(needs).map_err(|source| JobError::Memory {
            key: self.key.to_owned(),
            source,
        })?;
        Ok(Some(admitted))
    }

    /// Renders the variants to write (and the placeholders, for a manifest).
    fn render(&self, bytes: Vec<u8>, variants: &[Variant], placeholders: bool) -> Result<Rendered, JobError> {
        let wanted: Vec<(u32, Format)> = variants.iter().map(|v| (v.width, v.format)).collect();
        pixels::render_selected(bytes, self.recipe, Only::These(&wanted), placeholders)
            .map_err(|e| self.render_error(e))
    }

    /// Puts the rendered variants together, each with the metadata naming
    /// its source, the source's version and its fingerprint; records each
    /// one's size.
    fn put_variants(
        &self,
        variants: &mut [Variant],
        renditions: &[Rendition],
        version: Option<&str>,
    ) -> Result<(), JobError> {
        let fingerprints: Vec<String> = variants
            .iter()
            .map(|v| self.recipe.fingerprint(v.format).to_string())
            .collect();
        let metadata: Vec<Vec<(&str, &str)>> = fingerprints
            .iter()
            .map(|f| variant_metadata(self.key, version, f))
            .collect();
        let objects: Vec<(&str, Object<'_>)> = variants
            .iter()
            .zip(renditions)
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
        let written = self.storage.put_many(&objects);
        drop(objects);
        for ((v, r), result) in variants.iter_mut().zip(renditions).zip(written) {
            result.map_err(|source| JobError::Put {
                key: v.key.clone(),
                source,
            })?;
            v.bytes = Some(r.bytes.len() as u64);
        }
        Ok(())
    }

    /// The placeholders a manifest needs, which a render asked for them made.
    fn placeholders(
        &self,
        made: Option<Placeholders>,
        upright: (u32, u32),
    ) -> Result<Placeholders, JobError> {
        made.ok_or_else(|| {
            self.render_error(RenderError::Placeholder {
                width: upright.0,
                height: upright.1,
                message: "the render made none".to_owned(),
            })
        })
    }

    /// Every planned variant, with its size: `written` now, or stored.
    fn manifest_entries(
        &self,
        planned: &[Planned],
        sizes: &[Option<u64>],
        written: &[Variant],
    ) -> Result<Vec<ManifestEntry>, JobError> {
        planned
            .iter()
            .zip(sizes)
            .map(|(p, size)| {
                let v = &p.variant;
                // A stale variant's stored object is the old one: only what
                // was just written counts for it.
                let just_written = written.iter().find(|w| w.key == v.key).and_then(|w| w.bytes);
                let size = if p.decision.writes() { None } else { *size };
                // Stale variants were just written and current ones have a
                // stored size (the plan decided `SizeUnknown` otherwise); a
                // render that made fewer sizes than the plan leaves one
                // unknown: no manifest then, rather than one that lists a
                // variant that is not there.
                let bytes = just_written.or(size).ok_or_else(|| JobError::Check {
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
                    fingerprint: self.recipe.fingerprint(v.format),
                })
            })
            .collect()
    }

    /// Puts the manifest document listing `entries`, with its own
    /// fingerprint, and records its size.
    fn put_manifest(
        &self,
        mut manifest: ManifestOutput,
        entries: Vec<ManifestEntry>,
        placeholders: Placeholders,
        upright: (u32, u32),
        version: Option<&str>,
    ) -> Result<ManifestOutput, JobError> {
        let document = Manifest {
            key: manifest.key.clone(),
            source: self.key.to_owned(),
            version: version.map(str::to_owned),
            width: upright.0,
            height: upright.1,
            variants: entries,
            placeholders,
        }
        .to_json();
        let fingerprint = self.recipe.manifest_fingerprint().to_string();
        let metadata = variant_metadata(self.key, version, &fingerprint);
        let object = Object {
            bytes: document.as_bytes(),
            content_type: "application/json",
            metadata: &metadata,
        };
        self.storage
            .put(&manifest.key, object)
            .map_err(|source| JobError::Put {
                key: manifest.key.clone(),
                source,
            })?;
        manifest.bytes = Some(document.len() as u64);
        Ok(manifest)
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
