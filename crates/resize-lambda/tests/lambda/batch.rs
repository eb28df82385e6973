//! S3 Batch Operations through the real `bootstrap`: `LambdaInvoke` events
//! of both invocation schemas, one result per task, against moto (and,
//! for faults, the testkit's proxy in between).

use std::collections::BTreeMap;
use std::time::Duration;

use resize_core::Recipe;
use resize_testkit::proxy::{Fault, Mode, S3Proxy};
use serde_json::{json, Value};

use crate::harness::{event, fixture, Lambda, World};
use crate::invocations::check_variants;

const SETTINGS: &[(&str, &str)] = &[
    ("SIZES", "120,360"),
    ("FORMATS", "jpeg,webp"),
    ("REPLACEMENTS", "original:resized"),
    ("S3_ATTEMPT_TIMEOUT_MS", "1500"),
    ("S3_TIMEOUT_MS", "5000"),
];

/// `(decoded key, encoded as in a manifest)`: a space and a `+`.
const GOOD: (&str, &str) = (
    "original/trips/summer 2024/a+b.jpg",
    "original/trips/summer+2024/a%2Bb.jpg",
);

/// The event fixture `name` with one task per `(task id, encoded key)`.
fn with_tasks(name: &str, tasks: &[(&str, &str)]) -> Value {
    let mut e = event(name);
    let template = e["tasks"][0].clone();
    e["tasks"] = tasks
        .iter()
        .map(|(id, key)| {
            let mut t = template.clone();
            t["taskId"] = json!(id);
            t["s3Key"] = json!(key);
            t
        })
        .collect();
    e
}

/// A schema 1.0 invocation (the bucket by ARN).
fn v1(tasks: &[(&str, &str)]) -> Value {
    with_tasks("batch-v1", tasks)
}

/// A schema 2.0 invocation with `arguments` as the job's userArguments.
fn v2(arguments: Value, tasks: &[(&str, &str)]) -> Value {
    let mut e = with_tasks("batch-v2", tasks);
    e["job"]["userArguments"] = arguments;
    e
}

/// The results of an answer by task id: `(resultCode, resultString)`,
/// after checking that the invocation is echoed.
#[track_caller]
fn results(sent: &Value, answer: &Value) -> BTreeMap<String, (String, String)> {
    assert_eq!(
        answer["invocationSchemaVersion"], sent["invocationSchemaVersion"],
        "{answer}"
    );
    assert_eq!(answer["invocationId"], sent["invocationId"], "{answer}");
    assert_eq!(answer["treatMissingKeysAs"], "PermanentFailure", "{answer}");
    answer["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results: {answer}"))
        .iter()
        .map(|r| {
            let text = |f: &str| r[f].as_str().unwrap_or_else(|| panic!("{f} in {r}")).to_owned();
            (text("taskId"), (text("resultCode"), text("resultString")))
        })
        .collect()
}

/// Invokes `sent` and checks each `(task id, code, text it contains)`,
/// and that no other task was answered.
#[track_caller]
fn check(lambda: &mut Lambda, sent: &Value, expect: &[(&str, &str, &str)]) {
    let answer = lambda.invoke(sent).response();
    let got = results(sent, &answer);
    for (id, code, says) in expect {
        let (got_code, text) = got
            .get(*id)
            .unwrap_or_else(|| panic!("no result for task {id}: {answer}\n{}", lambda.stderr()));
        assert_eq!(got_code, code, "task {id}: {text}");
        assert!(text.contains(says), "task {id}: {text:?} does not say {says:?}");
    }
    assert_eq!(got.len(), expect.len(), "{answer}");
}

fn recipe() -> Recipe {
    Recipe::from_lookup(|n| {
        SETTINGS
            .iter()
            .find(|(k, _)| *k == n)
            .map(|(_, v)| (*v).to_owned())
    })
    .expect("recipe")
}

/// Each variant of `source` (a fixture stored at `key`) is byte for byte
/// the core's own render of it.
#[track_caller]
fn check_renders(world: &World, key: &str, fixture_path: &str) {
    let recipe = recipe();
    let source = recipe.source_key(key).expect("a source");
    for r in resize_core::render(&fixture(fixture_path), &recipe).expect("renders") {
        let out = source
            .output_key(r.width, r.height, r.format)
            .expect("a short key");
        assert!(world.get(&out) == r.bytes, "{out} is not the render of {key}");
    }
}

