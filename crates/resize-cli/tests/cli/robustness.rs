//! Hostile input, interruption and volume: every broken file and bomb
//! fails on its own in little memory, a killed run leaves no half file and
//! a second run finishes the job, and memory stays flat over 1,000 images.

use std::fs;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{decode, expected_height, files_under, fixtures, Sandbox, TEMP_PREFIX};

/// The most memory the CLI may use on any broken file or bomb.
const MEMORY_LIMIT_KIB: u64 = 64 * 1024;

#[test]
fn every_bad_file_fails_alone_in_little_memory() {
    let bad = files_under(&fixtures().join("bad"));
    assert!(bad.len() >= 40, "fixtures/bad has {} files", bad.len());
    let mut table = Vec::new();
    for rel in &bad {
        let sb = Sandbox::new();
        let ext = rel.rsplit_once('.').map_or("jpg", |(_, e)| e);
        sb.copy_fixture(&format!("bad/{rel}"), &format!("in/x.{ext}"));
        // 16 px: no file is skipped as too narrow before its pixels are read.
        let (run, peak) = sb.run_measured(&["--sizes", "16", "--out", "out", "in"]);
        assert_eq!(run.code, 1, "{rel}: exit code\n{}\n{}", run.stdout, run.stderr);
        let report = run.json();
        assert_eq!(report["images_failed"], 1, "{rel}: {report}");
        assert!(
            !run.stdout.contains("panic") && !run.stderr.contains("panic"),
            "{rel} panicked: {}\n{}",
            run.stdout,
            run.stderr
        );
        assert!(
            sb.files("out").is_empty(),
            "{rel} left files: {:?}",
            sb.files("out")
        );
        assert!(peak < MEMORY_LIMIT_KIB, "{rel}: peak memory {} KiB", peak);
        table.push(format!("{rel}\t{:.1} MiB", peak as f64 / 1024.0));
    }
    eprintln!("peak memory per bad file:\n{}", table.join("\n"));
}

#[test]
fn hostile_but_valid_files_render_in_little_memory() {
    // (fixture, upright size of the 48 px output)
    let cases = [
        ("gif-5000-frames.gif", (48, 36)),
        ("exif-ifd-loop.jpg", (48, 72)),
        ("garbage-icc.jpg", (48, 32)),
        ("garbage-icc.png", (48, 32)),
    ];
    for (name, (w, h)) in cases {
        let sb = Sandbox::new();
        let dest = sb.path(&format!("in/{name}"));
        fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        fs::copy(fixtures().join("hostile").join(name), &dest).expect("copy");
        let (run, peak) = sb.run_measured(&["--sizes", "48", "--out", "out", "in"]);
        assert_eq!(run.code, 0, "{name}\n{}\n{}", run.stdout, run.stderr);
        let stem = name.rsplit_once('.').expect("an extension").0;
        let out = decode(&sb.path(&format!("out/{stem}-48.jpg")));
        assert_eq!((out.width(), out.height()), (w, h), "{name}");
        assert!(peak < MEMORY_LIMIT_KIB, "{name}: peak memory {peak} KiB");
    }
    // The first of the 5000 frames is red.
    let sb = Sandbox::new();
    fs::create_dir_all(sb.path("in")).expect("mkdir");
    fs::copy(
        fixtures().join("hostile/gif-5000-frames.gif"),
        sb.path("in/a.gif"),
    )
    .expect("copy");
    sb.run(&["--sizes", "48", "--formats", "png", "--out", "out", "in"])
        .expect_code(0);
    let first = decode(&sb.path("out/a-48.png")).to_rgb8();
    assert_eq!(first.get_pixel(24, 18).0, [255, 0, 0]);
}

/// Outputs of `photo-16x9.jpg` copies `in/p{i}.jpg` at widths 360 and 720.
fn expected_files(n: usize) -> Vec<String> {
    let mut v = Vec::new();
    for i in 0..n {
        for w in [360, 720] {
            for ext in ["jpg", "webp"] {
                v.push(format!("p{i:02}-{w}.{ext}"));
            }
        }
    }
    v.sort();
    v
}

