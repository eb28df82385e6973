//! Runs over existing outputs (up to date, `--force`, changed sources),
//! `--dry-run`, the `--json` and text reports, and temporary files.

use std::collections::BTreeMap;
use std::fs;

use crate::support::{
    at, decode, mtime, reasons, redact, set_mtime, status_of, variants, Sandbox, STATE_FILE, TEMP_PREFIX,
};

const CARD: &str = "orientation/orient-1.jpg";

/// Sources dated 2001; a run that rewrites an output renames a new file
/// into place (a new inode), one that keeps it leaves the file alone.
#[test]
fn incremental_runs_force_and_changed_sources() {
    let sb = Sandbox::new();
    let a = sb.copy_fixture(CARD, "in/a.jpg");
    let b = sb.copy_fixture("alpha.png", "in/b.png");
    set_mtime(&a, at(1_000_000_000));
    set_mtime(&b, at(1_000_000_000));
    let args = [
        "--sizes",
        "60,100",
        "--formats",
        "jpeg,png",
        "--json",
        "--out",
        "out",
        "in",
    ];
    let outputs = [
        "a-100.jpg",
        "a-100.png",
        "a-60.jpg",
        "a-60.png",
        "b-100.jpg",
        "b-100.png",
        "b-60.jpg",
        "b-60.png",
    ];

    let first = sb.run(&args);
    first.expect_code(0);
    assert_eq!(first.json()["images_written"], 2);
    assert_eq!(first.json()["variants_written"], 8);
    assert_eq!(sb.files("out"), outputs);
    let contents = |sb: &Sandbox| -> Vec<Vec<u8>> {
        outputs
            .iter()
            .map(|o| fs::read(sb.path(&format!("out/{o}"))).expect("read output"))
            .collect()
    };
    let before = contents(&sb);
    // A rewrite renames a new file into place: a new inode.
    let inode = |sb: &Sandbox, o: &str| {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(sb.path(&format!("out/{o}"))).expect("output").ino()
    };

    // (what, extra args, change before the run, sources expected rebuilt).
    // A source's version is the MD5 of its bytes: touching it or writing
    // the same bytes again rebuilds nothing; other bytes rebuild it.
    type Change = fn(&Sandbox);
    let table: [(&str, &[&str], Change, &[&str]); 6] = [
        ("second run", &[], |_| {}, &[]),
        ("--force", &["--force"], |_| {}, &["a", "b"]),
        (
            "a.jpg touched",
            &[],
            |sb| set_mtime(&sb.path("in/a.jpg"), at(1_600_000_000)),
            &[],
        ),
        (
            "b.png rewritten, same bytes",
            &[],
            |sb| rewrite(&sb.path("in/b.png")),
            &[],
        ),
        (
            "b.png replaced by another image",
            &[],
            |sb| {
                sb.copy_fixture("gray-alpha.png", "in/b.png");
            },
            &["b"],
        ),
        (
            "b.png back",
            &[],
            |sb| {
                sb.copy_fixture("alpha.png", "in/b.png");
            },
            &["b"],
        ),
    ];
    for (what, extra, change, rebuilt) in table {
        let inodes: Vec<u64> = outputs.iter().map(|o| inode(&sb, o)).collect();
        change(&sb);
        let all: Vec<&str> = args.iter().chain(extra).copied().collect();
        let run = sb.run(&all);
        run.expect_code(0);
        let report = run.json();
        assert_eq!(report["images_written"], rebuilt.len(), "{what}: images written");
        assert_eq!(
            report["images_skipped"],
            2 - rebuilt.len(),
            "{what}: images skipped"
        );
        assert_eq!(
            report["variants_written"],
            4 * rebuilt.len(),
            "{what}: variants written"
        );
        for (key, reason) in reasons(&report, "skipped") {
            assert_eq!(reason, "all variants are up to date", "{what}: {key}");
        }
        assert_eq!(sb.files("out"), outputs, "{what}: files");
        for (o, was) in outputs.iter().zip(inodes) {
            let was_rebuilt = rebuilt.iter().any(|r| o.starts_with(&format!("{r}-")));
            assert_eq!(inode(&sb, o) != was, was_rebuilt, "{what}: {o} rewritten");
            decode(&sb.path(&format!("out/{o}")));
        }
    }
    // Same inputs, same encoder: rebuilt outputs have the same bytes.
    assert_eq!(contents(&sb), before);
}

