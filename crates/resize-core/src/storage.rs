//! The seam to the outside world: a small [`Storage`] trait the adapters
//! implement (S3, a directory), an in-memory implementation for tests, and
//! [`run_job`], which takes one key from source to stored variants.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use crate::error::{JobError, RenderError};
use crate::keys::{check_key, Skip, SourceKey, MAX_KEY_BYTES};
use crate::recipe::{Format, Recipe};
use crate::render::{self, Probe};

/// User metadata every variant carries: the key of its source. Adapters
/// refuse objects carrying it as sources.
pub const META_SOURCE: &str = "resize-source";

/// A boxed error from an adapter's client library.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A storage operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// No object has this key.
    #[error("no object at `{0}`")]
    NotFound(String),
    /// A failure that may pass (throttling, 5xx, timeouts, refused connections).
    #[error("{message}")]
    Transient {
        /// What failed.
        message: String,
        /// The client's error.
        #[source]
        source: Option<BoxError>,
    },
    /// A failure retrying will not fix (permissions, bad request).
    #[error("{message}")]
    Permanent {
        /// What failed.
        message: String,
        /// The client's error.
        #[source]
        source: Option<BoxError>,
    },
}

impl StorageError {
    /// Whether retrying later could succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StorageError::Transient { .. })
    }
}

/// An object to store.
#[derive(Clone, Copy, Debug)]
pub struct Object<'a> {
    /// The encoded file.
    pub bytes: &'a [u8],
    /// Its `Content-Type`.
    pub content_type: &'a str,
    /// User metadata, name → value.
    pub metadata: &'a [(&'a str, &'a str)],
}

/// Where sources are read from and variants written to.
pub trait Storage {
    /// Reads a whole object.
    fn get(&self, key: &str) -> Result<Vec<u8>, StorageError>;

    /// Writes a whole object. Implementations must never leave a partial
    /// object visible under `key`.
    fn put(&self, key: &str, object: Object<'_>) -> Result<(), StorageError>;

    /// Whether the variant at `variant` is already up to date for `source`
    /// (for files: newer than the source). The default says no, so every
    /// run rebuilds.
    fn is_current(&self, source: &str, variant: &str) -> Result<bool, StorageError> {
        let _ = (source, variant);
        Ok(false)
    }
}

/// An object as [`MemoryStorage`] keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredObject {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// The `Content-Type`.
    pub content_type: String,
    /// User metadata.
    pub metadata: BTreeMap<String, String>,
}

