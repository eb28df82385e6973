//! Rendering tests on the fixtures: sizes, orientation by pixel content,
//! colour, alpha, metadata, bad input, and agreement between decoders.

use std::path::PathBuf;
use std::process::Command;

use image::{DynamicImage, GenericImageView, Rgba};
use resize_core::{render, Format, Recipe, RenderError, Rendition};

/// Reads `fixtures/bad/…` for names starting `bad/`, `fixtures/images/…` otherwise.
fn fixture(name: &str) -> Vec<u8> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
    let path = if ["bad/", "images/", "hostile/", "warnings/"]
        .iter()
        .any(|d| name.starts_with(d))
    {
        dir.join(name)
    } else {
        dir.join("images").join(name)
    };
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn recipe(settings: &[(&str, &str)]) -> Recipe {
    Recipe::from_lookup(|name| {
        settings
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    })
    .unwrap()
}

fn decode(r: &Rendition) -> DynamicImage {
    let img = image::load_from_memory(&r.bytes).unwrap();
    assert_eq!(
        (img.width(), img.height()),
        (r.width, r.height),
        "encoded size matches the rendition"
    );
    img
}

/// Renders `name` at `sizes` in `formats` and checks the sizes made.
#[track_caller]
fn check_sizes(name: &str, sizes: &str, formats: &str, expect: &[(u32, u32)]) -> Vec<Rendition> {
    let out = render(&fixture(name), &recipe(&[("SIZES", sizes), ("FORMATS", formats)]))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut got: Vec<(u32, u32)> = out.iter().map(|r| (r.width, r.height)).collect();
    got.dedup();
    assert_eq!(got, expect, "{name}");
    for r in &out {
        decode(r);
    }
    out
}

#[test]
fn sizes_of_every_good_fixture() {
    check_sizes(
        "photo-16x9.jpg",
        "360,720,1200,2200",
        "jpeg",
        &[(360, 203), (720, 405), (1200, 675)],
    );
    check_sizes(
        "photo-4x3.jpg",
        "360,720,1200",
        "jpeg,webp,png",
        &[(360, 270), (720, 540)],
    );
    check_sizes("photo-upper.JPG", "100,640,641", "jpeg", &[(100, 75), (640, 480)]);
    check_sizes(
        "extreme-4000x3.png",
        "360,2200",
        "jpeg,webp,png",
        &[(360, 1), (2200, 2)],
    );
    check_sizes("one-pixel.png", "1,2", "jpeg,webp,png", &[(1, 1)]);
    check_sizes("gray.jpg", "80", "jpeg,webp,png", &[(80, 60)]);
    check_sizes("gray8.png", "80", "jpeg,webp,png", &[(80, 60)]);
    check_sizes("gray-alpha.png", "80", "jpeg,webp,png", &[(80, 60)]);
    check_sizes("rgb16.png", "80", "jpeg,webp,png", &[(80, 60)]);
    check_sizes("palette.png", "80", "jpeg,webp,png", &[(80, 60)]);
    check_sizes("still.webp", "100", "jpeg,webp,png", &[(100, 75)]);
    check_sizes("photo.tiff", "100", "jpeg,webp,png", &[(100, 75)]);
    check_sizes("animated.gif", "32", "jpeg,webp,png", &[(32, 24)]);
    check_sizes("cmyk.jpg", "60", "jpeg", &[(60, 40)]);
    check_sizes("alpha.png", "100", "jpeg,webp,png", &[(100, 75)]);
}

#[test]
fn upscale_policy_source_width() {
    let out = render(
        &fixture("photo-16x9.jpg"),
        &recipe(&[("SIZES", "360,2200,4000"), ("UPSCALE", "source")]),
    )
    .unwrap();
    let got: Vec<(u32, u32)> = out.iter().map(|r| (r.width, r.height)).collect();
    assert_eq!(got, [(360, 203), (1280, 720)]);
}

fn close(a: Rgba<u8>, b: [u8; 4], tol: u8) -> bool {
    a.0.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= tol)
}

/// Samples the centres of the four quadrants.
fn quadrants(img: &DynamicImage) -> [Rgba<u8>; 4] {
    let (w, h) = img.dimensions();
    let at = |fx: u32, fy: u32| img.get_pixel(w * fx / 4, h * fy / 4);
    [at(1, 1), at(3, 1), at(1, 3), at(3, 3)]
}

const RED: [u8; 4] = [255, 0, 0, 255];
const GREEN: [u8; 4] = [0, 255, 0, 255];
const BLUE: [u8; 4] = [0, 0, 255, 255];
const WHITE: [u8; 4] = [255, 255, 255, 255];

#[test]
fn all_eight_orientations_come_out_upright() {
    for n in 1..=8 {
        let name = format!("orientation/orient-{n}.jpg");
        for r in render(
            &fixture(&name),
            &recipe(&[("SIZES", "60"), ("FORMATS", "jpeg,webp,png")]),
        )
        .unwrap()
        {
            assert_eq!((r.width, r.height), (60, 40), "{name} {}", r.format);
            let q = quadrants(&decode(&r));
            for (got, want) in q.iter().zip([RED, GREEN, BLUE, WHITE]) {
                assert!(close(*got, want, 40), "{name} {}: quadrants {q:?}", r.format);
            }
        }
    }
}

