//! The real `bootstrap` binary, fed events through the local Runtime API,
//! reading and writing a real S3-compatible server.

use serde_json::{json, Value};

use crate::harness::{event, fixture, s3_event, Answer, Lambda, World, BUCKET, SECRET};

pub const CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// The summary a direct (S3, SNS, EventBridge) invocation answers with.
fn summary(records: u64, written: u64, deleted: u64, skipped: u64, failed: Value) -> Value {
    json!({
        "records": records,
        "written": written,
        "deleted": deleted,
        "skipped": skipped,
        "failed": failed,
        "ignored": 0,
    })
}

/// Checks that exactly `expect` (key, width, height) lie under `prefix`,
/// each with its pixel size, content type, cache control and metadata
/// naming `source` and the source's current ETag.
#[track_caller]
pub fn check_variants(world: &World, source: &str, prefix: &str, expect: &[(&str, u32, u32)]) {
    let source_etag = world
        .head(source)
        .unwrap_or_else(|| panic!("source {source} is gone"))
        .e_tag()
        .map(|e| e.trim_matches('"').to_owned())
        .expect("source etag");
    let mut want: Vec<&str> = expect.iter().map(|(k, _, _)| *k).collect();
    want.sort_unstable();
    assert_eq!(world.keys(prefix), want, "keys under {prefix}");
    for &(key, w, h) in expect {
        assert_eq!(world.dimensions(key), (w, h), "pixel size of {key}");
        let head = world.head(key).expect("variant exists");
        let content_type = if key.ends_with(".webp") {
            "image/webp"
        } else {
            "image/jpeg"
        };
        assert_eq!(head.content_type(), Some(content_type), "content type of {key}");
        assert_eq!(
            head.cache_control(),
            Some(CACHE_CONTROL),
            "cache control of {key}"
        );
        let meta: std::collections::HashMap<String, String> = head
            .metadata()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), resize_s3::decode_meta(v)))
            .collect();
        assert_eq!(
            meta.get("resize-source").map(String::as_str),
            Some(source),
            "source of {key}"
        );
        assert_eq!(
            meta.get("resize-source-etag"),
            Some(&source_etag),
            "source etag of {key}"
        );
    }
}

#[test]
fn put_event_writes_every_width_up_to_the_source_width() {
    let world = World::new().expect("an S3 world: moto and a bucket");
    world.put_fixture("original/trips/a.jpg", "images/photo-16x9.jpg");
    let mut lambda = Lambda::start(&world, &[]);
    let answer = lambda.invoke(&event("s3-put")).response();
    assert_eq!(answer, summary(1, 1, 0, 0, json!([])));
    // 1280 px wide: 2200 is skipped, never upscaled.
    check_variants(
        &world,
        "original/trips/a.jpg",
        "resized/",
        &[
            ("resized/trips/a-360.jpg", 360, 203),
            ("resized/trips/a-720.jpg", 720, 405),
            ("resized/trips/a-1200.jpg", 1200, 675),
        ],
    );
    assert_eq!(world.keys("original/"), ["original/trips/a.jpg"]);
}

#[test]
fn webp_twins_when_asked() {
    let world = World::new().expect("an S3 world: moto and a bucket");
    world.put_fixture("original/trips/a.jpg", "images/photo-4x3.jpg");
    let mut lambda = Lambda::start(&world, &[("FORMATS", "jpeg,webp")]);
    let answer = lambda.invoke(&event("s3-put")).response();
    assert_eq!(answer, summary(1, 1, 0, 0, json!([])));
    check_variants(
        &world,
        "original/trips/a.jpg",
        "resized/",
        &[
            ("resized/trips/a-360.jpg", 360, 270),
            ("resized/trips/a-360.webp", 360, 270),
            ("resized/trips/a-720.jpg", 720, 540),
            ("resized/trips/a-720.webp", 720, 540),
        ],
    );
}

