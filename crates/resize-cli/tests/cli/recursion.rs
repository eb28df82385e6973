//! The recursion guard on a local store: a folder that is its own `--out`,
//! or holds an earlier run's output root, never grows variants of variants,
//! whatever changes between runs (widths, formats, the key template).

use std::collections::BTreeMap;
use std::fs;

use proptest::prelude::*;

use crate::support::{Sandbox, STATE_FILE};

/// The sources every case starts with (wider than every width used).
const SOURCES: [(&str, &str); 2] = [("photo-4x3.jpg", "a.jpg"), ("photo-16x9.jpg", "trips/b.jpg")];

fn sandbox() -> Sandbox {
    let sb = Sandbox::new();
    for (fixture, to) in SOURCES {
        sb.copy_fixture(fixture, &format!("in/{to}"));
    }
    sb
}

/// Every file under `dir` that is not a source: each must be recorded in
/// a state file as a variant of one of the starting sources.
fn check_no_variant_of_a_variant(sb: &Sandbox, roots: &[&str]) -> Result<(), String> {
    let sources: Vec<&str> = SOURCES.iter().map(|(_, to)| *to).collect();
    // Output key → source, from every state file, keys relative to `in/`.
    let mut recorded: BTreeMap<String, String> = BTreeMap::new();
    for root in roots {
        let path = sb.path(&format!("in/{root}/{STATE_FILE}"));
        let Ok(text) = fs::read(&path) else { continue };
        let state: serde_json::Value = serde_json::from_slice(&text).map_err(|e| e.to_string())?;
        for (key, entry) in state["variants"].as_object().into_iter().flatten() {
            let source = entry["metadata"]["resize-source"].as_str().unwrap_or_default();
            let key = if root.is_empty() {
                key.clone()
            } else {
                format!("{root}/{key}")
            };
            recorded.insert(key, source.to_owned());
        }
    }
    for file in sb.files("in") {
        if sources.contains(&file.as_str()) || file.ends_with(".json") || file.ends_with(".lock") {
            continue;
        }
        match recorded.get(&file) {
            Some(source) if sources.contains(&source.as_str()) => {}
            Some(source) => return Err(format!("{file} is a variant of {source}, itself a variant")),
            None => return Err(format!("{file} is not recorded as any source's variant")),
        }
    }
    Ok(())
}

/// One run over `in` with `args`; it must succeed.
fn run(sb: &Sandbox, out: &str, args: &[&str]) {
    let out = if out.is_empty() {
        "in".to_owned()
    } else {
        format!("in/{out}")
    };
    let run = sb.run(&[args, &["--out", &out, "in"]].concat());
    run.expect_code(0);
}

/// The reproductions: each a sequence of runs, with the output
/// root (below `in/`, empty for `in` itself) and the settings of each.
#[test]
fn reruns_with_other_settings_never_take_variants_for_sources() {
    type Runs = &'static [(&'static str, &'static [&'static str])];
    let cases: &[(&str, Runs)] = &[
        (
            "widths shrink",
            &[("", &["--sizes", "360,720"]), ("", &["--sizes", "360"])],
        ),
        (
            "widths change twice",
            &[
                ("", &["--sizes", "360,720"]),
                ("", &["--sizes", "200"]),
                ("", &["--sizes", "100"]),
            ],
        ),
        (
            "formats change",
            &[
                ("", &["--sizes", "200", "--formats", "jpeg,webp"]),
                ("", &["--sizes", "100", "--formats", "png"]),
            ],
        ),
        (
            "template changes",
            &[
                ("", &["--sizes", "200"]),
                (
                    "",
                    &["--sizes", "100", "--key-template", "{dir}/{stem}_w{width}.{ext}"],
                ),
            ],
        ),
        (
            "another --out inside the input",
            &[
                ("web", &["--sizes", "200,300"]),
                ("web2", &["--sizes", "100"]),
                ("", &["--sizes", "120"]),
            ],
        ),
    ];
    for (name, runs) in cases {
        let sb = sandbox();
        let mut roots = vec![];
        for (out, args) in *runs {
            run(&sb, out, args);
            roots.push(*out);
        }
        if let Err(e) = check_no_variant_of_a_variant(&sb, &roots) {
            panic!("{name}: {e}\nfiles: {:?}", sb.files("in"));
        }
    }
}

