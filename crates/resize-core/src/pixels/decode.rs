//! Opening and decoding: the byte and pixel limits from the header, then
//! one decode to 8-bit gray, RGB or RGBA with the source's orientation and
//! colour profile noted for later.
//!
//! The image crate reads every header (format, size, orientation, ICC
//! profile). JPEG pixels come from libjpeg (mozjpeg-sys, libjpeg-turbo's
//! SIMD code): 4.0 ns per pixel where zune-jpeg takes 5.3, always at full
//! size (its DCT scaling followed the largest requested width, so adding a
//! width changed every other variant's bytes), through our own error
//! manager (`libjpeg.rs`), which fails an image whose data is missing or
//! corrupt instead of publishing it with a grey half.

use std::io::Cursor;
use std::sync::Arc;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader};
use moxcms::{Layout, TransformExecutor};

use super::colour::{cmyk_to_rgb, srgb_transform};
use super::orient::swaps_axes;
use super::{libjpeg, libjpeg_message, Channels, Probe, RenderError, SourceFormat};
use crate::values::Limits;

/// An opened image: its header read, its pixels not yet.
pub(super) struct Decoder<'a> {
    pub(super) header: Box<dyn ImageDecoder + 'a>,
    pub(super) bytes: &'a [u8],
}

/// The decoded source in its stored orientation.
pub(super) struct Source {
    pub(super) pixels: Vec<u8>,
    /// Stored (not oriented) size.
    pub(super) width: u32,
    pub(super) height: u32,
    pub(super) channels: Channels,
    pub(super) orientation: Orientation,
    /// Source profile to sRGB, when the source has a profile that differs.
    pub(super) to_srgb: Option<Arc<dyn TransformExecutor<u8> + Send + Sync>>,
}

/// Checks the byte limit, recognises the format and reads the header:
/// the pixel limit and the orientation. Allocates nothing in proportion to
/// the pixels; the decoder it returns is capped to what the header declared.
pub(super) fn open(bytes: &[u8], limits: Limits) -> Result<(Probe, Decoder<'_>), RenderError> {
    check_bytes(bytes, bytes.len() as u64, limits)?;
    read_header(bytes, limits, true)
}

/// [`open`]'s probe from the first bytes of a file of `size` bytes, when
/// they hold everything `open` reads of it ([`header_within`]); `None`
/// when only the whole file tells.
pub(super) fn probe_start(bytes: &[u8], size: u64, limits: Limits) -> Result<Option<Probe>, RenderError> {
    check_bytes(bytes, size, limits)?;
    if !header_within(bytes) {
        return Ok(None);
    }
    // The markers after the header (a truncated end, too many scans) are
    // checked when the whole file is decoded.
    read_header(bytes, limits, false).map(|(probe, _)| Some(probe))
}

/// Whether the first bytes of a file hold everything [`open`] reads of
/// it (format, size, orientation): a JPEG's segments up to its frame
/// header (its EXIF block comes before), a PNG's chunks up to its first
/// image data (an `eXIf` chunk must come before). Other formats can keep
/// their orientation where only the whole file tells (a WebP's EXIF chunk
/// follows its image data, a TIFF's directory may be anywhere): `false`.
pub(super) fn header_within(bytes: &[u8]) -> bool {
    if bytes.starts_with(&[0xFF, 0xD8]) {
        return jpeg_header_len(bytes).is_some();
    }
    let Some(mut rest) = bytes.strip_prefix(b"\x89PNG\r\n\x1a\n".as_slice()) else {
        return false;
    };
    // Length, type, data, CRC; the first IDAT ends the header.
    while let Some((head, _)) = rest.split_first_chunk::<8>() {
        if &head[4..] == b"IDAT" {
            return true;
        }
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        match rest.get(8 + len + 4..) {
            Some(after) => rest = after,
            None => return false,
        }
    }
    false
}

