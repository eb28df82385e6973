//! Large sources made cheaply from a small photo, for the memory tests: a
//! fixture stretched (nearest neighbour) to any size and encoded fast (libjpeg for JPEG, the png
//! crate's fastest level for PNG). A 72 MP JPEG takes about a second.

use std::io::Cursor;

/// How a large source is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Baseline JPEG, 4:2:0.
    Jpeg,
    /// Progressive JPEG, 4:2:0: libjpeg holds its whole coefficient
    /// buffer (3 bytes per source pixel) while decoding.
    ProgressiveJpeg,
    /// Baseline grayscale JPEG.
    GrayJpeg,
    /// Adobe CMYK JPEG (inverted samples, no profile).
    CmykJpeg,
    /// 8-bit RGB PNG.
    Png,
    /// 16-bit RGBA PNG.
    Png16,
    /// Lossless WebP, RGB.
    WebPLossless,
    /// 8-bit RGBA PNG (alpha varies across the image).
    PngAlpha,
}

/// `fixtures/images/photo-4x3.jpg` stretched to `width` × `height`
/// (nearest neighbour: runs of equal pixels keep the files small and quick
/// to upload) and encoded as `kind`.
pub fn large_photo(kind: Kind, width: u32, height: u32) -> Vec<u8> {
    let tile = image::load_from_memory(&crate::fixture("images/photo-4x3.jpg"))
        .unwrap_or_else(|e| panic!("cannot decode the tile: {e}"))
        .into_rgb8();
    let (tw, th) = tile.dimensions();
    let channels = match kind {
        Kind::PngAlpha | Kind::Png16 | Kind::CmykJpeg => 4,
        Kind::GrayJpeg => 1,
        _ => 3,
    };
    let mut pixels = Vec::with_capacity(width as usize * height as usize * channels);
    for y in 0..height {
        for x in 0..width {
            let [r, g, b] = tile.get_pixel(x * tw / width, y * th / height).0;
            match kind {
                Kind::GrayJpeg => pixels.push(g),
                // Adobe's inverted CMYK: 255 is no ink.
                Kind::CmykJpeg => pixels.extend_from_slice(&[r, g, b, 255 - r.min(g).min(b) / 4]),
                _ => pixels.extend_from_slice(&[r, g, b]),
            }
            if matches!(kind, Kind::PngAlpha | Kind::Png16) {
                pixels.push((x * 255 / width.max(1)) as u8 | 0x0F);
            }
        }
    }
    match kind {
        Kind::Jpeg | Kind::ProgressiveJpeg | Kind::GrayJpeg | Kind::CmykJpeg => {
            jpeg(kind, &pixels, width, height)
        }
        Kind::WebPLossless => {
            let mut out = Vec::new();
            image::codecs::webp::WebPEncoder::new_lossless(&mut out)
                .encode(&pixels, width, height, image::ExtendedColorType::Rgb8)
                .unwrap_or_else(|e| panic!("cannot encode the WebP: {e}"));
            out
        }
        Kind::Png16 => {
            use image::codecs::png::{CompressionType, FilterType, PngEncoder};
            use image::ImageEncoder;
            // Each 8-bit sample twice: the high and low byte.
            let wide: Vec<u8> = pixels.iter().flat_map(|&v| [v, v]).collect();
            let mut out = Vec::new();
            PngEncoder::new_with_quality(Cursor::new(&mut out), CompressionType::Fast, FilterType::Up)
                .write_image(&wide, width, height, image::ExtendedColorType::Rgba16)
                .unwrap_or_else(|e| panic!("cannot encode the PNG: {e}"));
            out
        }
        Kind::Png | Kind::PngAlpha => {
            use image::codecs::png::{CompressionType, FilterType, PngEncoder};
            use image::ImageEncoder;
            let mut out = Vec::new();
            let color = if channels == 4 {
                image::ExtendedColorType::Rgba8
            } else {
                image::ExtendedColorType::Rgb8
            };
            PngEncoder::new_with_quality(Cursor::new(&mut out), CompressionType::Fast, FilterType::Up)
                .write_image(&pixels, width, height, color)
                .unwrap_or_else(|e| panic!("cannot encode the PNG: {e}"));
            out
        }
    }
}

/// `pixels` (RGB, gray or CMYK as `kind` says) as a JPEG of that kind.
fn jpeg(kind: Kind, pixels: &[u8], width: u32, height: u32) -> Vec<u8> {
    let space = match kind {
        Kind::GrayJpeg => mozjpeg::ColorSpace::JCS_GRAYSCALE,
        Kind::CmykJpeg => mozjpeg::ColorSpace::JCS_CMYK,
        _ => mozjpeg::ColorSpace::JCS_RGB,
    };
    let mut c = mozjpeg::Compress::new(space);
    c.set_fastest_defaults();
    c.set_size(width as usize, height as usize);
    c.set_quality(85.0);
    if kind != Kind::GrayJpeg {
        c.set_chroma_sampling_pixel_sizes((2, 2), (2, 2));
    }
    if kind == Kind::ProgressiveJpeg {
        c.set_progressive_mode();
    }
    let mut started = c
        .start_compress(Vec::new())
        .unwrap_or_else(|e| panic!("libjpeg: {e}"));
    started
        .write_scanlines(pixels)
        .unwrap_or_else(|e| panic!("libjpeg: {e}"));
    started.finish().unwrap_or_else(|e| panic!("libjpeg: {e}"))
}
