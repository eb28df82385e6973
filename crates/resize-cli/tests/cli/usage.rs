//! `--help`, usage errors (exit 2, naming the setting and the token) and
//! settings from environment variables, which flags override.

use crate::support::{decode, Sandbox};

const CARD: &str = "orientation/orient-1.jpg";

/// Environment variables for a run.
type Env = &'static [(&'static str, &'static str)];

/// Files expected under `out/`, with their widths.
type Widths = &'static [(&'static str, u32)];

#[test]
fn help() {
    let sb = Sandbox::new();
    let run = sb.run_env(&["--help"], &[("COLUMNS", "100")]);
    run.expect_code(0);
    assert_eq!(run.stderr, "");
    insta::assert_snapshot!("help", run.stdout);
}

/// One usage error: exit 2, nothing on stdout, nothing written, and a
/// message on stderr containing every one of `names` (the setting and the
/// offending token). Returns the message for the snapshot.
#[track_caller]
fn check(args: &[&str], env: &[(&str, &str)], names: &[&str]) -> String {
    let sb = Sandbox::new();
    sb.copy_fixture(CARD, "in/a.jpg");
    let run = sb.run_env(args, env);
    run.expect_code(2);
    assert_eq!(run.stdout, "", "{args:?}: stdout");
    assert!(!sb.path("out").exists(), "{args:?}: output directory created");
    assert_eq!(sb.files("in"), ["a.jpg"], "{args:?}: input changed");
    for name in names {
        assert!(
            run.stderr.contains(name),
            "{args:?}: stderr does not name {name:?}:\n{}",
            run.stderr
        );
    }
    let env: String = env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
    format!(
        "$ {env}resize-cli --jobs 2 {}\n{}\n",
        args.join(" "),
        sb.scrub(&run.stderr)
    )
}