/// The state file in the output root records each variant's source, the
/// source's version and the recipe's fingerprint: a rerun writes nothing,
/// a new width writes only it, a JPEG quality change rewrites only the
/// JPEGs, a WebP quality change only the WebPs; without the state file the
/// run judges by modification time and records the state for next time.
#[test]
fn a_recipe_change_rewrites_only_what_it_affects() {
    let sb = Sandbox::new();
    sb.copy_fixture(CARD, "in/a.jpg");
    sb.copy_fixture("alpha.png", "in/sub/b.png");
    let base = ["--json", "--formats", "jpeg,webp", "--out", "out", "in"];
    let run = |extra: &[&str]| {
        let all: Vec<&str> = extra.iter().chain(&base).copied().collect();
        let run = sb.run(&all);
        run.expect_code(0);
        let mut written: Vec<String> = variants(&run.json())
            .into_iter()
            .filter(|(_, v)| v.3.is_some())
            .map(|(k, _)| k)
            .collect();
        written.sort();
        written
    };
    // The settings of a step: widths, then JPEG quality, WebP quality and
    // background when given.
    let with = |widths: &'static str, rest: &[(&'static str, &'static str)]| -> Vec<&'static str> {
        let mut args = vec!["--sizes", widths];
        for (flag, value) in rest {
            args.extend([*flag, *value]);
        }
        args
    };
    let all = [
        ("--jpeg-quality", "70"),
        ("--webp-quality", "50"),
        ("--background", "000000"),
    ];
    let jpegs = [
        "a-100.jpg",
        "a-60.jpg",
        "a-80.jpg",
        "sub/b-100.jpg",
        "sub/b-60.jpg",
        "sub/b-80.jpg",
    ];
    let webps = jpegs.map(|k| k.replace(".jpg", ".webp"));
    let webps: Vec<&str> = webps.iter().map(String::as_str).collect();
    // (what, args, variants written)
    let steps: [(&str, Vec<&str>, &[&str]); 8] = [
        (
            "first run",
            with("60,100", &[]),
            &[
                "a-100.jpg",
                "a-100.webp",
                "a-60.jpg",
                "a-60.webp",
                "sub/b-100.jpg",
                "sub/b-100.webp",
                "sub/b-60.jpg",
                "sub/b-60.webp",
            ],
        ),
        ("rerun", with("60,100", &[]), &[]),
        (
            "a width added",
            with("60,80,100", &[]),
            &["a-80.jpg", "a-80.webp", "sub/b-80.jpg", "sub/b-80.webp"],
        ),
        ("a width dropped", with("60,100", &[]), &[]),
        ("JPEG quality", with("60,80,100", &all[..1]), &jpegs),
        ("WebP quality", with("60,80,100", &all[..2]), &webps),
        (
            "the background behind transparency (JPEG only)",
            with("60,80,100", &all),
            &jpegs,
        ),
        ("nothing changed", with("60,80,100", &all), &[]),
    ];
    for (what, args, expect) in steps {
        assert_eq!(run(&args), expect, "{what}");
    }
    let state: serde_json::Value =
        serde_json::from_slice(&fs::read(sb.path(&format!("out/{STATE_FILE}"))).expect("state file"))
            .expect("state file is JSON");
    let entry = &state["variants"]["sub/b-60.jpg"]["metadata"];
    assert_eq!(entry["resize-source"], "sub/b.png");
    // A local source's version is the MD5 of its bytes (S3's ETag).
    assert_eq!(
        entry["resize-source-etag"],
        md5_hex(&fs::read(sb.path("in/sub/b.png")).expect("source"))
    );
    assert_eq!(entry["resize-fingerprint"].as_str().map(str::len), Some(16));

    // Without the state file, outputs newer than their sources are current
    // (the modification-time rule), so a quality change goes unseen once;
    // the run records the state, and the next change is seen again.
    let later = |jpeg: &'static str, webp: &'static str| {
        with(
            "60,80,100",
            &[
                ("--jpeg-quality", jpeg),
                ("--webp-quality", webp),
                ("--background", "000000"),
            ],
        )
    };
    fs::remove_file(sb.path(&format!("out/{STATE_FILE}"))).expect("remove state");
    assert_eq!(
        run(&later("60", "50")),
        Vec::<String>::new(),
        "no state: judged by time"
    );
    assert!(
        sb.path(&format!("out/{STATE_FILE}")).exists(),
        "the state is recorded again"
    );
    assert_eq!(
        run(&later("60", "40")),
        [
            "a-100.webp",
            "a-60.webp",
            "a-80.webp",
            "sub/b-100.webp",
            "sub/b-60.webp",
            "sub/b-80.webp"
        ],
        "state recorded: a WebP change is seen"
    );
    // A state file that is not JSON is an empty state: judged by time.
    fs::write(sb.path(&format!("out/{STATE_FILE}")), b"{ not json").expect("write");
    assert_eq!(run(&later("50", "40")), Vec::<String>::new(), "unreadable state");
}

