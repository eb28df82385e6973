//! `resize_lambda::s3::S3` against a real S3-compatible server (moto).

use resize_core::{StorageError, META_SOURCE};
use resize_lambda::s3::{decode_meta, encode_meta, Head, META_SOURCE_ETAG};

use crate::harness::{World, BUCKET};

#[test]
fn put_head_get_list_delete_round_trip() {
    let world = World::new();
    let s3 = world.s3();
    let source = "original/naïve/日本 (1) +100% a.b.jpg";
    let bytes = b"not really a jpeg, but S3 does not care".to_vec();
    world
        .rt
        .block_on(s3.put(
            "resized/x-360.jpg",
            bytes.clone(),
            "image/jpeg",
            "public, max-age=31536000, immutable",
            &[
                (META_SOURCE, source),
                (META_SOURCE_ETAG, "9b2cf535f27731c974343645a3985328"),
            ],
        ))
        .expect("put");

    let head = world
        .rt
        .block_on(s3.head("resized/x-360.jpg"))
        .expect("head")
        .expect("exists");
    let etag = head.etag.clone().expect("an etag");
    assert!(!etag.contains('"'), "etag keeps its quotes: {etag}");
    assert_eq!(etag.len(), 32, "single-part etag is an MD5 in hex: {etag}");
    assert_eq!(
        head,
        Head {
            etag: Some(etag.clone()),
            size: Some(bytes.len() as u64),
            content_type: Some("image/jpeg".to_owned()),
            cache_control: Some("public, max-age=31536000, immutable".to_owned()),
            metadata: [
                (META_SOURCE.to_owned(), source.to_owned()),
                (
                    META_SOURCE_ETAG.to_owned(),
                    "9b2cf535f27731c974343645a3985328".to_owned()
                ),
            ]
            .into(),
        }
    );
    assert_eq!(head.variant_of(), Some(source));

    // On the wire the value is ASCII: encode_meta's form, which decode_meta undoes.
    let raw = world.head("resized/x-360.jpg").expect("exists");
    let raw_source = raw
        .metadata()
        .and_then(|m| m.get(META_SOURCE))
        .expect("metadata")
        .clone();
    assert!(raw_source.is_ascii(), "{raw_source}");
    assert_eq!(raw_source, encode_meta(source));
    assert_eq!(decode_meta(&raw_source), source);

    let (got, get_etag) = world.rt.block_on(s3.get("resized/x-360.jpg")).expect("get");
    assert_eq!(got, bytes);
    assert_eq!(get_etag.as_deref(), Some(etag.as_str()));

    world.put("resized/x-720.jpg", b"b".to_vec(), &[]);
    world.put("resized/y-360.jpg", b"c".to_vec(), &[]);
    world.put("resizedother/x-360.jpg", b"d".to_vec(), &[]);
    let mut listed = world.rt.block_on(s3.list("resized/x-")).expect("list");
    listed.sort();
    assert_eq!(listed, ["resized/x-360.jpg", "resized/x-720.jpg"]);
    assert_eq!(
        world.rt.block_on(s3.list("nothing/")).expect("list"),
        Vec::<String>::new()
    );

    world.rt.block_on(s3.delete("resized/x-360.jpg")).expect("delete");
    assert_eq!(
        world.rt.block_on(s3.head("resized/x-360.jpg")).expect("head"),
        None
    );
    assert_eq!(
        world.keys(""),
        ["resized/x-720.jpg", "resized/y-360.jpg", "resizedother/x-360.jpg"]
    );
}

#[test]
fn metadata_values_survive_real_s3() {
    let world = World::new();
    let s3 = world.s3();
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
        world
            .rt
            .block_on(s3.put(&key, vec![1], "image/jpeg", "no-cache", &[(META_SOURCE, value)]))
            .unwrap_or_else(|e| panic!("put {value:?}: {e}"));
        let head = world.rt.block_on(s3.head(&key)).expect("head").expect("exists");
        assert_eq!(head.variant_of(), Some(value), "metadata value {value:?}");
    }
}

#[test]
fn odd_keys_work_as_they_are() {
    let world = World::new();
    let s3 = world.s3();
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
        world
            .rt
            .block_on(s3.put(key, bytes.clone(), "image/jpeg", "no-cache", &[]))
            .unwrap_or_else(|e| panic!("put {key}: {e}"));
        let head = world.rt.block_on(s3.head(key)).expect("head");
        assert_eq!(head.and_then(|h| h.size), Some(bytes.len() as u64), "head {key}");
        assert_eq!(world.rt.block_on(s3.get(key)).expect("get").0, bytes, "get {key}");
        assert_eq!(
            world.rt.block_on(s3.list(key)).expect("list"),
            [*key],
            "list {key}"
        );
    }
    let mut all = keys.map(str::to_owned).to_vec();
    all.sort();
    assert_eq!(world.keys("original/"), all);
    for key in keys {
        world
            .rt
            .block_on(s3.delete(key))
            .unwrap_or_else(|e| panic!("delete {key}: {e}"));
        assert_eq!(
            world.rt.block_on(s3.head(key)).expect("head"),
            None,
            "{key} deleted"
        );
    }
    assert_eq!(world.keys(""), Vec::<String>::new());
}

#[test]
fn missing_objects() {
    let world = World::new();
    let s3 = world.s3();
    match world.rt.block_on(s3.get("original/missing.jpg")) {
        Err(StorageError::NotFound(key)) => assert_eq!(key, "original/missing.jpg"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(
        world.rt.block_on(s3.head("original/missing.jpg")).expect("head"),
        None
    );
    // S3 deletes are idempotent.
    world
        .rt
        .block_on(s3.delete("original/missing.jpg"))
        .expect("delete");
    // A missing bucket is not a missing object.
    let other = resize_lambda::s3::S3::new(world.client.clone(), "no-such-bucket-here");
    match world.rt.block_on(other.list("x/")) {
        Err(e) => assert!(!e.is_transient(), "a missing bucket is permanent: {e}"),
        Ok(keys) => panic!("listing a missing bucket gave {keys:?}"),
    }
    assert_ne!(BUCKET, "no-such-bucket-here");
}

#[test]
fn list_follows_continuation_tokens() {
    let world = World::new();
    let s3 = world.s3();
    let n = 1003;
    world.rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(16));
        for i in 0..n {
            let s3 = s3.clone();
            let gate = std::sync::Arc::clone(&gate);
            set.spawn(async move {
                let _permit = gate.acquire().await.expect("semaphore");
                s3.put(&format!("many/{i:05}.jpg"), vec![], "image/jpeg", "no-cache", &[])
                    .await
                    .expect("put")
            });
        }
        while let Some(r) = set.join_next().await {
            r.expect("join");
        }
    });
    world.put("manyother/x.jpg", vec![], &[]);
    let mut keys = world.rt.block_on(s3.list("many/")).expect("list");
    keys.sort();
    let want: Vec<String> = (0..n).map(|i| format!("many/{i:05}.jpg")).collect();
    assert_eq!(keys.len(), n);
    assert_eq!(keys, want);
}