#[test]
fn phone_photo_with_orientation_6_is_portrait() {
    let out = render(&fixture("phone-orient6.jpg"), &recipe(&[("SIZES", "360,720")])).unwrap();
    let sizes: Vec<(u32, u32)> = out.iter().map(|r| (r.width, r.height)).collect();
    assert_eq!(sizes, [(360, 480), (720, 960)]);
    let q = quadrants(&decode(&out[0]));
    // Upright top-left is red-ish and bottom-right blue-ish.
    assert!(q[0][0] > 150 && q[0][2] < 100, "top-left {:?}", q[0]);
    assert!(q[3][2] > 150 && q[3][0] < 100, "bottom-right {:?}", q[3]);
}

#[test]
fn cmyk_jpeg_keeps_its_colours() {
    let out = render(
        &fixture("cmyk.jpg"),
        &recipe(&[("SIZES", "60"), ("FORMATS", "png")]),
    )
    .unwrap();
    let img = decode(&out[0]);
    assert!(
        close(img.get_pixel(10, 20), RED, 30),
        "left {:?}",
        img.get_pixel(10, 20)
    );
    assert!(
        close(img.get_pixel(50, 20), BLUE, 30),
        "right {:?}",
        img.get_pixel(50, 20)
    );
}

/// The colour of overprinted inks in `cmyk-profile.jpg`'s profile, computed
/// from the model the fixture generator documents (inks multiply in linear
/// light; see fixtures/README.md), not through the renderer's code.
fn overprint(inks: &[[u8; 3]]) -> [u8; 4] {
    let lin = |v: u8| {
        let c = f64::from(v) / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    let enc = |l: f64| {
        let c = if l <= 0.003_130_8 {
            l * 12.92
        } else {
            1.055 * l.powf(1.0 / 2.4) - 0.055
        };
        (c * 255.0).round().clamp(0.0, 255.0) as u8
    };
    let mut out = [1.0f64; 3];
    for ink in inks {
        for (o, &v) in out.iter_mut().zip(ink) {
            *o *= lin(v);
        }
    }
    [enc(out[0]), enc(out[1]), enc(out[2]), 255]
}

#[test]
fn cmyk_jpeg_with_a_profile_is_converted_through_it() {
    const MAGENTA: [u8; 3] = [230, 30, 140];
    const YELLOW: [u8; 3] = [255, 235, 20];
    const CYAN: [u8; 3] = [0, 160, 230];
    let out = render(
        &fixture("cmyk-profile.jpg"),
        &recipe(&[("SIZES", "60"), ("FORMATS", "png")]),
    )
    .unwrap();
    let img = decode(&out[0]);
    for (x, inks, naive) in [(10, [MAGENTA, YELLOW], RED), (50, [CYAN, MAGENTA], BLUE)] {
        let want = overprint(&inks);
        let got = img.get_pixel(x, 20);
        assert!(close(got, want, 8), "x={x}: got {got:?}, want {want:?}");
        // The profile matters: the naive conversion is far from it.
        assert!(!close(got, naive, 20), "x={x}: {got:?} is the naive conversion");
    }
}

/// The colour a wide-gamut patch must have in sRGB, computed independently
/// of the renderer's code path with the reference profile.
fn to_srgb(profile: moxcms::ColorProfile, rgb: [u8; 3]) -> [u8; 3] {
    let t = profile
        .create_transform_8bit(
            moxcms::Layout::Rgb,
            &moxcms::ColorProfile::new_srgb(),
            moxcms::Layout::Rgb,
            moxcms::TransformOptions::default(),
        )
        .unwrap();
    let mut out = [0u8; 3];
    t.transform(&rgb, &mut out).unwrap();
    out
}

#[test]
fn wide_gamut_profiles_are_converted_to_srgb() {
    let cases = [
        ("display-p3.jpg", moxcms::ColorProfile::new_display_p3()),
        ("adobe-rgb.jpg", moxcms::ColorProfile::new_adobe_rgb()),
        ("prophoto.png", moxcms::ColorProfile::new_pro_photo_rgb()),
    ];
    for (name, profile) in cases {
        let out = render(&fixture(name), &recipe(&[("SIZES", "150"), ("FORMATS", "png")])).unwrap();
        let img = decode(&out[0]);
        for (x, stored) in [(30, [200u8, 60, 40]), (120, [40, 160, 60])] {
            let want = to_srgb(profile.clone(), stored);
            let got = img.get_pixel(x, 50);
            let tol = if name.ends_with(".jpg") { 12 } else { 3 };
            assert!(
                close(got, [want[0], want[1], want[2], 255], tol),
                "{name} at x={x}: got {got:?}, want {want:?} (stored {stored:?})"
            );
            // The conversion matters: the stored values would look wrong.
            assert!(
                !close(got, [stored[0], stored[1], stored[2], 255], 6),
                "{name}: not converted"
            );
        }
    }
    // An sRGB-tagged source is left as it is.
    let out = render(
        &fixture("srgb-tagged.jpg"),
        &recipe(&[("SIZES", "150"), ("FORMATS", "png")]),
    )
    .unwrap();
    let img = decode(&out[0]);
    assert!(
        close(img.get_pixel(30, 50), [200, 60, 40, 255], 12),
        "{:?}",
        img.get_pixel(30, 50)
    );
}

#[test]
fn alpha_kept_in_png_and_webp_flattened_in_jpeg() {
    let check = |background: &str, jpeg_left: [u8; 4]| {
        let out = render(
            &fixture("alpha.png"),
            &recipe(&[
                ("SIZES", "100"),
                ("FORMATS", "jpeg,png,webp"),
                ("BACKGROUND", background),
            ]),
        )
        .unwrap();
        for r in &out {
            let img = decode(r);
            let (left, middle, right) = (
                img.get_pixel(10, 37),
                img.get_pixel(50, 37),
                img.get_pixel(90, 37),
            );
            match r.format {
                Format::Jpeg => {
                    assert!(close(left, jpeg_left, 8), "jpeg left {left:?}");
                    assert!(close(middle, RED, 30), "jpeg middle {middle:?}");
                }
                _ => {
                    assert_eq!(left[3], 0, "{} left must stay transparent", r.format);
                    assert!(close(middle, RED, 20), "{} middle {middle:?}", r.format);
                    assert!(
                        right[3].abs_diff(128) <= 8 && right[2] > 200,
                        "{} right {right:?}",
                        r.format
                    );
                }
            }
        }
    };
    check("#ffffff", WHITE);
    check("#000000", [0, 0, 0, 255]);
}

#[test]
fn gif_takes_the_first_frame_and_palette_transparency_is_kept() {
    let out = render(
        &fixture("animated.gif"),
        &recipe(&[("SIZES", "32"), ("FORMATS", "png")]),
    )
    .unwrap();
    assert!(close(decode(&out[0]).get_pixel(16, 12), RED, 10));
    let out = render(
        &fixture("palette.png"),
        &recipe(&[("SIZES", "160"), ("FORMATS", "png")]),
    )
    .unwrap();
    let img = decode(&out[0]);
    assert!(img.color().has_alpha(), "tRNS transparency must survive");
}

#[test]
fn metadata_is_stripped() {
    let out = render(
        &fixture("photo-4x3.jpg"),
        &recipe(&[("SIZES", "360"), ("FORMATS", "jpeg,webp,png")]),
    )
    .unwrap();
    for r in &out {
        for needle in [
            &b"Exif"[..],
            b"SECRET-XMP",
            b"SECRET-COMMENT",
            b"ResizeTestCam",
            b"SN-123456",
            b"http://ns.adobe.com/xap",
        ] {
            let found = r.bytes.windows(needle.len()).any(|w| w == needle);
            assert!(
                !found,
                "{} output contains {:?}",
                r.format,
                String::from_utf8_lossy(needle)
            );
        }
    }
    // The source really had them, so the check above can fail.
    let src = fixture("photo-4x3.jpg");
    assert!(src.windows(10).any(|w| w == b"SECRET-XMP"));
}

fn error_of(bytes: &[u8], settings: &[(&str, &str)]) -> String {
    match render(bytes, &recipe(settings)) {
        Ok(out) => panic!("expected an error, got {} renditions", out.len()),
        Err(e) => e.to_string(),
    }
}

/// Every file below `fixtures/<dir>`, relative to `fixtures/`, sorted.
fn fixtures_under(dir: &str) -> Vec<String> {
    fn walk(base: &std::path::Path, rel: &str, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(base.join(rel)).unwrap() {
            let entry = entry.unwrap();
            let name = format!("{rel}/{}", entry.file_name().into_string().unwrap());
            if entry.file_type().unwrap().is_dir() {
                walk(base, &name, out);
            } else if !name.ends_with(".md") {
                out.push(name);
            }
        }
    }
    let mut out = Vec::new();
    walk(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures"),
        dir,
        &mut out,
    );
    out.sort();
    out
}

#[test]
fn bad_inputs_give_specific_errors() {
    let mut report = String::new();
    for name in fixtures_under("bad") {
        let msg = error_of(&fixture(&name), &[("SIZES", "16")]);
        report.push_str(&format!("{}: {msg}\n", name.trim_start_matches("bad/")));
    }
    insta::assert_snapshot!(report);
}

#[test]
fn limits_are_checked_before_decoding() {
    let bytes = fixture("photo-4x3.jpg");
    let too_big = (bytes.len() - 1).to_string();
    assert!(matches!(
        render(&bytes, &recipe(&[("MAX_INPUT_BYTES", &too_big)])),
        Err(RenderError::TooManyBytes { .. })
    ));
    assert!(matches!(
        render(&bytes, &recipe(&[("MAX_PIXELS", "479999")])),
        Err(RenderError::TooManyPixels {
            width: 800,
            height: 600,
            ..
        })
    ));
    assert!(render(&bytes, &recipe(&[("MAX_PIXELS", "480000"), ("SIZES", "100")])).is_ok());
}

/// Every good and hostile fixture but the 12 MP phone photo (slow in debug builds).
fn small_fixtures() -> Vec<String> {
    let mut names: Vec<String> = fixtures_under("images")
        .into_iter()
        .chain(fixtures_under("hostile"))
        .filter(|n| !n.ends_with("phone-orient6.jpg"))
        .collect();
    names.sort();
    assert!(names.len() >= 30, "{names:?}");
    names
}

/// Renders without panicking; a success must decode.
fn render_or_error(bytes: &[u8], r: &Recipe) {
    if let Ok(out) = render(bytes, r) {
        for r in &out {
            decode(r);
        }
    }
}

#[test]
fn every_prefix_of_every_good_fixture_is_an_error_or_an_image() {
    let r = recipe(&[("SIZES", "16"), ("FORMATS", "jpeg,webp,png")]);
    for name in small_fixtures() {
        let bytes = fixture(&name);
        // Every prefix for small files, a few hundred evenly spaced otherwise.
        let step = (bytes.len() / 300).max(1);
        for len in (0..bytes.len()).step_by(step) {
            render_or_error(&bytes[..len], &r);
            // A cut JPEG is refused for lacking its end marker before the
            // decoder runs; with the marker put back, the decoder itself
            // meets the truncated data.
            if bytes.starts_with(&[0xFF, 0xD8]) {
                let mut patched = bytes[..len].to_vec();
                patched.extend_from_slice(&[0xFF, 0xD9]);
                render_or_error(&patched, &r);
            }
        }
    }
}

#[test]
fn flipped_bytes_are_an_error_or_an_image() {
    let r = recipe(&[("SIZES", "16"), ("FORMATS", "jpeg,png")]);
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for name in small_fixtures() {
        let bytes = fixture(&name);
        if bytes.is_empty() {
            continue;
        }
        for _ in 0..100 {
            let mut corrupt = bytes.clone();
            for _ in 0..=(next() % 4) {
                // Headers are where decoders trust lengths and counts: half
                // the flips land in the first 512 bytes.
                let span = if next() % 2 == 0 {
                    corrupt.len().min(512)
                } else {
                    corrupt.len()
                };
                let at = (next() % span as u64) as usize;
                corrupt[at] ^= (next() % 255 + 1) as u8;
            }
            render_or_error(&corrupt, &r);
        }
    }
}

/// Decodes with libjpeg-turbo (`djpeg`) or libwebp (`dwebp`), what browsers use.
fn reference_decode(r: &Rendition) -> image::RgbaImage {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join(format!("x.{}", r.format.extension()));
    std::fs::write(&input, &r.bytes).unwrap();
    let output = dir.path().join("x.pam");
    let status = match r.format {
        Format::Jpeg => Command::new("djpeg")
            .arg("-pnm")
            .arg("-outfile")
            .arg(&output)
            .arg(&input)
            .status(),
        Format::WebP => Command::new("dwebp")
            .arg(&input)
            .arg("-pam")
            .arg("-o")
            .arg(&output)
            .status(),
        _ => unreachable!("only lossy formats are compared"),
    };
    let status = status.unwrap_or_else(|e| panic!("reference decoder missing ({e}); .ci/run installs it"));
    assert!(status.success());
    let bytes = std::fs::read(&output).unwrap();
    image::load_from_memory(&bytes).unwrap().to_rgba8()
}

#[test]
fn outputs_decode_alike_in_browser_decoders_and_the_image_crate() {
    let r = recipe(&[("SIZES", "60,360,720"), ("FORMATS", "jpeg,webp")]);
    for name in [
        "photo-4x3.jpg",
        "photo-16x9.jpg",
        "alpha.png",
        "orientation/orient-5.jpg",
        "cmyk.jpg",
        "gray8.png",
    ] {
        for out in render(&fixture(name), &r).unwrap() {
            let ours = decode(&out).to_rgba8();
            let theirs = reference_decode(&out);
            assert_eq!(ours.dimensions(), theirs.dimensions());
            let (mut max, mut sum) = (0u8, 0u64);
            for (a, b) in ours.as_raw().iter().zip(theirs.as_raw()) {
                let d = a.abs_diff(*b);
                max = max.max(d);
                sum += u64::from(d);
            }
            let mean = sum as f64 / ours.as_raw().len() as f64;
            // Conforming IDCTs and chroma upsamplers differ by rounding only;
            // a broken stream differs by tens to hundreds of levels.
            assert!(
                max <= 12 && mean < 1.0,
                "{name} {}x{} {}: max {max}, mean {mean:.3}",
                out.width,
                out.height,
                out.format
            );
        }
    }
}

/// The number of colour components in a JPEG's frame header (SOF0/SOF2).
fn jpeg_components(bytes: &[u8]) -> u8 {
    let sof = bytes
        .windows(2)
        .position(|w| w == [0xFF, 0xC0] || w == [0xFF, 0xC2])
        .expect("a frame header");
    // FF Cn, length (2), precision (1), height (2), width (2), components.
    bytes[sof + 9]
}

#[test]
fn gray_sources_stay_gray() {
    let r = recipe(&[("SIZES", "80"), ("FORMATS", "jpeg,webp,png")]);
    let reference = render(
        &fixture("gray8.png"),
        &recipe(&[("SIZES", "80"), ("FORMATS", "png")]),
    )
    .unwrap();
    let reference = decode(&reference[0]).to_luma8();
    for name in ["gray.jpg", "gray8.png"] {
        let out = render(&fixture(name), &r).unwrap();
        for o in &out {
            let img = decode(o);
            match o.format {
                Format::Jpeg => {
                    assert_eq!(jpeg_components(&o.bytes), 1, "{name}: a 1-channel JPEG");
                    assert_eq!(img.color(), image::ColorType::L8, "{name}");
                }
                Format::Png => assert_eq!(img.color(), image::ColorType::L8, "{name}"),
                // Lossy WebP has no gray mode: it is RGB with equal channels.
                _ => {
                    let rgb = img.to_rgb8();
                    let spread = rgb
                        .pixels()
                        .map(|p| p[0].abs_diff(p[1]).max(p[1].abs_diff(p[2])))
                        .max();
                    assert!(spread.unwrap_or(0) <= 3, "{name} WebP is not gray: {spread:?}");
                }
            }
            // Same look as the lossless gray rendering of the same picture.
            let luma = img.to_luma8();
            let diffs: Vec<u8> = luma
                .as_raw()
                .iter()
                .zip(reference.as_raw())
                .map(|(a, b)| a.abs_diff(*b))
                .collect();
            let mean = diffs.iter().map(|&d| f64::from(d)).sum::<f64>() / diffs.len() as f64;
            assert!(mean < 3.0, "{name} {:?}: mean difference {mean:.2}", o.format);
        }
    }
    // Gray with alpha keeps its alpha (RGBA), and JPEG of it is RGB.
    let out = render(&fixture("gray-alpha.png"), &r).unwrap();
    let formats: Vec<(Format, image::ColorType)> =
        out.iter().map(|o| (o.format, decode(o).color())).collect();
    assert!(
        formats.contains(&(Format::Png, image::ColorType::Rgba8)),
        "{formats:?}"
    );
    assert!(out
        .iter()
        .any(|o| o.format == Format::Jpeg && jpeg_components(&o.bytes) == 3));
}

/// Largest and mean absolute difference between two equal-sized buffers.
fn difference(a: &[u8], b: &[u8]) -> (u8, f64) {
    assert_eq!(a.len(), b.len());
    let max = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).max().unwrap_or(0);
    let sum: u64 = a.iter().zip(b).map(|(x, y)| u64::from(x.abs_diff(*y))).sum();
    (max, sum as f64 / a.len() as f64)
}