#[test]
fn phone_photos_come_out_upright() {
    let world = World::new().expect("an S3 world: moto and a bucket");
    world.put_fixture("original/trips/a.jpg", "images/phone-orient6.jpg");
    // Two widths keep the 12 MP case quick in a debug build.
    let mut lambda = Lambda::start(&world, &[("SIZES", "360,2200")]);
    let answer = lambda.invoke(&event("s3-put")).response();
    assert_eq!(answer, summary(1, 1, 0, 0, json!([])));
    // Stored 4032×3024 with orientation 6: upright 3024×4032.
    check_variants(
        &world,
        "original/trips/a.jpg",
        "resized/",
        &[
            ("resized/trips/a-360.jpg", 360, 480),
            ("resized/trips/a-2200.jpg", 2200, 2933),
        ],
    );
    // Upright quadrants: top-left red-ish, bottom-right blue-ish (a rotation
    // the wrong way round would swap them with green / yellow).
    let img = image::load_from_memory(&world.get("resized/trips/a-360.jpg"))
        .expect("decode")
        .to_rgb8();
    let [r, g, b] = img.get_pixel(90, 120).0;
    assert!(
        r > 150 && g < 110 && b < 110,
        "top-left is ({r},{g},{b}), not red"
    );
    let [r, g, b] = img.get_pixel(270, 360).0;
    assert!(
        b > 150 && r < 110 && g < 130,
        "bottom-right is ({r},{g},{b}), not blue"
    );
}

#[test]
fn encoded_keys_are_decoded() {
    let world = World::new().expect("an S3 world: moto and a bucket");
    let sources = [
        (
            "original/trips/summer 2024/beach (copy).jpg",
            "resized/trips/summer 2024/beach (copy)",
        ),
        ("original/trips/a+b.jpg", "resized/trips/a+b"),
        ("original/trips/100% sure.jpg", "resized/trips/100% sure"),
        (
            "original/trips/naïve/日本.v2.final.jpg",
            "resized/trips/naïve/日本.v2.final",
        ),
    ];
    for (key, _) in sources {
        world.put_fixture(key, "images/photo-4x3.jpg");
    }
    let mut lambda = Lambda::start(&world, &[("SIZES", "360,720")]);
    let answer = lambda.invoke(&event("s3-encoded-keys")).response();
    assert_eq!(answer, summary(4, 4, 0, 0, json!([])));
    for (source, out) in sources {
        let (k360, k720) = (format!("{out}-360.jpg"), format!("{out}-720.jpg"));
        check_variants(
            &world,
            source,
            &format!("{out}-"),
            &[(&k360, 360, 270), (&k720, 720, 540)],
        );
    }
    assert_eq!(world.keys("resized/").len(), 8);
}

#[test]
fn several_records_permanent_failures_do_not_fail_the_invocation() {
    let world = World::new().expect("an S3 world: moto and a bucket");
    world.put_fixture("original/trips/a.jpg", "images/photo-16x9.jpg");
    world.put_fixture("original/trips/b.jpg", "images/photo-4x3.jpg");
    world.put_fixture("original/trips/broken.jpg", "bad/truncated-jpg.jpg");
    let mut lambda = Lambda::start(&world, &[]);
    let answer = lambda.invoke(&event("s3-several")).response();
    let failed = answer["failed"].clone();
    assert_eq!(answer, summary(4, 2, 0, 1, failed.clone()), "{answer}");
    let failed = failed.as_array().expect("failed is a list");
    assert_eq!(failed.len(), 1, "{answer}");
    assert_eq!(failed[0]["key"], "original/trips/broken.jpg");
    let error = failed[0]["error"].as_str().expect("error text");
    assert!(error.contains("truncated"), "{error}");
    assert_eq!(
        world.keys("resized/"),
        [
            "resized/trips/a-1200.jpg",
            "resized/trips/a-360.jpg",
            "resized/trips/a-720.jpg",
            "resized/trips/b-360.jpg",
            "resized/trips/b-720.jpg",
        ]
    );
    assert_eq!(
        world.keys("original/"),
        [
            "original/trips/a.jpg",
            "original/trips/b.jpg",
            "original/trips/broken.jpg"
        ]
    );
    lambda.stdout_with("failed permanently");
}

/// The S3 requests moto logged, by method and key prefix, in the order
/// source GET, source HEAD, variant HEAD, variant PUT.
fn requests(world: &World) -> [usize; 4] {
    world
        .moto()
        .expect("moto is running")
        .sync(&world.client, &world.rt);
    let n = |line: &str| world.moto().expect("moto is running").requests(line);
    [
        n(&format!("GET /{BUCKET}/original/")),
        n(&format!("HEAD /{BUCKET}/original/")),
        n(&format!("HEAD /{BUCKET}/resized/")),
        n(&format!("PUT /{BUCKET}/resized/")),
    ]
}

