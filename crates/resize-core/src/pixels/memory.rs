//! The peak working set of one render, estimated from the header alone.
//!
//! The model follows the buffers `render` holds, in three phases and
//! takes the largest:
//! - **decoding** a source that is decoded whole: the decoder's output,
//!   plus a conversion's second buffer (CMYK to RGB, 16-bit or palette to
//!   8-bit);
//! - **streaming** (`resize::resize_all`): the whole decode, or a streamed
//!   decoder's own buffers (a progressive JPEG's coefficients: libjpeg
//!   keeps every coefficient of the image, 2 bytes each, until the last
//!   scan), plus each level's window of rows, every size being filled,
//!   and fast_image_resize's rows for one strip per thread;
//! - **finishing**: for every size its resized, oriented, converted and
//!   flattened copies and the encoded bytes (kept until written), plus the
//!   encoders' own buffers for one size per thread.
//!
//! Every size is counted as alive together, which they are: all are made
//! by the last strip. The unit tests in `tests/memory.rs` measure the peak
//! resident memory of real renders and hold the estimate between the
//! measured peak and 1.5 × it plus a few MB.

use image::metadata::Orientation;
use image::ImageDecoder;

use super::decode::{self, Decoder, Decoding};
use super::orient::stored;
use super::resize::{level_for, level_size, reach_back_of, strip_rows};
use super::{sizes, Channels, RenderError, SourceFormat};
use crate::geometry::Size;
use crate::recipe::Recipe;
use crate::values::Format;

/// What a codec holds beyond its image buffers: tables, a few rows, the
/// allocator's slack.
const CODEC_SLACK: u64 = 8 << 20;

/// The peak memory, in bytes, of rendering `bytes` with `recipe`,
/// including `bytes` themselves. Reads the header only; fails as
/// [`probe`](super::probe) does (limits, unknown format).
pub fn working_set(bytes: &[u8], recipe: &Recipe) -> Result<u64, RenderError> {
    let (probe, decoder) = decode::open(bytes, recipe.limits())?;
    let body = bytes.len() as u64;
    let sizes = sizes(recipe, &probe);
    if sizes.is_empty() {
        return Ok(body);
    }
    let orientation = image::metadata::Orientation::from_exif(probe.exif_orientation)
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let Decoder { mut header, .. } = decoder;
    let (w, h) = header.dimensions();
    let has_profile = header.icc_profile().ok().flatten().is_some();
    let decoding = decode::decoding(bytes, probe.format);
    let source = if probe.format == SourceFormat::Jpeg {
        jpeg_source(bytes, (w, h), decoding == Decoding::JpegRows)
    } else {
        other_source(&*header, probe.format, (w, h), decoding == Decoding::PngRows)
    };
    let ch = source.channels.count() as u64;
    let at_once = rayon::current_num_threads().max(1);
    // The copies each size keeps besides its resized one: oriented, and
    // converted to sRGB.
    let mut copies = 1;
    if probe.exif_orientation > 1 {
        copies += 1;
    }
    if has_profile && source.channels != Channels::Gray {
        copies += 1;
    }
    let finishing = finishing(&sizes, recipe.formats(), source.channels, copies, at_once);
    let held = if source.streamed {
        source.decode_peak
    } else {
        u64::from(w) * u64::from(h) * ch
    };
    let streaming = held + streaming((w, h), &sizes, orientation, ch, at_once);
    let decoding = if source.streamed { 0 } else { source.decode_peak };
    Ok(body + CODEC_SLACK + decoding.max(streaming).max(finishing))
}

/// After the last strip: per size, what stays alive until the job ends
/// (the resized copy and `copies` in all, the encoded bytes until
/// written), and what lives only while it is encoded (the encoders'
/// buffers), which at most `at_once` sizes do at once.
fn finishing(sizes: &[Size], formats: &[Format], channels: Channels, copies: u64, at_once: usize) -> u64 {
    let ch = channels.count() as u64;
    let mut kept = 0u64;
    let mut encoding = Vec::with_capacity(sizes.len());
    for size in sizes {
        let px = u64::from(size.width) * u64::from(size.height);
        kept += px * ch * copies;
        let mut transient = 0;
        for &format in formats {
            let (encoded, buffers) = encoder_bytes(format, channels, px);
            kept += encoded;
            transient += buffers;
        }
        encoding.push(transient);
    }
    encoding.sort_unstable_by(|a, b| b.cmp(a));
    kept + encoding.into_iter().take(at_once).sum::<u64>()
}

/// One encoding of `px` pixels: its encoded bytes (an estimate from
/// above) and the encoder's own buffers.
fn encoder_bytes(format: Format, channels: Channels, px: u64) -> (u64, u64) {
    let ch = channels.count() as u64;
    match format {
        // Flattened RGB for an RGBA source; libjpeg's optimised Huffman
        // coding keeps every coefficient (2 bytes each: 1.5 per pixel at
        // 4:2:0, 1 for gray) for its second pass, and mozjpeg allocates a
        // second, unquantised copy (`whole_image_uq`) whether or not
        // trellis uses it.
        Format::Jpeg => {
            let flat = if channels == Channels::Rgba { px * 3 } else { 0 };
            let coefficients = if channels == Channels::Gray {
                px * 2
            } else {
                px * 3
            };
            (px * ch / 4, flat + 2 * coefficients)
        }
        // libwebp's YUV 4:2:0 planes, its ARGB copy and its tokens; with
        // alpha, also the alpha plane and its lossless encoder's buffers.
        Format::WebP if channels == Channels::Rgba => (px * ch / 4, px * 8),
        Format::WebP => (px * ch / 4, px * 4),
        // The png crate filters a row at a time; output at most raw.
        Format::Png => (px * ch, px),
    }
}

