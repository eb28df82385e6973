//! S3 faults between the real `bootstrap` and the real S3 server: the
//! testkit's proxy on loopback answers 500 InternalError, 503 SlowDown,
//! resets connections or stalls past the attempt timeout, on GET, HEAD and
//! PUT, and counts every request.

use resize_core::Recipe;
use resize_testkit::proxy::{Fault, Mode, S3Proxy, ALL_FAULTS};
use serde_json::{json, Value};

use crate::harness::{fixture, s3_event, Lambda, World};

const SETTINGS: &[(&str, &str)] = &[
    // Small widths: every source below makes some, and debug builds stay quick.
    ("SIZES", "120,180,360,720"),
    ("REPLACEMENTS", "original:resized"),
    ("FORMATS", "jpeg,webp"),
    // Short, so a stalled attempt is given up on (and retried) quickly.
    ("S3_ATTEMPT_TIMEOUT_MS", "1500"),
    ("S3_TIMEOUT_MS", "30000"),
];

const SOURCES: &[(&str, &str)] = &[
    ("original/a/four-three.jpg", "images/photo-4x3.jpg"),
    ("original/a/sixteen-nine.jpg", "images/photo-16x9.jpg"),
    ("original/b/alpha.png", "images/alpha.png"),
    ("original/b/p3.jpg", "images/display-p3.jpg"),
    ("original/c/still.webp", "images/still.webp"),
];

/// Every variant under `resized/` is byte for byte what the core makes of
/// its own source (so none is truncated or holds another image), exactly
/// the expected set exists, and the sources are untouched.
#[track_caller]
fn check_outputs(world: &World) {
    let recipe = Recipe::from_lookup(|n| {
        SETTINGS
            .iter()
            .find(|(k, _)| *k == n)
            .map(|(_, v)| (*v).to_owned())
    })
    .expect("recipe");
    let mut expected = Vec::new();
    for (key, path) in SOURCES {
        let bytes = fixture(path);
        assert_eq!(world.get(key), bytes, "source {key} changed");
        let source = recipe.source_key(key).expect("a source");
        for r in resize_core::render(&bytes, &recipe).expect("renders") {
            let out = source
                .output_key(r.width, r.height, r.format)
                .expect("a short key");
            assert!(
                world.get(&out) == r.bytes,
                "{out} differs from a local render of {key}"
            );
            expected.push(out);
        }
    }
    expected.sort();
    assert_eq!(world.keys("resized/"), expected);
}

fn put_sources(world: &World) -> Value {
    for (key, path) in SOURCES {
        world.put_fixture(key, path);
    }
    let records: Vec<(&str, &str)> = SOURCES.iter().map(|(k, _)| ("ObjectCreated:Put", *k)).collect();
    s3_event(&records)
}

#[test]
fn faults_within_the_retry_budget_are_absorbed() {
    let world = World::new().expect("an S3 world: moto and a bucket");
    let event = put_sources(&world);
    let proxy = S3Proxy::start(world.port, Mode::FirstAttemptOfEvery(2)).expect("start the S3 proxy");
    let mut lambda = Lambda::start_with_s3_port(proxy.port, SETTINGS);
    let answer = lambda.invoke(&event).response();
    assert_eq!(
        answer["written"],
        json!(SOURCES.len()),
        "{answer}\n{}",
        lambda.stderr()
    );
    assert_eq!(answer["failed"], json!([]));
    check_outputs(&world);
    // Every kind of fault hit reads and writes alike.
    let injected = proxy.injected();
    for method in ["GET", "HEAD", "PUT"] {
        let n: usize = injected
            .iter()
            .filter(|((m, _), _)| m == method)
            .map(|(_, n)| n)
            .sum();
        assert!(n > 0, "no fault on {method}: {injected:?}");
    }
    for kind in ALL_FAULTS {
        assert!(
            injected.iter().any(|((_, f), _)| *f == kind),
            "{kind:?} never injected: {injected:?}"
        );
    }
    // The proxy saw every request: each variant was stored by a PUT that
    // S3 accepted, and each successful GET of a source returned all of it.
    let log = proxy.log();
    for key in world.keys("resized/") {
        assert!(
            log.iter()
                .any(|l| l.method == "PUT" && l.key == key && l.status == Some(200)),
            "no accepted PUT of {key}"
        );
    }
    // A plan reads a source's first 64 KiB (206, ranged), the render the
    // whole (200), unless the first read held all of it.
    for (key, path) in SOURCES {
        let size = fixture(path).len() as u64;
        let reads: Vec<(Option<u16>, u64)> = log
            .iter()
            .filter(|l| l.method == "GET" && l.key == *key && matches!(l.status, Some(200 | 206)))
            .map(|l| (l.status, l.bytes))
            .collect();
        assert!(
            reads.iter().any(|&(_, n)| n == size),
            "{key} never read whole: {reads:?}"
        );
        assert!(
            reads
                .iter()
                .all(|&(status, n)| n == size || (status == Some(206) && n == 64 * 1024)),
            "{key} read in part: {reads:?}"
        );
    }
    eprintln!("injected and survived: {injected:?}");
}

