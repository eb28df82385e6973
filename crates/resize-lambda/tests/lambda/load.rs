//! Volume: one S3 event with 100 records and an SQS batch of 10 messages,
//! against the real S3 server, within the memory the function is given.

use serde_json::{json, Value};

use crate::harness::{event, fixture, s3_event, Lambda, World};

/// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` of the run, in MB.
const MEMORY_MB: u64 = 512;

/// Key → (bytes, upright width, height) for `n` uploads under `dir`; every
/// tenth is the 12 MP phone photo, the rest 800×600.
fn uploads(world: &World, dir: &str, n: usize) -> Vec<(String, u32, u32)> {
    let small = fixture("images/photo-4x3.jpg");
    let phone = fixture("images/phone-orient6.jpg");
    (0..n)
        .map(|i| {
            let key = format!("original/{dir}/{i:03}.jpg");
            if i % 10 == 0 {
                world.put(&key, phone.clone(), &[]);
                (key, 3024, 4032)
            } else {
                world.put(&key, small.clone(), &[]);
                (key, 800, 600)
            }
        })
        .collect()
}

#[track_caller]
fn check_all_written(world: &World, dir: &str, sources: &[(String, u32, u32)]) {
    let mut expected = Vec::new();
    for (key, w0, h0) in sources {
        let stem = key.trim_start_matches("original/").trim_end_matches(".jpg");
        for w in [120u32, 360] {
            let h = (f64::from(*h0) * f64::from(w) / f64::from(*w0)).round() as u32;
            let out = format!("resized/{stem}-{w}.jpg");
            expected.push((out, w, h));
        }
    }
    let mut keys: Vec<String> = expected.iter().map(|(k, _, _)| k.clone()).collect();
    keys.sort();
    assert_eq!(world.keys(&format!("resized/{dir}/")), keys);
    // Spot-check sizes of every tenth source's variants (decoding 200 is slow).
    for (key, w, h) in expected.iter().step_by(10) {
        assert_eq!(world.dimensions(key), (*w, *h), "{key}");
    }
}

/// An SQS message whose body is an S3 event for `key`.
fn sqs_record(id: &str, key: &str) -> Value {
    let mut record = event("sqs")["Records"][0].clone();
    record["messageId"] = Value::from(id);
    record["body"] = Value::from(s3_event(&[("ObjectCreated:Put", key)]).to_string());
    record
}

#[test]
fn a_hundred_records_and_an_sqs_batch_fit_the_configured_memory() {
    let world = World::new().expect("an S3 world: moto and a bucket");
    let direct = uploads(&world, "direct", 100);
    let queued = uploads(&world, "queued", 10);
    let memory = MEMORY_MB.to_string();
    let mut lambda = Lambda::start(
        &world,
        &[("SIZES", "120,360"), ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", &memory)],
    );
    // Images render at once while their estimates fit 512 MB less the
    // reserve (see README: Memory).
    let init = lambda.stdout_with("initialised");
    assert!(init.contains("\"budget_mb\":432"), "{init}");

    let records: Vec<(&str, &str)> = direct
        .iter()
        .map(|(k, _, _)| ("ObjectCreated:Put", k.as_str()))
        .collect();
    let answer = lambda.invoke(&s3_event(&records)).response();
    assert_eq!(answer["records"], json!(100), "{answer}");
    assert_eq!(answer["written"], json!(100), "{answer}");
    assert_eq!(answer["failed"], json!([]), "{answer}");
    check_all_written(&world, "direct", &direct);

    let batch: Vec<Value> = queued
        .iter()
        .enumerate()
        .map(|(i, (k, _, _))| sqs_record(&format!("msg-{i}"), k))
        .collect();
    let answer = lambda.invoke(&json!({ "Records": batch })).response();
    assert_eq!(answer, json!({ "batchItemFailures": [] }));
    check_all_written(&world, "queued", &queued);

    let peak_mib = lambda.peak_rss_kib() / 1024;
    eprintln!("bootstrap peak RSS after 110 images (11 of them 12 MP): {peak_mib} MiB of {MEMORY_MB} MB");
    assert!(
        peak_mib * 1024 * 1024 < MEMORY_MB * 1000 * 1000,
        "peak {peak_mib} MiB"
    );
}
