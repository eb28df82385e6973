//! Where the time of one job goes: decode, resize and encode measured apart
//! on one photo, through the same functions `resize_core::render` calls.
//!
//! `cargo bench -p resize-bench --features stages --bench stages` uses the largest photo in
//! `../shared/corpus` when that folder exists, else the bundled phone-sized
//! fixture; `RESIZE_BENCH_PHOTO=path` picks another.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use resize_core::stages::{self, Decoded};
use resize_core::{Format, Limits, Quality, Recipe};

const WIDTHS: [u32; 4] = [2200, 1200, 720, 360];

fn photo() -> PathBuf {
    if let Some(p) = std::env::var_os("RESIZE_BENCH_PHOTO") {
        return PathBuf::from(p);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let corpus = root.join("../shared/corpus/iphone6.jpg");
    if corpus.exists() {
        corpus
    } else {
        root.join("fixtures/images/phone-orient6.jpg")
    }
}

fn height(d: &Decoded, width: u32) -> u32 {
    ((u64::from(d.height) * u64::from(width) + u64::from(d.width) / 2) / u64::from(d.width)) as u32
}

fn stages(c: &mut Criterion) {
    let path = photo();
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let limits = Limits::default();
    // The benchmark's jobs: JPEG quality 90, WebP quality 80.
    let q = |v| Quality::new(v).expect("1..=100");
    let recipe = Recipe::builder()
        .jpeg_quality(q(90))
        .webp_quality(q(80))
        .build()
        .expect("the default recipe is valid");
    let decoded = stages::decode(&bytes, limits).expect("the photo decodes");
    eprintln!(
        "stage profile of {} ({}x{})",
        path.display(),
        decoded.width,
        decoded.height
    );

    let mut g = c.benchmark_group("stages");
    g.sample_size(10);
    g.bench_function("decode", |b| {
        b.iter(|| stages::decode(black_box(&bytes), limits).expect("decodes"))
    });
    // One step down the ladder small sizes are resized from.
    g.bench_function("halve", |b| b.iter(|| stages::halve(black_box(&decoded))));
    for w in WIDTHS.into_iter().filter(|&w| w <= decoded.width) {
        let h = height(&decoded, w);
        g.bench_function(format!("resize full->{w}"), |b| {
            b.iter(|| stages::resize(black_box(&decoded), w, h).expect("resizes"))
        });
    }
    for w in WIDTHS.into_iter().filter(|&w| w <= decoded.width) {
        let h = height(&decoded, w);
        let pixels = stages::resize(&decoded, w, h).expect("resizes");
        for format in [Format::Jpeg, Format::WebP] {
            g.bench_function(format!("encode {w} {format:?}"), |b| {
                b.iter(|| {
                    stages::encode(format, &recipe, black_box(&pixels), w, h, decoded.channels)
                        .expect("encodes")
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