/// Recognises the format and reads the header; `markers`: also check a
/// JPEG's markers, which needs the whole file.
fn read_header(bytes: &[u8], limits: Limits, markers: bool) -> Result<(Probe, Decoder<'_>), RenderError> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| RenderError::Unsupported(e.to_string()))?;
    let Some(format) = reader.format() else {
        return Err(RenderError::Unsupported(
            "not a JPEG, PNG, WebP, GIF or TIFF file".to_owned(),
        ));
    };
    let name = format_name(format);
    if markers && format == image::ImageFormat::Jpeg {
        check_jpeg_markers(bytes)?;
    }
    if markers && format == image::ImageFormat::Png {
        check_png_chunks(bytes)?;
    }
    let mut decoder: Box<dyn ImageDecoder> = Box::new(reader.into_decoder().map_err(|e| map_err(name, e))?);
    // The image crate decodes only the formats its enabled features name,
    // which are exactly these; anything else failed just above.
    let Some(source_format) = SourceFormat::of(format) else {
        return Err(RenderError::Unsupported(format!(
            "{name}: not a format resize decodes"
        )));
    };
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
        format: source_format,
        width: ow,
        height: oh,
        exif_orientation: exif_value(orientation),
    };
    Ok((
        probe,
        Decoder {
            header: decoder,
            bytes,
        },
    ))
}

/// Refuses an empty file and one of `size` bytes over the limit.
fn check_bytes(bytes: &[u8], size: u64, limits: Limits) -> Result<(), RenderError> {
    if bytes.is_empty() {
        return Err(RenderError::Empty);
    }
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

/// Decodes the whole image to 8-bit gray, RGB, or RGBA when it has alpha,
/// at full size. (libjpeg's DCT-scaled decoding is not used: its scale
/// would follow the largest requested size, and every size's pixels must
/// not depend on the others, `resize::resize_all`.)
pub(super) fn decode(decoder: Decoder<'_>, probe: &Probe) -> Result<Source, RenderError> {
    let orientation = Orientation::from_exif(probe.exif_orientation).unwrap_or(Orientation::NoTransforms);
    let Decoder { mut header, bytes } = decoder;
    // An unreadable profile is treated as sRGB, as browsers do.
    let icc = header.icc_profile().ok().flatten();
    let (pixels, width, height, channels) = if probe.format == SourceFormat::Jpeg {
        drop(header);
        let decoded = decode_jpeg(bytes)?;
        match decoded.cmyk {
            None => (decoded.pixels, decoded.width, decoded.height, decoded.channels),
            Some(inverted) => {
                let rgb = cmyk_to_rgb(decoded.pixels, inverted, icc.as_deref());
                // The profile (CMYK) has been applied; the output is sRGB.
                return Ok(Source {
                    pixels: rgb,
                    width: decoded.width,
                    height: decoded.height,
                    channels: Channels::Rgb,
                    orientation,
                    to_srgb: None,
                });
            }
        }
    } else {
        let image = DynamicImage::from_decoder(header).map_err(|e| map_err(probe.format.name(), e))?;
        let (width, height) = (image.width(), image.height());
        let channels = Channels::of(image.color());
        let pixels = match channels {
            Channels::Rgba => image.into_rgba8().into_raw(),
            Channels::Rgb => image.into_rgb8().into_raw(),
            Channels::Gray => image.into_luma8().into_raw(),
        };
        (pixels, width, height, channels)
    };
    // Gray profiles are not converted: a gray image is shown as sRGB gray.
    let to_srgb = match channels {
        Channels::Gray => None,
        Channels::Rgb => icc.as_deref().and_then(|icc| srgb_transform(icc, Layout::Rgb)),
        Channels::Rgba => icc.as_deref().and_then(|icc| srgb_transform(icc, Layout::Rgba)),
    };
    Ok(Source {
        pixels,
        width,
        height,
        channels,
        orientation,
        to_srgb,
    })
}

struct Jpeg {
    pixels: Vec<u8>,
    width: u32,
    height: u32,
    channels: Channels,
    /// `Some` for CMYK (4 bytes per pixel): whether the samples are
    /// inverted, as Adobe applications write them (an APP14 "Adobe" marker).
    cmyk: Option<bool>,
}

/// Decodes a JPEG with libjpeg.
fn decode_jpeg(bytes: &[u8]) -> Result<Jpeg, RenderError> {
    // libjpeg reports a fatal error, and a warning that means missing
    // pixels (`libjpeg::fatal_warning`), by unwinding out of its error
    // handler (mozjpeg's `unwinding` feature, with `panic = "unwind"` in
    // every profile); it is caught here and becomes this image's error.
    let decoded = std::panic::catch_unwind(|| -> std::io::Result<Jpeg> {
        use mozjpeg::ColorSpace;
        let d = libjpeg::decompress()
            .with_markers(&[mozjpeg::Marker::APP(14)])
            .from_mem(bytes)?;
        let adobe = d
            .markers()
            .any(|m| m.marker == mozjpeg::Marker::APP(14) && m.data.starts_with(b"Adobe"));
        let (mut started, channels, cmyk) = match d.color_space() {
            ColorSpace::JCS_GRAYSCALE => (d.grayscale()?, Channels::Gray, None),
            ColorSpace::JCS_CMYK | ColorSpace::JCS_YCCK => (
                d.to_colorspace(ColorSpace::JCS_CMYK)?,
                Channels::Rgba,
                Some(adobe),
            ),
            _ => (d.rgb()?, Channels::Rgb, None),
        };
        let (width, height) = (started.width(), started.height());
        let pixels = started.read_scanlines::<u8>()?;
        started.finish()?;
        Ok(Jpeg {
            pixels,
            // libjpeg's sizes are JDIMENSION (u32) widened to usize.
            width: u32::try_from(width).unwrap_or(u32::MAX),
            height: u32::try_from(height).unwrap_or(u32::MAX),
            channels,
            cmyk,
        })
    });
    let jpeg = match decoded {
        Ok(Ok(jpeg)) => jpeg,
        Ok(Err(e)) => return Err(jpeg_error(e)),
        Err(panic) => return Err(jpeg_fail(libjpeg_message(panic.as_ref()))),
    };
    let per_pixel = if jpeg.cmyk.is_some() {
        4
    } else {
        jpeg.channels.count()
    };
    if jpeg.pixels.len() as u64 != u64::from(jpeg.width) * u64::from(jpeg.height) * per_pixel as u64 {
        return Err(jpeg_fail(
            "decoded fewer rows than the header declares".to_owned(),
        ));
    }
    Ok(jpeg)
}

/// The encoded image, lent by the caller or given to the render. Given
/// bytes are freed as soon as the decoder has read them all
/// ([`Draining`]), so they do not sit beside the decoded pixels.
pub(super) enum Input<'a> {
    Lent(&'a [u8]),
    Given(Vec<u8>),
}

impl Input<'_> {
    pub(super) fn bytes(&self) -> &[u8] {
        match self {
            Input::Lent(b) => b,
            Input::Given(v) => v,
        }
    }
}

