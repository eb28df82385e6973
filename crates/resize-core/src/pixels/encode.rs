//! Encoders. Every output is written from pixels alone, so no EXIF, XMP,
//! ICC or comment from the source can reach it.

use super::RenderError;
use crate::recipe::Recipe;
use crate::values::Format;

/// Pixels to encode: RGB or RGBA (`channels` 3 or 4), 8-bit, sRGB.
#[derive(Clone, Copy)]
struct Image<'a> {
    pixels: &'a [u8],
    width: u32,
    height: u32,
    channels: u8,
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

/// Encodes `pixels` (RGB or RGBA, 8-bit, sRGB) as `format`.
pub(super) fn encode(
    format: Format,
    recipe: &Recipe,
    pixels: &[u8],
    width: u32,
    height: u32,
    channels: u8,
) -> Result<Vec<u8>, RenderError> {
    let input = Image {
        pixels,
        width,
        height,
        channels,
    };
    let expected = u64::from(width) * u64::from(height) * u64::from(channels);
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
    let too_big = || fail("JPEG allows at most 65535 px per side".to_owned());
    let w = u16::try_from(input.width).map_err(|_| too_big())?;
    let h = u16::try_from(input.height).map_err(|_| too_big())?;
    if input.channels != 3 {
        return Err(fail("JPEG input must be RGB".to_owned()));
    }
    let ycbcr = to_ycbcr_420(input.pixels, input.width as usize, input.height as usize);
    let mut out = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, quality);
    // 4:2:0 like sharp and libjpeg's default: a third smaller than 4:4:4 at
    // the same quality, and photos rarely show the difference.
    encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
    encoder
        .encode(&ycbcr, w, h, jpeg_encoder::ColorType::Ycbcr)
        .map_err(|e| fail(e.to_string().to_lowercase()))?;
    Ok(out)
}

/// RGB to YCbCr (JFIF, full range) with each 2×2 block's chroma replaced by
/// the block's average. jpeg-encoder subsamples chroma by taking one pixel
/// of each 2×2 block; fed this, it gets the average, as libjpeg computes
/// it. Point sampling aliases chroma and cost ~3.5 SSIMULACRA2 points at
/// the same size on the benchmark corpus.
fn to_ycbcr_420(rgb: &[u8], width: usize, height: usize) -> Vec<u8> {
    let mut out = vec![0u8; rgb.len()];
    for (src, dst) in rgb.chunks_exact(3).zip(out.chunks_exact_mut(3)) {
        let (r, g, b) = (i32::from(src[0]), i32::from(src[1]), i32::from(src[2]));
        let y = (19595 * r + 38470 * g + 7471 * b + 0x8000) >> 16;
        let cb = (-11059 * r - 21709 * g + 32768 * b + (128 << 16) + 0x8000) >> 16;
        let cr = (32768 * r - 27439 * g - 5329 * b + (128 << 16) + 0x8000) >> 16;
        // Each value lies in 0..=255 for any RGB input (JFIF's full range).
        dst[0] = y.clamp(0, 255) as u8;
        dst[1] = cb.clamp(0, 255) as u8;
        dst[2] = cr.clamp(0, 255) as u8;
    }
    for by in (0..height).step_by(2) {
        for bx in (0..width).step_by(2) {
            let xs = bx..(bx + 2).min(width);
            let ys = by..(by + 2).min(height);
            let n = (xs.len() * ys.len()) as u32;
            let (mut cb, mut cr) = (0u32, 0u32);
            for y in ys.clone() {
                for x in xs.clone() {
                    let i = (y * width + x) * 3;
                    cb += u32::from(out[i + 1]);
                    cr += u32::from(out[i + 2]);
                }
            }
            // Averages of u8 values fit a u8.
            let (cb, cr) = (((cb + n / 2) / n) as u8, ((cr + n / 2) / n) as u8);
            for y in ys.clone() {
                for x in xs.clone() {
                    let i = (y * width + x) * 3;
                    out[i + 1] = cb;
                    out[i + 2] = cr;
                }
            }
        }
    }
    out
}

#[cfg(feature = "webp")]
fn webp(input: Image<'_>, quality: u8) -> Result<Vec<u8>, RenderError> {
    let fail = |message: String| input.fail(Format::WebP, message);
    // libwebp's limit; checked here because the wrapper would not say why.
    const MAX: u32 = 16_383;
    if input.width > MAX || input.height > MAX {
        return Err(fail(format!("WebP allows at most {MAX} px per side")));
    }
    let layout = if input.channels == 4 {
        webp::PixelLayout::Rgba
    } else {
        webp::PixelLayout::Rgb
    };
    let mut config = webp::WebPConfig::new().map_err(|()| fail("libwebp version mismatch".to_owned()))?;
    config.lossless = 0;
    config.quality = f32::from(quality);
    // Method 4 is cwebp's default: method 6 is ~2× slower for ~1% smaller files.
    config.method = 4;
    let encoded = webp::Encoder::new(input.pixels, layout, input.width, input.height)
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
    let color = if input.channels == 4 {
        image::ExtendedColorType::Rgba8
    } else {
        image::ExtendedColorType::Rgb8
    };
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(input.pixels, input.width, input.height, color)
        .map_err(|e| input.fail(Format::Png, e.to_string().to_lowercase()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::to_ycbcr_420;

    #[test]
    fn chroma_is_averaged_over_each_2x2_block() {
        // 3×2: one full block of red and blue, and a half block of green.
        #[rustfmt::skip]
        let rgb = [
            255, 0, 0,   0, 0, 255,   0, 255, 0,
            0, 0, 255,   255, 0, 0,   0, 255, 0,
        ];
        let out = to_ycbcr_420(&rgb, 3, 2);
        let px = |i: usize| (out[i * 3], out[i * 3 + 1], out[i * 3 + 2]);
        // Luma stays per pixel: red 76, blue 29, green 150.
        assert_eq!([px(0).0, px(1).0, px(2).0], [76, 29, 150]);
        // The block's chroma is the mean of red's (85, 255) and blue's (255, 107).
        for i in [0, 1, 3, 4] {
            assert_eq!((px(i).1, px(i).2), (170, 181), "pixel {i}");
        }
        // The half block averages its own two pixels (both green).
        assert_eq!((px(2).1, px(2).2), (44, 21));
        assert_eq!(px(2), px(5));
    }
}
