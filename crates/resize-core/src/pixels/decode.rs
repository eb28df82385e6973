//! Opening and decoding: the byte and pixel limits from the header, then
//! one full decode to 8-bit RGB(A) with the source's orientation and colour
//! profile noted for later.

use std::io::Cursor;
use std::sync::Arc;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader};
use moxcms::{Layout, TransformExecutor};

use super::colour::srgb_transform;
use super::orient::swaps_axes;
use super::{Probe, RenderError};
use crate::values::Limits;

pub(super) type Decoder<'a> = Box<dyn ImageDecoder + 'a>;

/// The decoded source in its stored orientation.
pub(super) struct Source {
    pub(super) pixels: Vec<u8>,
    /// Stored (not oriented) size.
    pub(super) width: u32,
    pub(super) height: u32,
    pub(super) alpha: bool,
    pub(super) orientation: Orientation,
    /// Source profile to sRGB, when the source has a profile that differs.
    pub(super) to_srgb: Option<Arc<dyn TransformExecutor<u8> + Send + Sync>>,
}

/// Checks the byte limit, recognises the format and reads the header:
/// the pixel limit and the orientation. Allocates nothing in proportion to
/// the pixels; the decoder it returns is capped to what the header declared.
pub(super) fn open(bytes: &[u8], limits: Limits) -> Result<(Probe, Decoder<'_>), RenderError> {
    check_bytes(bytes, limits)?;
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
    let pixels = check_pixels(width, height, limits)?;
    // A broken EXIF block must not cost the image: it is then shown as stored,
    // which is what browsers do too.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
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
    let probe = Probe {
        format: name,
        width: ow,
        height: oh,
        exif_orientation: exif_value(orientation),
    };
    Ok((probe, decoder))
}

fn check_bytes(bytes: &[u8], limits: Limits) -> Result<(), RenderError> {
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
    Ok(())
}

/// The declared pixel count, when within the limit and not zero.
fn check_pixels(width: u32, height: u32, limits: Limits) -> Result<u64, RenderError> {
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
    Ok(pixels)
}

/// Decodes the whole image to 8-bit RGB, or RGBA when it has alpha.
pub(super) fn decode(mut decoder: Decoder<'_>, probe: &Probe) -> Result<Source, RenderError> {
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
