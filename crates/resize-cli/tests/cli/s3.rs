//! Backfill over S3: the binary against moto's server, through the
//! counting proxy, with `s3://` inputs and outputs.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use resize_testkit::proxy::{Fault, Logged, Mode, S3Proxy};
use resize_testkit::{World, BUCKET};

use crate::support::*;

/// The CLI's environment for the S3 server on `port`: test credentials,
/// path-style URLs, and nothing from the host (no profile, no IMDS).
pub fn s3_env(sandbox: &Sandbox, port: u16) -> Vec<(String, String)> {
    let home = sandbox.path("home").to_string_lossy().into_owned();
    vec![
        ("AWS_ENDPOINT_URL_S3".into(), format!("http://127.0.0.1:{port}")),
        ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
        ("AWS_REGION".into(), "us-east-1".into()),
        ("S3_FORCE_PATH_STYLE".into(), "true".into()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ("HOME".into(), home.clone()),
        ("AWS_CONFIG_FILE".into(), format!("{home}/none")),
        ("AWS_SHARED_CREDENTIALS_FILE".into(), format!("{home}/none")),
    ]
}

pub fn run_s3(sandbox: &Sandbox, port: u16, args: &[&str], extra: &[(&str, &str)]) -> Run {
    let env = s3_env(sandbox, port);
    let mut pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    pairs.extend_from_slice(extra);
    sandbox.run_env(args, &pairs)
}

/// A small JPEG whose colour follows `i`, `w`×`h` pixels.
fn jpeg(i: usize, w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(i * 37 % 256) as u8, (x * 255 / w) as u8, (y * 255 / h) as u8])
    });
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Jpeg)
        .expect("encode a JPEG");
    out
}

/// The source keys of the bucket: images under nested prefixes with
/// names that need care (spaces, `+`, `%`, non-ASCII, upper-case
/// extensions), and the keys that are not images.
fn sources(count: usize) -> Vec<(String, Vec<u8>)> {
    let names = ["a b", "plus+sign", "100% real", "ünïcødé 日本", "UPPER"];
    let mut out = Vec::new();
    for i in 0..count {
        let dir = format!("original/trip {}/day+{}", i % 5, i % 3);
        let name = names[i % names.len()];
        let ext = if i % 4 == 0 { "JPG" } else { "jpg" };
        out.push((
            format!("{dir}/{name} {i}.{ext}"),
            jpeg(i, 120 + (i % 7) as u32, 90),
        ));
    }
    out.push(("original/notes.txt".into(), b"not an image".to_vec()));
    out.push(("original/trip 0/".into(), Vec::new()));
    out
}

fn broken() -> Vec<(String, Vec<u8>)> {
    ["truncated-jpg.jpg", "garbage.png", "pdf-named.jpg", "empty.jpg"]
        .iter()
        .map(|f| {
            (
                format!("original/broken/{f}"),
                std::fs::read(fixtures().join("bad").join(f)).expect("fixture"),
            )
        })
        .collect()
}

/// The outputs of `key` under `--replace original:resized`, one per width
/// and extension.
fn outputs_of(key: &str, widths: &[u32], exts: &[&str]) -> Vec<String> {
    let rest = key.strip_prefix("original/").expect("a source under original/");
    let (dir, file) = rest.rsplit_once('/').expect("a directory");
    let stem = file.rsplit_once('.').expect("an extension").0;
    let mut keys = Vec::new();
    for w in widths {
        for ext in exts {
            keys.push(format!("resized/{dir}/{stem}-{w}.{ext}"));
        }
    }
    keys
}

fn puts(log: &[Logged]) -> Vec<String> {
    log.iter()
        .filter(|l| l.method == "PUT" && l.status == Some(200))
        .map(|l| l.key.clone())
        .collect()
}

fn put_all(world: &World, objects: &[(String, Vec<u8>)]) {
    for (key, bytes) in objects {
        world.put(key, bytes.clone(), &[]);
    }
}

/// The ETag of `key`, unquoted.
fn etag(world: &World, key: &str) -> String {
    world
        .head(key)
        .and_then(|h| h.e_tag().map(|e| e.trim_matches('"').to_owned()))
        .unwrap_or_else(|| panic!("no object at {key}"))
}

const BACKFILL: [&str; 6] = [
    "--json",
    "--formats",
    "jpeg,webp",
    "--replace",
    "original:resized",
    "--out",
];

