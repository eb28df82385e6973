//! Manifests from the real `bootstrap` on upload, on a duplicate delivery,
//! for a bucket whose variants are already current, and on removal; each
//! one checked against `fixtures/manifest.schema.json` and against the
//! manifest the core writes for the same bytes.

use resize_core::{run_job, JobOptions, MemoryStorage, Recipe};
use resize_testkit::assert_valid_manifest;
use serde_json::{json, Value};

use crate::harness::{fixture, s3_event, Lambda, World};

const SOURCE: &str = "original/trips/a b.jpg";
const MANIFEST: &str = "resized/trips/a b.json";
const SETTINGS: &[(&str, &str)] = &[("FORMATS", "jpeg,webp"), ("MANIFEST", "true")];

/// The manifest the core writes for `bytes` at `SOURCE` under the
/// Lambda's settings, without its source version (a store's own).
fn expected(bytes: &[u8]) -> Value {
    let store = MemoryStorage::new();
    store.insert(SOURCE, bytes.to_vec());
    let recipe = Recipe::from_lookup(|name| match name {
        "SIZES" => Some("360,720,1200,2200".into()),
        "REPLACEMENTS" => Some("original:resized".into()),
        "FORMATS" => Some("jpeg,webp".into()),
        "MANIFEST" => Some("true".into()),
        _ => None,
    })
    .expect("the test's settings");
    let _ = run_job(&store, &recipe, SOURCE, JobOptions::default());
    let written = store.object(MANIFEST).expect("the core wrote a manifest");
    without_version(&written.bytes)
}

fn without_version(bytes: &[u8]) -> Value {
    let mut v: Value = serde_json::from_slice(bytes).expect("a manifest is JSON");
    v["source"]["version"] = Value::Null;
    v
}

/// Checks the stored manifest: valid, with the S3 object's headers and
/// metadata guard, naming the source's ETag, listing every variant with
/// the size S3 holds, and otherwise what the core writes.
#[track_caller]
fn check_manifest(world: &World, source_bytes: &[u8]) {
    let bytes = world.get(MANIFEST);
    assert_valid_manifest(&bytes);
    let head = world.head(MANIFEST).expect("the manifest exists");
    assert_eq!(head.content_type(), Some("application/json"));
    let meta = head.metadata().cloned().unwrap_or_default();
    let source = meta.get("resize-source").map(|v| resize_s3::decode_meta(v));
    assert_eq!(source.as_deref(), Some(SOURCE));
    let doc: Value = serde_json::from_slice(&bytes).expect("JSON");
    let etag = world
        .head(SOURCE)
        .and_then(|h| h.e_tag().map(|e| e.trim_matches('"').to_owned()));
    assert_eq!(doc["source"]["version"].as_str(), etag.as_deref());
    assert_eq!(
        (doc["source"]["width"].clone(), doc["source"]["height"].clone()),
        (json!(3024), json!(4032))
    );
    let variants = doc["variants"].as_array().expect("variants");
    assert_eq!(variants.len(), 8, "4 widths × 2 formats");
    for v in variants {
        let key = v["key"].as_str().expect("key");
        let stored = world
            .head(key)
            .and_then(|h| h.content_length())
            .expect("the variant exists");
        assert_eq!(v["bytes"], json!(stored), "{key}");
        assert_eq!(
            world.dimensions(key),
            (
                v["width"].as_u64().unwrap_or(0) as u32,
                v["height"].as_u64().unwrap_or(0) as u32
            )
        );
    }
    assert_eq!(
        without_version(&bytes),
        expected(source_bytes),
        "the Lambda and the core agree"
    );
}

#[test]
fn uploads_write_a_manifest_after_their_variants() {
    let world = World::new().expect("an S3 world: moto and a bucket");
    let photo = fixture("images/phone-orient6.jpg");
    world.put(SOURCE, photo.clone(), &[]);
    let mut lambda = Lambda::start(&world, SETTINGS);
    let put = s3_event(&[("ObjectCreated:Put", "original/trips/a+b.jpg")]);
    assert_eq!(lambda.invoke(&put).response()["written"], json!(1));
    check_manifest(&world, &photo);
    // A duplicate delivery finds the variants and the manifest current.
    assert_eq!(lambda.invoke(&put).response()["skipped"], json!(1));
    let manifest_etag = world.head(MANIFEST).and_then(|h| h.e_tag().map(str::to_owned));

    // Removal (DELETE_VARIANTS) takes the manifest with the variants.
    drop(lambda);
    world.delete(SOURCE);
    let mut removing = Lambda::start(&world, &[SETTINGS, &[("DELETE_VARIANTS", "true")]].concat());
    let removed = s3_event(&[("ObjectRemoved:Delete", "original/trips/a+b.jpg")]);
    // `deleted` counts objects: 8 variants and the manifest.
    assert_eq!(removing.invoke(&removed).response()["deleted"], json!(9));
    assert_eq!(world.keys("resized/"), Vec::<String>::new());
    assert!(manifest_etag.is_some());
}

/// Turning MANIFEST on for a bucket whose variants are current writes the
/// manifest alone: no variant is written again.
#[test]
fn manifests_for_current_variants_reencode_nothing() {
    let world = World::new().expect("an S3 world: moto and a bucket");
    let photo = fixture("images/phone-orient6.jpg");
    world.put(SOURCE, photo.clone(), &[]);
    let put = s3_event(&[("ObjectCreated:Put", "original/trips/a+b.jpg")]);
    let mut off = Lambda::start(&world, &[("FORMATS", "jpeg,webp")]);
    assert_eq!(off.invoke(&put).response()["written"], json!(1));
    drop(off);
    let before: Vec<(String, Option<String>)> = world
        .keys("resized/")
        .into_iter()
        .map(|k| {
            let etag = world
                .head(&k)
                .and_then(|h| h.last_modified().map(|t| t.to_string()));
            (k, etag)
        })
        .collect();
    assert_eq!(before.len(), 8);
    assert!(world.head(MANIFEST).is_none());
    let mut on = Lambda::start(&world, SETTINGS);
    assert_eq!(on.invoke(&put).response()["written"], json!(1));
    check_manifest(&world, &photo);
    for (key, modified) in &before {
        let now = world
            .head(key)
            .and_then(|h| h.last_modified().map(|t| t.to_string()));
        assert_eq!(&now, modified, "{key} was not written again");
    }
    on.stdout_with("manifest");
}

/// A JSON document at the manifest's key that resize did not write stops
/// the job with a clear error, and stays as it was.
#[test]
fn a_foreign_json_is_never_overwritten() {
    let world = World::new().expect("an S3 world: moto and a bucket");
    world.put(SOURCE, fixture("images/phone-orient6.jpg"), &[]);
    world.put(MANIFEST, b"{\"site\": \"mine\"}".to_vec(), &[]);
    let mut lambda = Lambda::start(&world, SETTINGS);
    let put = s3_event(&[("ObjectCreated:Put", "original/trips/a+b.jpg")]);
    let answer = lambda.invoke(&put).response();
    let failed = answer["failed"].to_string();
    assert!(
        failed.contains("`resized/trips/a b.json` exists and is not a manifest made by resize"),
        "{answer}"
    );
    assert_eq!(world.get(MANIFEST), b"{\"site\": \"mine\"}");
    assert_eq!(world.keys("resized/"), [MANIFEST]);
}
