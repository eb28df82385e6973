//! Bytes in, renditions out: limits, decoding, orientation, colour, SIMD
//! resizing and encoding.
//!
//! The source is decoded once. Each output is resized from the full image
//! in the stored orientation and only then rotated, so rotations touch
//! small buffers. Colour is converted to sRGB on the small buffers too; no
//! metadata is ever copied, since outputs are encoded from pixels alone.

use std::io::Cursor;
use std::sync::Arc;

use fast_image_resize as fir;
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader};
use moxcms::{ColorProfile, DataColorSpace, Layout, TransformExecutor, TransformOptions};
use rayon::prelude::*;

use crate::error::RenderError;
use crate::geometry::{self, Size};
use crate::recipe::{Format, Limits, Recipe, Rgb};

/// One encoded output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendition {
    /// Width in pixels, exactly as requested (or the source width).
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The encoding.
    pub format: Format,
    /// The encoded file.
    pub bytes: Vec<u8>,
}

impl Rendition {
    /// The `Content-Type` to store the bytes with.
    pub fn content_type(&self) -> &'static str {
        self.format.content_type()
    }
}

/// What the header says, read without decoding pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    /// The container format, lowercase (`jpeg`, `png`, …).
    pub format: &'static str,
    /// Width after EXIF orientation.
    pub width: u32,
    /// Height after EXIF orientation.
    pub height: u32,
    /// The EXIF orientation, 1..=8.
    pub exif_orientation: u8,
}

/// Reads the header only: format, oriented size, orientation. Checks the
/// byte and pixel limits; allocates nothing in proportion to the pixels.
pub fn probe(bytes: &[u8], limits: Limits) -> Result<Probe, RenderError> {
    let (probe, _) = open(bytes, limits)?;
    Ok(probe)
}

/// The sizes `recipe` makes from a source of the probed (oriented) size.
/// Empty when the source is narrower than every width under `Upscale::Skip`.
pub fn plan(recipe: &Recipe, probe: &Probe) -> Vec<Size> {
    geometry::target_sizes(probe.width, probe.height, recipe.widths(), recipe.upscale())
}

/// Decodes `bytes` once and makes every rendition the recipe asks for:
/// each planned size in each format, sizes ascending, formats in recipe
/// order. An empty list means the source is narrower than every width.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use resize_core::{render, Recipe, Format};
/// # let mut png = Vec::new();
/// # image::RgbImage::from_pixel(800, 600, image::Rgb([200, 30, 30]))
/// #     .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
/// let recipe = Recipe::from_lookup(|n| (n == "SIZES").then(|| "360,720,1200".into()))?;
/// let out = render(&png, &recipe)?;
/// // 1200 is wider than the 800 px source, so it is skipped, not upscaled.
/// let sizes: Vec<_> = out.iter().map(|r| (r.width, r.height, r.format)).collect();
/// assert_eq!(sizes, [(360, 270, Format::Jpeg), (720, 540, Format::Jpeg)]);
/// # Ok(()) }
/// ```
pub fn render(bytes: &[u8], recipe: &Recipe) -> Result<Vec<Rendition>, RenderError> {
    let (probe, decoder) = open(bytes, recipe.limits())?;
    let sizes = plan(recipe, &probe);
    if sizes.is_empty() {
        return Ok(Vec::new());
    }
    let source = decode(decoder, &probe)?;
    let resized = resize_all(&source, &sizes)?;
    let meta = Meta {
        alpha: source.alpha,
        orientation: source.orientation,
        to_srgb: source.to_srgb.clone(),
    };
    // The full-size pixels are no longer needed; free them before encoding.
    drop(source);
    let per_size: Vec<Vec<Rendition>> = resized
        .into_par_iter()
        .map(|(size, pixels)| finish_size(&meta, size, pixels, recipe))
        .collect::<Result<_, _>>()?;
    Ok(per_size.into_iter().flatten().collect())
}

/// What encoding needs to know about the source once its pixels are gone.
struct Meta {
    alpha: bool,
    orientation: Orientation,
    to_srgb: Option<Arc<dyn TransformExecutor<u8> + Send + Sync>>,
}