/// One run's settings, drawn by the property test.
#[derive(Clone, Debug)]
struct Settings {
    widths: Vec<u32>,
    formats: Vec<&'static str>,
    template: &'static str,
}

fn settings() -> impl Strategy<Value = Settings> {
    (
        proptest::sample::subsequence(vec![60, 100, 120, 200, 360], 1..=3),
        proptest::sample::subsequence(vec!["jpeg", "webp", "png"], 1..=2),
        proptest::sample::select(vec![
            "{dir}/{stem}-{width}.{ext}",
            "{dir}/{stem}_{width}.{ext}",
            "{dir}/{stem}-{width}x{height}.{ext}",
        ]),
    )
        .prop_map(|(widths, formats, template)| Settings {
            widths,
            formats,
            template,
        })
}

proptest! {
    // Each case runs the CLI two to four times.
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Any sequence of recipe changes over a folder that is its own `--out`
    /// never writes a variant of a variant (the state file tells them).
    #[test]
    fn any_sequence_of_recipe_changes_in_place(runs in proptest::collection::vec(settings(), 2..=4)) {
        let sb = sandbox();
        for s in &runs {
            let widths = s.widths.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
            let formats = s.formats.join(",");
            run(&sb, "", &["--sizes", &widths, "--formats", &formats, "--key-template", s.template]);
        }
        if let Err(e) = check_no_variant_of_a_variant(&sb, &[""]) {
            prop_assert!(false, "{e} after {runs:?}");
        }
    }
}

/// Without a state file (deleted, or never kept by the tool that made the
/// variants), every file but the sources must be named for one of the
/// starting sources at one width: `a-360.jpg`, never `a-720-360.jpg`.
fn check_names_without_state(sb: &Sandbox) -> Result<(), String> {
    let stems: Vec<&str> = SOURCES
        .iter()
        .map(|(_, to)| to.trim_end_matches(".jpg"))
        .collect();
    for file in sb.files("in") {
        if SOURCES.iter().any(|(_, to)| *to == file) || file.ends_with(".json") || file.ends_with(".lock") {
            continue;
        }
        let (name, _ext) = file
            .rsplit_once('.')
            .ok_or_else(|| format!("{file} has no extension"))?;
        let (stem, width) = name
            .rsplit_once('-')
            .ok_or_else(|| format!("{file} names no width"))?;
        if !stems.contains(&stem) || width.parse::<u32>().is_err() {
            return Err(format!("{file} is not named for a source at one width"));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Width and format changes under one template over a folder that is
    /// its own `--out`, the state file deleted before every run: the names
    /// and pixel sizes of the variants tell them from sources.
    #[test]
    fn any_sequence_of_width_and_format_changes_without_the_state_file(
        runs in proptest::collection::vec(settings(), 2..=4)
    ) {
        let sb = sandbox();
        for s in &runs {
            let _ = fs::remove_file(sb.path(&format!("in/{STATE_FILE}")));
            let widths = s.widths.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
            let formats = s.formats.join(",");
            run(&sb, "", &["--sizes", &widths, "--formats", &formats]);
        }
        if let Err(e) = check_names_without_state(&sb) {
            prop_assert!(false, "{e} after {runs:?}\nfiles: {:?}", sb.files("in"));
        }
    }
}

/// Beside `IMG_1234.jpg`, names that merely end in a number stay sources:
/// `IMG_1234-2.jpg` (not 2 px wide), `beach-2019.jpg` beside `beach.jpg`.
#[test]
fn names_ending_in_a_number_stay_sources() {
    let sb = Sandbox::new();
    for (fixture, to) in [
        ("photo-4x3.jpg", "in/IMG_1234.jpg"),
        ("photo-16x9.jpg", "in/IMG_1234-2.jpg"),
        ("photo-16x9.jpg", "in/beach.jpg"),
        ("photo-upper.JPG", "in/beach-2019.jpg"),
    ] {
        sb.copy_fixture(fixture, to);
    }
    let run = sb.run(&["--sizes", "100", "--json", "--out", "out", "in"]);
    run.expect_code(0);
    assert_eq!(run.json()["images_written"], 4, "{}", run.stderr);
}