const GOOD_VARIANTS: [(&str, u32, u32); 4] = [
    ("resized/trips/summer 2024/a+b-120.jpg", 120, 90),
    ("resized/trips/summer 2024/a+b-120.webp", 120, 90),
    ("resized/trips/summer 2024/a+b-360.jpg", 360, 270),
    ("resized/trips/summer 2024/a+b-360.webp", 360, 270),
];

#[test]
fn both_schemas_answer_every_task_with_its_code() {
    let world = World::new().expect("an S3 world: moto and a bucket");
    world.put_fixture(GOOD.0, "images/photo-4x3.jpg");
    world.put_fixture("original/trips/broken.jpg", "bad/truncated-jpg.jpg");
    world.put("original/trips/notes.txt", b"packing list".to_vec(), &[]);
    let mut lambda = Lambda::start(&world, SETTINGS);

    // Schema 1.0, one task per invocation, as S3 sends them.
    check(
        &mut lambda,
        &v1(&[("t-good", GOOD.1)]),
        &[("t-good", "Succeeded", "wrote 4 variant(s)")],
    );
    check_variants(&world, GOOD.0, "resized/", &GOOD_VARIANTS);
    check_renders(&world, GOOD.0, "images/photo-4x3.jpg");
    let others = [
        (
            "t-broken",
            "original/trips/broken.jpg",
            "PermanentFailure",
            "cannot render `original/trips/broken.jpg`",
        ),
        ("t-text", "original/trips/notes.txt", "Succeeded", "skipped:"),
        (
            "t-gone",
            "original/trips/vanished.jpg",
            "Succeeded",
            "skipped: source no longer exists",
        ),
        (
            "t-variant",
            "resized/trips/summer+2024/a%2Bb-120.jpg",
            "Succeeded",
            "skipped:",
        ),
        ("t-outside", "elsewhere/a.jpg", "Succeeded", "skipped:"),
    ];
    for (id, key, code, says) in others {
        check(&mut lambda, &v1(&[(id, key)]), &[(id, code, says)]);
    }

    // Schema 2.0, every task in one invocation: the good photo is current.
    let mut tasks = vec![("t-good", GOOD.1)];
    tasks.extend(others.iter().map(|(id, key, _, _)| (*id, *key)));
    let mut expect = vec![("t-good", "Succeeded", "skipped: all variants are up to date")];
    expect.extend(others.iter().map(|(id, _, code, says)| (*id, *code, *says)));
    check(&mut lambda, &v2(json!({}), &tasks), &expect);

    // A variant spoiled behind the function's back but still marked
    // current: only `force` rebuilds it.
    let spoiled = GOOD_VARIANTS[0].0;
    let marks: Vec<(String, String)> = world
        .head(spoiled)
        .expect("variant")
        .metadata()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let marks: Vec<(&str, &str)> = marks.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    world.put(spoiled, fixture("images/gray.jpg"), &marks);
    let keep = v2(json!({"force": "false"}), &[("t-good", GOOD.1)]);
    check(&mut lambda, &keep, &[("t-good", "Succeeded", "up to date")]);
    assert_eq!(world.dimensions(spoiled), (160, 120), "rebuilt without force");
    let force = v2(json!({"force": "true"}), &[("t-good", GOOD.1)]);
    check(
        &mut lambda,
        &force,
        &[("t-good", "Succeeded", "wrote 4 variant(s)")],
    );
    check_variants(&world, GOOD.0, "resized/", &GOOD_VARIANTS);
    check_renders(&world, GOOD.0, "images/photo-4x3.jpg");

    // Nothing else was written; the sources are as they were.
    assert_eq!(world.keys("resized/").len(), GOOD_VARIANTS.len());
    assert_eq!(world.get(GOOD.0), fixture("images/photo-4x3.jpg"));
    assert_eq!(
        world.get("original/trips/broken.jpg"),
        fixture("bad/truncated-jpg.jpg")
    );
}