/// While the rows arrive (`resize::resize_all`), besides the source's own
/// buffers: each level's window of rows (the rows of a step, the next
/// step's being decoded, and the filters' reach); every size, filled strip
/// by strip; and fast_image_resize's intermediate rows, one strip per
/// thread.
fn streaming((w, h): (u32, u32), sizes: &[Size], orientation: Orientation, ch: u64, at_once: usize) -> u64 {
    let resized: u64 = sizes
        .iter()
        .map(|s| u64::from(s.width) * u64::from(s.height) * ch)
        .sum();
    let step = u64::from(strip_rows(h));
    let mut windows = 0u64;
    let mut strips = Vec::with_capacity(sizes.len());
    let level = |s: Size| level_for((w, h), stored(s, orientation));
    let depth = sizes.iter().map(|&s| level(s)).max().unwrap_or(0);
    for k in 0..=depth {
        let (lw, lh) = level_size((w, h), k);
        // Lanczos3 reaches 3 rows times the scale; a level is at most four
        // times its sizes' heights (`resize::level_for`), the source any.
        let mut reach = 0;
        let mut back = 2;
        for &s in sizes.iter().filter(|&&s| level(s) == k) {
            let (sw, sh) = stored(s, orientation);
            let scale = (f64::from(lh) / f64::from(sh.max(1))).max(1.0);
            let r = (3.0 * scale).ceil() as u64;
            strips.push(u64::from(sw) * (step + 2 * r + 4) * ch);
            reach = reach.max(r);
            back = back.max(u64::from(reach_back_of(scale)));
        }
        // The source's rows: the step being resized and the one being
        // decoded, each after a gap for the rows reached back to
        // (`resize::take_step`). A deeper level: its rows of a step and
        // the filters' reach.
        let rows = if k == 0 {
            2 * (step + back)
        } else {
            ((2 * step) >> k) + 2 * reach + 8
        };
        windows += rows * u64::from(lw) * ch;
    }
    strips.sort_unstable_by(|a, b| b.cmp(a));
    let fir: u64 = strips.into_iter().take(at_once).sum();
    windows + resized + fir
}

/// The decoded source as `render` will hold it.
struct SourceShape {
    channels: Channels,
    /// Peak bytes while decoding (for a streamed source, libjpeg's own).
    decode_peak: u64,
    /// Decoded a few rows at a time (`decode::jpeg_rows`, `png_rows`),
    /// never whole.
    streamed: bool,
}

/// A JPEG source; `streamed` as [`decode::decoding`] decided.
fn jpeg_source(bytes: &[u8], stored: (u32, u32), streamed: bool) -> SourceShape {
    let px = u64::from(stored.0) * u64::from(stored.1);
    let frame = decode::jpeg_frame(bytes);
    let components = frame.as_ref().map_or(3, |f| f.sampling.len());
    let (channels, out) = match components {
        1 => (Channels::Gray, px),
        // CMYK is decoded to 4 bytes, then converted to RGB beside it.
        4 => (Channels::Rgb, px * 4 + px * 3),
        _ => (Channels::Rgb, px * 3),
    };
    let coefficients = match &frame {
        // Plus 5% for libjpeg's per-scan state: the measured peak came
        // within 6% of the buffer alone.
        Some(f) if f.progressive => f.coefficient_bytes(stored) * 21 / 20,
        _ => 0,
    };
    SourceShape {
        channels,
        decode_peak: if streamed {
            coefficients
        } else {
            out + coefficients
        },
        streamed,
    }
}

/// A source the image crate decodes whole, or (`png_rows`, as
/// [`decode::decoding`] decided) the png crate row by row.
fn other_source(
    header: &dyn ImageDecoder,
    format: SourceFormat,
    (width, height): (u32, u32),
    png_rows: bool,
) -> SourceShape {
    use image::ColorType;
    let px = u64::from(width) * u64::from(height);
    let color = header.color_type();
    let channels = Channels::of(color);
    let native = header.total_bytes();
    let converted = match color {
        ColorType::L8 | ColorType::Rgb8 | ColorType::Rgba8 => 0,
        _ => px * channels.count() as u64,
    };
    if png_rows {
        // The png crate's current and previous rows and its zlib window;
        // the rows go straight into the window `render` resizes from.
        let line = u64::from(width) * 8;
        return SourceShape {
            channels,
            decode_peak: 4 * line + (1 << 20),
            streamed: true,
        };
    }
    // image-webp decodes lossy frames through YUV planes, and lossless ones
    // through a 4-byte-per-pixel buffer.
    let codec = if format == SourceFormat::WebP { px * 4 } else { 0 };
    SourceShape {
        channels,
        decode_peak: native + converted + codec,
        streamed: false,
    }
}
