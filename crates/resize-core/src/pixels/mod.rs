//! Bytes in, renditions out: limits, decoding, orientation, colour, SIMD
//! resizing and encoding.
//!
//! The source is decoded once, at full size; smaller sizes come from a
//! ladder of 2×2 means of it (`resize.rs`). A gray or RGB JPEG or a PNG that is not interlaced is decoded a
//! few rows at a time and the sizes
//! made from it are resized strip by strip as the rows arrive, so its
//! decoded pixels are never whole in memory; other sources are decoded
//! whole. Each output is resized in the stored orientation and only then
//! rotated, so rotations touch small buffers; it is encoded the moment it
//! exists, while other sizes are still being resized. Colour is converted
//! to sRGB on the small buffers too; no metadata is ever copied, since
//! outputs are encoded from pixels alone.

mod colour;
mod decode;
mod encode;
mod libjpeg;
mod memory;
mod orient;
mod placeholder;
mod resize;

use decode::Input;

use std::sync::Arc;

use image::metadata::Orientation;
use moxcms::TransformExecutor;

use crate::geometry::{self, Size};
use crate::recipe::Recipe;
use crate::values::{Format, Limits};

pub use memory::working_set;
pub use placeholder::{placeholders, Placeholders, MAX_SIDE as PLACEHOLDER_MAX_SIDE};

/// An image could not be rendered. Every variant is permanent for the bytes
/// given: retrying the same input cannot succeed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// The input has no bytes.
    #[error("input is empty")]
    Empty,
    /// The input is larger than the byte limit.
    #[error("input is {size} bytes, over the limit of {limit} bytes")]
    TooManyBytes {
        /// Size of the input.
        size: u64,
        /// The limit in force.
        limit: u64,
    },
    /// The header declares more pixels than the limit; nothing was allocated.
    #[error("image is {width}x{height} ({pixels} pixels), over the limit of {limit} pixels")]
    TooManyPixels {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// width × height.
        pixels: u64,
        /// The limit in force.
        limit: u64,
    },
    /// The bytes are not in a format this build decodes.
    #[error("unsupported format: {0}")]
    Unsupported(String),
    /// The header or pixel data is corrupt or truncated.
    #[error("cannot decode {format}: {message}")]
    Decode {
        /// The format the bytes claim to be.
        format: &'static str,
        /// What the decoder reported.
        message: String,
    },
    /// The image has a zero dimension.
    #[error("image has no pixels ({width}x{height})")]
    ZeroSize {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
    },
    /// An output cannot be encoded (for instance over the format's size limit).
    #[error("cannot encode {width}x{height} {format}: {message}")]
    Encode {
        /// The output format.
        format: Format,
        /// Output width.
        width: u32,
        /// Output height.
        height: u32,
        /// What the encoder reported.
        message: String,
    },
    /// The resizer failed; a bug rather than a property of the input.
    #[error("cannot resize to {width}x{height}: {message}")]
    Resize {
        /// Output width.
        width: u32,
        /// Output height.
        height: u32,
        /// What the resizer reported.
        message: String,
    },
    /// Applying the EXIF orientation failed; a bug rather than a property
    /// of the input.
    #[error("cannot orient the {width}x{height} output: {message}")]
    Orient {
        /// Output width, in the stored orientation.
        width: u32,
        /// Output height, in the stored orientation.
        height: u32,
        /// What went wrong.
        message: String,
    },
    /// Converting an output from the source's colour profile to sRGB failed.
    #[error("cannot convert the {width}x{height} output to sRGB: {message}")]
    Colour {
        /// Output width.
        width: u32,
        /// Output height.
        height: u32,
        /// What the colour engine reported.
        message: String,
    },
    /// Computing the placeholders of the small rendering failed; a bug
    /// rather than a property of the input.
    #[error("cannot compute the placeholders of the {width}x{height} rendering: {message}")]
    Placeholder {
        /// Rendering width.
        width: u32,
        /// Rendering height.
        height: u32,
        /// What went wrong.
        message: String,
    },
}