/// MD5 in hex, computed apart from the tool (`md5sum`).
fn md5_hex(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("f");
    fs::write(&path, bytes).expect("write");
    let out = std::process::Command::new("md5sum")
        .arg(&path)
        .output()
        .expect("md5sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Two runs on the same output folder at once (different sources, then
/// the same ones): neither removes the other's temporary files, and the
/// state file ends up recording every variant of both, so a third run
/// writes nothing.
#[test]
fn concurrent_runs_share_the_output_folder() {
    let sb = Sandbox::new();
    for i in 0..12 {
        sb.copy_fixture("photo-4x3.jpg", &format!("one/p{i:02}.jpg"));
        sb.copy_fixture("photo-16x9.jpg", &format!("two/q{i:02}.jpg"));
    }
    let args = |input: &'static str| -> Vec<&'static str> {
        vec![
            "--json",
            "--sizes",
            "96,200,360",
            "--formats",
            "jpeg,webp",
            "--out",
            "out",
            input,
        ]
    };
    let (first, second) = std::thread::scope(|s| {
        let a = s.spawn(|| sb.run(&args("one")));
        let b = s.spawn(|| sb.run(&args("two")));
        (a.join().expect("first run"), b.join().expect("second run"))
    });
    first.expect_code(0);
    second.expect_code(0);
    assert_eq!(first.json()["variants_written"], 72);
    assert_eq!(second.json()["variants_written"], 72);
    let state: serde_json::Value =
        serde_json::from_slice(&fs::read(sb.path(&format!("out/{STATE_FILE}"))).expect("state file"))
            .expect("state file is JSON");
    assert_eq!(
        state["variants"].as_object().map(|m| m.len()),
        Some(144),
        "entries of both runs"
    );
    for input in ["one", "two"] {
        let again = sb.run(&args(input));
        again.expect_code(0);
        assert_eq!(again.json()["variants_written"], 0, "{input} again");
    }
    // The same sources from two runs at once: both may write, neither fails.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| sb.run(&[&["--force"], &args("one")[..]].concat()));
        let b = s.spawn(|| sb.run(&[&["--force"], &args("one")[..]].concat()));
        (a.join().expect("run"), b.join().expect("run"))
    });
    a.expect_code(0);
    b.expect_code(0);
    assert_eq!(sb.run(&args("one")).json()["variants_written"], 0);
    let leftovers: Vec<String> = sb
        .files("out")
        .into_iter()
        .filter(|f| f.contains(TEMP_PREFIX))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Rewrites a file with the same bytes (new mtime: now).
fn rewrite(path: &std::path::Path) {
    let bytes = fs::read(path).expect("read");
    fs::write(path, bytes).expect("write");
}

/// `--dry-run` writes nothing, not even the output directory, and lists
/// the planned variants; over up-to-date outputs it plans nothing.
#[test]
fn dry_run_writes_nothing() {
    let sb = Sandbox::new();
    sb.copy_fixture(CARD, "in/a.jpg");
    sb.copy_fixture("photo-16x9.jpg", "in/trips/b.jpg");
    sb.copy_fixture("animated.gif", "in/small.gif");
    sb.copy_fixture("bad/truncated-png.png", "in/broken.png");
    let args = [
        "--sizes",
        "60,100,720",
        "--formats",
        "jpeg,webp",
        "--json",
        "--out",
        "out",
        "in",
    ];

    let run = sb.run(&[&["--dry-run"], &args[..]].concat());
    // A local file is read whole, so the dry run tells the cut PNG as the
    // real run does (a bucket's object is read only as far as its header).
    run.expect_code(1);
    assert!(!sb.path("out").exists(), "dry run created the output directory");
    assert_eq!(sb.files("in").len(), 4, "dry run wrote into the input");
    let mut report = run.json();
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["variants_planned"], 12);
    assert_eq!(report["variants_written"], 0);
    assert_eq!(report["bytes_out"], 0);
    assert!(
        variants(&report).values().all(|v| v.3.is_none()),
        "dry run reports encoded bytes"
    );
    redact(&mut report, &["seconds", "peak_rss_bytes"]);
    insta::assert_json_snapshot!("dry_run_report", report);

    // Now for real: what was planned is written, except for the broken file.
    let strip = |m: BTreeMap<String, (u32, u32, String, Option<u64>)>| -> Vec<(String, u32, u32, String)> {
        m.into_iter().map(|(k, v)| (k, v.0, v.1, v.2)).collect()
    };
    let mut planned = strip(variants(&report));
    planned.retain(|v| !v.0.starts_with("broken-"));
    let real = sb.run(&args);
    real.expect_code(1);
    assert_eq!(
        reasons(&real.json(), "failed").keys().collect::<Vec<_>>(),
        ["broken.png"]
    );
    assert_eq!(strip(variants(&real.json())), planned);
    let files = sb.files("out");
    assert_eq!(files, planned.iter().map(|v| v.0.clone()).collect::<Vec<_>>());

    // Over up-to-date outputs a dry run plans nothing and touches nothing.
    let times: Vec<_> = files
        .iter()
        .map(|f| mtime(&sb.path(&format!("out/{f}"))))
        .collect();
    let again = sb.run(&[&["--dry-run"], &args[..]].concat());
    again.expect_code(1);
    let again = again.json();
    assert_eq!(again["variants_planned"], 0);
    assert_eq!(status_of(&again, "broken.png"), "failed");
    for key in ["a.jpg", "trips/b.jpg", "small.gif"] {
        assert_eq!(
            reasons(&again, "skipped")[key],
            "all variants are up to date",
            "{key}"
        );
    }
    let times_after: Vec<_> = files
        .iter()
        .map(|f| mtime(&sb.path(&format!("out/{f}"))))
        .collect();
    assert_eq!(times, times_after);
    assert_eq!(sb.files("out"), files);
}

