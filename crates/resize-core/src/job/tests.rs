//! The job path's tests, over [`MemoryStorage`](crate::storage::MemoryStorage).

use std::io::Cursor;

use super::judge::decide;
use super::*;
use crate::fixtures::fixture;
use crate::manifest::manifest_owner;
use crate::pixels;
use crate::storage::{Fetched, MemoryStorage, Meta, Object, StorageError};
use crate::values::Format;

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