/// The message libjpeg's error handler unwound with (a `String`); the
/// encoder and the decoder both catch it.
fn libjpeg_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("libjpeg failed")
        .trim_start_matches("libjpeg fatal error: ")
        .to_lowercase()
}

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

/// A source's container format, as its first bytes say: the formats
/// resize decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SourceFormat {
    /// JPEG (libjpeg).
    Jpeg,
    /// PNG.
    Png,
    /// WebP, lossy or lossless.
    WebP,
    /// GIF (the first frame).
    Gif,
    /// TIFF.
    Tiff,
}

impl SourceFormat {
    /// The image crate's format, when it is one resize decodes.
    pub(crate) fn of(format: image::ImageFormat) -> Option<SourceFormat> {
        Some(match format {
            image::ImageFormat::Jpeg => SourceFormat::Jpeg,
            image::ImageFormat::Png => SourceFormat::Png,
            image::ImageFormat::WebP => SourceFormat::WebP,
            image::ImageFormat::Gif => SourceFormat::Gif,
            image::ImageFormat::Tiff => SourceFormat::Tiff,
            _ => return None,
        })
    }

    /// Its lowercase name, as messages say it (`jpeg`, `png`, …).
    pub fn name(self) -> &'static str {
        match self {
            SourceFormat::Jpeg => "jpeg",
            SourceFormat::Png => "png",
            SourceFormat::WebP => "webp",
            SourceFormat::Gif => "gif",
            SourceFormat::Tiff => "tiff",
        }
    }
}

impl std::fmt::Display for SourceFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What the header says, read without decoding pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    /// The container format.
    pub format: SourceFormat,
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
    let (probe, _) = decode::open(bytes, limits)?;
    Ok(probe)
}

/// [`probe`] from the first bytes of a file of `size` bytes, when they
/// hold all it reads (a JPEG's segments up to its first scan header, a
/// PNG's chunks up to its image data); `None` when only the whole file
/// tells (WebP, TIFF, GIF, or a header longer than `bytes`). What a plan
/// reads first ([`HEADER_BYTES`](crate::adapter::HEADER_BYTES)).
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let mut png = Vec::new();
/// # image::RgbImage::from_pixel(800, 600, image::Rgb([200, 30, 30]))
/// #     .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
/// use resize_core::adapter::probe_start;
/// use resize_core::{probe, Limits};
/// let start = probe_start(&png[..64], png.len() as u64, Limits::default())?;
/// assert_eq!(start, Some(probe(&png, Limits::default())?));
/// # Ok(()) }
/// ```
pub fn probe_start(bytes: &[u8], size: u64, limits: Limits) -> Result<Option<Probe>, RenderError> {
    decode::probe_start(bytes, size, limits)
}

/// The sizes `recipe` makes from a source of the probed (oriented) size,
/// ascending. Empty when the source is narrower than every width under
/// `Upscale::Skip`. The job plans keys from the same list.
pub(crate) fn sizes(recipe: &Recipe, probe: &Probe) -> Vec<Size> {
    geometry::target_sizes(probe.width, probe.height, recipe.widths(), recipe.upscale())
}

/// Decodes `bytes` once and makes every rendition the recipe asks for:
/// each size in each format, sizes ascending, formats in recipe order. An
/// empty list means the source is narrower than every width.
///
/// The widths of one image are resized and encoded in parallel on rayon's
/// global thread pool. To bound the threads, call it inside
/// `rayon::ThreadPool::install`; to bound memory, admit images to a
/// [`MemoryBudget`](crate::MemoryBudget) by their [`working_set`] (which
/// [`run_job`](crate::run_job) does with `JobOptions::budget`).
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use resize_core::{render, Format, Recipe, Width};
/// # let mut png = Vec::new();
/// # image::RgbImage::from_pixel(800, 600, image::Rgb([200, 30, 30]))
/// #     .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
/// let widths: Vec<Width> = [360, 720, 1200].into_iter().filter_map(Width::new).collect();
/// let recipe = Recipe::builder().widths(&widths).build()?;
/// let out = render(&png, &recipe)?;
/// // 1200 is wider than the 800 px source, so it is skipped, not upscaled.
/// let sizes: Vec<_> = out.iter().map(|r| (r.width, r.height, r.format)).collect();
/// assert_eq!(sizes, [(360, 270, Format::Jpeg), (720, 540, Format::Jpeg)]);
/// # Ok(()) }
/// ```
pub fn render(bytes: &[u8], recipe: &Recipe) -> Result<Vec<Rendition>, RenderError> {
    render_input(Input::Lent(bytes), recipe)
}

