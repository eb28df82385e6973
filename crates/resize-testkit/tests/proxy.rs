//! The fault proxy between a real client and moto: it relays requests
//! whole, logs each by method, key, status and bytes returned, and its
//! faults reach the client as S3's would.

use aws_sdk_s3::primitives::ByteStream;
use resize_testkit::proxy::{Fault, Logged, Mode, S3Proxy};
use resize_testkit::{client, World, BUCKET};

#[test]
fn relays_and_counts_every_request() {
    let world = World::new().expect("an S3 world: moto and a bucket");
    let proxy = S3Proxy::start(world.port, Mode::Pass).expect("start the S3 proxy");
    let through = client(proxy.port);
    let body = vec![42u8; 70_000];
    world.rt.block_on(async {
        through
            .put_object()
            .bucket(BUCKET)
            .key("original/a b.jpg")
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .expect("put through the proxy");
        let head = through
            .head_object()
            .bucket(BUCKET)
            .key("original/a b.jpg")
            .send()
            .await
            .expect("head through the proxy");
        assert_eq!(
            head.content_length(),
            Some(70_000),
            "a HEAD keeps the object's length"
        );
        let got = through
            .get_object()
            .bucket(BUCKET)
            .key("original/a b.jpg")
            .send()
            .await
            .expect("get through the proxy");
        assert_eq!(
            got.body.collect().await.expect("body").into_bytes().to_vec(),
            body
        );
    });
    assert_eq!(world.get("original/a b.jpg").len(), 70_000, "stored whole");
    let log: Vec<Logged> = proxy.log();
    let row = |method: &str| log.iter().find(|l| l.method == method).cloned();
    let expect = |method: &str, status: u16, bytes: u64| Logged {
        method: method.to_owned(),
        key: "original/a b.jpg".to_owned(),
        status: Some(status),
        bytes,
        fault: None,
    };
    assert_eq!(row("PUT"), Some(expect("PUT", 200, 0)));
    assert_eq!(row("HEAD"), Some(expect("HEAD", 200, 0)));
    assert_eq!(row("GET"), Some(expect("GET", 200, 70_000)));
    assert_eq!(proxy.count("GET", "original/"), 1);
    assert_eq!(proxy.count("GET", "resized/"), 0);
}

#[test]
fn faults_reach_the_client() {
    let world = World::new().expect("an S3 world: moto and a bucket");
    world.put("k.jpg", b"x".to_vec(), &[]);
    let proxy = S3Proxy::start(world.port, Mode::Always("GET", Fault::SlowDown)).expect("start the S3 proxy");
    let through = client(proxy.port);
    let err = world
        .rt
        .block_on(through.get_object().bucket(BUCKET).key("k.jpg").send())
        .expect_err("S3 is slowing down for good");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(503));
    // The SDK's standard retry mode makes three attempts.
    assert_eq!(
        proxy.injected().get(&("GET".to_owned(), Fault::SlowDown)),
        Some(&3)
    );

    proxy.set_mode(Mode::Always("GET", Fault::Reset));
    let err = world
        .rt
        .block_on(through.get_object().bucket(BUCKET).key("k.jpg").send())
        .expect_err("every connection is reset");
    assert!(
        matches!(
            err,
            aws_sdk_s3::error::SdkError::DispatchFailure(_) | aws_sdk_s3::error::SdkError::ResponseError(_)
        ),
        "{err:?}"
    );
    proxy.set_mode(Mode::Pass);
    let ok = world
        .rt
        .block_on(through.get_object().bucket(BUCKET).key("k.jpg").send());
    assert!(ok.is_ok(), "{ok:?}");
}
