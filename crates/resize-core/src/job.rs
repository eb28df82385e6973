//! One key from source to stored variants: check the key, read the source,
//! probe its header, plan the variants, skip when they are up to date,
//! render, and write each with metadata naming its source. Every adapter
//! (the CLI, the Lambda, an embedder) runs jobs through [`run_job`].

use crate::keys::{KeyTooLong, NotASource, SourceKey};
use crate::pixels::{self, Probe, RenderError};
use crate::recipe::Recipe;
use crate::storage::{Object, Storage, StorageError};
use crate::values::Format;

/// User metadata every variant carries: the key of its source. Adapters
/// refuse objects carrying it as sources.
pub const META_SOURCE: &str = "resize-source";

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
    /// Checking whether a variant is up to date failed.
    #[error("cannot check `{key}`")]
    Check {
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
    /// An output key would be longer than storage keys may be.
    #[error(transparent)]
    KeyTooLong(#[from] KeyTooLong),
}

impl JobError {
    /// Whether retrying could succeed (storage trouble) rather than the
    /// input being at fault.
    pub fn is_transient(&self) -> bool {
        match self {
            JobError::Get { source, .. } | JobError::Put { source, .. } | JobError::Check { source, .. } => {
                source.is_transient()
            }
            JobError::Render { .. } | JobError::KeyTooLong(_) => false,
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

/// Options for [`run_job`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobOptions {
    /// Rebuild variants even when [`Storage::is_current`] says they are up to date.
    pub force: bool,
}

/// What happened to one key.
#[derive(Debug)]
#[non_exhaustive]
pub enum Outcome {
    /// Variants were written.
    Written(Vec<Variant>),
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
}

/// Runs one key through the recipe: check the key, get, probe, plan, skip
/// when up to date, render, put every variant with metadata naming the
/// source ([`META_SOURCE`]). Never panics on bad input; every failure is in
/// the report. Rendering uses rayon's global pool (see [`render`]).
///
/// [`render`]: crate::pixels::render
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
    let mut report = Report {
        key: key.to_owned(),
        bytes_in: 0,
        outcome: Outcome::Skipped(Skip::UpToDate),
    };
    report.outcome = match job(storage, recipe, key, options, &mut report.bytes_in) {
        Ok(Ok(written)) => Outcome::Written(written),
        Ok(Err(skip)) => Outcome::Skipped(skip),
        Err(e) => Outcome::Failed(e),
    };
    report
}

fn job(
    storage: &dyn Storage,
    recipe: &Recipe,
    key: &str,
    options: JobOptions,
    bytes_in: &mut u64,
) -> Result<Result<Vec<Variant>, Skip>, JobError> {
    let source = match recipe.source_key(key) {
        Ok(s) => s,
        Err(skip) => return Ok(Err(skip.into())),
    };
    let render_err = |source: RenderError| JobError::Render {
        key: key.to_owned(),
        source,
    };
    let bytes = storage.get(key).map_err(|source| JobError::Get {
        key: key.to_owned(),
        source,
    })?;
    *bytes_in = bytes.len() as u64;
    let probe = pixels::probe(&bytes, recipe.limits()).map_err(render_err)?;
    let mut variants = plan_variants(recipe, &source, &probe)?;
    if variants.is_empty() {
        return Ok(Err(Skip::TooNarrow { width: probe.width }));
    }
    if !options.force && all_current(storage, key, &variants)? {
        return Ok(Err(Skip::UpToDate));
    }
    let renditions = pixels::render(&bytes, recipe).map_err(render_err)?;
    drop(bytes);
    let metadata = [(META_SOURCE, key)];
    variants.truncate(renditions.len());
    // `render` and `plan_variants` walk the same sizes and formats in the
    // same order, so the lists pair up one to one.
    for (v, r) in variants.iter_mut().zip(&renditions) {
        debug_assert_eq!((v.width, v.height, v.format), (r.width, r.height, r.format));
        let object = Object {
            bytes: &r.bytes,
            content_type: r.content_type(),
            metadata: &metadata,
        };
        storage.put(&v.key, object).map_err(|source| JobError::Put {
            key: v.key.clone(),
            source,
        })?;
        v.bytes = Some(r.bytes.len() as u64);
    }
    Ok(Ok(variants))
}

/// Whether storage says every planned variant is up to date; stops at the
/// first that is not.
fn all_current(storage: &dyn Storage, key: &str, variants: &[Variant]) -> Result<bool, JobError> {
    for v in variants {
        let current = storage
            .is_current(key, &v.key)
            .map_err(|source| JobError::Check {
                key: v.key.clone(),
                source,
            })?;
        if !current {
            return Ok(false);
        }
    }
    Ok(true)
}
#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;
    use crate::storage::MemoryStorage;

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

    /// A store whose puts fail, transiently or not.
    struct FailingPuts {
        inner: MemoryStorage,
        transient: bool,
    }

    impl Storage for FailingPuts {
        fn get(&self, key: &str) -> Result<Vec<u8>, StorageError> {
            self.inner.get(key)
        }
        fn put(&self, key: &str, _: Object<'_>) -> Result<(), StorageError> {
            let message = format!("put {key} refused");
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
        ]);
        let report = run_job(&store, &r, key, JobOptions::default());
        let outcome = match &report.outcome {
            Outcome::Written(v) => {
                let sizes: Vec<String> = v
                    .iter()
                    .map(|w| format!("{}x{} {}", w.width, w.height, w.format))
                    .collect();
                format!("written {}", sizes.join(", "))
            }
            Outcome::Skipped(s) => format!("skipped: {s}"),
            Outcome::Failed(e) => format!("failed (transient: {}): {}", e.is_transient(), error_chain(e)),
        };
        let got = format!("{outcome}\nstored: {}", store.stored_keys().join(" "));
        assert_eq!(got, expect);
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
            &[],
            "original/missing.jpg",
            "failed (transient: false): cannot read `original/missing.jpg`: no object at `original/missing.jpg`\nstored: ",
        );
    }

    #[test]
    fn variants_carry_content_type_and_source_metadata() {
        let store = MemoryStorage::new();
        store.insert("original/trips/a b.jpg", jpeg(400, 300));
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
            assert_eq!(
                o.metadata.get(META_SOURCE).map(String::as_str),
                Some("original/trips/a b.jpg")
            );
        }
    }

    #[test]
    fn storage_failures_keep_their_kind() {
        for transient in [true, false] {
            let inner = MemoryStorage::new();
            inner.insert("original/a.jpg", jpeg(400, 300));
            let store = FailingPuts { inner, transient };
            let r = recipe(&[("SIZES", "100"), ("REPLACEMENTS", "original:resized")]);
            let report = run_job(&store, &r, "original/a.jpg", JobOptions::default());
            match report.outcome {
                Outcome::Failed(e) => {
                    assert_eq!(e.is_transient(), transient);
                    assert_eq!(
                        error_chain(&e),
                        "cannot write `resized/a-100.jpg`: put resized/a-100.jpg refused"
                    );
                }
                other => panic!("expected a failure, got {other:?}"),
            }
        }
    }

    /// A store that says every variant is current: nothing is decoded or
    /// written unless forced.
    struct AllCurrent(MemoryStorage);

    impl Storage for AllCurrent {
        fn get(&self, key: &str) -> Result<Vec<u8>, StorageError> {
            self.0.get(key)
        }
        fn put(&self, key: &str, object: Object<'_>) -> Result<(), StorageError> {
            self.0.put(key, object)
        }
        fn is_current(&self, _: &str, _: &str) -> Result<bool, StorageError> {
            Ok(true)
        }
    }

    #[test]
    fn up_to_date_variants_are_not_rebuilt_unless_forced() {
        let store = AllCurrent(MemoryStorage::new());
        store.0.insert("a.jpg", jpeg(400, 300));
        let r = recipe(&[("SIZES", "100")]);
        let report = run_job(&store, &r, "a.jpg", JobOptions::default());
        assert!(matches!(report.outcome, Outcome::Skipped(Skip::UpToDate)));
        assert_eq!(store.0.stored_keys(), ["a.jpg"]);
        let report = run_job(&store, &r, "a.jpg", JobOptions { force: true });
        assert!(matches!(report.outcome, Outcome::Written(ref v) if v.len() == 1));
        assert_eq!(store.0.stored_keys(), ["a-100.jpg", "a.jpg"]);
    }
}