#[test]
fn a_bucket_is_backfilled_and_reruns_cost_headers_only() {
    let world = World::new().expect("moto");
    let proxy = S3Proxy::start(world.port, Mode::Pass).expect("proxy");
    let sandbox = Sandbox::new();
    let good = sources(300);
    put_all(&world, &good);
    put_all(&world, &broken());
    let images: Vec<&String> = good
        .iter()
        .map(|(k, _)| k)
        .filter(|k| k.ends_with("jpg") || k.ends_with("JPG"))
        .collect();
    // Outside the input prefix: never read.
    world.put("elsewhere/x.jpg", jpeg(1, 100, 80), &[]);
    // A 2019 variant without metadata, which the run replaces.
    let old = outputs_of(images[0], &[40], &["jpg"]).remove(0);
    world.put(&old, b"2019 bytes".to_vec(), &[]);
    let dest = format!("s3://{BUCKET}");
    let input = format!("s3://{BUCKET}/original");
    let args = |sizes: &str, extra: &[&'static str]| -> Vec<String> {
        let mut a: Vec<String> = vec!["--sizes".into(), sizes.into()];
        a.extend(BACKFILL.iter().map(|s| s.to_string()));
        a.push(dest.clone());
        a.push(input.clone());
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let run = |a: &[String]| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        run_s3(&sandbox, proxy.port, &a, &[])
    };

    // First run: every variant, with the Lambda's metadata; the broken
    // images fail alone (exit 1).
    let first = run(&args("40,80", &[]));
    first.expect_code(1);
    let report = first.json();
    let failed = reasons(&report, "failed");
    assert_eq!(
        failed.keys().cloned().collect::<BTreeSet<_>>(),
        broken().into_iter().map(|(k, _)| k).collect::<BTreeSet<_>>(),
        "{failed:?}"
    );
    let mut expected: BTreeSet<String> = BTreeSet::new();
    for key in &images {
        expected.extend(outputs_of(key, &[40, 80], &["jpg", "webp"]));
    }
    let written: BTreeSet<String> = world.keys("resized/").into_iter().collect();
    assert_eq!(written, expected, "the variants under resized/");
    assert!(
        world.keys("elsewhere/").len() == 1
            && world.keys("").iter().all(|k| !k.starts_with("resized/elsewhere"))
    );
    for key in images.iter().step_by(37) {
        let tag = etag(&world, key);
        for out in outputs_of(key, &[40, 80], &["jpg", "webp"]) {
            let head = world.head(&out).expect("variant");
            let meta = head.metadata().cloned().unwrap_or_default();
            assert_eq!(resize_s3::decode_meta(&meta["resize-source"]), **key, "{out}");
            assert_eq!(meta["resize-source-etag"], tag, "{out}");
            assert_eq!(meta["resize-fingerprint"].len(), 16, "{out}");
            assert_eq!(
                head.cache_control(),
                Some("public, max-age=31536000, immutable"),
                "{out}"
            );
            let want = if out.ends_with(".jpg") {
                "image/jpeg"
            } else {
                "image/webp"
            };
            assert_eq!(head.content_type(), Some(want), "{out}");
        }
        let (sw, sh) = world.dimensions(key);
        let (w, h) = world.dimensions(&outputs_of(key, &[80], &["jpg"])[0]);
        assert_eq!((w, h), (80, expected_height(sw, sh, 80)), "{key}");
    }
    assert!(world
        .head(&old)
        .expect("replaced")
        .metadata()
        .is_some_and(|m| m.contains_key("resize-source")));
    let first_log = proxy.log();
    eprintln!(
        "first run: {} requests ({} GET, {} HEAD, {} PUT, {} list)",
        first_log.len(),
        first_log
            .iter()
            .filter(|l| l.method == "GET" && !l.key.is_empty())
            .count(),
        first_log.iter().filter(|l| l.method == "HEAD").count(),
        puts(&first_log).len(),
        first_log
            .iter()
            .filter(|l| l.method == "GET" && l.key.is_empty())
            .count(),
    );

    // Rerun: no PUT, and no more than a header of each current source.
    let before = proxy.log().len();
    run(&args("40,80", &[])).expect_code(1);
    let rerun: Vec<Logged> = proxy.log().split_off(before);
    assert_eq!(puts(&rerun), Vec::<String>::new(), "a rerun writes nothing");
    let failed_keys: BTreeSet<String> = broken().into_iter().map(|(k, _)| k).collect();
    for l in rerun.iter().filter(|l| l.method == "GET" && !l.key.is_empty()) {
        if !failed_keys.contains(&l.key) {
            assert!(
                l.bytes <= 64 * 1024,
                "{} read {} bytes on a rerun",
                l.key,
                l.bytes
            );
        }
    }
    eprintln!(
        "rerun: {} requests ({} GET, {} HEAD, 0 PUT)",
        rerun.len(),
        rerun.iter().filter(|l| l.method == "GET").count(),
        rerun.iter().filter(|l| l.method == "HEAD").count()
    );

    // A dry run reports what a run would do, and writes nothing.
    let before = proxy.log().len();
    let dry = run(&args("40,80,60", &["--dry-run"]));
    dry.expect_code(1);
    assert_eq!(puts(&proxy.log().split_off(before)), Vec::<String>::new());
    assert_eq!(
        dry.json()["variants_planned"].as_u64(),
        Some(2 * images.len() as u64)
    );
    assert_eq!(
        dry.json()["stale"]["missing"].as_u64(),
        Some(2 * images.len() as u64)
    );

    // A new width writes only it.
    let before = proxy.log().len();
    run(&args("40,80,60", &[])).expect_code(1);
    let added = puts(&proxy.log().split_off(before));
    assert_eq!(added.len(), 2 * images.len());
    assert!(added.iter().all(|k| k.contains("-60.")), "{added:?}");

    // A JPEG quality change rewrites only JPEGs.
    let before = proxy.log().len();
    run(&args("40,80,60", &["--jpeg-quality", "70"])).expect_code(1);
    let rewritten = puts(&proxy.log().split_off(before));
    assert_eq!(rewritten.len(), 3 * images.len());
    assert!(rewritten.iter().all(|k| k.ends_with(".jpg")), "{rewritten:?}");
}

