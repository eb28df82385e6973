//! The Lambda path's figures for `cargo xtask bench --lambda`: per photo,
//! the duration, CPU time and peak memory of the real `bootstrap` (the
//! release build, via `RESIZE_BOOTSTRAP`) serving S3 events against moto,
//! and its CPU time per S3 Batch Operations task (forced, so it renders).
//! Ignored by `cargo test`: it reports, it asserts nothing about speed.

use std::path::PathBuf;
use std::time::Instant;

use serde_json::Value;

use crate::harness::{event, s3_event, Lambda, World};

/// Invocations per photo after the first (cold) one.
const WARM_RUNS: usize = 5;

#[test]
#[ignore = "benchmark; run by `cargo xtask bench --lambda`"]
fn lambda_bench() {
    let corpus = PathBuf::from(std::env::var_os("RESIZE_BENCH_CORPUS").expect("RESIZE_BENCH_CORPUS"));
    let formats = std::env::var("RESIZE_BENCH_FORMATS").unwrap_or_else(|_| "jpeg".to_owned());
    let mut photos: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .expect("corpus dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| ["jpg", "jpeg", "png", "webp"].contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    photos.sort();
    println!(
        "| photo | formats | cold invocation ms | warm invocation ms (median) | CPU s per warm invocation | \
         CPU s per Batch Operations task (force) | peak RSS MiB |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for photo in photos {
        let name = photo.file_name().expect("a file").to_string_lossy().into_owned();
        let world = World::new().expect("an S3 world: moto and a bucket");
        let bytes = std::fs::read(&photo).expect("photo");
        let mut keys = Vec::new();
        for i in 0..=WARM_RUNS {
            let key = format!("original/bench/{i}-{name}");
            world.put(&key, bytes.clone(), &[]);
            keys.push(key);
        }
        let mut lambda = Lambda::start(
            &world,
            &[
                ("FORMATS", &formats),
                ("JPEG_QUALITY", "90"),
                ("WEBP_QUALITY", "80"),
            ],
        );
        let mut times = Vec::new();
        let mut cpu = Vec::new();
        for key in &keys {
            let before = lambda.cpu_seconds();
            let started = Instant::now();
            let answer = lambda.invoke(&s3_event(&[("ObjectCreated:Put", key)])).response();
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            cpu.push(lambda.cpu_seconds() - before);
            assert_eq!(answer["written"], Value::from(1), "{name}: {answer}");
        }
        // The same photos as Batch Operations tasks (schema 2.0), forced,
        // so each renders again: the CPU a backfill pays per image.
        let mut batch_cpu = Vec::new();
        for (i, key) in keys.iter().enumerate().skip(1) {
            let mut task = event("batch-v2");
            task["job"]["userArguments"] = serde_json::json!({"force": "true"});
            task["tasks"][0]["taskId"] = Value::from(format!("t{i}"));
            // Keys arrive percent-encoded.
            task["tasks"][0]["s3Key"] = Value::from(resize_core::adapter::url_path(key));
            let before = lambda.cpu_seconds();
            let answer = lambda.invoke(&task).response();
            batch_cpu.push(lambda.cpu_seconds() - before);
            assert_eq!(
                answer["results"][0]["resultCode"], "Succeeded",
                "{name}: {answer}"
            );
        }
        let cold = times.remove(0);
        cpu.remove(0);
        times.sort_by(f64::total_cmp);
        cpu.sort_by(f64::total_cmp);
        batch_cpu.sort_by(f64::total_cmp);
        println!(
            "| {name} | {formats} | {cold:.0} | {:.0} | {:.3} | {:.3} | {:.0} |",
            times[times.len() / 2],
            cpu[cpu.len() / 2],
            batch_cpu[batch_cpu.len() / 2],
            lambda.peak_rss_kib() as f64 / 1024.0
        );
    }
}
