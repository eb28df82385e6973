//! `S3Store` against a real S3-compatible server: moto's, a child process
//! per test (found at `$MOTO_SERVER`, else `<workspace>/.venv/bin/moto_server`;
//! `.ci/run` and `cargo xtask ci` install it; the tests fail, never skip,
//! without it). The store's calls block, so they run on the test thread
//! while the world's runtime drives them.

use std::ops::ControlFlow;

use resize_core::adapter::{META_SOURCE, META_SOURCE_VERSION};
use resize_core::{Object, Storage, StorageError};
use resize_s3::{decode_meta, encode_meta, S3Store};
use resize_testkit::{World, BUCKET};

const CACHE: &str = "public, max-age=31536000, immutable";

fn store(world: &World) -> S3Store {
    S3Store::new(world.client.clone(), BUCKET, world.rt.handle().clone()).with_cache_control(CACHE)
}

fn put(s3: &S3Store, key: &str, bytes: &[u8], metadata: &[(&str, &str)]) {
    let object = Object {
        bytes,
        content_type: "image/jpeg",
        metadata,
    };
    s3.put(key, object).unwrap_or_else(|e| panic!("put {key}: {e}"));
}

fn listed(s3: &S3Store, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    s3.list(prefix, &mut |k| {
        keys.push(k.to_owned());
        ControlFlow::Continue(())
    })
    .unwrap_or_else(|e| panic!("list {prefix}: {e}"));
    keys
}

#[test]
fn put_head_get_list_delete_round_trip() {
    let world = World::new().expect("an S3 world: moto and a bucket");
    let s3 = store(&world);
    let source = "original/naïve/日本 (1) +100% a.b.jpg";
    let bytes = b"not really a jpeg, but S3 does not care".to_vec();
    put(
        &s3,
        "resized/x-360.jpg",
        &bytes,
        &[
            (META_SOURCE, source),
            (META_SOURCE_VERSION, "9b2cf535f27731c974343645a3985328"),
        ],
    );

    let head = s3.head("resized/x-360.jpg").expect("head").expect("exists");
    let etag = head.version.clone().expect("an etag");
    assert!(!etag.contains('"'), "etag keeps its quotes: {etag}");
    assert_eq!(etag.len(), 32, "single-part etag is an MD5 in hex: {etag}");
    assert_eq!(head.size, Some(bytes.len() as u64));
    assert!(head.modified.is_some());
    assert_eq!(head.get(META_SOURCE), Some(source));
    assert_eq!(
        head.get(META_SOURCE_VERSION),
        Some("9b2cf535f27731c974343645a3985328")
    );
    assert_eq!(head.metadata.as_ref().map(|m| m.len()), Some(2));

    // On the wire: the content type, our Cache-Control, and metadata in
    // encode_meta's ASCII form, which decode_meta undoes.
    let raw = world.head("resized/x-360.jpg").expect("exists");
    assert_eq!(raw.content_type(), Some("image/jpeg"));
    assert_eq!(raw.cache_control(), Some(CACHE));
    let raw_source = raw
        .metadata()
        .and_then(|m| m.get(META_SOURCE))
        .expect("metadata")
        .clone();
    assert!(raw_source.is_ascii(), "{raw_source}");
    assert_eq!(raw_source, encode_meta(source));
    assert_eq!(decode_meta(&raw_source), source);

    let got = s3.get("resized/x-360.jpg", 1 << 20).expect("get");
    assert_eq!(got.bytes, bytes);
    assert_eq!(got.meta, head, "GET and HEAD tell the same");

    world.put("resized/x-720.jpg", b"b".to_vec(), &[]);
    world.put("resized/y-360.jpg", b"c".to_vec(), &[]);
    world.put("resizedother/x-360.jpg", b"d".to_vec(), &[]);
    assert_eq!(
        listed(&s3, "resized/x-"),
        ["resized/x-360.jpg", "resized/x-720.jpg"]
    );
    assert_eq!(listed(&s3, "nothing/"), Vec::<String>::new());

    s3.delete("resized/x-360.jpg").expect("delete");
    assert_eq!(s3.head("resized/x-360.jpg").expect("head"), None);
    assert_eq!(
        world.keys(""),
        ["resized/x-720.jpg", "resized/y-360.jpg", "resizedother/x-360.jpg"]
    );
}