#[test]
fn usage_errors_exit_2_and_name_the_setting() {
    let out = ["--out", "out", "in"];
    let with = |flags: &[&'static str]| -> Vec<&'static str> { flags.iter().chain(&out).copied().collect() };
    let cases: Vec<(Vec<&str>, Env, Vec<&str>)> = vec![
        (with(&["--sizes", "0"]), &[], vec!["SIZES", "`0`"]),
        (with(&["--sizes", "abc"]), &[], vec!["SIZES", "`abc`"]),
        (
            with(&["--sizes", "60,60"]),
            &[],
            vec!["SIZES", "`60,60`", "distinct"],
        ),
        (with(&["--formats", "gif"]), &[], vec!["FORMATS", "`gif`"]),
        (
            with(&["--jpeg-quality", "101"]),
            &[],
            vec!["JPEG_QUALITY", "`101`"],
        ),
        (with(&["--background", "red"]), &[], vec!["BACKGROUND", "`red`"]),
        (
            with(&["--key-template", "{stem}.{ext}"]),
            &[],
            vec!["KEY_TEMPLATE", "`{stem}.{ext}`"],
        ),
        (
            with(&["--replace", "original:original/x"]),
            &[],
            vec!["loop", "original:original/x"],
        ),
        (
            with(&["--replace", "nocolon"]),
            &[],
            vec!["REPLACEMENTS", "`nocolon`"],
        ),
        (with(&["--manifest=maybe"]), &[], vec!["MANIFEST", "`maybe`"]),
        (
            with(&["--manifest-template", "{dir}/{stem}.txt"]),
            &[],
            vec!["MANIFEST_TEMPLATE", "`{dir}/{stem}.txt`", ".json"],
        ),
        (
            with(&["--manifest-template", "{dir}/{stem}-{width}.json"]),
            &[],
            vec!["MANIFEST_TEMPLATE", "{dir} and {stem}"],
        ),
        (
            with(&["--html", "page.html", "--dry-run"]),
            &[],
            vec!["--html", "dry run"],
        ),
        (with(&["--html", "pages/"]), &[], vec!["--html", "directory"]),
        (
            with(&["--html", "p.html", "--html-base", "https://cdn/a b"]),
            &[],
            vec!["--html-base", "split srcset"],
        ),
        (with(&["--html-base", "https://cdn/"]), &[], vec!["--html"]),
        (
            with(&["--html", "p.html", "--html-base", "javascript:alert(1)//"]),
            &[],
            vec!["--html-base", "`javascript:` URL"],
        ),
        (
            with(&["--html", "p.html", "--html-base", "DATA:text/html;base64/"]),
            &[],
            vec!["--html-base", "`DATA:` URL"],
        ),
        (with(&[]), &[("SIZES", "abc")], vec!["SIZES", "`abc`"]),
        (with(&[]), &[("FORMATS", "jpeg,gif")], vec!["FORMATS", "`gif`"]),
        (vec!["in"], &[], vec!["--out"]),
        (vec!["--out", "out", "missing-dir"], &[], vec!["missing-dir"]),
        (vec!["--out", "out"], &[], vec!["<INPUT>"]),
        (with(&["--jobs", "0"]), &[], vec!["--jobs", "'0'"]),
        (with(&["--frobnicate"]), &[], vec!["--frobnicate"]),
    ];
    let transcript: String = cases
        .iter()
        .map(|(args, env, names)| check(args, env, names))
        .collect();
    insta::assert_snapshot!("usage_errors", transcript);
}

/// Settings from the environment, and flags winning over them.
#[test]
fn environment_variables_and_flags() {
    // (env, flags, files expected under out/ with their widths)
    let cases: &[(Env, &[&str], Widths)] = &[
        (&[("SIZES", "60")], &[], &[("a-60.jpg", 60)]),
        (&[("SIZES", "60")], &["--sizes", "100"], &[("a-100.jpg", 100)]),
        (&[("SIZES", "abc")], &["--sizes", "100"], &[("a-100.jpg", 100)]),
        (&[("SIZES", "60"), ("FORMATS", "webp")], &[], &[("a-60.webp", 60)]),
        (
            &[("SIZES", "60"), ("FORMATS", "webp")],
            &["--formats", "png,jpeg"],
            &[("a-60.jpg", 60), ("a-60.png", 60)],
        ),
        (
            &[("SIZES", "60"), ("KEY_TEMPLATE", "{dir}/w{width}/{stem}.{ext}")],
            &[],
            &[("w60/a.jpg", 60)],
        ),
        (
            &[("SIZES", "200"), ("UPSCALE", "source")],
            &[],
            &[("a-120.jpg", 120)],
        ),
        (
            &[("SIZES", "200")],
            &["--upscale", "source"],
            &[("a-120.jpg", 120)],
        ),
        (
            &[("SIZES", "60"), ("MAX_PIXELS", "100")],
            &["--max-pixels", "100000"],
            &[("a-60.jpg", 60)],
        ),
    ];
    for &(env, flags, expected) in cases {
        let sb = Sandbox::new();
        sb.copy_fixture(CARD, "in/a.jpg");
        let args: Vec<&str> = flags.iter().copied().chain(["--out", "out", "in"]).collect();
        let run = sb.run_env(&args, env);
        assert_eq!(run.code, 0, "{env:?} {flags:?}: {}", run.stderr);
        let want: Vec<&str> = expected.iter().map(|e| e.0).collect();
        assert_eq!(sb.files("out"), want, "{env:?} {flags:?}");
        for (rel, width) in expected {
            let image = decode(&sb.path(&format!("out/{rel}")));
            assert_eq!(image.width(), *width, "{env:?} {flags:?}: width of {rel}");
        }
    }

    // A limit from the environment is applied.
    let sb = Sandbox::new();
    sb.copy_fixture(CARD, "in/a.jpg");
    let run = sb.run_env(
        &["--json", "--out", "out", "in"],
        &[("SIZES", "60"), ("MAX_PIXELS", "100")],
    );
    run.expect_code(1);
    let failed = crate::support::reasons(&run.json(), "failed");
    insta::assert_snapshot!(failed["a.jpg"], @"cannot render `a.jpg`: image is 120x80 (9600 pixels), over the limit of 100 pixels");
    assert_eq!(sb.files("out"), Vec::<String>::new());
}
