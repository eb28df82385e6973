//! The values a recipe is made of — widths, formats, qualities, colours,
//! limits — as types that can only hold valid values, and [`RecipeError`],
//! the error every recipe layer returns. The lowest layer: it knows nothing
//! of keys, pixels or settings.

use std::fmt;
use std::num::NonZeroU32;

/// Largest width a recipe may ask for.
pub const MAX_WIDTH: u32 = 16_384;
/// Most distinct widths a recipe may ask for.
pub const MAX_WIDTHS: usize = 16;

/// Default JPEG quality: visually lossless for photos at a size close to
/// what sharp produces at its default of 80.
pub const DEFAULT_JPEG_QUALITY: u8 = 85;
/// Default lossy WebP quality (sharp's and cwebp's default).
pub const DEFAULT_WEBP_QUALITY: u8 = 80;
/// Default limit on the size of a source file: 64 MiB.
pub const DEFAULT_MAX_INPUT_BYTES: u64 = 64 * 1024 * 1024;
/// Default limit on decoded pixels: 100 megapixels. A 24 MP phone photo
/// passes; a header declaring 50000×50000 does not.
pub const DEFAULT_MAX_PIXELS: u64 = 100_000_000;

/// A recipe could not be built. Messages name the recipe's field (widths,
/// key template, replacement, formats), never an environment variable:
/// `Recipe::from_lookup` translates them into `SettingsError`s that do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecipeError {
    /// The widths are empty, repeated, or too many.
    #[error("invalid widths `{widths}`: expected {expected}")]
    Widths {
        /// The widths given, comma-separated.
        widths: String,
        /// What is allowed.
        expected: &'static str,
    },
    /// No output format was given.
    #[error("no output formats: expected at least one of jpeg, webp, png")]
    NoFormats,
    /// The format is valid but this build was compiled without it.
    #[error("format `{format}` is not compiled into this build (enable the cargo feature `{format}`)")]
    FormatDisabled {
        /// The format asked for.
        format: Format,
    },
    /// An output key template breaks the template rules.
    #[error("invalid key template `{template}`: expected {expected}")]
    Template {
        /// The template as written.
        template: String,
        /// The rule it breaks.
        expected: &'static str,
    },
    /// A manifest key template breaks the manifest template rules.
    #[error("invalid manifest template `{template}`: expected {expected}")]
    ManifestTemplate {
        /// The template as written.
        template: String,
        /// The rule it breaks.
        expected: &'static str,
    },
    /// A replacement is not a `from:to` pair of safe prefixes.
    #[error("invalid replacement `{pair}`: expected {expected}")]
    Replacement {
        /// The pair as written.
        pair: String,
        /// What is allowed.
        expected: &'static str,
    },
    /// The recursion guard refused the replacements: an output could be
    /// taken for a source.
    #[error("invalid replacements: outputs could loop back as sources: {reason}")]
    Loop {
        /// Which rule makes outputs look like sources.
        reason: String,
    },
}

/// One output width in pixels, 1..=[`MAX_WIDTH`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Width(NonZeroU32);

impl Width {
    /// Parses a width, refusing 0 and anything over [`MAX_WIDTH`].
    pub fn new(px: u32) -> Option<Width> {
        if px > MAX_WIDTH {
            return None;
        }
        NonZeroU32::new(px).map(Width)
    }

    /// The width in pixels.
    pub fn get(self) -> u32 {
        self.0.get()
    }
}

impl fmt::Display for Width {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// 1..=[`MAX_WIDTHS`] distinct widths, sorted ascending.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Widths(Vec<Width>);

impl Widths {
    /// Builds the set from a list, refusing an empty list, duplicates and
    /// more than [`MAX_WIDTHS`] entries.
    pub fn new(widths: &[Width]) -> Result<Widths, RecipeError> {
        let mut sorted = widths.to_vec();
        sorted.sort_unstable();
        let before = sorted.len();
        sorted.dedup();
        let bad = |expected| RecipeError::Widths {
            widths: widths.iter().map(|w| w.to_string()).collect::<Vec<_>>().join(","),
            expected,
        };
        if sorted.len() != before {
            return Err(bad("distinct widths"));
        }
        if sorted.is_empty() || sorted.len() > MAX_WIDTHS {
            return Err(bad("1 to 16 distinct widths"));
        }
        Ok(Widths(sorted))
    }