/// What starting a row-by-row decode needs from the header, holding no
/// borrow of the bytes (so given bytes can be moved to the decoder).
pub(super) struct StreamHeader {
    png: bool,
    icc: Option<Vec<u8>>,
    dimensions: (u32, u32),
    channels: Channels,
    orientation: Orientation,
}

impl StreamHeader {
    /// PNG rows are read from lent bytes; a JPEG's decoder takes them.
    pub(super) fn is_png(&self) -> bool {
        self.png
    }
}

/// A source handed out a few rows at a time (`resize::resize_all`): a gray
/// or RGB JPEG (libjpeg) or a PNG that is not interlaced (the png crate;
/// Adam7 fills the image in seven passes) as they are decoded, so the
/// whole decoded image never exists at once; any other source from its
/// whole decode ([`Rows::whole`]).
pub(super) struct Rows<'a> {
    decoder: RowDecoder<'a>,
    /// Stored size.
    pub(super) width: u32,
    pub(super) height: u32,
    pub(super) channels: Channels,
    pub(super) orientation: Orientation,
    pub(super) to_srgb: Option<Arc<dyn TransformExecutor<u8> + Send + Sync>>,
    read: u32,
}

enum RowDecoder<'a> {
    Jpeg(Box<mozjpeg::decompress::DecompressStarted<std::io::BufReader<Draining<'a>>>>),
    Png(Box<png::Reader<Cursor<&'a [u8]>>>),
    /// Decoded whole; rows are copied out from the front.
    Whole(Vec<u8>),
}

/// Reads the encoded bytes once, front to back, and frees given bytes with
/// the read that takes their last byte. libjpeg reads through a small
/// buffer (a `BufReader`), never straight from these bytes, so nothing
/// points into them once they are read: a progressive JPEG has read every
/// byte before its first row, a baseline one by its last rows, and in
/// either case the file is gone before the encoders start.
pub(super) struct Draining<'a> {
    input: Input<'a>,
    at: usize,
}