/// Resizes the source to every size (in the stored orientation), largest
/// first. A size is resized from the smallest one already made that is at
/// least twice as large on both axes, else from the source: Lanczos3 over a
/// 2× or larger step is indistinguishable from resizing the full image (the
/// benchmark's SSIMULACRA2 column checks this), and it reads a fraction of
/// the pixels. Sizes taken from the source are resized in parallel.
fn resize_all(source: &Source, sizes: &[Size]) -> Result<Vec<(Size, Vec<u8>)>, RenderError> {
    let stored = |s: Size| {
        if swaps_axes(source.orientation) {
            (s.height, s.width)
        } else {
            (s.width, s.height)
        }
    };
    let mut order: Vec<Size> = sizes.to_vec();
    order.sort_by_key(|s| std::cmp::Reverse((s.width, s.height)));
    // For each size, the index (in `order`) of the size it is resized from.
    let mut base: Vec<Option<usize>> = Vec::with_capacity(order.len());
    for (i, &s) in order.iter().enumerate() {
        let (w, h) = stored(s);
        let from = (0..i)
            .filter(|&j| {
                let (bw, bh) = stored(order[j]);
                bw >= 2 * w && bh >= 2 * h
            })
            .min_by_key(|&j| order[j].width);
        base.push(from);
    }
    let first: Vec<(usize, Vec<u8>)> = (0..order.len())
        .into_par_iter()
        .filter(|&i| base[i].is_none())
        .map(|i| {
            let (w, h) = stored(order[i]);
            resize(&source.pixels, source.width, source.height, source.alpha, w, h).map(|p| (i, p))
        })
        .collect::<Result<_, _>>()?;
    let mut made: Vec<Option<Vec<u8>>> = vec![None; order.len()];
    for (i, p) in first {
        made[i] = Some(p);
    }
    for i in 0..order.len() {
        if let Some(j) = base[i] {
            let (bw, bh) = stored(order[j]);
            let (w, h) = stored(order[i]);
            // `j < i` and sizes are made in order, so the base exists.
            let Some(from) = made[j].as_deref() else {
                return Err(RenderError::Resize {
                    width: w,
                    height: h,
                    message: "cascade base missing".to_owned(),
                });
            };
            made[i] = Some(resize(from, bw, bh, source.alpha, w, h)?);
        }
    }
    Ok(order
        .into_iter()
        .zip(made)
        .filter_map(|(s, p)| p.map(|p| (s, p)))
        .rev()
        .collect())
}

type Decoder<'a> = Box<dyn ImageDecoder + 'a>;

struct Source {
    pixels: Vec<u8>,
    /// Stored (not oriented) size.
    width: u32,
    height: u32,
    alpha: bool,
    orientation: Orientation,
    /// Source profile to sRGB, when the source has a profile that differs.
    to_srgb: Option<Arc<dyn TransformExecutor<u8> + Send + Sync>>,
}

fn open(bytes: &[u8], limits: Limits) -> Result<(Probe, Decoder<'_>), RenderError> {
    if bytes.is_empty() {
        return Err(RenderError::Empty);
    }
    let size = bytes.len() as u64;
    if size > limits.max_input_bytes {
        return Err(RenderError::TooManyBytes {
            size,
            limit: limits.max_input_bytes,
        });
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| RenderError::Unsupported(e.to_string()))?;
    let Some(format) = reader.format() else {
        return Err(RenderError::Unsupported(
            "not a JPEG, PNG, WebP, GIF or TIFF file".to_owned(),
        ));
    };
    let name = format_name(format);
    if format == image::ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err(RenderError::Decode {
            format: name,
            message: "file is truncated (no end-of-image marker after the image data)".to_owned(),
        });
    }
    let mut decoder: Decoder<'_> = Box::new(reader.into_decoder().map_err(|e| map_err(name, e))?);
    let (width, height) = decoder.dimensions();
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(RenderError::TooManyPixels {
            width,
            height,
            pixels,
            limit: limits.max_pixels,
        });
    }
    if pixels == 0 {
        return Err(RenderError::ZeroSize { width, height });
    }
    // A broken EXIF block must not cost the image: it is then shown as stored,
    // which is what browsers do too.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let exif_orientation = exif_value(orientation);
    let (ow, oh) = if swaps_axes(orientation) {
        (height, width)
    } else {
        (width, height)
    };
    // Guard the decoder's own allocations too: 8 bytes per pixel covers
    // 16-bit RGBA, plus slack for codec state.
    let mut image_limits = image::Limits::default();
    image_limits.max_alloc = Some(pixels.saturating_mul(8).saturating_add(64 << 20));
    decoder.set_limits(image_limits).map_err(|e| map_err(name, e))?;
    Ok((
        Probe {
            format: name,
            width: ow,
            height: oh,
            exif_orientation,
        },
        decoder,
    ))
}

fn decode(mut decoder: Decoder<'_>, probe: &Probe) -> Result<Source, RenderError> {
    let orientation = Orientation::from_exif(probe.exif_orientation).unwrap_or(Orientation::NoTransforms);
    // An unreadable profile is treated as sRGB, as browsers do.
    let icc = decoder.icc_profile().ok().flatten();
    let image = DynamicImage::from_decoder(decoder).map_err(|e| map_err(probe.format, e))?;
    let alpha = image.color().has_alpha();
    let (width, height) = (image.width(), image.height());
    let pixels = if alpha {
        image.into_rgba8().into_raw()
    } else {
        image.into_rgb8().into_raw()
    };
    let layout = if alpha { Layout::Rgba } else { Layout::Rgb };
    let to_srgb = icc.as_deref().and_then(|icc| srgb_transform(icc, layout));
    Ok(Source {
        pixels,
        width,
        height,
        alpha,
        orientation,
        to_srgb,
    })
}