#[test]
fn a_named_version_is_rendered_only_while_it_is_current() {
    let world = World::new().expect("an S3 world: moto and a bucket");
    world.enable_versioning();
    let key = "original/v.jpg";
    let version = |world: &World| {
        world
            .head(key)
            .and_then(|h| h.version_id().map(str::to_owned))
            .expect("a version id")
    };
    world.put_fixture(key, "images/photo-4x3.jpg");
    let first = version(&world);
    world.put_fixture(key, "images/photo-16x9.jpg");
    let second = version(&world);
    assert_ne!(first, second);
    let mut lambda = Lambda::start(&world, SETTINGS);
    let task = |id: &str, version: &str| {
        let mut e = v2(Value::Null, &[(id, key)]);
        e["tasks"][0]["s3VersionId"] = json!(version);
        e
    };
    // The older version would overwrite the newer photo's variants.
    check(
        &mut lambda,
        &task("t-old", &first),
        &[("t-old", "Succeeded", "is no longer current")],
    );
    assert_eq!(world.keys("resized/"), Vec::<String>::new());
    check(
        &mut lambda,
        &task("t-new", &second),
        &[("t-new", "Succeeded", "wrote 4 variant(s)")],
    );
    check_variants(
        &world,
        key,
        "resized/",
        &[
            ("resized/v-120.jpg", 120, 68),
            ("resized/v-120.webp", 120, 68),
            ("resized/v-360.jpg", 360, 203),
            ("resized/v-360.webp", 360, 203),
        ],
    );
    // A version that never existed reads as missing, not as an error.
    check(
        &mut lambda,
        &task("t-none", "nonexistent-version"),
        &[("t-none", "Succeeded", "no longer current")],
    );
}

#[test]
fn bad_jobs_fail_their_tasks_with_the_reason_and_the_invocation_succeeds() {
    let world = World::new().expect("an S3 world: moto and a bucket");
    world.put_fixture(GOOD.0, "images/photo-4x3.jpg");
    let mut lambda = Lambda::start(&world, SETTINGS);
    let tasks = [("t1", GOOD.1), ("t2", GOOD.1)];
    let typo = v2(json!({"forse": "true"}), &tasks);
    let says = "unknown argument `forse` (this function takes: force)";
    check(
        &mut lambda,
        &typo,
        &[("t1", "PermanentFailure", says), ("t2", "PermanentFailure", says)],
    );
    // `yes` is a boolean like everywhere else (resize_core::adapter::parse_bool).
    let bad_value = v2(json!({"force": "maybe"}), &tasks[..1]);
    check(
        &mut lambda,
        &bad_value,
        &[("t1", "PermanentFailure", "`force` must be \"true\" or \"false\"")],
    );
    let mut future = v1(&tasks[..1]);
    future["invocationSchemaVersion"] = json!("3.0");
    check(
        &mut lambda,
        &future,
        &[("t1", "PermanentFailure", "`3.0` is not supported")],
    );
    // A key that is not URL-encoded UTF-8, a bucket ARN that is not one,
    // and a task without an id (left out: treatMissingKeysAs).
    let mut odd = v1(&[
        ("t-bad-key", "original/%FF.jpg"),
        ("t-bad-arn", GOOD.1),
        ("no-id", GOOD.1),
    ]);
    odd["tasks"][1]["s3BucketArn"] = json!("arn:aws:sqs:us-east-1:123456789012:queue");
    odd["tasks"][2].as_object_mut().expect("a task").remove("taskId");
    check(
        &mut lambda,
        &odd,
        &[
            ("t-bad-key", "PermanentFailure", "not valid URL-encoded UTF-8"),
            ("t-bad-arn", "PermanentFailure", "is not the ARN of a bucket"),
        ],
    );
    assert_eq!(
        world.keys("resized/"),
        Vec::<String>::new(),
        "a refused job wrote variants"
    );
}

#[test]
fn an_s3_outage_is_a_temporary_failure_and_the_redrive_succeeds() {
    let mut world = World::new().expect("an S3 world: moto and a bucket");
    world.put_fixture(GOOD.0, "images/photo-4x3.jpg");
    let mut lambda = Lambda::start(&world, SETTINGS);
    world.kill_moto();
    let sent = v1(&[("t-good", GOOD.1)]);
    check(&mut lambda, &sent, &[("t-good", "TemporaryFailure", "s3 get")]);
    // S3 is back (moto restarts empty): S3 redrives the task.
    world.restart_moto().expect("moto restarts");
    world.put_fixture(GOOD.0, "images/photo-4x3.jpg");
    check(
        &mut lambda,
        &sent,
        &[("t-good", "Succeeded", "wrote 4 variant(s)")],
    );
    check_variants(&world, GOOD.0, "resized/", &GOOD_VARIANTS);
}

