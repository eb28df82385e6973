//! Placeholders a page shows while a photo loads, computed from an upright
//! sRGB rendering of at most [`MAX_SIDE`] pixels on its longer side:
//! - a [ThumbHash](https://evanw.github.io/thumbhash/) (base64), which a
//!   page decodes with a few lines of JavaScript;
//! - the dominant colour (`#rrggbb`), for a plain background;
//! - the ThumbHash decoded to a tiny PNG, as a `data:` URL: a blurred
//!   image that needs no JavaScript (what Next.js calls `blurDataURL`).

use base64::Engine;

use super::RenderError;

/// The longest side of the rendering placeholders are computed from
/// (ThumbHash's own limit).
pub const MAX_SIDE: u32 = 100;

/// A photo's placeholders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placeholders {
    /// The ThumbHash, standard base64.
    pub thumbhash: String,
    /// The most common colour, `#rrggbb` (lower case).
    pub dominant: String,
    /// A tiny blurred PNG (the ThumbHash decoded), `data:image/png;base64,…`.
    pub data_url: String,
}

/// The placeholders of an upright sRGB RGBA image (straight alpha) of at
/// most [`MAX_SIDE`] pixels a side. Any other size, or a buffer of the
/// wrong length, is [`RenderError::Placeholder`].
pub fn placeholders(rgba: &[u8], width: u32, height: u32) -> Result<Placeholders, RenderError> {
    let fail = |message: String| RenderError::Placeholder {
        width,
        height,
        message,
    };
    let (w, h) = (width as usize, height as usize);
    if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
        return Err(fail(format!("placeholders need 1 to {MAX_SIDE} pixels a side")));
    }
    if rgba.len() != w * h * 4 {
        return Err(fail(format!("{} bytes are not {w}×{h} RGBA pixels", rgba.len())));
    }
    let hash = thumbhash::rgba_to_thumb_hash(w, h, rgba);
    let (bw, bh, blurred) = thumbhash::thumb_hash_to_rgba(&hash)
        .map_err(|()| fail("the ThumbHash does not decode".to_owned()))?;
    let mut png = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut png),
        &blurred,
        bw as u32,
        bh as u32,
        image::ExtendedColorType::Rgba8,
    )
    .map_err(|e| fail(format!("cannot encode the blurred PNG: {e}")))?;
    let base64 = base64::engine::general_purpose::STANDARD;
    let [r, g, b] = dominant(rgba);
    Ok(Placeholders {
        thumbhash: base64.encode(&hash),
        dominant: format!("#{r:02x}{g:02x}{b:02x}"),
        data_url: format!("data:image/png;base64,{}", base64.encode(&png)),
    })
}