/// A reference for one ladder step, written apart from the renderer's:
/// each pixel the rounded mean of its 2×2 block, an odd edge's pixels
/// the mean of the pixels there are.
fn halve_reference(d: &resize_core::stages::Decoded) -> resize_core::stages::Decoded {
    let ch = d.channels.count();
    let (w, h) = (d.width.div_ceil(2), d.height.div_ceil(2));
    let at =
        |x: u32, y: u32, c: usize| u32::from(d.pixels[(y as usize * d.width as usize + x as usize) * ch + c]);
    let mut pixels = Vec::with_capacity(w as usize * h as usize * ch);
    for y in 0..h {
        for x in 0..w {
            let xs = [2 * x, (2 * x + 1).min(d.width - 1)];
            let ys = [2 * y, (2 * y + 1).min(d.height - 1)];
            for c in 0..ch {
                let sum: u32 = ys
                    .iter()
                    .flat_map(|&y| xs.iter().map(move |&x| at(x, y, c)))
                    .sum();
                pixels.push(((sum + 2) / 4) as u8);
            }
        }
    }
    resize_core::stages::Decoded {
        pixels,
        width: w,
        height: h,
        channels: d.channels,
    }
}

/// The level a size is made from: the smallest halving of the source at
/// least twice as large on both axes, else the source.
fn reference_level(full: &resize_core::stages::Decoded, (w, h): (u32, u32)) -> resize_core::stages::Decoded {
    let mut level = full.clone();
    loop {
        let (nw, nh) = (level.width.div_ceil(2), level.height.div_ceil(2));
        if nw < 2 * w || nh < 2 * h || (nw, nh) == (level.width, level.height) {
            return level;
        }
        level = halve_reference(&level);
    }
}