impl std::io::Read for Draining<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let rest = self.input.bytes().get(self.at..).unwrap_or_default();
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.at += n;
        if self.at >= self.input.bytes().len() {
            if let Input::Given(v) = &mut self.input {
                *v = Vec::new();
                self.at = 0;
            }
        }
        Ok(n)
    }
}

/// The header of a source [`jpeg_rows`] or [`png_rows`] decode row by row:
/// a gray or RGB JPEG, or a PNG that is not interlaced. Others hand the
/// decoder back, for [`decode`] to decode whole (and [`Rows::whole`] to
/// hand out).
pub(super) fn stream_header<'a>(decoder: Decoder<'a>, probe: &Probe) -> Result<StreamHeader, Decoder<'a>> {
    let png = match decoding(decoder.bytes, probe.format) {
        Decoding::JpegRows => false,
        Decoding::PngRows => true,
        Decoding::Whole => return Err(decoder),
    };
    let channels = Channels::of(decoder.header.color_type());
    let mut header = decoder.header;
    Ok(StreamHeader {
        png,
        icc: header.icc_profile().ok().flatten(),
        dimensions: header.dimensions(),
        channels,
        orientation: Orientation::from_exif(probe.exif_orientation).unwrap_or(Orientation::NoTransforms),
    })
}

/// How `render` decodes a source: a few rows at a time, or whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Decoding {
    /// libjpeg, row by row ([`jpeg_rows`]).
    JpegRows,
    /// The png crate, row by row ([`png_rows`]).
    PngRows,
    /// Decoded whole ([`decode`]), then handed out as rows.
    Whole,
}

/// The one decision of how a source of `format` is decoded, from its
/// header: gray and RGB JPEGs and PNGs that are not interlaced stream; a
/// CMYK JPEG, an interlaced PNG and every other format are decoded whole.
/// The decode ([`stream_header`]) and the memory estimate both follow it.
pub(super) fn decoding(bytes: &[u8], format: SourceFormat) -> Decoding {
    match format {
        SourceFormat::Jpeg if jpeg_frame(bytes).is_none_or(|f| f.sampling.len() != 4) => Decoding::JpegRows,
        SourceFormat::Png if png_interlaced(bytes) == Some(false) => Decoding::PngRows,
        _ => Decoding::Whole,
    }
}

/// Whether a PNG's header declares Adam7 interlacing (`None`: no header).
pub(super) fn png_interlaced(bytes: &[u8]) -> Option<bool> {
    // Signature (8), IHDR length and type (8), width, height (8), bit
    // depth, colour type, compression, filter, interlace.
    if bytes.get(12..16)? != b"IHDR" {
        return None;
    }
    Some(*bytes.get(28)? != 0)
}

