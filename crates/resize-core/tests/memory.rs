//! The memory estimate (`working_set`) against measured peaks.
//!
//! Each case renders one source in a child process (this test binary run
//! again for the `child` test) and reads the kernel's peak resident size
//! (`VmHWM`) before and after: a fresh process, so no earlier test's freed
//! heap hides the render's allocations, and libjpeg's and libwebp's C
//! allocations count too. The estimate must cover the measured peak and
//! stay within 1.5 × it plus 16 MB: high enough to be safe, low enough
//! that the budget admits as many images as fit.
//!
//! Linux only (`/proc/self/status`).
#![cfg(target_os = "linux")]

use std::path::PathBuf;
use std::process::Command;

use resize_core::{render, working_set, Format, Recipe};
use resize_testkit::large::{large_photo, Kind};

const CHILD_ENV: &str = "RESIZE_MEMORY_CHILD";
const MB: f64 = (1u64 << 20) as f64;

fn recipe(formats: &[Format]) -> Recipe {
    Recipe::builder().formats(formats).build().unwrap()
}

/// A `/proc/self/status` field in bytes.
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    let kb: u64 = line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kb * 1024
}

/// The child: renders the file named by `CHILD_ENV` and prints the growth
/// of the peak resident size. Does nothing in a normal run.
#[test]
fn child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (path, formats) = spec.split_once('|').unwrap();
    let formats: Vec<Format> = formats.split(',').map(|f| Format::parse(f).unwrap()).collect();
    let bytes = std::fs::read(path).unwrap();
    // Start rayon's threads before the baseline.
    rayon::broadcast(|_| ());
    let before = status_bytes("VmRSS:");
    let out = render(&bytes, &recipe(&formats)).unwrap();
    assert!(!out.is_empty());
    let peak = status_bytes("VmHWM:");
    println!("\nPEAK {}", peak.saturating_sub(before));
}

/// Measures one render in a child; the bytes are the source's, which the
/// child holds before its baseline (the estimate counts them).
fn measure(bytes: &[u8], formats: &[Format]) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("source");
    std::fs::write(&path, bytes).unwrap();
    let names: Vec<String> = formats.iter().map(|f| f.to_string()).collect();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, format!("{}|{}", path.display(), names.join(",")))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.split("PEAK ").nth(1))
        .unwrap_or_else(|| panic!("no PEAK line in {stdout}{}", String::from_utf8_lossy(&out.stderr)));
    line.trim().parse::<u64>().unwrap() + bytes.len() as u64
}

#[test]
fn the_estimate_covers_measured_peaks_within_its_margin() {
    use Format::{Jpeg, Png, WebP};
    // (what, source, formats)
    let cases: Vec<(&str, Vec<u8>, &[Format])> = vec![
        (
            "24 MP baseline JPEG",
            large_photo(Kind::Jpeg, 6000, 4000),
            &[Jpeg, WebP],
        ),
        (
            "24 MP progressive JPEG",
            large_photo(Kind::ProgressiveJpeg, 6000, 4000),
            &[Jpeg, WebP],
        ),
        (
            "12 MP baseline JPEG",
            large_photo(Kind::Jpeg, 4000, 3000),
            &[Jpeg],
        ),
        (
            "24 MP gray JPEG",
            large_photo(Kind::GrayJpeg, 6000, 4000),
            &[Jpeg],
        ),
        (
            "12 MP CMYK JPEG",
            large_photo(Kind::CmykJpeg, 4000, 3000),
            &[Jpeg, WebP],
        ),
        ("12 MP RGB PNG", large_photo(Kind::Png, 4000, 3000), &[Jpeg, WebP]),
        (
            "12 MP RGBA PNG",
            large_photo(Kind::PngAlpha, 4000, 3000),
            &[Jpeg, WebP, Png],
        ),
        (
            "6 MP 16-bit RGBA PNG",
            large_photo(Kind::Png16, 3000, 2000),
            &[Jpeg],
        ),
        (
            "6 MP lossless WebP",
            large_photo(Kind::WebPLossless, 3000, 2000),
            &[WebP],
        ),
    ];
    let mut table =
        String::from("| source | formats | measured MB | estimate MB | ratio |\n|---|---|---:|---:|---:|\n");
    let mut failures = Vec::new();
    for (what, bytes, formats) in &cases {
        let estimate = working_set(bytes, &recipe(formats)).unwrap();
        let measured = measure(bytes, formats);
        let ratio = estimate as f64 / measured as f64;
        let names: Vec<String> = formats.iter().map(|f| f.to_string()).collect();
        table += &format!(
            "| {what} | {} | {:.0} | {:.0} | {ratio:.2} |\n",
            names.join("+"),
            measured as f64 / MB,
            estimate as f64 / MB
        );
        if estimate < measured || estimate as f64 > 1.5 * measured as f64 + 16.0 * MB {
            failures.push(*what);
        }
    }
    println!("{table}");
    assert!(failures.is_empty(), "outside the margin: {failures:?}\n{table}");
}