/// [`render`] for bytes the caller has no further use for: they are freed
/// as soon as the decoder has read them, before the largest buffers are
/// (a progressive JPEG's coefficients, the resized sizes, the encoders),
/// which lowers the peak by the file's size. [`run_job`](crate::run_job)
/// renders this way.
pub fn render_owned(bytes: Vec<u8>, recipe: &Recipe) -> Result<Vec<Rendition>, RenderError> {
    render_input(Input::Given(bytes), recipe)
}

/// Which of a recipe's variants to make.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Only<'a> {
    /// Every one.
    All,
    /// Those listed, by width and format.
    These(&'a [(u32, Format)]),
}

impl Only<'_> {
    fn wants(&self, width: u32, format: Format) -> bool {
        match self {
            Only::All => true,
            Only::These(list) => list.contains(&(width, format)),
        }
    }
}

fn render_input(input: Input<'_>, recipe: &Recipe) -> Result<Vec<Rendition>, RenderError> {
    Ok(render_only(input, recipe, Only::All, false)?.renditions)
}

/// What one render made.
#[derive(Debug, Default)]
pub struct Rendered {
    /// The renditions, sizes ascending, formats in recipe order.
    pub renditions: Vec<Rendition>,
    /// The placeholders, when asked for and the source has variants.
    pub placeholders: Option<Placeholders>,
}

/// [`render`], and the source's [`Placeholders`] from an upright rendering
/// of at most [`PLACEHOLDER_MAX_SIDE`] pixels a side made on the same
/// ladder (so its pixels, like every size's, depend on the source alone).
/// A source narrower than every width (upscale `skip`) gets neither.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let mut png = Vec::new();
/// # image::RgbImage::from_pixel(800, 600, image::Rgb([200, 30, 30]))
/// #     .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
/// use resize_core::{render_with_placeholders, Recipe, Width};
/// let recipe = Recipe::builder().widths(&[Width::new(360).expect("a valid width")]).build()?;
/// let rendered = render_with_placeholders(&png, &recipe)?;
/// assert_eq!(rendered.renditions.len(), 1);
/// let placeholders = rendered.placeholders.expect("a source with variants has placeholders");
/// assert_eq!(placeholders.dominant, "#c81e1e");
/// # Ok(()) }
/// ```
pub fn render_with_placeholders(bytes: &[u8], recipe: &Recipe) -> Result<Rendered, RenderError> {
    render_only(Input::Lent(bytes), recipe, Only::All, true)
}

/// [`render_owned`] of the variants `only` names, each exactly as a render
/// of every variant makes it (`resize::resize_all`: a size's pixels depend
/// on the source and that size alone), and the placeholders when asked
/// for (the same whatever `only` names). Sizes ascending, formats in
/// recipe order.
pub(crate) fn render_selected(
    bytes: Vec<u8>,
    recipe: &Recipe,
    only: Only<'_>,
    with_placeholders: bool,
) -> Result<Rendered, RenderError> {
    render_only(Input::Given(bytes), recipe, only, with_placeholders)
}

/// The upright size placeholders are computed from: the source's shape,
/// its longer side at most [`PLACEHOLDER_MAX_SIDE`] (never enlarged).
fn placeholder_size(width: u32, height: u32) -> Size {
    let longer = width.max(height).max(1);
    let side = longer.min(PLACEHOLDER_MAX_SIDE);
    // Rounded, at least one pixel: `side * x / longer` for the shorter side.
    let scale =
        |x: u32| ((u64::from(side) * u64::from(x) + u64::from(longer) / 2) / u64::from(longer)).max(1);
    let fit = |x: u32| u32::try_from(scale(x)).unwrap_or(side);
    Size {
        width: fit(width),
        height: fit(height),
    }
}