/// Starts the row-by-row decode of the JPEG in `input` (whose header is
/// `header`).
pub(super) fn jpeg_rows(header: StreamHeader, input: Input<'_>) -> Result<Rows<'_>, RenderError> {
    let StreamHeader { icc, orientation, .. } = header;
    // libjpeg asks for 4 KiB at a time by default; 64 KiB keeps the calls few.
    let reader = std::io::BufReader::with_capacity(64 << 10, Draining { input, at: 0 });
    let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> std::io::Result<_> {
        use mozjpeg::ColorSpace;
        let d = libjpeg::decompress().from_reader(reader)?;
        match d.color_space() {
            ColorSpace::JCS_GRAYSCALE => Ok((d.grayscale()?, Channels::Gray)),
            ColorSpace::JCS_CMYK | ColorSpace::JCS_YCCK => Err(std::io::ErrorKind::Unsupported.into()),
            _ => Ok((d.rgb()?, Channels::Rgb)),
        }
    }));
    let (started, channels) = match started {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(jpeg_error(e)),
        Err(panic) => return Err(jpeg_fail(libjpeg_message(panic.as_ref()))),
    };
    let to_srgb = match channels {
        Channels::Rgb => icc.as_deref().and_then(|icc| srgb_transform(icc, Layout::Rgb)),
        _ => None,
    };
    Ok(Rows {
        // libjpeg's sizes are JDIMENSION (u32) widened to usize.
        width: u32::try_from(started.width()).unwrap_or(u32::MAX),
        height: u32::try_from(started.height()).unwrap_or(u32::MAX),
        decoder: RowDecoder::Jpeg(Box::new(started)),
        channels,
        orientation,
        to_srgb,
        read: 0,
    })
}

/// Starts the row-by-row decode of the PNG in `bytes` (whose header is
/// `header`), to the channels the image crate would give (`header`'s):
/// palettes and transparency expanded, gray with alpha as RGBA, 16-bit
/// samples rounded to 8 bits as the image crate rounds them, so the pixels
/// are those of a whole decode.
pub(super) fn png_rows<'a>(
    header: StreamHeader,
    bytes: &'a [u8],
    limits: Limits,
) -> Result<Rows<'a>, RenderError> {
    let StreamHeader {
        icc,
        dimensions: (width, height),
        channels,
        orientation,
        ..
    } = header;
    let mut d = png::Decoder::new_with_limits(
        Cursor::new(bytes),
        // Rows, the zlib window and chunks: far less than a whole image.
        png::Limits {
            bytes: usize::try_from(limits.max_input_bytes.saturating_add(64 << 20)).unwrap_or(usize::MAX),
        },
    );
    d.set_transformations(png::Transformations::EXPAND);
    let reader = d.read_info().map_err(png_error)?;
    let (color, _) = reader.output_color_type();
    let expected = match color {
        png::ColorType::Grayscale => Channels::Gray,
        png::ColorType::Rgb => Channels::Rgb,
        _ => Channels::Rgba,
    };
    if expected != channels || reader.info().size() != (width, height) {
        return Err(png_fail(
            "the image crate and the png crate read the header differently".to_owned(),
        ));
    }
    let to_srgb = match channels {
        Channels::Gray => None,
        Channels::Rgb => icc.as_deref().and_then(|icc| srgb_transform(icc, Layout::Rgb)),
        Channels::Rgba => icc.as_deref().and_then(|icc| srgb_transform(icc, Layout::Rgba)),
    };
    Ok(Rows {
        decoder: RowDecoder::Png(Box::new(reader)),
        width,
        height,
        channels,
        orientation,
        to_srgb,
        read: 0,
    })
}

