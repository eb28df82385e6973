//! The peak working set of one render, estimated from the header alone.
//!
//! The model follows the buffers `render` holds, in two phases:
//! - **decoding**: the decoder's output (a JPEG at its DCT scale), plus a
//!   progressive JPEG's coefficients (libjpeg keeps every coefficient of
//!   the full-size image, 2 bytes each, until the last scan), plus a
//!   conversion's second buffer (CMYK to RGB, 16-bit or palette to 8-bit);
//! - **resizing**: the decoded source, plus for every size its resized,
//!   oriented, converted and flattened copies, the encoders' own buffers
//!   and the encoded bytes (kept until written), plus, for each resize from
//!   the source running at once, fast_image_resize's intermediate rows and
//!   the premultiplied copy it makes of an RGBA input (not of the source,
//!   which is premultiplied in place).
//!
//! Every size is counted as if all were alive together, which the tree of
//! tasks allows. The unit tests in `tests/memory.rs` measure the peak
//! resident memory of real renders and hold the estimate between the
//! measured peak and 1.5 × it plus a few MB.

use image::ImageDecoder;

use super::decode::{self, Decoder};
use super::orient::stored;
use super::resize::strip_rows;
use super::{sizes, Channels, RenderError};
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
    let Some(&largest) = sizes.last() else {
        return Ok(body);
    };
    let orientation = image::metadata::Orientation::from_exif(probe.exif_orientation)
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let Decoder { mut header, .. } = decoder;
    let (w, h) = header.dimensions();
    let has_profile = header.icc_profile().ok().flatten().is_some();
    // An RGBA source with a size of its own is decoded whole (`render`).
    let copied = sizes
        .iter()
        .any(|s| (s.width, s.height) == (probe.width, probe.height));
    let source = if probe.format == "jpeg" {
        jpeg_source(bytes, (w, h), stored(largest, orientation))
    } else {
        let png_rows = probe.format == "png" && decode::png_interlaced(bytes) == Some(false);
        other_source(&*header, probe.format, (w, h), png_rows, copied)
    };
    let ch = source.channels.count() as u64;
    let source_bytes = u64::from(source.width) * u64::from(source.height) * ch;

    // Per size: what may stay alive until the job ends (the resized,
    // oriented and converted copies while smaller sizes are made from
    // them; the encoded bytes until written), and what lives only while it
    // is encoded (the encoders' buffers), which at most one size per
    // thread does at once.
    let mut kept = 0u64;
    let mut encoding = Vec::with_capacity(sizes.len());
    let mut from_source = Vec::with_capacity(sizes.len());
    for size in &sizes {
        let px = u64::from(size.width) * u64::from(size.height);
        let mut copies = 1; // resized
        if probe.exif_orientation > 1 {
            copies += 1;
        }
        if has_profile && source.channels != Channels::Gray {
            copies += 1;
        }
        kept += px * ch * copies;
        let mut transient = 0;
        for &format in recipe.formats() {
            let (encoded, buffers) = match format {
                // Flattened RGB for an RGBA source; libjpeg's optimised
                // Huffman coding keeps every coefficient (2 bytes each:
                // 1.5 per pixel at 4:2:0, 1 for gray) for its second pass.
                Format::Jpeg => {
                    let flat = if source.channels == Channels::Rgba {
                        px * 3
                    } else {
                        0
                    };
                    let coefficients = if source.channels == Channels::Gray {
                        px * 2
                    } else {
                        px * 3
                    };
                    (px * ch / 4, flat + coefficients)
                }
                // libwebp's YUV 4:2:0 planes, its ARGB copy and its tokens.
                Format::WebP => (px * ch / 4, px * 4),
                // The png crate filters a row at a time; output at most raw.
                Format::Png => (px * ch, px),
            };
            kept += encoded;
            transient += buffers;
        }
        encoding.push(transient);
        // The cascade resizes from the source exactly the sizes with no
        // other size twice as large on both axes (`resize::cascade_bases`);
        // counting every size is the safe side of that.
        from_source.push(u64::from(stored(*size, orientation).0));
    }
    let at_once = rayon::current_num_threads().max(1);
    let largest_first = |mut v: Vec<u64>| {
        v.sort_unstable_by(|a, b| b.cmp(a));
        v.into_iter().take(at_once)
    };
    let encoders: u64 = largest_first(encoding).sum();
    // fast_image_resize resizes rows first: dst width × src height, in its
    // own pixel type (the same bytes for u8). An RGBA source is
    // premultiplied in place (`resize::resize_each`) unless a size is the
    // source's own, when fir premultiplies a copy per resize; a size made
    // from another always gets a premultiplied copy of that one.
    let largest_px = u64::from(largest.width) * u64::from(largest.height);
    let resizing: u64 = largest_first(from_source)
        .map(|dst_w| {
            let rows = dst_w * u64::from(source.height) * ch;
            let premultiplied = match source.channels {
                Channels::Rgba if copied => source_bytes,
                Channels::Rgba => largest_px * 4,
                _ => 0,
            };
            rows + premultiplied
        })
        .sum();
    let resize_phase = source_bytes + kept + encoders + resizing;
    if source.streamed {
        // While rows arrive: libjpeg's own buffers (a progressive JPEG's
        // coefficients), the window of rows the filters reach, and the
        // sizes made from the source (counted as all sizes); then, with
        // the decoder gone, the rest of the cascade and the encoders.
        let smallest = sizes.first().map_or(1, |&s| stored(s, orientation).1);
        let reach = 3.0 * (f64::from(source.height) / f64::from(smallest.max(1))).max(1.0);
        // The window: the rows of one step, the next step's rows being
        // decoded, and the filter's reach.
        let window_rows = 2 * u64::from(strip_rows(source.height)) + 2 * reach.ceil() as u64 + 4;
        let window = window_rows * u64::from(source.width) * ch;
        let resized: u64 = sizes
            .iter()
            .map(|s| u64::from(s.width) * u64::from(s.height) * ch)
            .sum();
        let streaming = source.decode_peak + window + resized;
        // A size made from another is at most a quarter of it (half on
        // each axis, `resize::cascade_bases`), made at most one per thread,
        // each from fast_image_resize's premultiplied copy of an RGBA base.
        let premultiplied_base = if source.channels == Channels::Rgba {
            largest_px * 4
        } else {
            0
        };
        let children = (largest_px / 4 * ch + premultiplied_base) * at_once as u64;
        let finishing = kept + encoders + children;
        return Ok(body + CODEC_SLACK + streaming.max(finishing));
    }
    Ok(body + CODEC_SLACK + source.decode_peak.max(resize_phase))
}