fn render_only(
    input: Input<'_>,
    recipe: &Recipe,
    only: Only<'_>,
    with_placeholders: bool,
) -> Result<Rendered, RenderError> {
    let (probe, decoder) = decode::open(input.bytes(), recipe.limits())?;
    let every = sizes(recipe, &probe);
    if every.is_empty() {
        return Ok(Rendered::default());
    }
    let variants: Vec<Size> = every
        .into_iter()
        .filter(|s| recipe.formats().iter().any(|&f| only.wants(s.width, f)))
        .collect();
    let placeholder = with_placeholders.then(|| placeholder_size(probe.width, probe.height));
    let mut sizes = variants.clone();
    if let Some(p) = placeholder.filter(|p| !sizes.contains(p)) {
        sizes.push(p);
    }
    if sizes.is_empty() {
        return Ok(Rendered::default());
    }
    let plan = Plan {
        variants: &variants,
        placeholder,
        recipe,
        only,
    };
    // A gray or RGB JPEG and a PNG that is not interlaced stream: decoded a
    // few rows at a time, never whole in memory. Anything else is decoded
    // whole here, within this statement, which ends the decoder's borrow
    // of the bytes so they can be moved or freed below.
    let whole = match decode::stream_header(decoder, &probe) {
        Ok(header) => Err(header),
        Err(decoder) => Ok(decode::decode(decoder, &probe)?),
    };
    let rows = match whole {
        Ok(source) => {
            // Decoded: given bytes go before the resizes start.
            drop(input);
            decode::Rows::whole(source)
        }
        Err(header) if header.is_png() => {
            let rows = decode::png_rows(header, input.bytes(), recipe.limits())?;
            return resize_and_finish(rows, &sizes, &plan);
        }
        Err(header) => decode::jpeg_rows(header, input)?,
    };
    resize_and_finish(rows, &sizes, &plan)
}

/// What to make of each resized size.
struct Plan<'a> {
    /// The sizes to encode (in the formats `only` wants).
    variants: &'a [Size],
    /// The size to compute placeholders from, if any.
    placeholder: Option<Size>,
    recipe: &'a Recipe,
    only: Only<'a>,
}

/// Resizes and finishes every size of a source read row by row.
fn resize_and_finish(
    rows: decode::Rows<'_>,
    sizes: &[Size],
    plan: &Plan<'_>,
) -> Result<Rendered, RenderError> {
    let meta = Meta {
        channels: rows.channels,
        orientation: rows.orientation,
        to_srgb: rows.to_srgb.clone(),
    };
    let finish = |size: Size, pixels: &[u8]| finish_size(&meta, size, pixels, plan);
    let per_size = resize::resize_all(rows, sizes, &finish)?;
    let mut rendered = Rendered::default();
    for (renditions, placeholders) in per_size {
        rendered.renditions.extend(renditions);
        rendered.placeholders = rendered.placeholders.or(placeholders);
    }
    Ok(rendered)
}

/// What encoding needs to know about the source.
struct Meta {
    channels: Channels,
    orientation: Orientation,
    to_srgb: Option<Arc<dyn TransformExecutor<u8> + Send + Sync>>,
}

