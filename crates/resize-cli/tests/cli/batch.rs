//! A whole copy of `fixtures/` in one run: bad files fail with a reason,
//! good ones give exactly the sizes asked for, never upscaled.

use std::collections::BTreeMap;
use std::fs;

use crate::support::{decode, expected_height, fixtures, format_of, reasons, variants, Sandbox, TEMP_PREFIX};

/// Every good fixture with its upright size (from `fixtures/README.md`).
/// Left out of the copy: `phone-orient6.jpg`, slow in debug builds and
/// tested on its own.
const GOOD: &[(&str, u32, u32)] = &[
    ("adobe-rgb.jpg", 300, 200),
    ("alpha.png", 200, 150),
    ("animated.gif", 64, 48),
    ("cmyk-profile.jpg", 120, 80),
    ("cmyk.jpg", 120, 80),
    ("display-p3.jpg", 300, 200),
    ("extreme-4000x3.png", 4000, 3),
    ("gray-alpha.png", 160, 120),
    ("gray.jpg", 160, 120),
    ("gray8.png", 160, 120),
    ("one-pixel.png", 1, 1),
    ("orientation/orient-1.jpg", 120, 80),
    ("orientation/orient-2.jpg", 120, 80),
    ("orientation/orient-3.jpg", 120, 80),
    ("orientation/orient-4.jpg", 120, 80),
    ("orientation/orient-5.jpg", 120, 80),
    ("orientation/orient-6.jpg", 120, 80),
    ("orientation/orient-7.jpg", 120, 80),
    ("orientation/orient-8.jpg", 120, 80),
    ("palette.png", 160, 120),
    ("photo-16x9.jpg", 1280, 720),
    ("photo-4x3.jpg", 800, 600),
    ("photo-upper.JPG", 640, 480),
    ("photo.tiff", 320, 240),
    ("prophoto.png", 300, 200),
    ("rgb16.png", 160, 120),
    ("srgb-tagged.jpg", 300, 200),
    ("still.webp", 320, 240),
];

const WIDTHS: [u32; 2] = [96, 360];
const FORMATS: [(&str, image::ImageFormat); 2] = [
    ("jpg", image::ImageFormat::Jpeg),
    ("webp", image::ImageFormat::WebP),
];

/// The output path → size every good source must give: `{dir}/{stem}-{w}.{ext}`
/// for each width no wider than the source.
fn expected_outputs() -> BTreeMap<String, (u32, u32)> {
    let mut out = BTreeMap::new();
    for &(key, w0, h0) in GOOD {
        let (base, _ext) = key.rsplit_once('.').expect("an extension");
        for w in WIDTHS.into_iter().filter(|&w| w <= w0) {
            for (ext, _) in FORMATS {
                out.insert(format!("{base}-{w}.{ext}"), (w, expected_height(w0, h0, w)));
            }
        }
    }
    out
}