impl Rows<'_> {
    /// A source decoded whole, handed out a few rows at a time like the
    /// others, so that every source is resized one way.
    pub(super) fn whole<'b>(source: Source) -> Rows<'b> {
        Rows {
            decoder: RowDecoder::Whole(source.pixels),
            width: source.width,
            height: source.height,
            channels: source.channels,
            orientation: source.orientation,
            to_srgb: source.to_srgb,
            read: 0,
        }
    }

    /// Fills `rows` (whole rows) with the next rows of the image.
    pub(super) fn read(&mut self, rows: &mut [u8]) -> Result<(), RenderError> {
        let line = self.width as usize * self.channels.count();
        let n = rows.len() / line.max(1);
        let fail = |message: &str| match self.decoder {
            RowDecoder::Jpeg(_) => jpeg_fail(message.to_owned()),
            RowDecoder::Png(_) | RowDecoder::Whole(_) => png_fail(message.to_owned()),
        };
        if self.read as usize + n > self.height as usize {
            return Err(fail("asked for rows past the end"));
        }
        match &mut self.decoder {
            RowDecoder::Jpeg(started) => {
                // libjpeg's errors unwind out of its handler (see `decode_jpeg`).
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    started.read_scanlines_into(rows).map(|_| ())
                }));
                match result {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(jpeg_error(e)),
                    Err(panic) => return Err(jpeg_fail(libjpeg_message(panic.as_ref()))),
                }
            }
            RowDecoder::Png(reader) => {
                let (color, depth) = reader.output_color_type();
                let sixteen = depth == png::BitDepth::Sixteen;
                for out in rows.chunks_exact_mut(line) {
                    let Some(row) = reader.next_row().map_err(png_error)? else {
                        return Err(png_fail("file is truncated".to_owned()));
                    };
                    png_row(row.data(), color, sixteen, out);
                }
            }
            RowDecoder::Whole(pixels) => {
                let at = self.read as usize * line;
                rows.copy_from_slice(&pixels[at..at + rows.len()]);
            }
        }
        self.read += n as u32;
        Ok(())
    }

    /// Ends the decode after the last row, as `decode_jpeg` does.
    pub(super) fn finish(self) -> Result<(), RenderError> {
        match self.decoder {
            RowDecoder::Jpeg(started) => {
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| started.finish())) {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(jpeg_error(e)),
                    Err(panic) => Err(jpeg_fail(libjpeg_message(panic.as_ref()))),
                }
            }
            // Every row is read; what follows the image (text, IEND) the
            // whole decode does not read either.
            RowDecoder::Png(_) => Ok(()),
            RowDecoder::Whole(_) => Ok(()),
        }
    }
}

/// One PNG row, as the png crate expands it, in `out`'s layout (the
/// header's channels): gray with alpha becomes RGBA; 16-bit samples
/// (big-endian) become `round(v × 255 / 65535)`, the image crate's rounding.
fn png_row(row: &[u8], color: png::ColorType, sixteen: bool, out: &mut [u8]) {
    let sample = |i: usize| -> u8 {
        if sixteen {
            let v = u32::from(u16::from_be_bytes([row[2 * i], row[2 * i + 1]]));
            // At most (65535 + 128) / 257 = 255.
            ((v + 128) / 257) as u8
        } else {
            row[i]
        }
    };
    match color {
        png::ColorType::GrayscaleAlpha => {
            for (x, px) in out.chunks_exact_mut(4).enumerate() {
                let (g, a) = (sample(2 * x), sample(2 * x + 1));
                px.copy_from_slice(&[g, g, g, a]);
            }
        }
        _ if sixteen => {
            for (i, o) in out.iter_mut().enumerate() {
                *o = sample(i);
            }
        }
        _ => out.copy_from_slice(&row[..out.len()]),
    }
}

fn png_fail(message: String) -> RenderError {
    RenderError::Decode {
        format: "png",
        message,
    }
}

/// The png crate's error as the whole decode reports it through the image
/// crate (`map_err`): "format error decoding png: …", truncation as such.
fn png_error(e: png::DecodingError) -> RenderError {
    match e {
        png::DecodingError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            png_fail("file is truncated".to_owned())
        }
        png::DecodingError::IoError(io) => png_fail(io.to_string().to_lowercase()),
        png::DecodingError::Format(f) => png_fail(format!("format error decoding png: {f}").to_lowercase()),
        other => png_fail(other.to_string().to_lowercase()),
    }
}

fn jpeg_fail(message: String) -> RenderError {
    RenderError::Decode {
        format: "jpeg",
        message,
    }
}

fn jpeg_error(e: std::io::Error) -> RenderError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        jpeg_fail("file is truncated".to_owned())
    } else {
        jpeg_fail(e.to_string().to_lowercase())
    }
}

/// A JPEG's frame header: what libjpeg allocates from.
pub(super) struct Frame {
    /// Progressive (SOF2, SOF6, SOF10, SOF14): libjpeg then keeps every
    /// coefficient until the last scan.
    pub(super) progressive: bool,
    /// Each component's horizontal and vertical sampling factors.
    pub(super) sampling: Vec<(u8, u8)>,
}