/// The most common colour: pixels are counted in 4,096 buckets (4 bits a
/// channel), each weighted by its opacity, and the fullest bucket's pixels
/// averaged. A mean would give the grey between a blue sky and green
/// grass; this gives the sky. A wholly transparent image is white.
fn dominant(rgba: &[u8]) -> [u8; 3] {
    // Per bucket: weight, and the weighted sums of r, g, b.
    let mut buckets = vec![[0u64; 4]; 4096];
    for p in rgba.chunks_exact(4) {
        let alpha = u64::from(p[3]);
        if alpha == 0 {
            continue;
        }
        let i = (usize::from(p[0] >> 4) << 8) | (usize::from(p[1] >> 4) << 4) | usize::from(p[2] >> 4);
        let b = &mut buckets[i];
        b[0] += alpha;
        b[1] += alpha * u64::from(p[0]);
        b[2] += alpha * u64::from(p[1]);
        b[3] += alpha * u64::from(p[2]);
    }
    // The first fullest bucket, so ties resolve the same way every time.
    let best = buckets
        .iter()
        .enumerate()
        .max_by_key(|(i, b)| (b[0], std::cmp::Reverse(*i)))
        .map(|(_, b)| *b)
        .unwrap_or([0; 4]);
    if best[0] == 0 {
        return [255, 255, 255];
    }
    // A weighted mean of 8-bit values is at most 255.
    let mean = |sum: u64| u8::try_from((sum + best[0] / 2) / best[0]).unwrap_or(u8::MAX);
    [mean(best[1]), mean(best[2]), mean(best[3])]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(width: u32, height: u32, pixel: impl Fn(u32, u32) -> [u8; 4]) -> Vec<u8> {
        (0..height)
            .flat_map(|y| (0..width).map(move |x| (x, y)))
            .flat_map(|(x, y)| pixel(x, y))
            .collect()
    }

    #[test]
    fn the_dominant_colour_is_the_commonest_not_the_mean() {
        // Two thirds sky, one third grass: the sky, not their mean.
        let sky = [40, 110, 230, 255];
        let grass = [30, 160, 40, 255];
        let rgba = image(90, 60, |_, y| if y < 40 { sky } else { grass });
        assert_eq!(dominant(&rgba), [40, 110, 230]);
        // Transparent pixels do not count.
        let rgba = image(
            10,
            10,
            |x, _| if x < 8 { [255, 0, 0, 0] } else { [0, 0, 255, 255] },
        );
        assert_eq!(dominant(&rgba), [0, 0, 255]);
        assert_eq!(dominant(&image(4, 4, |_, _| [9, 9, 9, 0])), [255, 255, 255]);
    }

    #[test]
    fn placeholders_decode_to_the_photo_s_shape_and_colours() {
        let rgba = image(100, 50, |x, _| {
            if x < 50 {
                [220, 30, 30, 255]
            } else {
                [30, 30, 220, 255]
            }
        });
        let p = placeholders(&rgba, 100, 50).expect("placeholders");
        let base64 = base64::engine::general_purpose::STANDARD;
        let hash = base64.decode(&p.thumbhash).expect("base64");
        let ratio = thumbhash::thumb_hash_to_approximate_aspect_ratio(&hash).expect("a ratio");
        // ThumbHash keeps the shape roughly (in its count of terms a side).
        assert!((1.5..=2.5).contains(&ratio), "aspect {ratio}");
        assert!(
            p.dominant == "#dc1e1e" || p.dominant == "#1e1edc",
            "{}",
            p.dominant
        );
        // The data URL is a PNG of the same shape, red on the left, blue on the right.
        let png = base64
            .decode(
                p.data_url
                    .strip_prefix("data:image/png;base64,")
                    .expect("a PNG data URL"),
            )
            .expect("base64");
        let blurred = image::load_from_memory(&png).expect("a PNG").to_rgba8();
        let (w, h) = blurred.dimensions();
        assert!(w > h && w <= 32, "{w}×{h}");
        let left = blurred.get_pixel(1, h / 2).0;
        let right = blurred.get_pixel(w - 2, h / 2).0;
        assert!(left[0] > left[2] && right[2] > right[0], "{left:?} {right:?}");
        assert!(p.data_url.len() < 2048, "{} bytes", p.data_url.len());
    }

    fn recipe(widths: &[u32]) -> crate::Recipe {
        let widths: Vec<crate::Width> = widths
            .iter()
            .map(|&w| crate::Width::new(w).expect("a width"))
            .collect();
        crate::Recipe::builder()
            .widths(&widths)
            .build()
            .expect("a recipe")
    }

    /// Placeholders come from the same ladder as the variants, upright,
    /// and asking for them changes no variant's bytes.
    #[test]
    fn renders_with_placeholders_keep_their_variants_and_stand_upright() {
        use crate::fixtures::fixture;
        use crate::pixels::{render, render_only, render_with_placeholders, Input, Only};
        let ladder = recipe(&[96, 360]);
        for (name, portrait) in [
            ("phone-orient6.jpg", true),
            ("photo-4x3.jpg", false),
            ("alpha.png", false),
        ] {
            let bytes = fixture(name);
            let plain = render(&bytes, &ladder).expect("renders");
            let with = render_with_placeholders(&bytes, &ladder).expect("renders");
            assert_eq!(plain, with.renditions, "{name}: placeholders changed a variant");
            let p = with.placeholders.expect("placeholders");
            let hash = base64::engine::general_purpose::STANDARD
                .decode(&p.thumbhash)
                .expect("base64");
            let ratio = thumbhash::thumb_hash_to_approximate_aspect_ratio(&hash).expect("a ratio");
            assert_eq!(ratio < 1.0, portrait, "{name}: aspect {ratio}");
            // The same from a render that encodes nothing (a manifest for
            // current variants).
            let alone = render_only(Input::Lent(&bytes), &ladder, Only::These(&[]), true).expect("renders");
            assert!(alone.renditions.is_empty());
            assert_eq!(alone.placeholders.as_ref(), Some(&p), "{name}");
        }
        // Phone photo: the upright quadrants are red, green, yellow and blue
        // areas; the dominant colour is one of them, not their grey mean.
        let phone = render_with_placeholders(&fixture("phone-orient6.jpg"), &ladder).expect("renders");
        let dominant = phone.placeholders.expect("placeholders").dominant;
        let rgb: Vec<u8> = (0..3)
            .map(|i| u8::from_str_radix(&dominant[1 + 2 * i..3 + 2 * i], 16).expect("hex"))
            .collect();
        let spread = rgb.iter().max().copied().unwrap_or(0) - rgb.iter().min().copied().unwrap_or(0);
        assert!(spread > 80, "{dominant} is not a saturated quadrant colour");
        // Narrower than every width: no variants, no placeholders.
        let tiny = render_with_placeholders(&fixture("photo-4x3.jpg"), &recipe(&[2000])).expect("renders");
        assert!(tiny.renditions.is_empty() && tiny.placeholders.is_none());
    }

    #[test]
    fn placeholder_sizes_keep_the_shape_within_100_px() {
        use crate::pixels::placeholder_size;
        let check = |w, h, want: (u32, u32)| {
            let s = placeholder_size(w, h);
            assert_eq!((s.width, s.height), want, "{w}×{h}");
        };
        check(4032, 3024, (100, 75));
        check(3024, 4032, (75, 100));
        check(4000, 3, (100, 1));
        check(80, 60, (80, 60));
        check(100, 100, (100, 100));
        check(1, 1, (1, 1));
    }

    #[test]
    fn sizes_outside_the_limit_are_errors_not_panics() {
        for (w, h, len) in [(0, 10, 0), (101, 10, 101 * 40), (10, 10, 399)] {
            let e = placeholders(&vec![0; len], w, h).expect_err("refused");
            assert!(matches!(e, RenderError::Placeholder { .. }), "{e}");
        }
    }
}