#[test]
fn every_third_request_throttled_still_succeeds() {
    let world = World::new().expect("an S3 world: moto and a bucket");
    let sources = [
        ("original/a/four-three.jpg", "images/photo-4x3.jpg"),
        ("original/a/sixteen-nine.jpg", "images/photo-16x9.jpg"),
        ("original/b/alpha.png", "images/alpha.png"),
        ("original/b/p3.jpg", "images/display-p3.jpg"),
        ("original/c/still.webp", "images/still.webp"),
    ];
    for (key, path) in sources {
        world.put_fixture(key, path);
    }
    let proxy = S3Proxy::start(world.port, Mode::EveryNth(3, Fault::SlowDown)).expect("start the S3 proxy");
    // Throttling is waited out for as long as one S3 call may take (a
    // later setting replaces an earlier one).
    let settings = [SETTINGS, &[("S3_TIMEOUT_MS", "30000")]].concat();
    let mut lambda = Lambda::start_with_s3_port(proxy.port, &settings);
    let ids: Vec<String> = (0..sources.len()).map(|i| format!("t{i}")).collect();
    let tasks: Vec<(&str, &str)> = ids
        .iter()
        .zip(sources)
        .map(|(id, (key, _))| (id.as_str(), key))
        .collect();
    let expect: Vec<(&str, &str, &str)> = ids.iter().map(|id| (id.as_str(), "Succeeded", "wrote")).collect();
    check(&mut lambda, &v2(json!({}), &tasks), &expect);
    for (key, path) in sources {
        check_renders(&world, key, path);
    }
    let throttled: usize = proxy.injected().values().sum();
    assert!(throttled >= 5, "{throttled} throttled");
}

#[test]
fn work_unfinished_near_the_deadline_is_a_temporary_failure() {
    let world = World::new().expect("an S3 world: moto and a bucket");
    world.put_fixture(GOOD.0, "images/photo-4x3.jpg");
    // Every read hangs; the SDK would wait far longer than the function may.
    let proxy = S3Proxy::start(world.port, Mode::Always("GET", Fault::Stall)).expect("start the S3 proxy");
    let settings = [
        SETTINGS,
        &[("S3_ATTEMPT_TIMEOUT_MS", "20000"), ("S3_TIMEOUT_MS", "60000")],
    ]
    .concat();
    let mut lambda = Lambda::start_with_s3_port(proxy.port, &settings);
    lambda.api.set_timeout(Duration::from_secs(2));
    let sent = v1(&[("t-good", GOOD.1)]);
    check(
        &mut lambda,
        &sent,
        &[("t-good", "TemporaryFailure", "the function's time ran out")],
    );
}

/// Without `s3:ListBucket` S3 answers a read of a missing key with 403.
/// The function lists the key to tell the two apart (the template grants
/// a listing of the source prefix), so a source deleted since the
/// manifest was made is done, not failed; without the listing right the
/// task fails with S3's word for it.
#[test]
fn a_vanished_source_reads_as_missing_where_the_prefix_may_be_listed() {
    let world = World::new().expect("an S3 world: moto and a bucket");
    world.put_fixture(GOOD.0, "images/photo-4x3.jpg");
    let proxy = S3Proxy::start(world.port, Mode::MissingAsDenied { list: true }).expect("start the S3 proxy");
    let mut lambda = Lambda::start_with_s3_port(proxy.port, SETTINGS);
    let sent = v2(
        json!({}),
        &[("t-gone", "original/trips/vanished.jpg"), ("t-good", GOOD.1)],
    );
    check(
        &mut lambda,
        &sent,
        &[
            ("t-gone", "Succeeded", "skipped: source no longer exists"),
            ("t-good", "Succeeded", "wrote 4 variant(s)"),
        ],
    );
    assert!(
        proxy.log().iter().any(|l| l.status == Some(403)),
        "the proxy never hid a missing key"
    );
    proxy.set_mode(Mode::MissingAsDenied { list: false });
    let sent = v1(&[("t-gone", "original/trips/vanished.jpg")]);
    check(
        &mut lambda,
        &sent,
        &[("t-gone", "PermanentFailure", "AccessDenied")],
    );
}

/// Throttling that outlasts the function's patience (`S3_TIMEOUT_MS`) is
/// for S3 to retry later, not a failure of the photo.
#[test]
fn throttling_beyond_the_patience_is_a_temporary_failure() {
    let world = World::new().expect("an S3 world: moto and a bucket");
    world.put_fixture(GOOD.0, "images/photo-4x3.jpg");
    let proxy = S3Proxy::start(world.port, Mode::Always("GET", Fault::SlowDown)).expect("start the S3 proxy");
    let settings = [SETTINGS, &[("S3_TIMEOUT_MS", "1500")]].concat();
    let mut lambda = Lambda::start_with_s3_port(proxy.port, &settings);
    let sent = v2(json!({}), &[("t-good", GOOD.1)]);
    check(&mut lambda, &sent, &[("t-good", "TemporaryFailure", "SlowDown")]);
    let throttled = proxy.count("GET", "original/");
    assert!(throttled > 3, "given up after {throttled} GETs: no patience");
    assert_eq!(world.keys("resized/"), Vec::<String>::new());
}