impl Frame {
    /// Bytes of a full-size coefficient buffer (2 per coefficient, whole
    /// 8×8 blocks) for a `stored`-size image.
    pub(super) fn coefficient_bytes(&self, (width, height): (u32, u32)) -> u64 {
        let h_max = u64::from(self.sampling.iter().map(|s| s.0).max().unwrap_or(1).max(1));
        let v_max = u64::from(self.sampling.iter().map(|s| s.1).max().unwrap_or(1).max(1));
        // libjpeg pads each component to whole MCUs.
        let mcu_w = u64::from(width).div_ceil(8 * h_max);
        let mcu_h = u64::from(height).div_ceil(8 * v_max);
        self.sampling
            .iter()
            .map(|&(h, v)| mcu_w * u64::from(h) * mcu_h * u64::from(v) * 128)
            .sum()
    }
}

/// How many bytes a JPEG's header takes: its segments up to and including
/// the first scan's header (SOS), all of which the decoder reads before it
/// gives the image's size; `None` when `bytes` end before.
fn jpeg_header_len(bytes: &[u8]) -> Option<usize> {
    let mut at = 2; // after SOI
    while at + 4 <= bytes.len() {
        if bytes[at] != 0xFF {
            return None;
        }
        if bytes[at + 1] == 0xFF {
            at += 1; // fill byte
            continue;
        }
        let len = usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
        let end = at + 2 + len;
        if end > bytes.len() || len < 2 {
            return None;
        }
        if bytes[at + 1] == 0xDA {
            return Some(end);
        }
        at = end;
    }
    None
}

/// Reads the frame header (SOFn) by walking the marker segments before the
/// first scan; `None` when there is none to find.
pub(super) fn jpeg_frame(bytes: &[u8]) -> Option<Frame> {
    let mut at = 2; // after SOI
    while at + 4 <= bytes.len() {
        if bytes[at] != 0xFF {
            return None;
        }
        let marker = bytes[at + 1];
        if marker == 0xFF {
            at += 1; // fill byte
            continue;
        }
        let len = usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
        let segment = bytes.get(at + 4..at + 2 + len)?;
        match marker {
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                // P, Y, X, Nf, then (id, HV, Tq) per component.
                let count = usize::from(*segment.get(5)?);
                let sampling = segment
                    .get(6..6 + 3 * count)?
                    .chunks_exact(3)
                    .map(|c| (c[1] >> 4, c[1] & 0x0F))
                    .collect();
                return Some(Frame {
                    progressive: matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE),
                    sampling,
                });
            }
            0xDA | 0xD9 => return None,
            _ => at += 2 + len,
        }
    }
    None
}

/// The most scans a JPEG may have. Each progressive scan makes libjpeg
/// pass over the whole image, so a small file of thousands of empty scans
/// costs minutes; real encoders write at most a dozen or so. 500 is
/// libjpeg-turbo's own advice for untrusted input (`djpeg -maxscans`).
const MAX_SCANS: usize = 500;

/// Refuses a truncated JPEG and one with more than [`MAX_SCANS`] scans.
fn check_jpeg_markers(bytes: &[u8]) -> Result<(), RenderError> {
    let fail = |message: String| RenderError::Decode {
        format: "jpeg",
        message,
    };
    let markers = jpeg_markers(bytes);
    if !markers.complete {
        return Err(fail(
            "file is truncated (no end-of-image marker after the image data)".to_owned(),
        ));
    }
    if markers.scans > MAX_SCANS {
        return Err(fail(format!(
            "{} scans, over the limit of {MAX_SCANS}",
            markers.scans
        )));
    }
    Ok(())
}