/// `out/<rel>` (`p07-360.jpg`) decodes whole at its width's size.
#[track_caller]
fn check_whole(sb: &Sandbox, rel: &str) {
    let image = decode(&sb.path(&format!("out/{rel}")));
    let w: u32 = rel
        .rsplit_once('-')
        .and_then(|(_, r)| r.split('.').next())
        .and_then(|w| w.parse().ok())
        .expect("a width");
    assert_eq!(
        (image.width(), image.height()),
        (w, expected_height(1280, 720, w)),
        "{rel}"
    );
}

#[test]
fn killed_mid_run_leaves_no_half_file_and_a_rerun_finishes() {
    const N: usize = 40;
    let sb = Sandbox::new();
    for i in 0..N {
        sb.copy_fixture("photo-16x9.jpg", &format!("in/p{i:02}.jpg"));
    }
    let args = [
        "--sizes",
        "360,720",
        "--formats",
        "jpeg,webp",
        "--quiet",
        "--out",
        "out",
        "in",
    ];
    let mut child = sb
        .command(&args, &[])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start resize-cli");
    // Kill it (SIGKILL) once a few outputs exist, well before the end.
    let started = Instant::now();
    let finals = || {
        sb.files("out")
            .into_iter()
            .filter(|f| !f.rsplit('/').next().unwrap_or(f).starts_with(TEMP_PREFIX))
            .count()
    };
    while finals() < 4 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no output within a minute"
        );
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "finished before it could be killed"
        );
        thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let after_kill = sb.files("out");
    let expected = expected_files(N);
    assert!(finals() < expected.len(), "the run finished before the kill");

    // Whatever carries a final name is whole: atomic rename, never a partial write.
    for rel in after_kill.iter().filter(|f| !f.starts_with(TEMP_PREFIX)) {
        check_whole(&sb, rel);
    }

    // Run again: everything is made, no temporary file is left.
    let run = sb.run(&args);
    run.expect_code(0);
    assert_eq!(sb.files("out"), expected);
    for rel in &expected {
        check_whole(&sb, rel);
    }
    // The sources are untouched.
    let source = fs::read(fixtures().join("images/photo-16x9.jpg")).expect("fixture");
    for i in 0..N {
        assert!(fs::read(sb.path(&format!("in/p{i:02}.jpg"))).expect("source") == source);
    }
    eprintln!(
        "killed after {} of {} files (temporaries included)",
        after_kill.len(),
        expected.len()
    );
}

/// Writes `n` distinct 320×240 JPEGs into `in/`.
fn generate(sb: &Sandbox, n: usize) {
    for i in 0..n {
        let (r, g) = ((i * 37 % 256) as u8, (i * 91 % 256) as u8);
        let img = image::RgbImage::from_fn(320, 240, |x, y| {
            image::Rgb([r ^ (x as u8), g ^ (y as u8), (x + y) as u8])
        });
        let path = sb.path(&format!("in/{:02}/g{i:04}.jpg", i % 10));
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        img.save(&path).expect("write jpeg");
    }
}

#[test]
fn a_thousand_images_in_flat_memory() {
    let peak = |n: usize| {
        let sb = Sandbox::new();
        generate(&sb, n);
        let (run, peak) =
            sb.run_measured(&["--jobs", "2", "--sizes", "64,160", "--json", "--out", "out", "in"]);
        assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
        let report = run.json();
        assert_eq!(report["images_written"], n as u64, "{report}");
        assert_eq!(sb.files("out").len(), 2 * n);
        peak
    };
    let small = peak(20);
    let large = peak(1000);
    eprintln!("peak memory: 20 images {small} KiB, 1000 images {large} KiB");
    // Flat: fifty times the images may not cost more than a few MiB more
    // (the report keeps one line per image).
    assert!(
        large < small + 8 * 1024,
        "20 images: {small} KiB, 1000 images: {large} KiB"
    );
}