fn delta(after: [usize; 4], before: [usize; 4]) -> [usize; 4] {
    [0, 1, 2, 3].map(|i| after[i] - before[i])
}

#[test]
fn duplicate_delivery_writes_nothing_the_second_time() {
    let world = World::new().expect("an S3 world: moto and a bucket");
    world.put_fixture("original/trips/a.jpg", "images/photo-16x9.jpg");
    let mut lambda = Lambda::start(&world, &[]);
    let start = requests(&world);
    assert_eq!(
        lambda.invoke(&event("s3-put")).response(),
        summary(1, 1, 0, 0, json!([]))
    );
    let first = requests(&world);
    // One GET of the source, a HEAD of each of the 3 variants (none may be
    // another source's), 3 PUTs.
    assert_eq!(
        delta(first, start),
        [1, 0, 3, 3],
        "first delivery: GET, HEAD, HEAD, PUT"
    );
    let modified = |key: &str| world.head(key).and_then(|h| h.last_modified().copied());
    let before: Vec<_> = world.keys("resized/").iter().map(|k| modified(k)).collect();

    let second = requests(&world);
    assert_eq!(
        lambda.invoke(&event("s3-put")).response(),
        summary(1, 0, 0, 1, json!([]))
    );
    let third = requests(&world);
    assert_eq!(
        delta(third, second),
        [1, 0, 3, 0],
        "a duplicate delivery writes nothing"
    );
    let after: Vec<_> = world.keys("resized/").iter().map(|k| modified(k)).collect();
    assert_eq!(before, after);
    lambda.stdout_with("all variants are up to date");

    // A new upload under the same key (new ETag) is rendered again.
    world.put_fixture("original/trips/a.jpg", "images/photo-4x3.jpg");
    let fourth = requests(&world);
    assert_eq!(
        lambda.invoke(&event("s3-put")).response(),
        summary(1, 1, 0, 0, json!([]))
    );
    assert_eq!(delta(requests(&world), fourth)[3], 2);
    assert_eq!(world.dimensions("resized/trips/a-360.jpg"), (360, 270));
    assert_eq!(world.dimensions("resized/trips/a-720.jpg"), (720, 540));
}

