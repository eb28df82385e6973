//! Which files are sources and where their outputs go: replacements, odd
//! names, outputs never taken for sources, sources never overwritten.

use std::fs;

use crate::support::{at, decode, reasons, set_mtime, status_of, Sandbox};

const CARD: &str = "orientation/orient-1.jpg";

/// Output paths under `out/` with their sizes.
type Outputs = &'static [(&'static str, (u32, u32))];

/// `--replace original:resized` maps whole leading directories; odd names
/// (spaces, `+`, `%`, non-ASCII, several dots, upper-case extension) pass
/// through unchanged; files outside `original/` and non-images are skipped.
#[test]
fn replacements_and_odd_names() {
    let sb = Sandbox::new();
    sb.copy_fixture(CARD, "in/original/trips/a.jpg");
    sb.copy_fixture(CARD, "in/original/x y+z%.jpg");
    sb.copy_fixture("alpha.png", "in/original/naïve.png");
    sb.copy_fixture(CARD, "in/original/photo.v2.JPG");
    sb.copy_fixture(CARD, "in/other/b.jpg");
    sb.copy_fixture(CARD, "in/my-original/c.jpg");
    sb.write("in/original/archive.tar.gz", b"not an image");

    let run = sb.run(&[
        "--sizes",
        "60",
        "--replace",
        "original:resized",
        "--json",
        "--out",
        "out",
        "in",
    ]);
    run.expect_code(0);
    let report = run.json();

    // (source key, expected status, output paths under out/ with sizes)
    let table: &[(&str, &str, Outputs)] = &[
        (
            "original/trips/a.jpg",
            "written",
            &[("resized/trips/a-60.jpg", (60, 40))],
        ),
        (
            "original/x y+z%.jpg",
            "written",
            &[("resized/x y+z%-60.jpg", (60, 40))],
        ),
        (
            "original/naïve.png",
            "written",
            &[("resized/naïve-60.jpg", (60, 45))],
        ),
        (
            "original/photo.v2.JPG",
            "written",
            &[("resized/photo.v2-60.jpg", (60, 40))],
        ),
        ("other/b.jpg", "skipped", &[]),
        ("my-original/c.jpg", "skipped", &[]),
        ("original/archive.tar.gz", "skipped", &[]),
    ];
    let mut all_outputs = Vec::new();
    for &(key, status, outputs) in table {
        check(&sb, &report, key, status, outputs);
        all_outputs.extend(outputs.iter().map(|o| o.0.to_owned()));
    }
    all_outputs.sort();
    assert_eq!(sb.files("out"), all_outputs, "exactly the outputs in the table");
    assert_eq!(report["images"], table.len());

    let skipped = reasons(&report, "skipped");
    assert_eq!(
        skipped["other/b.jpg"],
        "not under any source prefix of REPLACEMENTS"
    );
    assert_eq!(
        skipped["my-original/c.jpg"],
        "not under any source prefix of REPLACEMENTS"
    );
    assert!(
        skipped["original/archive.tar.gz"].starts_with("not an image"),
        "{}",
        skipped["original/archive.tar.gz"]
    );
    // The sources are untouched and nothing was written into the input.
    assert_eq!(sb.files("in").len(), 7);
}