/// The `--json` report of a small run, with the time and the encoders'
/// byte counts redacted (each byte count is checked against the file).
#[test]
fn json_report() {
    let sb = Sandbox::new();
    sb.copy_fixture(CARD, "in/a.jpg");
    sb.copy_fixture("alpha.png", "in/sub/b.png");
    sb.copy_fixture("one-pixel.png", "in/dot.png");
    sb.write("in/notes.txt", b"hello");
    sb.copy_fixture("bad/huge-header-png.png", "in/huge.png");
    let run = sb.run(&[
        "--sizes",
        "60,100",
        "--formats",
        "jpeg,png",
        "--json",
        "--out",
        "out",
        "in",
    ]);
    run.expect_code(1);
    let mut report = run.json();

    let mut total = 0;
    for (key, (_, _, _, bytes)) in variants(&report) {
        let len = fs::metadata(sb.path(&format!("out/{key}")))
            .expect("output")
            .len();
        assert!(len > 0, "{key} is empty");
        assert_eq!(bytes, Some(len), "bytes of {key}");
        total += len;
    }
    assert_eq!(report["bytes_out"], total);
    let bytes_in: u64 = ["in/a.jpg", "in/sub/b.png", "in/dot.png", "in/huge.png"]
        .iter()
        .map(|f| fs::metadata(sb.path(f)).expect("source").len())
        .sum();
    assert_eq!(report["bytes_in"], bytes_in);

    redact(
        &mut report,
        &[
            "seconds",
            "peak_rss_bytes",
            "bytes_out",
            "results/*/variants/*/bytes",
        ],
    );
    insta::assert_json_snapshot!("json_report", report);
}