/// Variants carry the recipe's fingerprint; a deployment with other
/// settings rewrites exactly the variants whose bytes they change, on the
/// next delivery of each source: a rerun writes nothing, a new width only
/// that width, a JPEG quality change only the JPEGs (S3 contents and
/// moto's request log).
#[test]
fn a_recipe_change_rewrites_only_the_variants_it_affects() {
    let world = World::new().expect("an S3 world: moto and a bucket");
    world.put_fixture("original/trips/a.jpg", "images/photo-16x9.jpg");
    let puts = |key: &str| {
        world
            .moto()
            .expect("moto is running")
            .sync(&world.client, &world.rt);
        let moto = world.moto().expect("moto is running");
        // The SDK adds `?x-id=PutObject`; either way the key ends there.
        moto.requests(&format!("PUT /{BUCKET}/{key}?")) + moto.requests(&format!("PUT /{BUCKET}/{key} "))
    };
    let deliver = |settings: &[(&str, &str)]| -> Vec<String> {
        let keys = |w: &World| w.keys("resized/");
        let before: Vec<(String, usize)> = keys(&world).into_iter().map(|k| (k.clone(), puts(&k))).collect();
        let mut lambda = Lambda::start(&world, settings);
        let answer = lambda.invoke(&event("s3-put")).response();
        assert_eq!(answer["failed"], json!([]), "{answer}");
        let mut written: Vec<String> = keys(&world)
            .into_iter()
            .filter(|k| before.iter().find(|(b, _)| b == k).map_or(0, |(_, n)| *n) != puts(k))
            .collect();
        written.sort();
        written
    };
    let widths = ("SIZES", "96,200");
    let both = ("FORMATS", "jpeg,webp");
    // (what, settings, variants written)
    type Step<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a [&'a str]);
    let steps: [Step; 4] = [
        (
            "first delivery",
            vec![widths, both],
            &[
                "resized/trips/a-200.jpg",
                "resized/trips/a-200.webp",
                "resized/trips/a-96.jpg",
                "resized/trips/a-96.webp",
            ],
        ),
        ("same settings", vec![widths, both], &[]),
        (
            "a width added",
            vec![("SIZES", "96,150,200"), both],
            &["resized/trips/a-150.jpg", "resized/trips/a-150.webp"],
        ),
        (
            "JPEG quality",
            vec![("SIZES", "96,150,200"), both, ("JPEG_QUALITY", "60")],
            &[
                "resized/trips/a-150.jpg",
                "resized/trips/a-200.jpg",
                "resized/trips/a-96.jpg",
            ],
        ),
    ];
    for (what, settings, expect) in steps {
        assert_eq!(deliver(&settings), expect, "{what}");
    }
    let head = world.head("resized/trips/a-96.webp").expect("the variant");
    let meta = head.metadata().expect("user metadata");
    let fingerprint = meta.get("resize-fingerprint").expect("a fingerprint");
    assert_eq!(fingerprint.len(), 16, "{fingerprint}");
    assert!(
        fingerprint.bytes().all(|b| b.is_ascii_hexdigit()),
        "{fingerprint}"
    );
    assert_eq!(
        meta.get("resize-source").map(String::as_str),
        Some("original/trips/a.jpg")
    );
}

#[test]
fn a_variant_of_another_source_is_never_overwritten() {
    let world = World::new().expect("an S3 world: moto and a bucket");
    world.put_fixture("original/trips/a.jpg", "images/photo-16x9.jpg");
    world.put_fixture("original/trips/a.png", "images/photo-4x3.jpg");
    let mut lambda = Lambda::start(&world, &[]);
    let first = lambda.invoke(&s3_event(&[("ObjectCreated:Put", "original/trips/a.jpg")]));
    assert_eq!(first.response(), summary(1, 1, 0, 0, json!([])));
    let before = world.get("resized/trips/a-360.jpg");
    let second = lambda.invoke(&s3_event(&[("ObjectCreated:Put", "original/trips/a.png")]));
    assert_eq!(
        second.response(),
        summary(
            1,
            0,
            0,
            0,
            json!([{
                "key": "original/trips/a.png",
                "error": "its outputs would overwrite those of `original/trips/a.jpg` \
                          (`resized/trips/a-360.jpg` was made from it); rename one of them"
            }])
        )
    );
    assert_eq!(world.get("resized/trips/a-360.jpg"), before);
    lambda.stdout_with("failed permanently");
}

#[test]
fn objects_carrying_variant_metadata_are_not_sources() {
    let world = World::new().expect("an S3 world: moto and a bucket");
    world.put(
        "original/trips/copied.jpg",
        fixture("images/photo-4x3.jpg"),
        &[("resize-source", "original/trips/elsewhere.jpg")],
    );
    world.put_fixture("original/trips/fresh.jpg", "images/photo-4x3.jpg");
    let mut lambda = Lambda::start(&world, &[]);
    let answer = lambda
        .invoke(&s3_event(&[
            ("ObjectCreated:Copy", "original/trips/copied.jpg"),
            ("ObjectCreated:Put", "original/trips/fresh.jpg"),
        ]))
        .response();
    assert_eq!(answer, summary(2, 1, 0, 1, json!([])));
    assert_eq!(
        world.keys("resized/"),
        ["resized/trips/fresh-360.jpg", "resized/trips/fresh-720.jpg"]
    );
    lambda.stdout_with("object is a variant made by resize");
}

/// A failure record (what the on-failure destination, the failure queue,
/// holds once Lambda's retries are spent) runs as its original event, sent
/// directly and inside an SQS message: the failure queue can be replayed.
#[test]
fn failure_records_replay_their_original_event() {
    let world = World::new().expect("an S3 world: moto and a bucket");
    world.put_fixture("original/replayed/r.jpg", "images/photo-4x3.jpg");
    let mut lambda = Lambda::start(&world, &[("SIZES", "360")]);
    let record = event("on-failure");
    assert_eq!(lambda.invoke(&record).response(), summary(1, 1, 0, 0, json!([])));
    let variants = [("resized/replayed/r-360.jpg", 360, 270)];
    check_variants(&world, "original/replayed/r.jpg", "resized/replayed/", &variants);
    // Again through a queue, as an SQS trigger on the failure queue sends it:
    // current by now, and the message succeeds.
    let mut message = event("sqs")["Records"][0].clone();
    message["body"] = json!(record.to_string());
    let answer = lambda.invoke(&json!({ "Records": [message] })).response();
    assert_eq!(answer, json!({ "batchItemFailures": [] }));
    check_variants(&world, "original/replayed/r.jpg", "resized/replayed/", &variants);
    lambda.stdout_with("all variants are up to date");
}

#[test]
fn sqs_batch() {
    let world = World::new().expect("an S3 world: moto and a bucket");
    world.put_fixture("original/queue/q1.jpg", "images/photo-16x9.jpg");
    world.put_fixture("original/queue/q2.jpg", "images/photo-4x3.jpg");
    let mut lambda = Lambda::start(&world, &[]);
    let answer = lambda.invoke(&event("sqs")).response();
    assert_eq!(answer, json!({ "batchItemFailures": [] }));
    check_variants(
        &world,
        "original/queue/q1.jpg",
        "resized/queue/q1-",
        &[
            ("resized/queue/q1-360.jpg", 360, 203),
            ("resized/queue/q1-720.jpg", 720, 405),
            ("resized/queue/q1-1200.jpg", 1200, 675),
        ],
    );
    check_variants(
        &world,
        "original/queue/q2.jpg",
        "resized/queue/q2-",
        &[
            ("resized/queue/q2-360.jpg", 360, 270),
            ("resized/queue/q2-720.jpg", 720, 540),
        ],
    );
    assert_eq!(world.keys("resized/").len(), 5);
    lambda.stdout_with("s3:TestEvent");
}

#[test]
fn sns_eventbridge_test_and_unknown_events() {
    let world = World::new().expect("an S3 world: moto and a bucket");
    // SNS carries the S3 notification, key form-encoded (`from+sns`);
    // EventBridge carries the key as it is (`a+b (1)`).
    world.put_fixture("original/sns/from sns.jpg", "images/photo-4x3.jpg");
    world.put_fixture("original/eb/a+b (1).jpg", "images/photo-4x3.jpg");
    let mut lambda = Lambda::start(&world, &[("SIZES", "360")]);
    assert_eq!(
        lambda.invoke(&event("sns")).response(),
        summary(1, 1, 0, 0, json!([]))
    );
    assert_eq!(
        lambda.invoke(&event("eventbridge")).response(),
        summary(1, 1, 0, 0, json!([]))
    );
    check_variants(
        &world,
        "original/sns/from sns.jpg",
        "resized/sns/",
        &[("resized/sns/from sns-360.jpg", 360, 270)],
    );
    check_variants(
        &world,
        "original/eb/a+b (1).jpg",
        "resized/eb/",
        &[("resized/eb/a+b (1)-360.jpg", 360, 270)],
    );

    let before = world.keys("");
    for (name, reason) in [("test-event", "s3:TestEvent"), ("unknown", "unknown event shape")] {
        let answer = lambda.invoke(&event(name));
        assert_eq!(answer, Answer::Response(json!({ "ignored": reason })), "{name}");
    }
    assert_eq!(world.keys(""), before);
}

/// Variants of `original/trips/a.jpg` (800 px: 360 and 720) plus two
/// objects with output names that are not its variants.
fn removal_setup(world: &World, lambda: &mut Lambda) {
    world.put_fixture("original/trips/a.jpg", "images/photo-4x3.jpg");
    assert_eq!(
        lambda.invoke(&event("s3-put")).response(),
        summary(1, 1, 0, 0, json!([]))
    );
    world.put(
        "resized/trips/a-1200.jpg",
        fixture("images/photo-4x3.jpg"),
        &[("resize-source", "original/trips/a.png")],
    );
    world.put("resized/trips/a-2200.jpg", fixture("images/photo-4x3.jpg"), &[]);
    world.put_fixture("resized/trips/a-b-360.jpg", "images/photo-4x3.jpg");
}

const ALL: [&str; 5] = [
    "resized/trips/a-1200.jpg",
    "resized/trips/a-2200.jpg",
    "resized/trips/a-360.jpg",
    "resized/trips/a-720.jpg",
    "resized/trips/a-b-360.jpg",
];

#[test]
fn removal_deletes_only_the_sources_variants_when_enabled() {
    let world = World::new().expect("an S3 world: moto and a bucket");
    let mut off = Lambda::start(&world, &[]);
    removal_setup(&world, &mut off);
    assert_eq!(world.keys("resized/"), ALL);
    world.delete("original/trips/a.jpg");

    // DELETE_VARIANTS unset: nothing is deleted.
    assert_eq!(
        off.invoke(&event("removal")).response(),
        summary(1, 0, 0, 1, json!([]))
    );
    assert_eq!(world.keys("resized/"), ALL);
    drop(off);

    let mut on = Lambda::start(&world, &[("DELETE_VARIANTS", "true")]);
    assert_eq!(
        on.invoke(&event("removal")).response(),
        // `deleted` counts variants: a-360.jpg and a-720.jpg.
        summary(1, 0, 2, 0, json!([]))
    );
    assert_eq!(
        world.keys("resized/"),
        [
            "resized/trips/a-1200.jpg",
            "resized/trips/a-2200.jpg",
            "resized/trips/a-b-360.jpg"
        ]
    );
    on.stdout_with("\"deleted\":2");
}

/// Regression: crates/resize-lambda/src/handler.rs, `removed` (lines ~286-313) deletes
/// the variants without checking that the source is really gone. S3 delivers
/// notifications at least once and unordered, so a late or redelivered
/// ObjectRemoved event for a key that has since been uploaded again deletes
/// the variants of a live source (and nothing re-creates them). `removed`
/// should HEAD the source first and skip when it exists (or compare the
/// event's `sequencer`).
#[test]
fn removal_of_a_source_that_exists_again_keeps_its_variants() {
    let world = World::new().expect("an S3 world: moto and a bucket");
    let mut lambda = Lambda::start(&world, &[("DELETE_VARIANTS", "true")]);
    removal_setup(&world, &mut lambda);
    // Deleted, then uploaded again before the removal event arrives:
    // original/trips/a.jpg exists, its variants must stay.
    let answer = lambda.invoke(&event("removal")).response();
    assert_eq!(world.keys("resized/"), ALL, "{answer}");
}

#[test]
fn s3_outage_fails_the_invocation_and_redelivery_recovers() {
    let mut world = World::new().expect("an S3 world: moto and a bucket");
    world.put_fixture("original/trips/a.jpg", "images/photo-16x9.jpg");
    let mut lambda = Lambda::start(&world, &[]);
    assert!(lambda.cold_start().is_some(), "bootstrap never polled");
    world.kill_moto();

    let error = lambda.invoke(&event("s3-put")).error();
    let message = error["errorMessage"].as_str().unwrap_or_default();
    assert!(
        message.contains("original/trips/a.jpg") && message.contains("failed transiently"),
        "{error}"
    );
    let answer = lambda.invoke(&event("sqs")).response();
    assert_eq!(
        answer,
        json!({ "batchItemFailures": [
            { "itemIdentifier": "059f36b4-87a3-44ab-83d2-661975830a7d" },
            { "itemIdentifier": "2e1424d4-f796-459a-8184-9c92662be6da" },
        ] })
    );

    // S3 is back (empty): recreate the source and redeliver.
    world.restart_moto().expect("moto restarts");
    world.put_fixture("original/trips/a.jpg", "images/photo-16x9.jpg");
    assert_eq!(
        lambda.invoke(&event("s3-put")).response(),
        summary(1, 1, 0, 0, json!([]))
    );
    check_variants(
        &world,
        "original/trips/a.jpg",
        "resized/",
        &[
            ("resized/trips/a-360.jpg", 360, 203),
            ("resized/trips/a-720.jpg", 720, 405),
            ("resized/trips/a-1200.jpg", 1200, 675),
        ],
    );
}

#[test]
fn invalid_recipe_is_an_init_error() {
    // Nothing listens on port 9: init must fail before touching S3.
    let mut lambda = Lambda::start_with_s3_port(9, &[("SIZES", "abc")]);
    let (kind, body) = lambda.init_error();
    assert_eq!(kind.as_deref(), Some("Runtime.InvalidConfiguration"));
    let body: Value = serde_json::from_str(&body).expect("init error body is JSON");
    assert_eq!(
        body,
        json!({
            "errorType": "Runtime.InvalidConfiguration",
            "errorMessage": "invalid SIZES value `abc`: expected widths from 1 to 16384",
        })
    );
    let status = lambda.exit_status();
    assert!(!status.success(), "{status}");
    assert!(!lambda.polled(), "it asked for an invocation after a failed init");
}

/// The captured stdout as JSON documents; every line must be one.
#[track_caller]
fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

/// The log line with this message (and key, if given).
fn log_line<'a>(lines: &'a [Value], message: &str, key: Option<&str>) -> Option<&'a Value> {
    lines
        .iter()
        .find(|l| l["fields"]["message"] == message && key.is_none_or(|k| l["fields"]["key"] == k))
}