/// Orients and converts one resized output, then encodes it in every
/// format wanted (a variant size) and computes the placeholders from it
/// (the placeholder size).
fn finish_size(
    source: &Meta,
    size: Size,
    pixels: &[u8],
    plan: &Plan<'_>,
) -> Result<(Vec<Rendition>, Option<Placeholders>), RenderError> {
    let (recipe, only) = (plan.recipe, plan.only);
    // Resized in the stored orientation; rotate the small result.
    let (sw, sh) = orient::stored(size, source.orientation);
    let oriented;
    let mut pixels = pixels;
    if source.orientation != Orientation::NoTransforms {
        oriented = orient::orient(pixels, sw, sh, source.channels, source.orientation)?;
        pixels = &oriented;
    }
    let converted;
    if let Some(t) = &source.to_srgb {
        let mut out = vec![0; pixels.len()];
        t.transform(pixels, &mut out).map_err(|e| RenderError::Colour {
            width: size.width,
            height: size.height,
            message: e.to_string(),
        })?;
        converted = out;
        pixels = &converted;
    }
    let channels = source.channels;
    let placeholders = match plan.placeholder {
        Some(p) if p == size => Some(placeholder::placeholders(
            &colour::to_rgba(pixels, channels),
            size.width,
            size.height,
        )?),
        _ => None,
    };
    // The placeholder's own size is not a variant unless a width makes it one.
    let is_variant = plan.variants.contains(&size);
    let mut flat: Option<Vec<u8>> = None;
    let mut out = Vec::with_capacity(recipe.formats().len());
    for &format in recipe.formats() {
        if !is_variant || !only.wants(size.width, format) {
            continue;
        }
        let (data, ch) = match format {
            Format::Jpeg if channels == Channels::Rgba => {
                let rgb = flat.get_or_insert_with(|| colour::flatten(pixels, recipe.background()));
                (rgb.as_slice(), Channels::Rgb)
            }
            _ => (pixels, channels),
        };
        let bytes = encode::encode(format, recipe, data, size.width, size.height, ch)?;
        out.push(Rendition {
            width: size.width,
            height: size.height,
            format,
            bytes,
        });
    }
    Ok((out, placeholders))
}

/// How pixels are laid out: 1, 3 or 4 bytes each, 8 bits per channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channels {
    /// One byte of gray. Gray sources stay gray: 1-channel JPEG and PNG
    /// outputs are a third the work and smaller, and look the same.
    Gray,
    /// Red, green, blue.
    Rgb,
    /// Red, green, blue, alpha (straight, not premultiplied).
    Rgba,
}

impl Channels {
    /// The 8-bit layout a decoded colour type becomes: RGBA for any alpha
    /// (gray with alpha included), RGB for colour, gray otherwise. The
    /// whole decode, the row decoders and the estimate all follow it.
    pub(crate) fn of(color: image::ColorType) -> Channels {
        if color.has_alpha() {
            Channels::Rgba
        } else if color.has_color() {
            Channels::Rgb
        } else {
            Channels::Gray
        }
    }

    /// Bytes per pixel.
    pub fn count(self) -> usize {
        match self {
            Channels::Gray => 1,
            Channels::Rgb => 3,
            Channels::Rgba => 4,
        }
    }
}

/// Decoded pixels in the stored orientation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// Row-major pixels, [`Channels::count`] bytes each.
    pub pixels: Vec<u8>,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The pixel layout.
    pub channels: Channels,
}

/// The header check and decode [`render`] starts with (no orientation or
/// colour conversion yet, except CMYK to RGB), at full size.
pub fn decode(bytes: &[u8], limits: Limits) -> Result<Decoded, RenderError> {
    let (probe, decoder) = decode::open(bytes, limits)?;
    let s = decode::decode(decoder, &probe)?;
    Ok(Decoded {
        pixels: s.pixels,
        width: s.width,
        height: s.height,
        channels: s.channels,
    })
}

/// One step down the ladder [`render`] resizes small sizes from: half the
/// size on both axes (rounded up), each pixel the rounded mean of a 2×2
/// block (an odd edge's pixels the mean of what there is). A size is
/// resized from the smallest level at least twice its size, else from
/// the source.
pub fn halve(image: &Decoded) -> Decoded {
    let (pixels, width, height) = resize::halve(&image.pixels, image.width, image.height, image.channels);
    Decoded {
        pixels,
        width,
        height,
        channels: image.channels,
    }
}

/// One Lanczos3 resize, as [`render`] does it for each size.
pub fn resize(image: &Decoded, width: u32, height: u32) -> Result<Vec<u8>, RenderError> {
    resize::resize(
        &image.pixels,
        image.width,
        image.height,
        image.channels,
        width,
        height,
    )
}

/// One encode of sRGB pixels in `format` at the recipe's quality for it.
/// JPEG takes gray or RGB.
pub fn encode(
    format: Format,
    recipe: &Recipe,
    pixels: &[u8],
    width: u32,
    height: u32,
    channels: Channels,
) -> Result<Vec<u8>, RenderError> {
    encode::encode(format, recipe, pixels, width, height, channels)
}