/// The text summary on stdout (time redacted) and per-image lines on stderr.
#[test]
fn text_report() {
    let sb = Sandbox::new();
    sb.copy_fixture(CARD, "in/a.jpg");
    sb.copy_fixture("bad/empty.jpg", "in/empty.jpg");
    sb.write("in/notes.txt", b"hello");
    let run = sb.run(&["--sizes", "60", "--out", "out", "in"]);
    run.expect_code(1);
    let (summary, rest) = run.stdout.split_once('\n').expect("a summary line");
    let (peak, rest) = rest.split_once('\n').expect("a peak memory line");
    assert!(
        peak.starts_with("peak memory ") && peak.ends_with(" MB"),
        "{peak}"
    );
    // "…; 1.7 KiB in, 1.0 KiB out; 0.01 s": redact the encoder's bytes and the time.
    let parts: Vec<&str> = summary.split("; ").collect();
    let [counts, variants, bytes, secs] = parts[..] else {
        panic!("unexpected summary {summary:?}");
    };
    assert!(
        secs.ends_with(" s") && secs.trim_end_matches(" s").parse::<f64>().is_ok(),
        "{secs}"
    );
    let (bytes_in, bytes_out) = bytes.split_once(", ").expect("in, out");
    assert!(
        bytes_out.ends_with(" out") && !bytes_out.starts_with("0 B"),
        "{bytes_out}"
    );
    insta::assert_snapshot!(format!("{counts}; {variants}; {bytes_in}, [bytes] out; [seconds]\n{rest}"), @r"
    3 images: 1 written, 1 skipped, 1 failed; 1 variants written; 1.7 KiB in, [bytes] out; [seconds]
    failed: empty.jpg: cannot render `empty.jpg`: input is empty
    ");
    let mut lines: Vec<&str> = run.stderr.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            "FAIL empty.jpg: cannot render `empty.jpg`: input is empty",
            "ok   a.jpg (1 variants)",
            "skip notes.txt: not an image: extension is not one of jpg, jpeg, png, webp, gif, tif, tiff",
        ]
    );
}

/// Regression (found by the CLI suite): `--quiet` ("No progress bar or per-image lines; only the summary")
/// is ignored when stderr is not a terminal: `Progress::new` only uses
/// `quiet` to decide on the bar, and without a bar `image_done` always
/// prints `ok …`/`skip …`/`FAIL …` lines to stderr. So in CI, cron and pipes
/// (exactly where -q is used) every image still gets a line.
#[test]
fn quiet_prints_only_the_summary() {
    let sb = Sandbox::new();
    sb.copy_fixture(CARD, "in/a.jpg");
    sb.copy_fixture("bad/empty.jpg", "in/empty.jpg");
    let run = sb.run(&["--quiet", "--sizes", "60", "--out", "out", "in"]);
    run.expect_code(1);
    assert_eq!(run.stderr, "", "per-image lines under --quiet");
    assert!(run.stdout.starts_with("2 images: 1 written"), "{}", run.stdout);
}