#[test]
fn one_ladder_step_is_the_mean_of_each_two_by_two_block() {
    use resize_core::stages;
    for name in ["photo-4x3.jpg", "gray8.png", "alpha.png", "extreme-4000x3.png"] {
        let d = stages::decode(&fixture(name), Default::default()).unwrap();
        let ours = stages::halve(&d);
        let reference = halve_reference(&d);
        assert_eq!(
            (ours.width, ours.height),
            (reference.width, reference.height),
            "{name}"
        );
        assert!(ours.pixels == reference.pixels, "{name}: halved pixels differ");
    }
    // Odd sizes: 3×3 gray becomes 2×2, the odd edge averaged over what is there.
    let d = stages::Decoded {
        pixels: vec![0, 10, 20, 30, 40, 50, 60, 70, 81],
        width: 3,
        height: 3,
        channels: stages::Channels::Gray,
    };
    let half = stages::halve(&d);
    assert_eq!((half.width, half.height), (2, 2));
    // (0 + 10 + 30 + 40) / 4 = 20; (20 + 50) / 2 = 35; (60 + 70) / 2 = 65;
    // the corner alone.
    assert_eq!(half.pixels, [20, 35, 65, 81]);
}

/// Small sizes are made from the ladder, not from the full decode: each
/// output is one Lanczos3 resize of the reference level (within 1 level:
/// strips round their crop offsets), and looks like one resize of the
/// full decode (a few levels at edges, well under one on average).
#[test]
fn sizes_from_the_ladder_look_like_a_full_resize() {
    use resize_core::stages;
    let bytes = fixture("phone-orient6.jpg");
    let full = stages::decode(&bytes, Default::default()).unwrap();
    assert_eq!((full.width, full.height), (4032, 3024));
    // Widths are upright (3024 wide); the stored image is 4032×3024.
    for width in [700, 500, 300, 96] {
        let r = recipe(&[("SIZES", &width.to_string()), ("FORMATS", "png")]);
        let out = render(&bytes, &r).unwrap();
        let o = &out[0];
        let (sw, sh) = (o.height, o.width);
        // Orientation 6 is shown turned 90° clockwise; turn it back.
        let got = image::load_from_memory(&o.bytes)
            .unwrap()
            .rotate270()
            .into_rgb8()
            .into_raw();
        let level = reference_level(&full, (sw, sh));
        assert!(
            level.width < full.width,
            "{width}: made from a level, not the source"
        );
        let laddered = stages::resize(&level, sw, sh).unwrap();
        let (max, _) = difference(&got, &laddered);
        assert!(
            max <= 1,
            "{width}: the output is not the level's resize (max {max})"
        );
        let direct = stages::resize(&full, sw, sh).unwrap();
        let (max, mean) = difference(&laddered, &direct);
        assert!(max <= 40 && mean < 1.0, "{width}: max {max}, mean {mean:.3}");
    }
}