/// Refuses a PNG cut inside a chunk up to its image data. The png crate
/// hands out each row as soon as its bytes are inflated and checks neither
/// the zlib stream's end nor the last chunk's CRC after the last row, so a
/// file cut in its last IDAT could pass as whole; the chunk lengths tell.
/// A cut after the image data (in a text chunk or IEND) loses no pixel.
fn check_png_chunks(bytes: &[u8]) -> Result<(), RenderError> {
    let mut at = 8;
    let mut image_data = false;
    while let Some(head) = bytes.get(at..at + 8) {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let idat = &head[4..] == b"IDAT";
        if image_data && !idat {
            return Ok(());
        }
        image_data |= idat;
        let end = at.saturating_add(12).saturating_add(len);
        if end > bytes.len() {
            return Err(png_fail(format!(
                "file is truncated (its {} chunk ends past the end of the file)",
                String::from_utf8_lossy(&head[4..])
            )));
        }
        at = end;
    }
    // Cut between chunks: the decoder tells whether the image data is whole.
    Ok(())
}

/// What one pass over a JPEG's `FF` bytes finds.
struct Markers {
    /// Start-of-scan markers (`FF DA`) of the main image. Inside
    /// entropy-coded data every 0xFF is stuffed (`FF 00`) or a restart
    /// marker, so each starts a scan (or one of an image appended after
    /// the main one, such as a phone's gain map, which only adds a few).
    scans: usize,
    /// Whether an end-of-image marker (`FF D9`) follows the main image's
    /// first scan. A quick check before decoding; libjpeg's own warnings
    /// catch what it misses (`libjpeg::fatal_warning`).
    complete: bool,
}

/// One pass over the file from the main image's first scan (memchr finds
/// the `FF` bytes: the file is read once per probe, estimate and render,
/// and a byte-at-a-time scan of a 4 MB photo cost 5% of its job). The
/// segments before it are skipped by their lengths: an EXIF block holds a
/// whole thumbnail JPEG, whose own scan and end-of-image marker once made a
/// file cut in its main image look complete.
fn jpeg_markers(bytes: &[u8]) -> Markers {
    let mut found = Markers {
        scans: 0,
        complete: false,
    };
    let Some(header) = jpeg_header_len(bytes) else {
        return found;
    };
    found.scans = 1;
    let rest = &bytes[header..];
    for at in memchr::memchr_iter(0xFF, rest) {
        match rest.get(at + 1) {
            Some(0xDA) => found.scans += 1,
            Some(0xD9) => found.complete = true,
            _ => {}
        }
    }
    found
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::fixture;

    /// Whether the first `len` bytes of a fixture hold its header, for
    /// every cut: never before the header's last byte, always after it.
    #[test]
    fn headers_within_the_first_bytes() {
        for name in ["phone-orient6.jpg", "photo-4x3.jpg", "alpha.png"] {
            let bytes = fixture(name);
            // The shortest start that holds the header.
            let shortest = (1..=bytes.len())
                .find(|&n| header_within(&bytes[..n]))
                .unwrap_or_else(|| panic!("{name}: no header"));
            assert!(shortest < bytes.len(), "{name}: only the whole file has a header");
            for n in [shortest, shortest + 1, bytes.len()] {
                assert!(header_within(&bytes[..n]), "{name}: {n} bytes");
                // And the probe from them is the whole file's.
                let start = probe_start(&bytes[..n], bytes.len() as u64, Limits::default()).unwrap();
                let (whole, _) = open(&bytes, Limits::default()).unwrap();
                assert_eq!(start, Some(whole), "{name}: {n} bytes");
            }
            assert!(!header_within(&bytes[..shortest - 1]), "{name}");
        }
        // Formats whose orientation may follow the pixels: whole files only.
        for name in ["still.webp", "photo.tiff", "animated.gif"] {
            let bytes = fixture(name);
            assert!(!header_within(&bytes), "{name}");
            assert_eq!(
                probe_start(&bytes, bytes.len() as u64, Limits::default()).unwrap(),
                None,
                "{name}"
            );
        }
        // The byte limit is the whole file's.
        let big = fixture("phone-orient6.jpg");
        let limits = Limits {
            max_input_bytes: big.len() as u64 - 1,
            ..Limits::default()
        };
        assert!(matches!(
            probe_start(&big[..65_536], big.len() as u64, limits),
            Err(RenderError::TooManyBytes { .. })
        ));
    }
}