/// The decoded source as `render` will hold it.
struct SourceShape {
    width: u32,
    height: u32,
    channels: Channels,
    /// Peak bytes while decoding (for a streamed source, libjpeg's own).
    decode_peak: u64,
    /// Decoded a few rows at a time (`decode::jpeg_rows`, `png_rows`),
    /// never whole.
    streamed: bool,
}

fn jpeg_source(bytes: &[u8], stored: (u32, u32), target: (u32, u32)) -> SourceShape {
    let d = decode::dct_scale(stored, target);
    let (width, height) = (stored.0.div_ceil(d), stored.1.div_ceil(d));
    let px = u64::from(width) * u64::from(height);
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
    // Gray and RGB stream (`decode::jpeg_rows`); CMYK is decoded whole.
    let streamed = components != 4;
    SourceShape {
        width,
        height,
        channels,
        decode_peak: if streamed {
            coefficients
        } else {
            out + coefficients
        },
        streamed,
    }
}

/// A source the image crate decodes whole, or (`png_rows`: a PNG that is
/// not interlaced) the png crate row by row, RGBA only when no size is the
/// source's own (`copied`).
fn other_source(
    header: &dyn ImageDecoder,
    format: &str,
    (width, height): (u32, u32),
    png_rows: bool,
    copied: bool,
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
    if png_rows && (channels != Channels::Rgba || !copied) {
        // The png crate's current and previous rows and its zlib window;
        // the rows go straight into the window `render` resizes from.
        let line = u64::from(width) * 8;
        return SourceShape {
            width,
            height,
            channels,
            decode_peak: 4 * line + (1 << 20),
            streamed: true,
        };
    }
    // image-webp decodes lossy frames through YUV planes, and lossless ones
    // through a 4-byte-per-pixel buffer.
    let codec = if format == "webp" { px * 4 } else { 0 };
    SourceShape {
        width,
        height,
        channels,
        decode_peak: native + converted + codec,
        streamed: false,
    }
}