/// A variant's bytes depend on its source, width and format alone: made
/// alone, it is byte for byte the variant made among any other widths
/// and formats, for streamed and whole-decoded sources, RGBA with a size
/// of the source's own, and the source's width standing in for a wider one.
#[test]
fn a_variant_alone_is_the_same_variant_among_others() {
    use resize_testkit::large::{large_photo, Kind};
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "baseline JPEG",
            large_photo(Kind::Jpeg, 3001, 1999),
            "2200,1200,720,360,100,1000,1500",
        ),
        (
            "progressive JPEG",
            large_photo(Kind::ProgressiveJpeg, 2000, 1500),
            "1200,720,360,50",
        ),
        (
            "phone photo, orientation 6",
            fixture("phone-orient6.jpg"),
            "3024,1200,720,360,96",
        ),
        ("CMYK JPEG (decoded whole)", fixture("cmyk.jpg"), "50,20,10"),
        (
            "RGBA PNG with its own size",
            fixture("alpha.png"),
            "200,150,90,45,16",
        ),
        ("TIFF", fixture("photo.tiff"), "320,150,70,16"),
        ("WebP", fixture("still.webp"), "60,30,16"),
        ("GIF", fixture("animated.gif"), "40,16"),
        (
            "the source's width for a wider one",
            fixture("photo-4x3.jpg"),
            "2000,400,120",
        ),
    ];
    for (what, bytes, widths) in &cases {
        let all = recipe(&[
            ("SIZES", widths),
            ("FORMATS", "jpeg,webp,png"),
            ("UPSCALE", "source"),
        ]);
        let together = render(bytes, &all).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(!together.is_empty(), "{what}");
        for o in &together {
            let alone = recipe(&[
                ("SIZES", &o.width.to_string()),
                ("FORMATS", o.format.name()),
                ("UPSCALE", "source"),
            ]);
            let single = render(bytes, &alone).unwrap();
            assert_eq!(single.len(), 1, "{what} {}", o.width);
            assert!(
                single[0].bytes == o.bytes,
                "{what}: {} px {:?} differs alone and among {widths}",
                o.width,
                o.format
            );
        }
    }
}