#[test]
fn a_killed_backfill_resumes_where_it_stopped() {
    let world = World::new().expect("moto");
    let proxy = S3Proxy::start(world.port, Mode::Pass).expect("proxy");
    let sandbox = Sandbox::new();
    let good = sources(40);
    put_all(&world, &good);
    let images = good
        .iter()
        .filter(|(k, _)| !k.ends_with('/') && !k.ends_with(".txt"))
        .count();
    let dest = format!("s3://{BUCKET}");
    let input = format!("s3://{BUCKET}/original/");
    let args = [
        "--sizes",
        "40,80",
        "--replace",
        "original:resized",
        "--jobs",
        "1",
        "--out",
        &dest,
        &input,
    ];
    let env = s3_env(&sandbox, proxy.port);
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut child = sandbox.command(&args, &pairs).spawn().expect("start the CLI");
    let started = Instant::now();
    while puts(&proxy.log()).len() < images / 2 {
        assert!(started.elapsed() < Duration::from_secs(60), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("kill the CLI");
    let _ = child.wait();
    // A PUT the CLI sent before it died may still reach S3, and the proxy
    // does not log one whose client went away before S3 answered: what the
    // killed run finished is what the bucket holds once it is quiet.
    let mut seen = world.keys("resized/").len();
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = world.keys("resized/").len();
        if now == seen {
            break;
        }
        seen = now;
    }
    let done: BTreeSet<String> = world.keys("resized/").into_iter().collect();
    assert!(done.len() < 2 * images, "killed before the end");

    let before = proxy.log().len();
    run_s3(&sandbox, proxy.port, &args, &[]).expect_code(0);
    let again: BTreeSet<String> = puts(&proxy.log().split_off(before)).into_iter().collect();
    assert!(
        again.is_disjoint(&done),
        "rewritten after the kill: {:?}",
        again.intersection(&done).collect::<Vec<_>>()
    );
    assert_eq!(done.len() + again.len(), 2 * images);
    assert_eq!(world.keys("resized/").len(), 2 * images);
}

#[test]
fn a_throttled_backfill_completes_in_one_go() {
    let world = World::new().expect("moto");
    let proxy = S3Proxy::start(world.port, Mode::Pass).expect("proxy");
    let sandbox = Sandbox::new();
    put_all(&world, &sources(30));
    let run = |to: &str| {
        let dest = format!("s3://{BUCKET}/{to}");
        let input = format!("s3://{BUCKET}/original/");
        let started = Instant::now();
        let r = run_s3(
            &sandbox,
            proxy.port,
            &[
                "--json",
                "--sizes",
                "40,80",
                "--replace",
                "original:resized",
                "--out",
                &dest,
                &input,
            ],
            &[],
        );
        (r, started.elapsed())
    };
    let (calm, calm_time) = run("calm");
    calm.expect_code(0);
    proxy.set_mode(Mode::EveryNth(3, Fault::SlowDown));
    let (throttled, throttled_time) = run("throttled");
    throttled.expect_code(0);
    let injected: usize = proxy.injected().values().sum();
    assert!(injected > 30, "only {injected} requests throttled");
    let strip = |prefix: &str| -> Vec<String> {
        world
            .keys(prefix)
            .into_iter()
            .map(|k| k[prefix.len()..].to_owned())
            .collect()
    };
    assert_eq!(strip("throttled/"), strip("calm/"));
    eprintln!(
        "every third request throttled: {injected} SlowDowns, {:.1} s against {:.1} s unthrottled",
        throttled_time.as_secs_f64(),
        calm_time.as_secs_f64()
    );
}

#[test]
fn local_to_s3_and_s3_to_local() {
    let world = World::new().expect("moto");
    let sandbox = Sandbox::new();
    sandbox.write("photos/trips/a b.jpg", &jpeg(3, 200, 100));
    sandbox.write("photos/b.JPG", &jpeg(4, 160, 120));
    let dest = format!("s3://{BUCKET}/site");
    run_s3(
        &sandbox,
        world.port,
        &["--sizes", "50,100", "--out", &dest, "photos"],
        &[],
    )
    .expect_code(0);
    assert_eq!(
        world.keys("site/"),
        [
            "site/b-100.jpg",
            "site/b-50.jpg",
            "site/trips/a b-100.jpg",
            "site/trips/a b-50.jpg"
        ]
    );
    // A local source's version is the MD5 of its bytes: the ETag S3 gives it.
    let head = world.head("site/trips/a b-50.jpg").expect("variant");
    let meta = head.metadata().cloned().unwrap_or_default();
    let md5 = resize_core::adapter::content_version(&jpeg(3, 200, 100));
    assert_eq!(meta["resize-source-etag"], md5);
    assert_eq!(world.dimensions("site/b-50.jpg"), (50, 38));
    // Again: nothing to do.
    let again = run_s3(
        &sandbox,
        world.port,
        &["--json", "--sizes", "50,100", "--out", &dest, "photos"],
        &[],
    );
    assert_eq!(again.expect_code(0).json()["images_written"].as_u64(), Some(0));

    // S3 to a folder: keys as in the bucket.
    world.put("in/c.jpg", jpeg(5, 300, 200), &[]);
    let input = format!("s3://{BUCKET}/in");
    run_s3(
        &sandbox,
        world.port,
        &["--sizes", "50", "--out", "out", &input],
        &[],
    )
    .expect_code(0);
    assert_eq!(sandbox.files("out"), ["in/c-50.jpg"]);
    assert_eq!(decode(&sandbox.path("out/in/c-50.jpg")).width(), 50);
    let again = run_s3(
        &sandbox,
        world.port,
        &["--json", "--sizes", "50", "--out", "out", &input],
        &[],
    );
    assert_eq!(again.expect_code(0).json()["images_written"].as_u64(), Some(0));

    // A bucket in another region: asked for its region first.
    world
        .create_bucket_in("far-photos", "eu-west-1")
        .expect("a bucket in eu-west-1");
    run_s3(
        &sandbox,
        world.port,
        &["--sizes", "50", "--out", "s3://far-photos/site", "photos"],
        &[],
    )
    .expect_code(0);
    let far = world
        .rt
        .block_on(world.client.list_objects_v2().bucket("far-photos").send())
        .expect("list");
    assert_eq!(far.contents().len(), 2, "{far:?}");
}

#[test]
fn bad_s3_arguments_stop_before_any_work() {
    let world = World::new().expect("moto");
    let proxy = S3Proxy::start(world.port, Mode::Pass).expect("proxy");
    let sandbox = Sandbox::new();
    world.put("original/a.jpg", jpeg(1, 100, 80), &[]);
    let input = format!("s3://{BUCKET}/original/");
    // (arguments, extra environment, proxy mode, what stderr says)
    type Case<'a> = (Vec<String>, Vec<(&'a str, &'a str)>, Mode, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec!["--out".into(), "o".into(), "s3://".into()],
            vec![],
            Mode::Pass,
            "`s3://` names no bucket",
        ),
        (
            vec!["--out".into(), "o".into(), "s3://My_Bucket/x".into()],
            vec![],
            Mode::Pass,
            "is not a valid S3 bucket name",
        ),
        (
            vec!["--out".into(), "s3://".into(), "in".into()],
            vec![],
            Mode::Pass,
            "`s3://` names no bucket",
        ),
        (
            vec!["--out".into(), "o".into(), "s3://no-such-bucket/x".into()],
            vec![],
            Mode::Pass,
            "bucket `no-such-bucket` does not exist",
        ),
        (
            vec!["--out".into(), "s3://no-such-bucket".into(), input.clone()],
            vec![],
            Mode::Pass,
            "bucket `no-such-bucket` does not exist",
        ),
        (
            vec!["--out".into(), "o".into(), input.clone()],
            vec![],
            Mode::Always("HEAD", Fault::AccessDenied),
            "access denied: cannot reach bucket",
        ),
        (
            vec!["--out".into(), "o".into(), input.clone()],
            vec![],
            Mode::Always("GET", Fault::AccessDenied),
            "access denied: cannot list bucket",
        ),
        (
            vec!["--out".into(), "o".into(), input.clone()],
            vec![("AWS_ACCESS_KEY_ID", ""), ("AWS_SECRET_ACCESS_KEY", "")],
            Mode::Pass,
            "no AWS credentials found",
        ),
        (
            vec!["--out".into(), "o".into(), input.clone()],
            vec![("AWS_REGION", ""), ("AWS_DEFAULT_REGION", "")],
            Mode::Pass,
            "no AWS region set: set AWS_REGION",
        ),
        (
            vec![
                "--replace".into(),
                "original:resized".into(),
                "--out".into(),
                format!("s3://{BUCKET}/original/site"),
                input.clone(),
            ],
            vec![],
            Mode::Pass,
            "would feed input",
        ),
        (
            vec![
                "--out".into(),
                "o".into(),
                input.clone(),
                format!("s3://{BUCKET}/original/trips"),
            ],
            vec![],
            Mode::Pass,
            "overlap",
        ),
        (
            vec!["--out".into(), "o".into(), "gs://b/x".into()],
            vec![],
            Mode::Pass,
            "only local paths and s3:// URLs",
        ),
    ];
    for (args, env, mode, message) in cases {
        proxy.set_mode(mode);
        let before = proxy.log().len();
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = run_s3(&sandbox, proxy.port, &a, &env);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(message), "{args:?}: {}", run.stderr);
        let log = proxy.log().split_off(before);
        assert!(
            log.iter()
                .all(|l| l.method != "PUT" && (l.method != "GET" || l.key.is_empty())),
            "{args:?} did work: {log:?}"
        );
    }
    assert!(!sandbox.path("o").exists(), "no output folder was made");
}