fn finish_size(
    source: &Meta,
    size: Size,
    mut pixels: Vec<u8>,
    recipe: &Recipe,
) -> Result<Vec<Rendition>, RenderError> {
    // Resized in the stored orientation; rotate the small result.
    let (sw, sh) = if swaps_axes(source.orientation) {
        (size.height, size.width)
    } else {
        (size.width, size.height)
    };
    if source.orientation != Orientation::NoTransforms {
        pixels = orient(pixels, sw, sh, source.alpha, source.orientation)?;
    }
    if let Some(t) = &source.to_srgb {
        let mut out = vec![0; pixels.len()];
        t.transform(&pixels, &mut out).map_err(|e| RenderError::Resize {
            width: size.width,
            height: size.height,
            message: format!("colour conversion failed: {e}"),
        })?;
        pixels = out;
    }
    let channels = if source.alpha { 4 } else { 3 };
    let mut flat: Option<Vec<u8>> = None;
    let mut out = Vec::with_capacity(recipe.formats().len());
    for &format in recipe.formats() {
        let (data, ch) = match format {
            Format::Jpeg if source.alpha => {
                let rgb = flat.get_or_insert_with(|| flatten(&pixels, recipe.background()));
                (rgb.as_slice(), 3)
            }
            _ => (pixels.as_slice(), channels),
        };
        let bytes = crate::encode::encode(format, recipe, data, size.width, size.height, ch)?;
        out.push(Rendition {
            width: size.width,
            height: size.height,
            format,
            bytes,
        });
    }
    Ok(out)
}

fn resize(
    pixels: &[u8],
    src_w: u32,
    src_h: u32,
    alpha: bool,
    width: u32,
    height: u32,
) -> Result<Vec<u8>, RenderError> {
    if (width, height) == (src_w, src_h) {
        return Ok(pixels.to_vec());
    }
    let err = |e: &dyn std::fmt::Display| RenderError::Resize {
        width,
        height,
        message: e.to_string(),
    };
    let pixel_type = if alpha {
        fir::PixelType::U8x4
    } else {
        fir::PixelType::U8x3
    };
    let src = fir::images::ImageRef::new(src_w, src_h, pixels, pixel_type).map_err(|e| err(&e))?;
    let mut dst = fir::images::Image::new(width, height, pixel_type);
    // Lanczos3 like sharp and libvips; fir premultiplies alpha for U8x4 so
    // transparent pixels do not bleed their colour into edges.
    let options = fir::ResizeOptions::new()
        .resize_alg(fir::ResizeAlg::Convolution(fir::FilterType::Lanczos3))
        .use_alpha(true);
    fir::Resizer::new()
        .resize(&src, &mut dst, &options)
        .map_err(|e| err(&e))?;
    Ok(dst.into_vec())
}

fn orient(
    pixels: Vec<u8>,
    width: u32,
    height: u32,
    alpha: bool,
    orientation: Orientation,
) -> Result<Vec<u8>, RenderError> {
    // The buffer is width × height × channels by construction (fir's output
    // or a clone of the decoded image); a mismatch would be a bug, reported
    // as an error rather than a panic.
    let mismatch = || RenderError::Resize {
        width,
        height,
        message: "pixel buffer does not match its size".to_owned(),
    };
    let mut image = if alpha {
        DynamicImage::ImageRgba8(image::RgbaImage::from_raw(width, height, pixels).ok_or_else(mismatch)?)
    } else {
        DynamicImage::ImageRgb8(image::RgbImage::from_raw(width, height, pixels).ok_or_else(mismatch)?)
    };
    image.apply_orientation(orientation);
    Ok(image.into_bytes())
}

/// Composites RGBA over an opaque background, giving RGB.
fn flatten(rgba: &[u8], bg: Rgb) -> Vec<u8> {
    let mut out = Vec::with_capacity(rgba.len() / 4 * 3);
    for px in rgba.chunks_exact(4) {
        let a = u32::from(px[3]);
        for (&c, &b) in px[..3].iter().zip(&bg.0) {
            let v = (u32::from(c) * a + u32::from(b) * (255 - a) + 127) / 255;
            // v ≤ (255·a + 255·(255−a) + 127) / 255 = 255, so it fits a u8.
            out.push(v as u8);
        }
    }
    out
}

