//! Encoders. Every output is written from pixels alone, so no EXIF, XMP,
//! ICC or comment from the source can reach it.

use super::{libjpeg_message, Channels, RenderError};
use crate::recipe::Recipe;
use crate::values::Format;

/// Pixels to encode: gray, RGB or RGBA (`channels` 1, 3 or 4), 8-bit, sRGB.
#[derive(Clone, Copy)]
struct Image<'a> {
    pixels: &'a [u8],
    width: u32,
    height: u32,
    channels: Channels,
}

impl Image<'_> {
    /// This output's encoding error.
    fn fail(&self, format: Format, message: impl Into<String>) -> RenderError {
        RenderError::Encode {
            format,
            width: self.width,
            height: self.height,
            message: message.into(),
        }
    }
}

/// Encodes `pixels` (gray, RGB or RGBA, 8-bit, sRGB) as `format`.
pub(super) fn encode(
    format: Format,
    recipe: &Recipe,
    pixels: &[u8],
    width: u32,
    height: u32,
    channels: Channels,
) -> Result<Vec<u8>, RenderError> {
    let input = Image {
        pixels,
        width,
        height,
        channels,
    };
    let expected = u64::from(width) * u64::from(height) * channels.count() as u64;
    if pixels.len() as u64 != expected {
        return Err(input.fail(format, "pixel buffer does not match its size"));
    }
    let quality = recipe.quality(format).map_or(100, |q| q.get());
    match format {
        Format::Jpeg => jpeg(input, quality),
        Format::WebP => webp(input, quality),
        Format::Png => png(input),
    }
}

fn jpeg(input: Image<'_>, quality: u8) -> Result<Vec<u8>, RenderError> {
    let fail = |message: String| input.fail(Format::Jpeg, message);
    const MAX: u32 = 65_535;
    if input.width > MAX || input.height > MAX {
        return Err(fail(format!("JPEG allows at most {MAX} px per side")));
    }
    let space = match input.channels {
        Channels::Gray => mozjpeg::ColorSpace::JCS_GRAYSCALE,
        Channels::Rgb => mozjpeg::ColorSpace::JCS_RGB,
        Channels::Rgba => return Err(fail("JPEG input must be gray or RGB".to_owned())),
    };
    // libjpeg reports errors by unwinding out of its error handler; catch
    // it here so a codec failure is this output's error, not a panic.
    let encoded = std::panic::catch_unwind(|| -> std::io::Result<Vec<u8>> {
        let mut c = mozjpeg::Compress::new(space);
        // First: the fastest profile resets quality, tables and sampling.
        // It is libjpeg-turbo's baseline encoder (no trellis, no scan
        // search): 7–8 ns per pixel where mozjpeg's defaults take ~115.
        c.set_fastest_defaults();
        c.set_size(input.width as usize, input.height as usize);
        let q = f32::from(quality);
        // Quantisation tables, scaled to the quality as libjpeg scales its
        // own: mozjpeg's MS-SSIM-tuned luma table and N. Robidoux's table
        // (ImageMagick's, mozjpeg's default) for chroma. On the corpus at
        // q90 they make 4% fewer bytes than libjpeg's Annex K tables at
        // +0.7 SSIMULACRA2, at no cost in time; every other pair tried was
        // larger or scored lower (`jpeg_points` in resize-bench, README).
        c.set_luma_qtable(&mozjpeg::qtable::MSSSIM_Luma.scaled(q, q));
        if input.channels == Channels::Rgb {
            c.set_chroma_qtable(&mozjpeg::qtable::NRobidoux.scaled(q, q));
            // 4:2:0 like sharp and libjpeg's default: a third smaller than
            // 4:4:4 at the same quality. libjpeg averages each 2×2 block.
            c.set_chroma_sampling_pixel_sizes((2, 2), (2, 2));
        }
        // Huffman tables fitted to this image rather than the standard ones:
        // smaller files for one more pass over the coefficients.
        c.set_optimize_coding(true);
        let mut started = c.start_compress(Vec::new())?;
        started.write_scanlines(input.pixels)?;
        started.finish()
    });
    match encoded {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => Err(fail(format!("libjpeg: {e}").to_lowercase())),
        Err(panic) => Err(fail(libjpeg_message(panic.as_ref()))),
    }
}

#[cfg(feature = "webp")]
fn webp(input: Image<'_>, quality: u8) -> Result<Vec<u8>, RenderError> {
    let fail = |message: String| input.fail(Format::WebP, message);
    // libwebp's limit; checked here because the wrapper would not say why.
    const MAX: u32 = 16_383;
    if input.width > MAX || input.height > MAX {
        return Err(fail(format!("WebP allows at most {MAX} px per side")));
    }
    let layout = if input.channels == Channels::Rgba {
        webp::PixelLayout::Rgba
    } else {
        webp::PixelLayout::Rgb
    };
    // Lossy WebP is always YUV 4:2:0; a gray image goes in as RGB.
    let rgb: Vec<u8>;
    let pixels = if input.channels == Channels::Gray {
        rgb = input.pixels.iter().flat_map(|&v| [v, v, v]).collect();
        &rgb
    } else {
        input.pixels
    };
    let mut config = webp::WebPConfig::new().map_err(|()| fail("libwebp version mismatch".to_owned()))?;
    config.lossless = 0;
    config.quality = f32::from(quality);
    // Method 4 is cwebp's default: method 6 is ~2× slower for ~1% smaller files.
    config.method = 4;
    let encoded = webp::Encoder::new(pixels, layout, input.width, input.height)
        .encode_advanced(&config)
        .map_err(|e| fail(format!("libwebp: {e:?}").to_lowercase()))?;
    Ok(encoded.to_vec())
}

#[cfg(not(feature = "webp"))]
fn webp(input: Image<'_>, _: u8) -> Result<Vec<u8>, RenderError> {
    // `RecipeBuilder::build` refuses WebP without the feature.
    Err(input.fail(Format::WebP, "this build has no WebP encoder"))
}

fn png(input: Image<'_>) -> Result<Vec<u8>, RenderError> {
    use image::ImageEncoder;
    let color = match input.channels {
        Channels::Gray => image::ExtendedColorType::L8,
        Channels::Rgb => image::ExtendedColorType::Rgb8,
        Channels::Rgba => image::ExtendedColorType::Rgba8,
    };
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(input.pixels, input.width, input.height, color)
        .map_err(|e| input.fail(Format::Png, e.to_string().to_lowercase()))?;
    Ok(out)
}