/// A JPEG whose scans would each cost a pass over the whole image is
/// refused from its markers before libjpeg sees it; one scan fewer than
/// the limit still renders.
#[test]
fn a_jpeg_with_thousands_of_scans_is_refused_before_decoding() {
    // `photo-4x3.jpg` with a comment segment after its scan holding `n`
    // scan markers: counted like real ones (the quick count does not parse
    // what follows the first scan), and harmless when under the limit.
    // Before the first scan they would not count: the segments there are
    // skipped by their lengths, as an EXIF thumbnail's must be.
    let with_markers = |n: usize| {
        let photo = fixture("photo-4x3.jpg");
        let payload = [0xFF, 0xDA].repeat(n);
        let len = u16::try_from(payload.len() + 2).unwrap();
        let mut out = photo[..photo.len() - 2].to_vec();
        out.extend_from_slice(&[0xFF, 0xFE]);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&payload);
        out.extend_from_slice(&[0xFF, 0xD9]);
        out
    };
    let err = error_of(&with_markers(600), &[("SIZES", "96")]);
    assert_eq!(err, "cannot decode jpeg: 601 scans, over the limit of 500");
    let out = render(&with_markers(499), &recipe(&[("SIZES", "96")])).unwrap();
    assert_eq!((out[0].width, out[0].height), (96, 72));
}

/// An RGBA source is premultiplied once for every size made from it; the
/// PNG outputs must hold exactly what one resize of the straight source
/// gives (fast_image_resize premultiplying its own copy), byte for byte.
#[test]
fn premultiplying_the_source_once_changes_no_byte() {
    use resize_core::stages;
    for name in ["alpha.png", "gray-alpha.png"] {
        let bytes = fixture(name);
        let decoded = stages::decode(&bytes, Default::default()).unwrap();
        // 150 and 90 are both made from the source (no halving is twice as large).
        let out = render(&bytes, &recipe(&[("SIZES", "150,90"), ("FORMATS", "png")])).unwrap();
        assert_eq!(out.len(), 2, "{name}");
        for r in &out {
            let expect = stages::resize(&decoded, r.width, r.height).unwrap();
            let got = image::load_from_memory(&r.bytes).unwrap().into_rgba8().into_raw();
            assert_eq!(got.len(), expect.len(), "{name} {}", r.width);
            let differing = got.iter().zip(&expect).filter(|(a, b)| a != b).count();
            assert_eq!(differing, 0, "{name} at {} px: {differing} bytes differ", r.width);
        }
    }
}

/// RGBA bytes with colour multiplied by alpha (rounded), alpha kept.
fn premultiplied(rgba: &[u8]) -> Vec<u8> {
    rgba.chunks_exact(4)
        .flat_map(|p| {
            let a = u32::from(p[3]);
            let m = |c: u8| ((u32::from(c) * a + 127) / 255) as u8;
            [m(p[0]), m(p[1]), m(p[2]), p[3]]
        })
        .collect()
}