#[test]
fn logs_metrics_and_cold_start() {
    let world = World::new().expect("an S3 world: moto and a bucket");
    world.put_fixture("original/trips/a.jpg", "images/photo-16x9.jpg");
    let mut lambda = Lambda::start(&world, &[]);
    let cold = lambda.cold_start().expect("bootstrap polled for an invocation");
    eprintln!(
        "cold start: {:.1} ms (spawn to first GET /next)",
        cold.as_secs_f64() * 1000.0
    );

    let (_, answer) = lambda.invoke_with_id(&event("s3-put"));
    assert_eq!(answer.response(), summary(1, 1, 0, 0, json!([])));
    let (ignored_id, answer) = lambda.invoke_with_id(&event("test-event"));
    assert_eq!(answer.response(), json!({ "ignored": "s3:TestEvent" }));
    // The second EMF line (sorted keys) ends the output.
    let stdout = lambda.stdout_with("\"Images\":0,\"Skipped\":0");
    let lines = json_lines(&stdout);

    let written = log_line(&lines, "variants written", Some("original/trips/a.jpg"))
        .unwrap_or_else(|| panic!("no log line for the key:\n{stdout}"));
    assert_eq!(written["level"], "INFO");
    assert_eq!(written["fields"]["variants"], 3);
    // Lines logged by the handler itself name the invocation.
    let ignored = log_line(&lines, "event ignored", None).unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(ignored["span"]["request_id"], ignored_id.as_str(), "{ignored}");

    let emf: Vec<&Value> = lines.iter().filter(|l| l.get("_aws").is_some()).collect();
    assert_eq!(emf.len(), 2, "one EMF line per invocation:\n{stdout}");
    let metrics = emf[0]["_aws"]["CloudWatchMetrics"][0].clone();
    assert_eq!(metrics["Namespace"], "resize");
    for m in metrics["Metrics"].as_array().expect("metric list") {
        let name = m["Name"].as_str().expect("metric name");
        assert!(emf[0][name].is_number(), "metric {name} has no value: {}", emf[0]);
    }
    assert_eq!(
        [
            &emf[0]["Images"],
            &emf[0]["Variants"],
            &emf[0]["Failures"],
            &emf[1]["Images"]
        ],
        [&json!(1), &json!(3), &json!(0), &json!(0)]
    );
    assert!(emf[0]["BytesIn"].as_u64() == Some(fixture("images/photo-16x9.jpg").len() as u64));
    assert!(emf[0]["BytesOut"].as_u64().is_some_and(|n| n > 0));

    let all = format!("{stdout}{}", lambda.stderr());
    assert!(!all.contains(SECRET), "the secret access key was logged");
    // No request signatures or pre-signed URLs, and no object bytes (every
    // fixture JPEG carries the text `JFIF` in its header).
    for needle in [
        "X-Amz-Signature",
        "AWS4-HMAC-SHA256",
        "Signature=",
        "Authorization",
        "JFIF",
    ] {
        assert!(!all.contains(needle), "`{needle}` was logged:\n{all}");
    }
}

