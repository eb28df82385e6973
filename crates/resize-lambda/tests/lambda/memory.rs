//! Large photos within the function's memory: four 72 MP JPEGs (the
//! issue's measurement), a 60 MP RGBA PNG and a 60 MP lossless WebP in one
//! event at 256, 512 and 1024 MB, each admitted by its estimated working
//! set. The JPEGs and the PNG stream (decoded a few rows at a time) and fit
//! everywhere; the WebP is decoded whole, so it fails alone with both
//! figures where it cannot fit, and the process's peak RSS stays under the
//! configured memory.

use resize_testkit::large::{large_photo, Kind};
use serde_json::{json, Value};

use crate::harness::{s3_event, Lambda, World};

/// 72 MP, 10752×6720: the measurement, where 256 and 512 MB
/// were killed.
const JPEG: (u32, u32) = (10752, 6720);
/// 60 MP: 229 MB as RGBA, but streamed.
const PNG: (u32, u32) = (10000, 6000);
/// 60 MP: decoded whole, 172 MB as RGB plus the decoder's own buffer.
const WEBP: (u32, u32) = (10000, 6000);

/// The failed records of a summary, as (key, error).
fn failures(answer: &Value) -> Vec<(String, String)> {
    answer["failed"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| {
                    (
                        f["key"].as_str().unwrap_or("").to_owned(),
                        f["error"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn large_photos_fit_the_configured_memory() {
    let jpeg = large_photo(Kind::Jpeg, JPEG.0, JPEG.1);
    let png = large_photo(Kind::PngAlpha, PNG.0, PNG.1);
    let webp = large_photo(Kind::WebPLossless, WEBP.0, WEBP.1);
    // (memory MB, whether the 60 MP WebP fits)
    for (memory, webp_fits) in [(256u64, false), (512, true), (1024, true)] {
        let world = World::new().expect("an S3 world: moto and a bucket");
        let mut keys = Vec::new();
        for i in 0..4 {
            let key = format!("original/big/{i}.jpg");
            world.put(&key, jpeg.clone(), &[]);
            keys.push(key);
        }
        world.put("original/big/wide.png", png.clone(), &[]);
        keys.push("original/big/wide.png".to_owned());
        world.put("original/big/whole.webp", webp.clone(), &[]);
        keys.push("original/big/whole.webp".to_owned());
        let mb = memory.to_string();
        let mut lambda = Lambda::start(
            &world,
            &[("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", &mb), ("FORMATS", "jpeg,webp")],
        );
        let records: Vec<(&str, &str)> = keys.iter().map(|k| ("ObjectCreated:Put", k.as_str())).collect();
        let answer = lambda.invoke(&s3_event(&records)).response();
        let failed = failures(&answer);
        let peak_mib = lambda.peak_rss_kib() / 1024;
        eprintln!("{memory} MB: peak RSS {peak_mib} MiB; {answer}");

        // Every JPEG is written, at every width, upright.
        for i in 0..4 {
            for w in [360u32, 720, 1200, 2200] {
                let h = (f64::from(JPEG.1) * f64::from(w) / f64::from(JPEG.0)).round() as u32;
                for ext in ["jpg", "webp"] {
                    assert_eq!(
                        world.dimensions(&format!("resized/big/{i}-{w}.{ext}")),
                        (w, h),
                        "{memory} MB"
                    );
                }
            }
        }
        assert_eq!(
            world.dimensions("resized/big/wide-2200.webp"),
            (2200, 1320),
            "{memory} MB"
        );
        if webp_fits {
            assert_eq!(answer["written"], json!(6), "{memory} MB: {answer}");
            assert_eq!(world.dimensions("resized/big/whole-2200.jpg"), (2200, 1320));
        } else {
            assert_eq!(answer["written"], json!(5), "{memory} MB: {answer}");
            assert_eq!(failed.len(), 1, "{answer}");
            let (key, error) = &failed[0];
            assert_eq!(key, "original/big/whole.webp");
            assert!(
                error.starts_with("cannot render `original/big/whole.webp`: needs about ")
                    && error.ends_with(&format!(
                        "MB of memory; the function has {memory} MB, of which 80 MB are kept for the runtime"
                    )),
                "{error}"
            );
            assert!(
                world.keys("resized/big/whole").is_empty(),
                "nothing written for the WebP"
            );
        }
        // Lambda counts MB as MiB.
        assert!(peak_mib < memory, "{memory} MB: peak RSS {peak_mib} MiB");
    }
}