/// A gray or RGB JPEG and a PNG that is not interlaced are decoded a few
/// rows at a time and resized strip by strip; every output row must match
/// one resize of its whole level (the source or a halving of it, computed
/// apart) within 1 level (the crop offsets round differently), for sizes
/// made from the source and from levels 1 to 3, odd sizes, a source
/// shorter than one strip, gray, palette, 16-bit and RGBA PNGs (RGBA
/// compared premultiplied, and made from the source).
#[test]
fn streamed_jpegs_match_a_whole_image_resize() {
    use resize_core::stages;
    use resize_testkit::large::{large_photo, Kind};
    let jpeg = |w: u32, h: u32| {
        let mut out = Vec::new();
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, ((x ^ y) & 0xFF) as u8])
        });
        img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Jpeg)
            .unwrap();
        out
    };
    // (what, source, widths: all made from the source)
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "3000x2000, full scale",
            large_photo(Kind::Jpeg, 3000, 2000),
            "1200,900",
        ),
        (
            "3001x1999, levels 0 and 1",
            large_photo(Kind::Jpeg, 3001, 1999),
            "1100,700",
        ),
        (
            "6000x4000, level 2",
            large_photo(Kind::Jpeg, 6000, 4000),
            "700,500",
        ),
        (
            "6001x4001, level 3",
            large_photo(Kind::Jpeg, 6001, 4001),
            "370,300",
        ),
        (
            "progressive, level 1",
            large_photo(Kind::ProgressiveJpeg, 4000, 3000),
            "900,700",
        ),
        ("gray", large_photo(Kind::GrayJpeg, 2000, 1500), "999,600"),
        ("shorter than a strip", jpeg(900, 37), "500,300"),
        ("taller than wide", jpeg(300, 2500), "200,120"),
        ("upscale=source", jpeg(640, 480), "1000"),
        ("RGB PNG", large_photo(Kind::Png, 2400, 1800), "1000,700"),
        ("RGBA PNG", large_photo(Kind::PngAlpha, 2400, 1800), "1000,700"),
        ("16-bit RGBA PNG", large_photo(Kind::Png16, 1200, 900), "500"),
        ("palette PNG", fixture("palette.png"), "50"),
        ("gray PNG", fixture("gray8.png"), "50"),
        ("gray and alpha PNG", fixture("gray-alpha.png"), "50"),
        ("PNG 4000x3", fixture("extreme-4000x3.png"), "1000"),
    ];
    for (what, bytes, widths) in &cases {
        let r = recipe(&[("SIZES", widths), ("FORMATS", "png"), ("UPSCALE", "source")]);
        let out = render(bytes, &r).unwrap();
        let full = stages::decode(bytes, Default::default()).unwrap();
        for o in &out {
            let decoded = reference_level(&full, (o.width, o.height));
            if decoded.channels == stages::Channels::Rgba {
                assert_eq!(
                    decoded.width, full.width,
                    "{what}: RGBA cases are made from the source"
                );
            }
            let expect = stages::resize(&decoded, o.width, o.height).unwrap();
            let got = image::load_from_memory(&o.bytes).unwrap();
            let (got, expect) = match decoded.channels {
                stages::Channels::Gray => (got.into_luma8().into_raw(), expect),
                stages::Channels::Rgb => (got.into_rgb8().into_raw(), expect),
                // Straight colour under faint alpha is the rounding of a
                // division: compare colour premultiplied, as it is seen.
                stages::Channels::Rgba => (
                    premultiplied(&got.into_rgba8().into_raw()),
                    premultiplied(&expect),
                ),
            };
            assert_eq!(got.len(), expect.len(), "{what} {}", o.width);
            let worst = got
                .iter()
                .zip(&expect)
                .map(|(a, b)| a.abs_diff(*b))
                .max()
                .unwrap_or(0);
            let off = got.iter().zip(&expect).filter(|(a, b)| a != b).count();
            assert!(
                worst <= 1,
                "{what} at {} px: {off} values differ, by up to {worst}",
                o.width
            );
        }
    }
}

/// `render_owned` frees the file as the decoder reads it; what it makes
/// must be what `render` makes from the same bytes, byte for byte, and its
/// errors the same errors: for every fixture (good, hostile, bad), cut
/// short, and for progressive, gray and CMYK JPEGs at every level of the ladder.
#[test]
fn given_bytes_render_exactly_as_lent_bytes() {
    use resize_core::render_owned;
    use resize_testkit::large::{large_photo, Kind};
    fn check(what: &str, bytes: &[u8], r: &Recipe) {
        let lent = render(bytes, r).map_err(|e| e.to_string());
        let given = render_owned(bytes.to_vec(), r).map_err(|e| e.to_string());
        match (&lent, &given) {
            (Ok(a), Ok(b)) => {
                let shape = |v: &[Rendition]| {
                    v.iter()
                        .map(|o| (o.width, o.height, o.format))
                        .collect::<Vec<_>>()
                };
                assert_eq!(shape(a), shape(b), "{what}");
                for (x, y) in a.iter().zip(b) {
                    assert!(
                        x.bytes == y.bytes,
                        "{what}: {}x{} {:?} differs",
                        x.width,
                        x.height,
                        x.format
                    );
                }
            }
            (Err(a), Err(b)) => assert_eq!(a, b, "{what}"),
            _ => panic!(
                "{what}: lent {lent:?} but given {given:?}",
                lent = lent.as_ref().map(Vec::len),
                given = given.as_ref().map(Vec::len)
            ),
        }
    }
    let r = recipe(&[("SIZES", "16,40"), ("FORMATS", "jpeg,png")]);
    let mut names = small_fixtures();
    names.extend(fixtures_under("bad"));
    for name in names {
        let bytes = fixture(&name);
        check(&name, &bytes, &r);
        for cut in [bytes.len() / 3, bytes.len() * 9 / 10] {
            check(&format!("{name} cut at {cut}"), &bytes[..cut], &r);
        }
    }
    for (what, bytes, widths) in [
        (
            "progressive, levels 1 and 2",
            large_photo(Kind::ProgressiveJpeg, 4000, 3000),
            "900,300",
        ),
        (
            "baseline, levels 0 and 1",
            large_photo(Kind::Jpeg, 3000, 2000),
            "2000,700",
        ),
        ("gray", large_photo(Kind::GrayJpeg, 2000, 1500), "999"),
        ("CMYK, level 2", large_photo(Kind::CmykJpeg, 3200, 2400), "400"),
        ("PNG", large_photo(Kind::Png, 1600, 1200), "500"),
    ] {
        check(what, &bytes, &recipe(&[("SIZES", widths), ("FORMATS", "jpeg")]));
    }
}