/// Regression: crates/resize-lambda/src/handler.rs:157 (`run_all`) spawns each task
/// with `set.spawn(async move { .. })` without `.in_current_span()`, and
/// handler.rs:249 `spawn_blocking` likewise, so the per-image lines logged in
/// `run_task` (handler.rs:199-219: "variants written", "skipped", "failed …")
/// lose the `invocation{request_id}` span that main.rs:91 opens (and the
/// runtime's `Lambda runtime invoke{requestId}` span). For an ordinary upload
/// no log line names the request id at all, so CloudWatch lines cannot be tied
/// to an invocation. (Also main.rs:92 holds `span.enter()` across `.await`;
/// it should be `.instrument(span)`.)
#[test]
fn per_image_log_lines_name_the_request() {
    let world = World::new().expect("an S3 world: moto and a bucket");
    world.put_fixture("original/trips/a.jpg", "images/photo-16x9.jpg");
    let mut lambda = Lambda::start(&world, &[]);
    let (id, answer) = lambda.invoke_with_id(&event("s3-put"));
    assert_eq!(answer.response(), summary(1, 1, 0, 0, json!([])));
    let stdout = lambda.stdout_with("\"_aws\"");
    let lines = json_lines(&stdout);
    let written = log_line(&lines, "variants written", Some("original/trips/a.jpg"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(written["span"]["request_id"], id.as_str(), "{written}");
}
