//! Pixel content of outputs: EXIF orientation applied, transparency kept
//! in PNG and WebP and flattened onto the background in JPEG.

use crate::support::{assert_near, decode, rgba_at, Sandbox};

const RED: [u8; 3] = [255, 0, 0];
const GREEN: [u8; 3] = [0, 255, 0];
const BLUE: [u8; 3] = [0, 0, 255];
const WHITE: [u8; 3] = [255, 255, 255];
const BLACK: [u8; 3] = [0, 0, 0];

/// Colours at the centres of the four quadrants of an image, in the order
/// top-left, top-right, bottom-left, bottom-right.
#[track_caller]
fn check_quadrants(sb: &Sandbox, rel: &str, size: (u32, u32), expected: [[u8; 3]; 4], tolerance: u8) {
    let image = decode(&sb.path(rel));
    assert_eq!((image.width(), image.height()), size, "size of {rel}");
    let (w, h) = size;
    let centres = [
        (w / 4, h / 4),
        (3 * w / 4, h / 4),
        (w / 4, 3 * h / 4),
        (3 * w / 4, 3 * h / 4),
    ];
    let names = ["top-left", "top-right", "bottom-left", "bottom-right"];
    for ((x, y), (want, name)) in centres.into_iter().zip(expected.iter().zip(names)) {
        let px = rgba_at(&image, x, y);
        assert_near(&format!("{rel} {name} ({x},{y})"), &px[..3], want, tolerance);
    }
}

/// All eight EXIF orientations come out upright: 60×40 with red, green,
/// blue and white quadrants, whatever the stored layout.
#[test]
fn exif_orientations_come_out_upright() {
    let sb = Sandbox::new();
    for n in 1..=8 {
        sb.copy_fixture(
            &format!("orientation/orient-{n}.jpg"),
            &format!("in/orient-{n}.jpg"),
        );
    }
    sb.run(&["--sizes", "60", "--out", "out", "in"]).expect_code(0);
    let expected: Vec<String> = (1..=8).map(|n| format!("orient-{n}-60.jpg")).collect();
    assert_eq!(sb.files("out"), expected);
    for n in 1..=8 {
        check_quadrants(
            &sb,
            &format!("out/orient-{n}-60.jpg"),
            (60, 40),
            [RED, GREEN, BLUE, WHITE],
            60,
        );
    }
}

/// A 12 MP phone photo stored landscape with orientation 6 becomes a
/// 360×480 portrait, red-ish top left and blue-ish bottom right.
#[test]
fn phone_photo_with_orientation_6_becomes_portrait() {
    let sb = Sandbox::new();
    sb.copy_fixture("phone-orient6.jpg", "in/phone-orient6.jpg");
    sb.run(&["--sizes", "360", "--out", "out", "in"]).expect_code(0);
    assert_eq!(sb.files("out"), ["phone-orient6-360.jpg"]);
    let image = decode(&sb.path("out/phone-orient6-360.jpg"));
    assert_eq!((image.width(), image.height()), (360, 480));
    // Upright quadrants per fixtures/README.md: top-left ≈(212,58,48),
    // bottom-right ≈(45,64,193); the other two only need to differ.
    assert_near("top-left", &rgba_at(&image, 90, 120)[..3], &[212, 58, 48], 60);
    assert_near(
        "bottom-right",
        &rgba_at(&image, 270, 360)[..3],
        &[45, 64, 193],
        60,
    );
    let top_right = rgba_at(&image, 270, 120);
    assert!(
        top_right[1] > top_right[0] && top_right[1] > top_right[2],
        "top-right should be green-ish, got {top_right:?}"
    );
}

/// Transparency: kept in PNG and WebP, flattened onto white (or
/// `--background`) in JPEG. Columns of the 100×75 output: left third
/// transparent, middle opaque red, right third blue at alpha 128.
#[test]
fn alpha_is_kept_or_flattened_onto_the_background() {
    // (background flag, expected JPEG left, expected JPEG right)
    let cases: [(Option<&str>, [u8; 3], [u8; 3]); 2] = [
        (None, WHITE, [127, 127, 255]),
        (Some("#000000"), BLACK, [0, 0, 128]),
    ];
    for (background, jpeg_left, jpeg_right) in cases {
        let sb = Sandbox::new();
        sb.copy_fixture("alpha.png", "in/alpha.png");
        let mut args = vec![
            "--sizes",
            "100",
            "--formats",
            "jpeg,png,webp",
            "--out",
            "out",
            "in",
        ];
        if let Some(bg) = background {
            args.extend(["--background", bg]);
        }
        sb.run(&args).expect_code(0);
        assert_eq!(
            sb.files("out"),
            ["alpha-100.jpg", "alpha-100.png", "alpha-100.webp"]
        );
        let (left, middle, right) = ((15, 37), (50, 37), (85, 37));

        for rel in ["out/alpha-100.png", "out/alpha-100.webp"] {
            let image = decode(&sb.path(rel));
            assert_eq!((image.width(), image.height()), (100, 75), "size of {rel}");
            assert!(image.color().has_alpha(), "{rel} lost its alpha channel");
            let tol = if rel.ends_with(".png") { 2 } else { 40 };
            assert_near(
                &format!("{rel} left alpha"),
                &[rgba_at(&image, left.0, left.1)[3]],
                &[0],
                tol.min(4),
            );
            assert_near(
                &format!("{rel} middle"),
                &rgba_at(&image, middle.0, middle.1),
                &[255, 0, 0, 255],
                tol,
            );
            let r = rgba_at(&image, right.0, right.1);
            assert_near(&format!("{rel} right"), &[r[2], r[3]], &[255, 128], tol);
        }

        let rel = "out/alpha-100.jpg";
        let image = decode(&sb.path(rel));
        assert_eq!((image.width(), image.height()), (100, 75), "size of {rel}");
        assert!(!image.color().has_alpha());
        let what = format!("{rel} with background {background:?}");
        assert_near(
            &format!("{what} left"),
            &rgba_at(&image, left.0, left.1)[..3],
            &jpeg_left,
            20,
        );
        assert_near(
            &format!("{what} middle"),
            &rgba_at(&image, middle.0, middle.1)[..3],
            &RED,
            40,
        );
        assert_near(
            &format!("{what} right"),
            &rgba_at(&image, right.0, right.1)[..3],
            &jpeg_right,
            40,
        );
    }
}