/// Files whose libjpeg warnings leave the pixels whole render like any photo.
#[test]
fn warnings_that_leave_the_pixels_whole_are_rendered() {
    let names = fixtures_under("warnings");
    assert_eq!(names.len(), 2, "{names:?}");
    for name in names {
        let out = render(&fixture(&name), &recipe(&[("SIZES", "96"), ("FORMATS", "jpeg")]))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((out[0].width, out[0].height), (96, 72), "{name}");
        decode(&out[0]);
    }
}

/// Where a file's header and image data end: a cut before this offset
/// loses pixels; the rest (an end marker, trailing previews, IEND, EXIF
/// after a WebP's bitstream) does not.
fn image_data_end(bytes: &[u8]) -> usize {
    if bytes.starts_with(&[0xFF, 0xD8]) {
        // The main image's end marker, walking its segments (an EXIF
        // thumbnail's own end marker is inside a segment).
        let mut at = 2;
        while at + 4 <= bytes.len() {
            let len = usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
            if bytes[at + 1] == 0xDA {
                let scan = at + 2 + len;
                return scan + memchr_end(&bytes[scan..]).unwrap_or_else(|| panic!("no end marker"));
            }
            at += 2 + len;
        }
        panic!("no scan");
    }
    if let Some(mut rest) = bytes.strip_prefix(b"\x89PNG\r\n\x1a\n".as_slice()) {
        // The end of the last IDAT chunk.
        let mut end = 8;
        let mut at = 8;
        while rest.len() >= 12 {
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            if &rest[4..8] == b"IDAT" {
                end = at + 12 + len;
            }
            at += 12 + len;
            rest = &rest[12 + len..];
        }
        return end;
    }
    if bytes.starts_with(b"RIFF") {
        // The end of the VP8/VP8L bitstream chunk.
        let mut at = 12;
        while at + 8 <= bytes.len() {
            let len =
                u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]]) as usize;
            if matches!(&bytes[at..at + 4], b"VP8 " | b"VP8L") {
                return at + 8 + len;
            }
            at += 8 + len + (len & 1);
        }
        panic!("no bitstream");
    }
    if bytes.starts_with(b"GIF") {
        // The end of the first frame's image data (only it is decoded).
        let flags = bytes[10];
        let mut at = 13
            + if flags & 0x80 != 0 {
                3 << ((flags & 7) + 1)
            } else {
                0
            };
        let sub_blocks = |mut at: usize| {
            while bytes[at] != 0 {
                at += 1 + usize::from(bytes[at]);
            }
            at + 1
        };
        loop {
            match bytes[at] {
                0x21 => at = sub_blocks(at + 2),
                0x2C => {
                    let flags = bytes[at + 9];
                    at += 10
                        + if flags & 0x80 != 0 {
                            3 << ((flags & 7) + 1)
                        } else {
                            0
                        };
                    return sub_blocks(at + 1);
                }
                other => panic!("GIF block {other:#x}"),
            }
        }
    }
    // TIFF: the pixels may be anywhere; the whole file.
    bytes.len()
}

/// The offset of the first end-of-image marker in entropy-coded data and
/// the segments between scans.
fn memchr_end(data: &[u8]) -> Option<usize> {
    data.windows(2).position(|w| w == [0xFF, 0xD9])
}

/// Cuts `bytes` at ten points inside its header and image data; every cut
/// must be refused. A cut JPEG is tried again with its end marker put back,
/// which passes the quick check of markers, so that libjpeg itself meets
/// the missing data. `Err` lists the cuts that were rendered.
fn check_cuts(name: &str, bytes: &[u8], r: &Recipe) -> Result<(), String> {
    let end = image_data_end(bytes);
    let rendered = |cut: usize| {
        let mut patched = bytes[..cut].to_vec();
        if bytes.starts_with(&[0xFF, 0xD8]) {
            patched.extend_from_slice(&[0xFF, 0xD9]);
        }
        render(&bytes[..cut], r).is_ok() || render(&patched, r).is_ok()
    };
    let published: Vec<usize> = (0..10)
        .map(|i| 2 + (end - 2) * i / 10)
        .filter(|&cut| rendered(cut))
        .collect();
    if published.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{name} ({} bytes, image data to {end}): rendered when cut at {published:?}",
            bytes.len()
        ))
    }
}

/// Every cut inside a photo's header or pixel data is refused: nothing is
/// published with a grey or missing part. The shared corpus of real photos
/// (`../shared/corpus`, beside the project) is swept too when it is there.
#[test]
fn every_cut_inside_the_image_data_is_refused() {
    let r = recipe(&[("SIZES", "16"), ("FORMATS", "jpeg")]);
    let mut failures = Vec::new();
    let mut swept = 0;
    for name in fixtures_under("images")
        .into_iter()
        .chain(fixtures_under("warnings"))
    {
        if let Err(e) = check_cuts(&name, &fixture(&name), &r) {
            failures.push(e);
        }
        swept += 1;
    }
    assert!(swept >= 30, "{swept} fixtures");
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus");
    match std::fs::read_dir(&corpus) {
        Ok(dir) => {
            let mut photos: Vec<PathBuf> = dir
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("jpg")))
                .collect();
            photos.sort();
            assert!(!photos.is_empty(), "{} has no photos", corpus.display());
            for path in photos {
                let bytes = std::fs::read(&path).unwrap();
                if let Err(e) = check_cuts(&path.display().to_string(), &bytes, &r) {
                    failures.push(e);
                }
            }
        }
        Err(_) => eprintln!("skipped the shared corpus: {} is not there", corpus.display()),
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