/// Large photos under `--memory`: what fits is written (two 72 MP JPEGs and
/// a 60 MP PNG, which stream), an image whose estimate passes the whole
/// limit (a 40 MP lossless WebP, decoded whole) fails alone with both
/// figures, and the
/// process stays near the limit (the limit bounds the images; the program
/// itself takes a few MB more).
#[test]
fn large_photos_within_a_memory_limit() {
    use resize_testkit::large::{large_photo, Kind};
    let sb = Sandbox::new();
    let jpeg = large_photo(Kind::Jpeg, 10752, 6720);
    sb.write("in/big-0.jpg", &jpeg);
    sb.write("in/big-1.jpg", &jpeg);
    sb.write("in/wide.png", &large_photo(Kind::Png, 10000, 6000));
    sb.write("in/whole.webp", &large_photo(Kind::WebPLossless, 8000, 5000));
    // (limit MB, whether the WebP fits)
    for (limit, webp_fits) in [(200u64, false), (400, true)] {
        let memory = format!("{limit}M");
        let (run, peak_kib) = sb.run_measured(&[
            "--memory",
            &memory,
            "--formats",
            "jpeg,webp",
            "--force",
            "--out",
            "out",
            "in",
        ]);
        let report = run.json();
        eprintln!("--memory {memory}: peak {} MiB", peak_kib / 1024);
        for i in 0..2 {
            for (w, h) in [(360, 225), (720, 450), (1200, 750), (2200, 1375)] {
                for ext in ["jpg", "webp"] {
                    let out = sb.path(&format!("out/big-{i}-{w}.{ext}"));
                    assert_eq!(
                        image::image_dimensions(&out).unwrap(),
                        (w, h),
                        "{}",
                        out.display()
                    );
                }
            }
        }
        assert_eq!(
            image::image_dimensions(sb.path("out/wide-2200.jpg")).unwrap(),
            (2200, 1320)
        );
        if webp_fits {
            run.expect_code(0);
            assert_eq!(
                image::image_dimensions(sb.path("out/whole-2200.jpg")).unwrap(),
                (2200, 1375)
            );
        } else {
            run.expect_code(1);
            let reason = report["failed"][0]["reason"].as_str().unwrap_or_default();
            assert_eq!(report["failed"][0]["key"], "whole.webp", "{report}");
            assert!(
                reason.starts_with("cannot render `whole.webp`: needs about ")
                    && reason.ends_with(&format!("MB of memory; the limit is {limit} MB (--memory)")),
                "{reason}"
            );
            assert!(!sb.path("out/whole-360.jpg").exists());
        }
        assert!(
            peak_kib < (limit + 32) * 1024,
            "--memory {memory}: peak {} MiB",
            peak_kib / 1024
        );
    }
}

/// What a newcomer's folder holds besides photos: a link to a photo that is
/// gone fails with its target named; a newline in a name is printed
/// escaped; an output folder that cannot be made is said once, with its
/// path, before any work.
#[test]
fn odd_folders_are_reported_plainly() {
    let sb = Sandbox::new();
    sb.copy_fixture("orientation/orient-1.jpg", "in/a\nb.jpg");
    #[cfg(unix)]
    std::os::unix::fs::symlink("gone.jpg", sb.path("in/link.jpg")).expect("symlink");
    let run = sb.run(&["--sizes", "60", "--out", "out", "in"]);
    run.expect_code(1);
    assert!(
        run.stderr.contains("ok   a\\nb.jpg (1 variants)"),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout
            .contains("failed: link.jpg: is a symbolic link to `gone.jpg`, which does not exist"),
        "{}",
        run.stdout
    );

    sb.write("file", b"not a folder");
    let run = sb.run(&["--sizes", "60", "--out", "file/out", "in"]);
    run.expect_code(2);
    assert!(
        run.stderr
            .contains("cannot create the output folder file/out: Not a directory"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr.matches("error:").count(), 1, "{}", run.stderr);
}