#[test]
fn an_object_over_the_limit_is_refused_unread() {
    let world = World::new().expect("an S3 world: moto and a bucket");
    let s3 = store(&world);
    put(&s3, "original/big.jpg", &[7; 5000], &[]);
    match s3.get("original/big.jpg", 4999) {
        Err(StorageError::TooLarge { key, size, limit }) => {
            assert_eq!((key.as_str(), size, limit), ("original/big.jpg", 5000, 4999));
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_eq!(s3.get("original/big.jpg", 5000).expect("get").bytes.len(), 5000);
}

#[test]
fn metadata_values_survive_real_s3() {
    let world = World::new().expect("an S3 world: moto and a bucket");
    let s3 = store(&world);
    for (i, value) in [
        "plain/key.jpg",
        "a b+c.jpg",
        "100%25 literally.jpg",
        "(copy) [1] {2} #3 &4 =5 ?6 ;7 ,8 '9 \"10\".jpg",
        "naïve/日本/🙂.jpg",
        "trailing space .jpg",
        "tab\tand~tilde_under-dash.jpg",
        "",
    ]
    .into_iter()
    .enumerate()
    {
        let key = format!("meta/{i}.jpg");
        put(&s3, &key, &[1], &[(META_SOURCE, value)]);
        let head = s3.head(&key).expect("head").expect("exists");
        assert_eq!(head.get(META_SOURCE), Some(value), "metadata value {value:?}");
    }
}

#[test]
fn odd_keys_work_as_they_are() {
    let world = World::new().expect("an S3 world: moto and a bucket");
    let s3 = store(&world);
    let keys = [
        "original/trips/summer 2024/beach (copy).jpg",
        "original/trips/a+b.jpg",
        "original/trips/100% sure.jpg",
        "original/trips/100%25.jpg",
        "original/trips/naïve/日本.v2.final.jpg",
        "original/trips/many.dots.in.the.name.jpeg",
        "original/trips/emoji 🙂 & friends?.png",
    ];
    for (i, key) in keys.iter().enumerate() {
        let bytes = format!("object {i}").into_bytes();
        put(&s3, key, &bytes, &[]);
        let head = s3.head(key).expect("head");
        assert_eq!(head.and_then(|h| h.size), Some(bytes.len() as u64), "head {key}");
        assert_eq!(s3.get(key, 1000).expect("get").bytes, bytes, "get {key}");
        assert_eq!(listed(&s3, key), [*key], "list {key}");
    }
    let mut all = keys.map(str::to_owned).to_vec();
    all.sort();
    assert_eq!(world.keys("original/"), all);
    for key in keys {
        s3.delete(key).unwrap_or_else(|e| panic!("delete {key}: {e}"));
        assert_eq!(s3.head(key).expect("head"), None, "{key} deleted");
    }
    assert_eq!(world.keys(""), Vec::<String>::new());
}

#[test]
fn missing_objects_and_buckets() {
    let world = World::new().expect("an S3 world: moto and a bucket");
    let s3 = store(&world);
    match s3.get("original/missing.jpg", 1000) {
        Err(StorageError::NotFound(key)) => assert_eq!(key, "original/missing.jpg"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(s3.head("original/missing.jpg").expect("head"), None);
    // S3 deletes are idempotent.
    s3.delete("original/missing.jpg").expect("delete");
    // A missing bucket is not a missing object, and not worth a retry.
    let other = S3Store::new(
        world.client.clone(),
        "no-such-bucket-here",
        world.rt.handle().clone(),
    );
    match other.list("x/", &mut |_| ControlFlow::Continue(())) {
        Err(e) => assert!(
            !e.is_transient() && !matches!(e, StorageError::NotFound(_)),
            "{e:?}"
        ),
        Ok(()) => panic!("listing a missing bucket succeeded"),
    }
    match other.get("x.jpg", 1000) {
        Err(e) => assert!(
            !e.is_transient() && !matches!(e, StorageError::NotFound(_)),
            "{e:?}"
        ),
        Ok(_) => panic!("reading from a missing bucket succeeded"),
    }
    assert_ne!(BUCKET, "no-such-bucket-here");
}

#[test]
fn list_follows_continuation_tokens_and_stops_when_asked() {
    let world = World::new().expect("an S3 world: moto and a bucket");
    let s3 = store(&world);
    let n = 1003;
    std::thread::scope(|scope| {
        for part in 0..8 {
            let s3 = &s3;
            scope.spawn(move || {
                for i in (part..n).step_by(8) {
                    put(s3, &format!("many/{i:05}.jpg"), &[], &[]);
                }
            });
        }
    });
    world.put("manyother/x.jpg", vec![], &[]);
    let want: Vec<String> = (0..n).map(|i| format!("many/{i:05}.jpg")).collect();
    assert_eq!(listed(&s3, "many/"), want);
    let mut seen = 0;
    s3.list("many/", &mut |_| {
        seen += 1;
        if seen == 2 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .expect("list");
    assert_eq!(seen, 2);
}

#[test]
fn unreachable_store_is_transient() {
    let world = World::new().expect("an S3 world: moto and a bucket");
    let mut world = world;
    let s3 = store(&world);
    world.kill_moto();
    match s3.head("original/a.jpg") {
        Err(e) => assert!(e.is_transient(), "{e:?}"),
        Ok(h) => panic!("a dead server answered {h:?}"),
    }
}

#[test]
fn head_many_answers_each_key_in_order() {
    let world = World::new().expect("an S3 world: moto and a bucket");
    let s3 = store(&world);
    put(&s3, "a.jpg", b"aa", &[]);
    put(&s3, "c.jpg", b"cccc", &[]);
    let sizes: Vec<Option<u64>> = s3
        .head_many(&["c.jpg", "b.jpg", "a.jpg", "c.jpg"])
        .into_iter()
        .map(|r| r.expect("head").and_then(|m| m.size))
        .collect();
    assert_eq!(sizes, [Some(4), None, Some(2), Some(4)]);
    assert!(s3.head_many(&[]).is_empty());
}

#[test]
fn a_ranged_read_gives_the_start_and_the_whole_size() {
    let world = World::new().expect("an S3 world: moto and a bucket");
    let s3 = store(&world);
    let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    world.put("big.jpg", bytes.clone(), &[(META_SOURCE, "x")]);
    world.put("small.jpg", b"tiny".to_vec(), &[]);
    world.put("empty.jpg", Vec::new(), &[]);
    let whole_etag = s3.head("big.jpg").expect("head").expect("exists").version;

    // (key, max, expected bytes, expected size)
    let cases: [(&str, u64, &[u8], u64); 4] = [
        ("big.jpg", 65_536, &bytes[..65_536], 100_000),
        ("big.jpg", 1, &bytes[..1], 100_000),
        ("small.jpg", 65_536, b"tiny", 4),
        ("empty.jpg", 65_536, b"", 0),
    ];
    for (key, max, want, size) in cases {
        let got = s3
            .get_start(key, max, u64::MAX)
            .unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(got.bytes, want, "{key} {max}");
        assert_eq!(got.meta.size, Some(size), "{key} {max}");
    }
    let big = s3.get_start("big.jpg", 10, u64::MAX).expect("ranged get");
    assert_eq!(big.meta.version, whole_etag, "the ETag is the whole object's");
    assert_eq!(big.meta.get(META_SOURCE), Some("x"));
    // The limit is the whole object's, not the part's.
    match s3.get_start("big.jpg", 10, 99_999) {
        Err(StorageError::TooLarge {
            size: 100_000,
            limit: 99_999,
            ..
        }) => {}
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(matches!(
        s3.get_start("nope.jpg", 10, u64::MAX),
        Err(StorageError::NotFound(_))
    ));
}

#[test]
fn a_store_at_a_prefix_reads_writes_and_lists_below_it() {
    let world = World::new().expect("an S3 world: moto and a bucket");
    let site = store(&world).with_prefix("site/");
    put(&site, "trips/a-360.jpg", b"variant", &[]);
    assert_eq!(world.keys(""), ["site/trips/a-360.jpg"]);
    assert_eq!(listed(&site, "trips/"), ["trips/a-360.jpg"]);
    assert!(site.head("trips/a-360.jpg").expect("head").is_some());
    assert!(store(&world).head("trips/a-360.jpg").expect("head").is_none());
}

/// Every third request throttled, retried or not: three attempts lose
/// (one request's retries land on throttled slots while other requests
/// take the free ones); patience wins.
#[test]
fn throttling_gets_patience() {
    use resize_testkit::proxy::{Fault, Mode, S3Proxy};
    let world = World::new().expect("an S3 world: moto and a bucket");
    let proxy = S3Proxy::start(world.port, Mode::EveryNth(3, Fault::SlowDown)).expect("proxy");
    let client = resize_testkit::client(proxy.port);
    let handle = world.rt.handle().clone();
    let patient = S3Store::new(client.clone(), BUCKET, handle.clone());
    for i in 0..30 {
        let key = format!("k/{i}.jpg");
        put(&patient, &key, b"bytes", &[]);
        assert!(patient.head(&key).expect("head").is_some());
        assert_eq!(patient.get(&key, 100).expect("get").bytes, b"bytes");
    }
    assert_eq!(listed(&patient, "k/").len(), 30);
    let throttled: usize = proxy.injected().values().sum();
    assert!(throttled >= 30, "{throttled}");

    // Without patience, a throttled call fails as transient.
    let hasty = S3Store::new(client, BUCKET, handle).with_patience(std::time::Duration::ZERO);
    proxy.set_mode(Mode::Always("HEAD", Fault::SlowDown));
    match hasty.head("k/0.jpg") {
        Err(e) => assert!(e.is_transient(), "{e}"),
        Ok(found) => panic!("a throttled HEAD succeeded: {found:?}"),
    }
}

#[test]
fn buckets_are_checked_before_work() {
    use resize_s3::{check_bucket, BucketError};
    use resize_testkit::proxy::{Fault, Mode, S3Proxy};
    let world = World::new().expect("an S3 world: moto and a bucket");
    let proxy = S3Proxy::start(world.port, Mode::Pass).expect("proxy");
    let client = resize_testkit::client(proxy.port);
    let check = |bucket: &str, list: Option<&str>| world.rt.block_on(check_bucket(&client, bucket, list));
    assert!(check(BUCKET, Some("original/")).is_ok());
    assert!(matches!(check("no-such-bucket", None), Err(BucketError::Missing(b)) if b == "no-such-bucket"));
    proxy.set_mode(Mode::Always("HEAD", Fault::AccessDenied));
    assert!(matches!(
        check(BUCKET, None),
        Err(BucketError::Denied { what: "reach", .. })
    ));
    proxy.set_mode(Mode::Always("GET", Fault::AccessDenied));
    assert!(check(BUCKET, None).is_ok(), "reaching needs no listing");
    assert!(matches!(
        check(BUCKET, Some("")),
        Err(BucketError::Denied { what: "list", .. })
    ));
}
