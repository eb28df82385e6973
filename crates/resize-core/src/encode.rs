//! Encoders. Every output is written from pixels alone, so no EXIF, XMP,
//! ICC or comment from the source can reach it.

use crate::error::RenderError;
use crate::recipe::{Format, Recipe};

/// Encodes `pixels` (RGB or RGBA, 8-bit, sRGB) as `format`.
pub(crate) fn encode(
    format: Format,
    recipe: &Recipe,
    pixels: &[u8],
    width: u32,
    height: u32,
    channels: u8,
) -> Result<Vec<u8>, RenderError> {
    let err = |message: String| RenderError::Encode {
        format,
        width,
        height,
        message,
    };
    let expected = u64::from(width) * u64::from(height) * u64::from(channels);
    if pixels.len() as u64 != expected {
        return Err(err("pixel buffer does not match its size".to_owned()));
    }
    let quality = recipe.quality(format).map_or(100, |q| q.get());
    match format {
        Format::Jpeg => jpeg(pixels, width, height, channels, quality).map_err(err),
        Format::WebP => webp(pixels, width, height, channels, quality).map_err(err),
        Format::Png => png(pixels, width, height, channels).map_err(err),
    }
}

fn jpeg(pixels: &[u8], width: u32, height: u32, channels: u8, quality: u8) -> Result<Vec<u8>, String> {
    let too_big = || "JPEG allows at most 65535 px per side".to_owned();
    let w = u16::try_from(width).map_err(|_| too_big())?;
    let h = u16::try_from(height).map_err(|_| too_big())?;
    let color = match channels {
        3 => jpeg_encoder::ColorType::Rgb,
        _ => return Err("JPEG input must be RGB".to_owned()),
    };
    let mut out = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, quality);
    // 4:2:0 like sharp and libjpeg's default: a third smaller than 4:4:4 at
    // the same quality, and photos rarely show the difference.
    encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
    encoder.set_optimized_huffman_tables(false);
    encoder
        .encode(pixels, w, h, color)
        .map_err(|e| e.to_string().to_lowercase())?;
    Ok(out)
}

#[cfg(feature = "webp")]
fn webp(pixels: &[u8], width: u32, height: u32, channels: u8, quality: u8) -> Result<Vec<u8>, String> {
    // libwebp's limit; checked here because the wrapper would not say why.
    const MAX: u32 = 16_383;
    if width > MAX || height > MAX {
        return Err(format!("WebP allows at most {MAX} px per side"));
    }
    let layout = if channels == 4 {
        webp::PixelLayout::Rgba
    } else {
        webp::PixelLayout::Rgb
    };
    let mut config = webp::WebPConfig::new().map_err(|()| "libwebp version mismatch".to_owned())?;
    config.lossless = 0;
    config.quality = f32::from(quality);
    // Method 4 is cwebp's default: method 6 is ~2× slower for ~1% smaller files.
    config.method = 4;
    let encoded = webp::Encoder::new(pixels, layout, width, height)
        .encode_advanced(&config)
        .map_err(|e| format!("libwebp: {e:?}").to_lowercase())?;
    Ok(encoded.to_vec())
}

#[cfg(not(feature = "webp"))]
fn webp(_: &[u8], _: u32, _: u32, _: u8, _: u8) -> Result<Vec<u8>, String> {
    // `RecipeBuilder::build` refuses WebP without the feature.
    Err("this build has no WebP encoder".to_owned())
}

fn png(pixels: &[u8], width: u32, height: u32, channels: u8) -> Result<Vec<u8>, String> {
    use image::ImageEncoder;
    let color = if channels == 4 {
        image::ExtendedColorType::Rgba8
    } else {
        image::ExtendedColorType::Rgb8
    };
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(pixels, width, height, color)
        .map_err(|e| e.to_string().to_lowercase())?;
    Ok(out)
}