/// A [`Storage`] in memory, for tests and embedding.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    objects: Mutex<BTreeMap<String, StoredObject>>,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> MemoryStorage {
        MemoryStorage::default()
    }

    /// Stores `bytes` under `key` with no metadata.
    pub fn insert(&self, key: &str, bytes: Vec<u8>) {
        self.lock().insert(
            key.to_owned(),
            StoredObject {
                bytes,
                content_type: "application/octet-stream".to_owned(),
                metadata: BTreeMap::new(),
            },
        );
    }

    /// A copy of the object at `key`.
    pub fn object(&self, key: &str) -> Option<StoredObject> {
        self.lock().get(key).cloned()
    }

    /// Every key, sorted.
    pub fn keys(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, StoredObject>> {
        // A panic while holding the lock cannot leave the map half-updated
        // (every update is one insert), so a poisoned lock is still usable.
        self.objects.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Storage for MemoryStorage {
    fn get(&self, key: &str) -> Result<Vec<u8>, StorageError> {
        self.lock()
            .get(key)
            .map(|o| o.bytes.clone())
            .ok_or_else(|| StorageError::NotFound(key.to_owned()))
    }

    fn put(&self, key: &str, object: Object<'_>) -> Result<(), StorageError> {
        let stored = StoredObject {
            bytes: object.bytes.to_vec(),
            content_type: object.content_type.to_owned(),
            metadata: object
                .metadata
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        self.lock().insert(key.to_owned(), stored);
        Ok(())
    }
}

/// One output a job will make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedOutput {
    /// Where it goes.
    pub key: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The encoding.
    pub format: Format,
}

/// The outputs `recipe` makes for `source`, whose header gave `probe`.
/// Empty when the source is narrower than every width (upscale `skip`).
pub fn plan_outputs(
    recipe: &Recipe,
    source: &SourceKey,
    probe: &Probe,
) -> Result<Vec<PlannedOutput>, JobError> {
    let mut out = Vec::new();
    for size in render::plan(recipe, probe) {
        for &format in recipe.formats() {
            let key = recipe.output_key(source, size.width, size.height, format);
            if key.len() > MAX_KEY_BYTES {
                return Err(JobError::KeyTooLong {
                    key: source.as_str().to_owned(),
                    len: key.len(),
                    limit: MAX_KEY_BYTES,
                });
            }
            // The template and source key are both checked, so this holds;
            // kept as a last line against writing outside the destination.
            if check_key(&key).is_err() || key == source.as_str() {
                return Err(JobError::UnsafeOutputKey {
                    key: source.as_str().to_owned(),
                    output: key,
                });
            }
            out.push(PlannedOutput {
                key,
                width: size.width,
                height: size.height,
                format,
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
    /// Variants were written (possibly none, if the source was too narrow).
    Written(Vec<WrittenVariant>),
    /// The key was not processed, for a normal reason.
    Skipped(Skip),
    /// Processing failed.
    Failed(JobError),
}

/// One stored variant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrittenVariant {
    /// Its key.
    pub key: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The encoding.
    pub format: Format,
    /// Encoded size.
    pub bytes: u64,
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
/// source. Never panics on bad input; every failure is in the report.
///
/// ```
/// use resize_core::{run_job, JobOptions, MemoryStorage, Outcome, Recipe};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let mut jpeg = Vec::new();
/// # image::RgbImage::from_pixel(1600, 900, image::Rgb([10, 120, 200]))
/// #     .write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)?;
/// let store = MemoryStorage::new();
/// store.insert("original/trips/a.jpg", jpeg);
/// let recipe = Recipe::from_lookup(|n| match n {
///     "SIZES" => Some("360,720".into()),
///     "REPLACEMENTS" => Some("original:resized".into()),
///     _ => None,
/// })?;
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
        outcome: Outcome::Skipped(Skip::NotAnImage),
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
) -> Result<Result<Vec<WrittenVariant>, Skip>, JobError> {
    let source = match recipe.source_key(key) {
        Ok(s) => s,
        Err(skip) => return Ok(Err(skip)),
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
    let probe = render::probe(&bytes, recipe.limits()).map_err(render_err)?;
    let planned = plan_outputs(recipe, &source, &probe)?;
    if planned.is_empty() {
        return Ok(Err(Skip::TooNarrow { width: probe.width }));
    }
    if !options.force {
        let mut all_current = true;
        for p in &planned {
            let current = storage
                .is_current(key, &p.key)
                .map_err(|source| JobError::Check {
                    key: p.key.clone(),
                    source,
                })?;
            if !current {
                all_current = false;
                break;
            }
        }
        if all_current {
            return Ok(Err(Skip::UpToDate));
        }
    }
    let renditions = render::render(&bytes, recipe).map_err(render_err)?;
    drop(bytes);
    let metadata = [(META_SOURCE, key)];
    let mut written = Vec::with_capacity(planned.len());
    // `render` and `plan_outputs` walk the same sizes and formats in the same
    // order, so the lists pair up one to one.
    for (p, r) in planned.iter().zip(&renditions) {
        debug_assert_eq!((p.width, p.height, p.format), (r.width, r.height, r.format));
        storage
            .put(
                &p.key,
                Object {
                    bytes: &r.bytes,
                    content_type: r.content_type(),
                    metadata: &metadata,
                },
            )
            .map_err(|source| JobError::Put {
                key: p.key.clone(),
                source,
            })?;
        written.push(WrittenVariant {
            key: p.key.clone(),
            width: r.width,
            height: r.height,
            format: r.format,
            bytes: r.bytes.len() as u64,
        });
    }
    Ok(Ok(written))
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;
    use crate::keys::Skip;

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
            Outcome::Failed(e) => format!("failed (transient: {}): {e}", e.is_transient()),
        };
        let got = format!("{outcome}\nstored: {}", store.keys().join(" "));
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
                        e.to_string(),
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
        assert_eq!(store.0.keys(), ["a.jpg"]);
        let report = run_job(&store, &r, "a.jpg", JobOptions { force: true });
        assert!(matches!(report.outcome, Outcome::Written(ref v) if v.len() == 1));
        assert_eq!(store.0.keys(), ["a-100.jpg", "a.jpg"]);
    }
}
