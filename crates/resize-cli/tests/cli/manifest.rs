//! Manifests from the CLI: on disk (incremental, dry run, a state file
//! lost, a JSON the user wrote) and over S3 (the backfill writes what a
//! local run writes, byte for byte). Every manifest is checked against
//! `fixtures/manifest.schema.json`.

use std::fs;

use resize_testkit::{assert_valid_manifest, World, BUCKET};
use serde_json::Value;

use crate::support::*;

const ARGS: &[&str] = &["--formats", "jpeg,webp", "--replace", "original:resized"];

fn with(extra: &[&'static str]) -> Vec<&'static str> {
    ARGS.iter().chain(extra).copied().collect()
}

/// The one result line of a `--json` report.
fn line(report: &Value) -> &Value {
    &report["results"][0]
}

#[test]
fn manifests_on_disk_follow_their_variants() {
    let sb = Sandbox::new();
    sb.copy_fixture("phone-orient6.jpg", "photos/original/trips/a.jpg");
    let manifest = sb.path("out/resized/trips/a.json");
    // Variants first, without a manifest.
    sb.run(&with(&["--out", "out", "photos"])).expect_code(0);
    assert!(!manifest.exists());
    let variant = sb.path("out/resized/trips/a-360.jpg");
    let made = mtime(&variant);

    // A dry run lists the manifest a run would write, and writes nothing.
    let plan = sb.run(&with(&[
        "--json",
        "--dry-run",
        "--manifest",
        "--out",
        "out",
        "photos",
    ]));
    let plan = plan.expect_code(0).json();
    assert_eq!(line(&plan)["manifest"]["key"], "resized/trips/a.json");
    assert_eq!(line(&plan)["manifest"]["found"], "missing");
    assert_eq!(plan["manifests"], 1);
    assert_eq!(plan["variants_planned"], 0);
    assert!(!manifest.exists());

    // The run writes it alone: the variants stay as they were.
    let run = sb.run(&with(&["--json", "--manifest", "--out", "out", "photos"]));
    let run = run.expect_code(0).json();
    assert_eq!(
        (run["variants_written"].as_u64(), run["manifests"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(mtime(&variant), made);
    let bytes = fs::read(&manifest).expect("the manifest");
    assert_valid_manifest(&bytes);
    let doc: Value = serde_json::from_slice(&bytes).expect("JSON");
    assert_eq!(doc["source"]["key"], "original/trips/a.jpg");
    assert_eq!(
        (doc["source"]["width"].as_u64(), doc["source"]["height"].as_u64()),
        (Some(3024), Some(4032))
    );
    for v in doc["variants"].as_array().expect("variants") {
        let path = sb.path(&format!("out/{}", v["key"].as_str().expect("key")));
        let size = fs::metadata(&path).expect("the variant exists").len();
        assert_eq!(v["bytes"].as_u64(), Some(size), "{path:?}");
        let image = decode(&path);
        assert_eq!(
            (Some(u64::from(image.width())), Some(u64::from(image.height()))),
            (v["width"].as_u64(), v["height"].as_u64())
        );
    }

    // Current: nothing to do. Without the state file, our manifest is
    // recognised by its content and judged by its time, like the variants.
    let again = sb.run(&with(&["--json", "--manifest", "--out", "out", "photos"]));
    assert_eq!(again.expect_code(0).json()["images_written"], 0);
    fs::remove_file(sb.path("out/.resize-state.json")).expect("the state file");
    let without_state = sb.run(&with(&["--json", "--manifest", "--out", "out", "photos"]));
    assert_eq!(without_state.expect_code(0).json()["images_written"], 0);
    assert_eq!(fs::read(&manifest).expect("the manifest"), bytes);

    // A JSON the user wrote at that key is never overwritten.
    fs::write(&manifest, b"{\"mine\": true}\n").expect("write");
    let refused = sb.run(&with(&[
        "--json",
        "--manifest",
        "--force",
        "--out",
        "out",
        "photos",
    ]));
    let report = refused.expect_code(1).json();
    let reason = reasons(&report, "failed");
    assert_eq!(
        reason.get("original/trips/a.jpg").map(String::as_str),
        Some("`resized/trips/a.json` exists and is not a manifest made by resize; it is never overwritten (move it, or choose another MANIFEST_TEMPLATE)")
    );
    assert_eq!(fs::read(&manifest).expect("the file"), b"{\"mine\": true}\n");
}

#[test]
fn a_backfill_writes_what_a_local_run_writes() {
    let world = World::new().expect("moto");
    let sb = Sandbox::new();
    let photo = fs::read(fixtures().join("images/phone-orient6.jpg")).expect("fixture");
    sb.write("photos/original/trips/a b,c.jpg", &photo);
    world.put("original/trips/a b,c.jpg", photo, &[]);
    sb.run(&with(&["--manifest", "--out", "out", "photos"]))
        .expect_code(0);
    let local = fs::read(sb.path("out/resized/trips/a b,c.json")).expect("the local manifest");
    assert_valid_manifest(&local);

    // The S3 backfill tests' environment: test credentials, nothing from the host.
    let env = crate::s3::s3_env(&sb, world.port);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let bucket = format!("s3://{BUCKET}");
    let input = format!("s3://{BUCKET}/original/");
    let args = with(&["--manifest", "--out"]);
    let mut args: Vec<&str> = args;
    args.extend([bucket.as_str(), input.as_str()]);
    sb.run_env(&args, &env).expect_code(0);
    let remote = world.get("resized/trips/a b,c.json");
    assert_valid_manifest(&remote);
    // The same document: the local source's version is the MD5 of its
    // bytes, which is the ETag S3 gives them.
    assert_eq!(String::from_utf8_lossy(&remote), String::from_utf8_lossy(&local));
    let head = world.head("resized/trips/a b,c.json").expect("the manifest");
    assert_eq!(head.content_type(), Some("application/json"));
    let doc: Value = serde_json::from_slice(&remote).expect("JSON");
    assert!(
        doc["srcset"]["webp"]
            .as_str()
            .is_some_and(|s| s.starts_with("a%20b%2Cc-360.webp 360w, ")),
        "{doc}"
    );

    // A page for an S3 destination links to the bucket's public URL, or to
    // what --html-base says; the run says which.
    let mut page_args = with(&["--html", "page.html", "--out"]);
    page_args.extend([bucket.as_str(), input.as_str()]);
    let run = sb.run_env(&page_args, &env);
    let bucket_url = format!("https://{BUCKET}.s3.amazonaws.com/");
    assert!(
        run.expect_code(0)
            .stderr
            .contains(&format!("links to {bucket_url}")),
        "{}",
        run.stderr
    );
    let page = fs::read_to_string(sb.path("page.html")).expect("the page");
    let img = format!("{bucket_url}resized/trips/a%20b%2Cc-720.jpg 720w");
    assert!(page.contains(&img), "{page}");
    let mut cdn_args = with(&[
        "--html",
        "page.html",
        "--html-base",
        "https://cdn.example.com/site",
        "--out",
    ]);
    cdn_args.extend([bucket.as_str(), input.as_str()]);
    sb.run_env(&cdn_args, &env).expect_code(0);
    let page = fs::read_to_string(sb.path("page.html")).expect("the page");
    assert!(
        page.contains("https://cdn.example.com/site/resized/trips/a%20b%2Cc-2200.webp 2200w"),
        "{page}"
    );
}

/// Under REPLACEMENTS a source may have an output's shape
/// (`original/trip-360.jpg`): it is still read from its input, whole (a
/// photo past the first 64 KiB a plan reads), here a bucket going to a
/// folder. A source whose manifest would take the name of the CLI's state
/// file fails alone, and the state file stays the CLI's.
#[test]
fn sources_shaped_like_outputs_and_names_the_cli_keeps() {
    let world = World::new().expect("moto");
    let sb = Sandbox::new();
    let photo = fs::read(fixtures().join("images/phone-orient6.jpg")).expect("fixture");
    assert!(photo.len() > 64 * 1024);
    world.put("original/trip-360.jpg", photo, &[]);
    // The S3 backfill tests' environment: test credentials, nothing from the host.
    let env = crate::s3::s3_env(&sb, world.port);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let input = format!("s3://{BUCKET}/original/");
    let mut args = with(&["--json", "--manifest", "--out", "out"]);
    args.push(&input);
    let report = sb.run_env(&args, &env).expect_code(0).json();
    assert_eq!(report["images_written"], 1, "{report}");
    assert_eq!(decode(&sb.path("out/resized/trip-360-360.jpg")).width(), 360);
    assert_valid_manifest(&fs::read(sb.path("out/resized/trip-360.json")).expect("the manifest"));

    sb.copy_fixture("photo-4x3.jpg", "own/.resize-state.jpg");
    let run = sb.run(&[
        "--json",
        "--manifest",
        "--sizes",
        "100",
        "--out",
        "own-out",
        "own",
    ]);
    let report = run.expect_code(1).json();
    let reason = reasons(&report, "failed");
    assert!(
        reason[".resize-state.jpg"].contains("has the name of one of resize-cli's own files"),
        "{reason:?}"
    );
    let state = fs::read(sb.path("own-out/.resize-state.json")).expect("the state file");
    assert_eq!(resize_core::adapter::manifest_owner(&state), None);
    serde_json::from_slice::<Value>(&state).expect("the state file is the CLI's JSON");
}