/// One row: `key`'s status in the report, and each of its outputs on disk
/// at its size and listed in the report.
#[track_caller]
fn check(sb: &Sandbox, report: &serde_json::Value, key: &str, status: &str, outputs: &[(&str, (u32, u32))]) {
    assert_eq!(status_of(report, key), status, "status of {key}");
    let line = report["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|l| l["key"] == key)
        .expect("a result line");
    let listed: Vec<&str> = line["variants"]
        .as_array()
        .expect("variants")
        .iter()
        .map(|v| v["key"].as_str().expect("variant key"))
        .collect();
    let want: Vec<&str> = outputs.iter().map(|o| o.0).collect();
    assert_eq!(listed, want, "variants of {key}");
    for (rel, size) in outputs {
        let image = decode(&sb.path(&format!("out/{rel}")));
        assert_eq!((image.width(), image.height()), *size, "size of {rel}");
    }
}

/// Without replacements, a source shaped like an output (`a-60.jpg` with
/// `--sizes 60`) is not processed (named on the command line, it fails with
/// the reason), and writing into the input directory refuses to replace
/// it: `a.jpg` fails, exit 1, and the source bytes are unchanged.
#[test]
fn never_overwrites_a_source_in_place() {
    let sb = Sandbox::new();
    sb.copy_fixture(CARD, "d/a.jpg");
    let other = sb.copy_fixture("photo-4x3.jpg", "d/a-60.jpg");
    let before = fs::read(&other).expect("read");
    // Older than a.jpg, so it cannot pass for an up-to-date output.
    set_mtime(&other, at(1_000_000_000));

    let run = sb.run(&["--sizes", "60", "--json", "--out", "d", "d/a.jpg", "d/a-60.jpg"]);
    run.expect_code(1);
    let report = run.json();
    let failed = reasons(&report, "failed");
    assert_eq!(
        failed["a-60.jpg"],
        "not processed: looks like an output of this recipe"
    );
    assert_eq!(failed.len(), 2, "{failed:?}");
    insta::assert_snapshot!(sb.scrub(&failed["a.jpg"]), @"cannot write `a-60.jpg`: refusing to overwrite source file `[TMP]/d/a-60.jpg`");
    assert_eq!(
        fs::read(&other).expect("read"),
        before,
        "source a-60.jpg was changed"
    );
    assert_eq!(sb.files("d"), ["a-60.jpg", "a.jpg"]);
}

/// Regression (found by the CLI suite): an input directory that is the output directory, or inside it, is
/// silently not walked at all: `walk::collect` skips every directory
/// `is_within` the output, and the input itself is. The run reports
/// "0 images", exits 0 and writes nothing. `resize-cli --out site site/photos`
/// or an in-place `--out photos photos` therefore does nothing, without a
/// word. Expected: the input is walked (only the output subtree *inside* an
/// input is skipped), `a-60.jpg` is skipped as output-shaped and `a.jpg`
/// fails, refusing to overwrite it; in `site/photos`, `a.jpg` is written to
/// `site/a-60.jpg`.
#[test]
fn input_directory_equal_to_or_inside_the_output_is_processed() {
    let sb = Sandbox::new();
    sb.copy_fixture(CARD, "d/a.jpg");
    let other = sb.copy_fixture("photo-4x3.jpg", "d/a-60.jpg");
    let before = fs::read(&other).expect("read");
    set_mtime(&other, at(1_000_000_000));
    let run = sb.run(&["--sizes", "60", "--json", "--out", "d", "d"]);
    assert_eq!(run.json()["images"], 2, "in-place run found no sources");
    run.expect_code(1);
    assert_eq!(status_of(&run.json(), "a.jpg"), "failed");
    assert_eq!(status_of(&run.json(), "a-60.jpg"), "skipped");
    assert_eq!(fs::read(&other).expect("read"), before);

    sb.copy_fixture(CARD, "site/photos/a.jpg");
    let run = sb.run(&["--sizes", "60", "--json", "--out", "site", "site/photos"]);
    run.expect_code(0);
    assert_eq!(run.json()["images_written"], 1);
    assert_eq!(sb.files("site"), ["a-60.jpg", "photos/a.jpg"]);
}

/// An output directory inside the input: the second run does not take the
/// first run's outputs for sources.
#[test]
fn out_dir_inside_input_is_not_walked() {
    let sb = Sandbox::new();
    sb.copy_fixture(CARD, "in/a.jpg");
    sb.copy_fixture(CARD, "in/sub/b.jpg");
    for round in 1..=2 {
        let run = sb.run(&["--sizes", "60", "--json", "--out", "in/out", "in"]);
        run.expect_code(0);
        let report = run.json();
        let keys: Vec<&str> = report["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|l| l["key"].as_str().expect("key"))
            .collect();
        assert_eq!(keys, ["a.jpg", "sub/b.jpg"], "sources of run {round}");
    }
    assert_eq!(
        sb.files("in"),
        ["a.jpg", "out/a-60.jpg", "out/sub/b-60.jpg", "sub/b.jpg"]
    );
    // Also with an extra size, which changes what looks like an output.
    sb.run(&["--sizes", "60,100", "--out", "in/out", "in"])
        .expect_code(0);
    let files = sb.files("in");
    assert!(
        !files.iter().any(|f| f.contains("-60-")),
        "output used as a source: {files:?}"
    );
    assert_eq!(
        files,
        [
            "a.jpg",
            "out/a-100.jpg",
            "out/a-60.jpg",
            "out/sub/b-100.jpg",
            "out/sub/b-60.jpg",
            "sub/b.jpg"
        ]
    );
}

/// Regression: two sources differing only in extension (`a.jpg`, `a.png`)
/// map to the same output keys (`a-60.jpg`); once the last writer silently
/// won. Now the first key in sort order is processed and the other fails
/// with a reason (exit 1), never a silent overwrite.
#[test]
fn sources_that_map_to_the_same_output_are_reported() {
    let sb = Sandbox::new();
    sb.copy_fixture(CARD, "in/a.jpg");
    sb.copy_fixture("alpha.png", "in/a.png");
    let run = sb.run(&["--sizes", "60", "--json", "--out", "out", "in"]);
    run.expect_code(1);
    let failed = reasons(&run.json(), "failed");
    assert!(
        failed.contains_key("a.jpg") || failed.contains_key("a.png"),
        "{failed:?}"
    );
}

/// Of two sources whose outputs would collide (`a.gif`, `a.png`), the
/// first that takes its outputs keeps them; one that fails, or is too
/// narrow to write anything, reserves nothing.
#[test]
fn a_failed_source_reserves_no_outputs() {
    // (files in `in/` with their fixtures, failed keys, written keys)
    type Case = (
        &'static [(&'static str, &'static str)],
        &'static [&'static str],
        &'static [&'static str],
    );
    let cases: &[Case] = &[
        (
            &[
                ("a.gif", "bad/truncated/animated-5pct.gif"),
                ("a.png", "alpha.png"),
            ],
            &["a.gif"],
            &["a.png"],
        ),
        (
            &[("a.gif", "animated.gif"), ("a.png", "alpha.png")],
            &["a.png"],
            &["a.gif"],
        ),
        (
            &[("a.gif", "one-pixel.png"), ("a.png", "alpha.png")],
            &[],
            &["a.png"],
        ),
    ];
    for (files, failed, written) in cases {
        let sb = Sandbox::new();
        for (name, fixture) in *files {
            sb.copy_fixture(fixture, &format!("in/{name}"));
        }
        let run = sb.run(&["--sizes", "40", "--json", "--out", "out", "in"]);
        let report = run.json();
        let got: Vec<String> = reasons(&report, "failed").into_keys().collect();
        assert_eq!(got, *failed, "{files:?}: {}", run.stderr);
        let got: Vec<&str> = report["results"]
            .as_array()
            .expect("results")
            .iter()
            .filter(|l| l["status"] == "written")
            .map(|l| l["key"].as_str().expect("key"))
            .collect();
        assert_eq!(got, *written, "{files:?}");
        run.expect_code(if failed.is_empty() { 0 } else { 1 });
    }
}
