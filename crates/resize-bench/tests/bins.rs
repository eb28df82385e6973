//! The benchmark's own tools behave as the report assumes: the 2019
//! baseline makes floor-height JPEGs at the four widths, and the scorer
//! ranks a faithful resize far above a wrong image.
//!
//! Running them here also means `cargo test` builds them with the same
//! features as the rest of the test build, so `cargo xtask bench --smoke`
//! (next in CI) finds them built.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/images")
        .join(name)
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn pipeline2019_makes_floor_heights_at_every_width() {
    let dir = tempfile::tempdir().expect("tempdir");
    let photo = fixture("photo-16x9.jpg"); // 1280×720
    run(Command::new(env!("CARGO_BIN_EXE_pipeline2019"))
        .arg(&photo)
        .arg(dir.path()));
    // 2019's bugs are part of the baseline: it upscaled to 2200 and floored heights.
    for (w, h) in [(360, 202), (720, 405), (1200, 675), (2200, 1237)] {
        let img = image::open(dir.path().join(format!("photo-16x9-{w}.jpg"))).expect("decodes");
        assert_eq!((img.width(), img.height()), (w, h));
    }
}

#[test]
fn score_ranks_a_faithful_resize_above_a_wrong_image() {
    let dir = tempfile::tempdir().expect("tempdir");
    let photo = fixture("photo-16x9.jpg");
    let src = image::open(&photo).expect("decodes");
    let good = dir.path().join("good.png");
    src.resize_exact(320, 180, image::imageops::FilterType::Lanczos3)
        .save(&good)
        .expect("writes");
    let bad = dir.path().join("bad.png");
    image::RgbImage::from_pixel(320, 180, image::Rgb([0, 255, 0]))
        .save(&bad)
        .expect("writes");
    let out = run(Command::new(env!("CARGO_BIN_EXE_score"))
        .arg(&photo)
        .arg(&good)
        .arg(&bad));
    let scores: Vec<f64> = out
        .lines()
        .map(|l| l.rsplit('\t').next().expect("a score").parse().expect("a number"))
        .collect();
    assert_eq!(scores.len(), 2, "{out}");
    assert!(scores[0] > 70.0, "faithful resize scored {}", scores[0]);
    assert!(scores[1] < 10.0, "solid green scored {}", scores[1]);
}