/// No temporary file is left after a run, and stale ones from a killed run
/// (anywhere under the output directory) are removed; other files stay.
#[test]
fn temporary_files_are_cleaned_up() {
    let sb = Sandbox::new();
    sb.copy_fixture(CARD, "in/a.jpg");
    sb.copy_fixture(CARD, "in/sub/b.jpg");
    sb.write("out/.resize-tmp-xyz", b"half a jpeg");
    sb.write("out/sub/deeper/.resize-tmp-abc", b"half a png");
    sb.write("out/keep.txt", b"not ours");
    // A run still writing (this test's process is alive) keeps its files;
    // one that has ended (a child that exited) does not.
    let live = format!("out/.resize-tmp-{}-abc", std::process::id());
    sb.write(&live, b"another run's half file");
    let mut child = std::process::Command::new("true").spawn().expect("spawn");
    let dead = child.id();
    child.wait().expect("wait");
    sb.write(
        &format!("out/sub/.resize-tmp-{dead}-def"),
        b"a killed run's half file",
    );
    sb.run(&[
        "--sizes",
        "60,100",
        "--formats",
        "jpeg,webp,png",
        "--out",
        "out",
        "in",
    ])
    .expect_code(0);
    let files = sb.files("out");
    let temps: Vec<&String> = files
        .iter()
        .filter(|f| f.rsplit('/').next().unwrap_or(f).starts_with(TEMP_PREFIX))
        .collect();
    assert_eq!(temps, [&live["out/".len()..]], "temporary files left or removed");
    assert_eq!(files.len(), 14, "{files:?}");
    assert!(files.contains(&"keep.txt".to_owned()));
    assert!(files.contains(&"sub/b-100.webp".to_owned()));
}

/// A dry run plans what the real run writes, `--force` included, and its
/// text output lists each variant with what its path holds.
#[test]
fn dry_run_plans_what_the_run_writes() {
    let sb = Sandbox::new();
    sb.copy_fixture(CARD, "in/a.jpg");
    let args = |sizes: &'static str, force: bool| -> Vec<&'static str> {
        let mut args = vec!["--sizes", sizes, "--formats", "jpeg,webp", "--out", "out", "in"];
        if force {
            args.push("--force");
        }
        args
    };
    sb.run(&args("60,100", false)).expect_code(0);
    // (sizes, forced, variants the dry run plans and the real run writes)
    let cases = [
        ("60,100", false, 0),
        ("60,100", true, 4),
        ("60,100,110", false, 2),
    ];
    for (sizes, force, expected) in cases {
        let dry = sb.run(&[&["--dry-run", "--json"], &args(sizes, force)[..]].concat());
        dry.expect_code(0);
        assert_eq!(
            dry.json()["variants_planned"],
            expected,
            "dry run {sizes} {force}"
        );
        let real = sb.run(&[&["--json"], &args(sizes, force)[..]].concat());
        real.expect_code(0);
        assert_eq!(real.json()["variants_written"], expected, "run {sizes} {force}");
    }
    let text = sb.run(&[&["--dry-run"], &args("60,100,120", true)[..]].concat());
    text.expect_code(0);
    for expected in [
        "plan a.jpg (6 variants)",
        "write a-60.jpg (60x40): current",
        "write a-120.webp (120x80): missing",
    ] {
        assert!(
            text.stderr.contains(expected),
            "`{expected}` not in:\n{}",
            text.stderr
        );
    }
    let forced = sb.run(&[&["--dry-run", "--json"], &args("60,100", true)[..]].concat());
    assert_eq!(forced.json()["stale"]["forced"], 4);
}

/// The same file given twice is one job; a file named on the command line
/// that cannot be processed fails with the reason, while the same file
/// found by walking a folder is skipped.
#[test]
fn inputs_given_twice_and_files_named_that_are_no_images() {
    let sb = Sandbox::new();
    sb.copy_fixture(CARD, "in/a.jpg");
    sb.write("in/x.heic", b"not decoded here");
    // (inputs, exit code, images, failed keys)
    let cases: &[(&[&str], i32, u64, &[&str])] = &[
        (&["in/a.jpg", "in/a.jpg"], 0, 1, &[]),
        (&["in", "in/a.jpg", "in"], 0, 2, &[]),
        (&["in/x.heic", "in/a.jpg"], 1, 2, &["x.heic"]),
    ];
    for (inputs, code, images, failed) in cases {
        let run = sb.run(&[&["--sizes", "60", "--json", "--out", "out"], *inputs].concat());
        run.expect_code(*code);
        let report = run.json();
        assert_eq!(report["images"], *images, "{inputs:?}");
        let reasons = reasons(&report, "failed");
        assert_eq!(
            reasons.keys().map(String::as_str).collect::<Vec<_>>(),
            *failed,
            "{inputs:?}"
        );
        if let Some(reason) = reasons.get("x.heic") {
            assert!(reason.contains("not an image"), "{reason}");
        }
    }
}