#[test]
fn whole_fixture_folder() {
    let sb = Sandbox::new();
    sb.copy_fixture_tree("in", &["phone-orient6.jpg"]);
    // Guard against fixtures/ changing under the table above.
    let mut copied: Vec<String> = sb
        .files("in")
        .into_iter()
        .filter(|f| !f.starts_with("bad/"))
        .collect();
    copied.retain(|f| f != "README.md");
    let mut listed: Vec<String> = GOOD.iter().map(|g| g.0.to_owned()).collect();
    listed.sort();
    assert_eq!(copied, listed, "GOOD must list every good fixture");

    let run = sb.run(&[
        "--sizes",
        "96,360",
        "--formats",
        "jpeg,webp",
        "--json",
        "--out",
        "out",
        "in",
    ]);
    run.expect_code(1);
    let report = run.json();

    // Every bad file failed, nothing else did, each with a specific reason.
    let failed = reasons(&report, "failed");
    let bad: Vec<String> = sb.files("in/bad").iter().map(|f| format!("bad/{f}")).collect();
    assert_eq!(bad.len(), 48, "fixtures/bad has 48 files");
    // Two cuts of the 64 px GIF keep a whole header: they are skipped as
    // narrower than 96 px before any pixel is read, which is right.
    let narrow = [
        "bad/truncated/animated-25pct.gif",
        "bad/truncated/animated-30pct.gif",
    ];
    let bad_read: Vec<String> = bad
        .iter()
        .filter(|b| !narrow.contains(&b.as_str()))
        .cloned()
        .collect();
    assert_eq!(failed.keys().cloned().collect::<Vec<_>>(), bad_read);
    insta::assert_snapshot!("fixture_folder_failed", format_reasons(&failed));

    // Skipped: too narrow for 96 px.
    let skipped = reasons(&report, "skipped");
    insta::assert_snapshot!("fixture_folder_skipped", format_reasons(&skipped));

    // The files on disk are exactly the expected outputs, no more (no
    // upscales, no temporary files), and each decodes at its exact size.
    let expected = expected_outputs();
    let on_disk = sb.files("out");
    assert_eq!(on_disk, expected.keys().cloned().collect::<Vec<_>>());
    for (rel, &(w, h)) in &expected {
        let path = sb.path(&format!("out/{rel}"));
        let image = decode(&path);
        assert_eq!((image.width(), image.height()), (w, h), "size of {rel}");
        let want = FORMATS
            .iter()
            .find(|(ext, _)| rel.ends_with(&format!(".{ext}")))
            .expect("a known extension")
            .1;
        assert_eq!(format_of(&path), want, "format of {rel}");
    }
    assert!(!on_disk
        .iter()
        .any(|f| f.rsplit('/').next().unwrap().starts_with(TEMP_PREFIX)));

    // Spot checks spelled out.
    let size = |rel: &str| expected.get(rel).copied();
    assert_eq!(size("photo-16x9-360.jpg"), Some((360, 203)));
    assert_eq!(size("photo-4x3-360.webp"), Some((360, 270)));
    assert_eq!(size("extreme-4000x3-96.jpg"), Some((96, 1)));
    assert_eq!(size("still-96.webp"), Some((96, 72)));
    assert!(
        !sb.path("out/still-360.jpg").exists(),
        "320 px source upscaled to 360"
    );
    assert!(
        !sb.path("out/still-360.webp").exists(),
        "320 px source upscaled to 360"
    );
    assert!(
        !sb.path("out/animated-96.jpg").exists(),
        "64 px source upscaled to 96"
    );

    // The report's variant sizes and byte counts match the files.
    let reported = variants(&report);
    for (key, (w, h, _, bytes)) in &reported {
        let path = sb.path(&format!("out/{key}"));
        let image = decode(&path);
        assert_eq!(
            (image.width(), image.height()),
            (*w, *h),
            "reported size of {key}"
        );
        let len = fs::metadata(&path).expect("output exists").len();
        assert_eq!(*bytes, Some(len), "reported bytes of {key}");
    }
    assert_eq!(
        reported.keys().collect::<std::collections::BTreeSet<_>>(),
        expected.keys().collect(),
        "report lists every output"
    );
    let bytes_in: u64 = bad
        .iter()
        .map(|f| fs::metadata(fixtures().join(f)).expect("metadata").len())
        .sum();
    assert!(report["bytes_in"].as_u64().expect("bytes_in") > bytes_in);
    assert_eq!(report["images"], 76);
    assert_eq!(report["images_failed"], 46);
    assert_eq!(report["images_skipped"], 4);
    assert_eq!(report["images_written"], 26);
}

/// Metadata is not copied: EXIF serial number, GPS, XMP and comment of
/// `photo-4x3.jpg` appear in no output.
#[test]
fn outputs_carry_no_metadata() {
    let sb = Sandbox::new();
    sb.copy_fixture("photo-4x3.jpg", "in/photo-4x3.jpg");
    sb.copy_fixture("orientation/orient-6.jpg", "in/orient-6.jpg");
    sb.run(&[
        "--sizes",
        "100",
        "--formats",
        "jpeg,webp,png",
        "--out",
        "out",
        "in",
    ])
    .expect_code(0);
    let files = sb.files("out");
    assert_eq!(files.len(), 6, "{files:?}");
    for f in files {
        let bytes = fs::read(sb.path(&format!("out/{f}"))).expect("read output");
        for needle in [
            "SN-123456",
            "SECRET-XMP",
            "SECRET-COMMENT",
            "ResizeTestCam",
            "Exif\0\0",
        ] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{f} contains {needle:?}"
            );
        }
    }
}

fn format_reasons(list: &BTreeMap<String, String>) -> String {
    list.iter().map(|(k, r)| format!("{k}: {r}\n")).collect()
}