/// A transform from `icc` to sRGB, or `None` when the profile is not RGB,
/// cannot be parsed, or already maps colours onto themselves (sRGB).
fn srgb_transform(icc: &[u8], layout: Layout) -> Option<Arc<dyn TransformExecutor<u8> + Send + Sync>> {
    let src = ColorProfile::new_from_slice(icc).ok()?;
    if src.color_space != DataColorSpace::Rgb {
        return None;
    }
    let transform = src
        .create_transform_8bit(
            layout,
            &ColorProfile::new_srgb(),
            layout,
            TransformOptions::default(),
        )
        .ok()?;
    // Probe a coarse colour cube: an sRGB-equivalent profile moves nothing by
    // more than rounding, and skipping it saves a pass per output.
    let channels = if layout == Layout::Rgba { 4 } else { 3 };
    let steps = [0u8, 51, 102, 153, 204, 255];
    let mut probe = Vec::new();
    for r in steps {
        for g in steps {
            for b in steps {
                probe.extend_from_slice(&[r, g, b, 255][..channels]);
            }
        }
    }
    let mut out = vec![0; probe.len()];
    transform.transform(&probe, &mut out).ok()?;
    let moved = probe.iter().zip(&out).any(|(a, b)| a.abs_diff(*b) > 2);
    moved.then_some(transform)
}

/// Whether a JPEG has an end-of-image marker after its first scan. The
/// decoder fills a truncated file's missing rows with grey instead of
/// failing (libjpeg-turbo only warns); like sharp's default, we refuse it.
/// Inside scan data every 0xFF byte is stuffed (`FF 00`) or a restart
/// marker, so `FF D9` after the first `FF DA` can only be the real end.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let Some(sos) = bytes.windows(2).position(|w| w == [0xFF, 0xDA]) else {
        return false;
    };
    bytes[sos..].windows(2).any(|w| w == [0xFF, 0xD9])
}

fn swaps_axes(o: Orientation) -> bool {
    matches!(
        o,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    )
}

fn exif_value(o: Orientation) -> u8 {
    match o {
        Orientation::NoTransforms => 1,
        Orientation::FlipHorizontal => 2,
        Orientation::Rotate180 => 3,
        Orientation::FlipVertical => 4,
        Orientation::Rotate90FlipH => 5,
        Orientation::Rotate90 => 6,
        Orientation::Rotate270FlipH => 7,
        Orientation::Rotate270 => 8,
    }
}

fn format_name(format: image::ImageFormat) -> &'static str {
    match format {
        image::ImageFormat::Jpeg => "jpeg",
        image::ImageFormat::Png => "png",
        image::ImageFormat::WebP => "webp",
        image::ImageFormat::Gif => "gif",
        image::ImageFormat::Tiff => "tiff",
        image::ImageFormat::Bmp => "bmp",
        image::ImageFormat::Avif => "avif",
        image::ImageFormat::Ico => "ico",
        _ => "image",
    }
}

fn map_err(format: &'static str, e: image::ImageError) -> RenderError {
    match e {
        image::ImageError::Unsupported(u) => RenderError::Unsupported(format!("{format}: {u}")),
        image::ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            RenderError::Decode {
                format,
                message: "file is truncated".to_owned(),
            }
        }
        other => RenderError::Decode {
            format,
            message: other.to_string().to_lowercase(),
        },
    }
}

/// The pipeline's stages one at a time, for the stage profile in
/// `resize-bench` (`cargo bench -p resize-bench --features stages`). Not a stable API: it
/// exposes exactly the functions [`render`] calls, so the profile measures
/// the product's code rather than a re-implementation of it.
#[doc(hidden)]
pub mod stages {
    use super::*;

    /// Decoded pixels in the stored orientation: RGB8, or RGBA8 when `alpha`.
    pub struct Decoded {
        pub pixels: Vec<u8>,
        pub width: u32,
        pub height: u32,
        pub alpha: bool,
    }

    /// Header check and full decode, as [`render`] does them.
    pub fn decode(bytes: &[u8], limits: Limits) -> Result<Decoded, RenderError> {
        let (probe, decoder) = open(bytes, limits)?;
        let s = super::decode(decoder, &probe)?;
        Ok(Decoded {
            pixels: s.pixels,
            width: s.width,
            height: s.height,
            alpha: s.alpha,
        })
    }

    /// One Lanczos3 resize.
    pub fn resize(d: &Decoded, width: u32, height: u32) -> Result<Vec<u8>, RenderError> {
        super::resize(&d.pixels, d.width, d.height, d.alpha, width, height)
    }

    /// One encode with the recipe's quality for `format`.
    pub fn encode(
        format: Format,
        recipe: &Recipe,
        pixels: &[u8],
        width: u32,
        height: u32,
        alpha: bool,
    ) -> Result<Vec<u8>, RenderError> {
        crate::encode::encode(format, recipe, pixels, width, height, if alpha { 4 } else { 3 })
    }
}