/// Peak memory does not grow with the number of objects listed beyond the
/// report: 100 and 5,000 objects (not images, so no reads), with and
/// without `--json`.
#[test]
fn memory_stays_flat_as_the_listing_grows() {
    let world = World::new().expect("moto");
    let sandbox = Sandbox::new();
    let objects: Vec<(String, Vec<u8>)> = (0..5000)
        .map(|i| (format!("many/{:02}/note {i}.txt", i % 50), b"x".to_vec()))
        .collect();
    world.put_many(&objects);
    world.put_many(
        &objects[..100]
            .iter()
            .map(|(k, v)| (k.replacen("many/", "few/", 1), v.clone()))
            .collect::<Vec<_>>(),
    );
    let mut peaks = BTreeMap::new();
    for (prefix, json) in [("few", true), ("many", true), ("few", false), ("many", false)] {
        let input = format!("s3://{BUCKET}/{prefix}/");
        let mut args = vec!["--out", "o", &input];
        if json {
            args.insert(0, "--json");
        }
        let run = run_s3(&sandbox, world.port, &args, &[]);
        run.expect_code(0);
        let peak = if json {
            run.json()["peak_rss_bytes"].as_u64().expect("peak")
        } else {
            peak_from_text(&run.stdout)
        };
        peaks.insert((prefix, json), peak);
    }
    eprintln!(
        "peak RSS (MiB) by (listing, --json): {:?}",
        peaks.iter().map(|(k, v)| (k, v >> 20)).collect::<Vec<_>>()
    );
    for json in [true, false] {
        let (few, many) = (peaks[&("few", json)], peaks[&("many", json)]);
        assert!(
            many < few + (24 << 20),
            "--json {json}: {few} bytes at 100 objects, {many} at 5,000"
        );
    }
}

/// The peak memory the human summary prints (`peak memory 12.3 MB`).
fn peak_from_text(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix("peak memory "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
        .map(|mb| (mb * (1u64 << 20) as f64) as u64)
        .unwrap_or_else(|| panic!("no peak memory in the summary:\n{text}"))
}