#[test]
fn puts_failing_for_good_fail_the_record_and_redelivery_finishes() {
    let world = World::new().expect("an S3 world: moto and a bucket");
    let event = put_sources(&world);
    // 500s, not SlowDown: throttling is waited out for as long as an S3
    // call may take (`S3_TIMEOUT_MS`), other errors get three attempts.
    let proxy =
        S3Proxy::start(world.port, Mode::Always("PUT", Fault::InternalError)).expect("start the S3 proxy");
    let mut lambda = Lambda::start_with_s3_port(proxy.port, SETTINGS);
    // Transient: the invocation fails so Lambda retries it.
    let error = lambda.invoke(&event).error();
    let message = error["errorMessage"].as_str().unwrap_or_default();
    assert!(
        message.contains("original/a/four-three.jpg") && message.contains("failed transiently"),
        "{error}"
    );
    assert_eq!(
        world.keys("resized/"),
        Vec::<String>::new(),
        "a refused PUT left an object"
    );
    // S3 recovers; the same event delivered again finishes the job.
    proxy.set_mode(Mode::Pass);
    let answer = lambda.invoke(&event).response();
    assert_eq!(answer["written"], json!(SOURCES.len()), "{answer}");
    check_outputs(&world);
}

/// Every third S3 request answered 503 SlowDown, retries included: six
/// records in one invocation. With three attempts per request this failed
/// every time (a request's retries land on throttled slots while the other
/// records' requests take the free ones); throttling is now waited out.
#[test]
fn every_third_request_throttled_still_finishes() {
    let world = World::new().expect("an S3 world: moto and a bucket");
    put_sources(&world);
    world.put_fixture("original/c/gray.jpg", "images/gray.jpg");
    let mut records: Vec<(&str, &str)> = SOURCES.iter().map(|(k, _)| ("ObjectCreated:Put", *k)).collect();
    records.push(("ObjectCreated:Put", "original/c/gray.jpg"));
    let event = s3_event(&records);
    let proxy = S3Proxy::start(world.port, Mode::EveryNth(3, Fault::SlowDown)).expect("start the S3 proxy");
    let mut lambda = Lambda::start_with_s3_port(proxy.port, SETTINGS);
    let started = std::time::Instant::now();
    let answer = lambda.invoke(&event).response();
    let throttled = started.elapsed();
    assert_eq!(answer["written"], json!(6), "{answer}\n{}", lambda.stderr());
    let injected: usize = proxy.injected().values().sum();
    assert!(injected >= 10, "{injected} throttled");
    // The same work unthrottled, for comparison.
    proxy.set_mode(Mode::Pass);
    for key in world.keys("resized/") {
        world.delete(&key);
    }
    let started = std::time::Instant::now();
    let calm = lambda.invoke(&event).response();
    assert_eq!(calm["written"], json!(6), "{calm}");
    eprintln!(
        "six records, every third request throttled ({injected} SlowDowns): {:.2} s; unthrottled: {:.2} s",
        throttled.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