    /// The widths, ascending.
    pub fn as_slice(&self) -> &[Width] {
        &self.0
    }

    /// The widest.
    pub fn max(&self) -> Width {
        // `new` refuses an empty list, so there is a last element; the
        // fallback is never taken.
        self.0.last().copied().unwrap_or(Width(NonZeroU32::MIN))
    }

    /// Whether `px` is one of the widths.
    pub fn contains(&self, px: u32) -> bool {
        self.0.iter().any(|w| w.get() == px)
    }
}

/// An output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Format {
    /// Baseline JPEG, 4:2:0, standard Huffman tables.
    Jpeg,
    /// Lossy WebP (libwebp). Needs the `webp` feature.
    WebP,
    /// Lossless PNG.
    Png,
}

impl Format {
    /// Every format, in the order names are listed in messages.
    pub const ALL: [Format; 3] = [Format::Jpeg, Format::WebP, Format::Png];

    /// The file extension outputs get, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Jpeg => "jpg",
            Format::WebP => "webp",
            Format::Png => "png",
        }
    }

    /// The `Content-Type` outputs get.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::WebP => "image/webp",
            Format::Png => "image/png",
        }
    }

    /// The name used in `FORMATS` and `--formats`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Jpeg => "jpeg",
            Format::WebP => "webp",
            Format::Png => "png",
        }
    }

    /// Parses a format name (`jpeg`/`jpg`, `webp`, `png`), case-insensitively.
    pub fn parse(name: &str) -> Option<Format> {
        match name.to_ascii_lowercase().as_str() {
            "jpeg" | "jpg" => Some(Format::Jpeg),
            "webp" => Some(Format::WebP),
            "png" => Some(Format::Png),
            _ => None,
        }
    }

    /// Whether this build can encode the format.
    pub fn is_enabled(self) -> bool {
        match self {
            Format::WebP => cfg!(feature = "webp"),
            Format::Jpeg | Format::Png => true,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An encoder quality, 1..=100.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quality(u8);

impl Quality {
    /// Parses a quality, refusing 0 and anything over 100.
    pub fn new(q: u8) -> Option<Quality> {
        (1..=100).contains(&q).then_some(Quality(q))
    }

    /// The quality, 1..=100.
    pub fn get(self) -> u8 {
        self.0
    }

    pub(crate) const DEFAULT_JPEG: Quality = Quality(DEFAULT_JPEG_QUALITY);
    pub(crate) const DEFAULT_WEBP: Quality = Quality(DEFAULT_WEBP_QUALITY);
}

/// What to do with widths wider than the (oriented) source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Upscale {
    /// Skip them: never enlarge (the default; sharp's `withoutEnlargement`).
    #[default]
    Skip,
    /// Replace all of them with one rendition at the source width.
    SourceWidth,
}

/// An opaque sRGB colour, used to flatten transparency into JPEG.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rgb(pub [u8; 3]);

impl Rgb {
    /// White, the default background.
    pub const WHITE: Rgb = Rgb([255, 255, 255]);

    /// Parses `#rrggbb` or `rrggbb` (hex, either case).
    pub fn parse(s: &str) -> Option<Rgb> {
        let hex = s.strip_prefix('#').unwrap_or(s);
        if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
        Some(Rgb([byte(0)?, byte(2)?, byte(4)?]))
    }
}

/// Limits checked before any pixel buffer is allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted source, in bytes.
    pub max_input_bytes: u64,
    /// Largest accepted source, in pixels (width × height from the header).
    pub max_pixels: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_input_bytes: DEFAULT_MAX_INPUT_BYTES,
            max_pixels: DEFAULT_MAX_PIXELS,
        }
    }
}

/// The one reading of a boolean setting, wherever it comes from (a
/// recipe's settings, the function's and the CLI's environment, a Batch
/// Operations job's `userArguments`): `true`/`false` and the spellings
/// deployment tools write for them (`1`/`0`, `yes`/`no`, `on`/`off`), in
/// any case, spaces around ignored. `None` for anything else, which the
/// caller reports naming its setting.
///
/// ```
/// use resize_core::adapter::parse_bool;
/// assert_eq!(parse_bool(" On "), Some(true));
/// assert_eq!(parse_bool("0"), Some(false));
/// assert_eq!(parse_bool("maybe"), None);
/// ```
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}
