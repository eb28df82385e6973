//! The recipe: what to make from each source, parsed once into types that
//! can only hold valid values.
//!
//! Adapters build a [`Recipe`] either with [`Recipe::builder`] or from
//! environment-style settings with [`Recipe::from_lookup`]; the latter never
//! reads the environment itself, it asks the caller's lookup function.

use std::fmt;
use std::num::NonZeroU32;

use crate::error::RecipeError;
use crate::keys::{KeyRules, Replacement, Template};

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
        if sorted.len() != before {
            return Err(RecipeError::invalid("SIZES", &join(widths), "distinct widths"));
        }
        if sorted.is_empty() || sorted.len() > MAX_WIDTHS {
            return Err(RecipeError::invalid(
                "SIZES",
                &join(widths),
                "1 to 16 distinct widths",
            ));
        }
        Ok(Widths(sorted))
    }

    /// The widths, ascending.
    pub fn as_slice(&self) -> &[Width] {
        &self.0
    }

    /// Whether `px` is one of the widths.
    pub fn contains(&self, px: u32) -> bool {
        self.0.iter().any(|w| w.get() == px)
    }
}

fn join(widths: &[Width]) -> String {
    widths.iter().map(|w| w.to_string()).collect::<Vec<_>>().join(",")
}

/// An output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Format {
    /// Baseline JPEG, 4:2:0, optimised Huffman tables.
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

/// Everything needed to turn one source into its renditions and keys.
#[derive(Clone, Debug)]
pub struct Recipe {
    pub(crate) widths: Widths,
    pub(crate) formats: Vec<Format>,
    pub(crate) jpeg_quality: Quality,
    pub(crate) webp_quality: Quality,
    pub(crate) upscale: Upscale,
    pub(crate) background: Rgb,
    pub(crate) limits: Limits,
    pub(crate) keys: KeyRules,
}

/// The settings [`Recipe::from_lookup`] reads, with their meaning. Adapters
/// print this table in their help.
pub const SETTINGS: &[(&str, &str)] = &[
    (
        "SIZES",
        "output widths in px, comma-separated (default 360,720,1200,2200)",
    ),
    ("FORMATS", "output formats: jpeg, webp, png (default jpeg)"),
    ("JPEG_QUALITY", "JPEG quality 1-100 (default 85)"),
    ("WEBP_QUALITY", "lossy WebP quality 1-100 (default 80)"),
    (
        "REPLACEMENTS",
        "from:to prefix pairs, comma-separated (default none)",
    ),
    (
        "KEY_TEMPLATE",
        "output key template (default {dir}/{stem}-{width}.{ext})",
    ),
    (
        "UPSCALE",
        "skip | source: widths wider than the source (default skip)",
    ),
    (
        "BACKGROUND",
        "#rrggbb behind transparency in JPEG (default #ffffff)",
    ),
    ("MAX_INPUT_BYTES", "largest source in bytes (default 67108864)"),
    ("MAX_PIXELS", "largest source in pixels (default 100000000)"),
];

/// The default widths, those of the 2019 deployment.
pub const DEFAULT_SIZES: &str = "360,720,1200,2200";

impl Recipe {
    /// A builder starting from the defaults.
    pub fn builder() -> RecipeBuilder {
        RecipeBuilder::default()
    }

    /// Parses environment-style settings (see [`SETTINGS`]). `lookup` returns
    /// a setting's value, or `None` when it is unset; empty values count as
    /// unset so that `SIZES=` in a deployment template means "default".
    ///
    /// ```
    /// use resize_core::Recipe;
    /// let recipe = Recipe::from_lookup(|name| match name {
    ///     "SIZES" => Some("360,720".to_owned()),
    ///     "REPLACEMENTS" => Some("original:resized".to_owned()),
    ///     _ => None,
    /// })?;
    /// assert_eq!(recipe.widths().as_slice().len(), 2);
    /// # Ok::<(), resize_core::RecipeError>(())
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Recipe, RecipeError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut b = Recipe::builder();
        if let Some(v) = get("SIZES") {
            b.widths = parse_widths(&v)?;
        }
        if let Some(v) = get("FORMATS") {
            b.formats = parse_formats(&v)?;
        }
        if let Some(v) = get("JPEG_QUALITY") {
            b.jpeg_quality = parse_quality("JPEG_QUALITY", &v)?;
        }
        if let Some(v) = get("WEBP_QUALITY") {
            b.webp_quality = parse_quality("WEBP_QUALITY", &v)?;
        }
        if let Some(v) = get("REPLACEMENTS") {
            b.replacements = parse_replacements(&v)?;
        }
        if let Some(v) = get("KEY_TEMPLATE") {
            b.template = Template::parse(v.trim())?;
        }
        if let Some(v) = get("UPSCALE") {
            b.upscale = match v.trim().to_ascii_lowercase().as_str() {
                "skip" => Upscale::Skip,
                "source" => Upscale::SourceWidth,
                _ => return Err(RecipeError::invalid("UPSCALE", &v, "skip or source")),
            };
        }
        if let Some(v) = get("BACKGROUND") {
            b.background = Rgb::parse(v.trim())
                .ok_or_else(|| RecipeError::invalid("BACKGROUND", &v, "a colour like #ffffff"))?;
        }
        if let Some(v) = get("MAX_INPUT_BYTES") {
            b.limits.max_input_bytes = parse_positive("MAX_INPUT_BYTES", &v)?;
        }
        if let Some(v) = get("MAX_PIXELS") {
            b.limits.max_pixels = parse_positive("MAX_PIXELS", &v)?;
        }
        b.build()
    }

    /// The output widths, ascending.
    pub fn widths(&self) -> &Widths {
        &self.widths
    }

    /// The output formats, in the order given.
    pub fn formats(&self) -> &[Format] {
        &self.formats
    }

    /// The quality used for `format` (PNG is lossless and has none).
    pub fn quality(&self, format: Format) -> Option<Quality> {
        match format {
            Format::Jpeg => Some(self.jpeg_quality),
            Format::WebP => Some(self.webp_quality),
            Format::Png => None,
        }
    }

    /// The upscale policy.
    pub fn upscale(&self) -> Upscale {
        self.upscale
    }

    /// The background behind transparency in JPEG outputs.
    pub fn background(&self) -> Rgb {
        self.background
    }

    /// The limits checked before decoding.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The key rules (replacements, template, guards).
    pub fn keys(&self) -> &KeyRules {
        &self.keys
    }
}

/// Builds a [`Recipe`]; [`RecipeBuilder::build`] checks the whole.
#[derive(Clone, Debug)]
pub struct RecipeBuilder {
    widths: Vec<Width>,
    formats: Vec<Format>,
    jpeg_quality: Quality,
    webp_quality: Quality,
    upscale: Upscale,
    background: Rgb,
    limits: Limits,
    replacements: Vec<Replacement>,
    template: Template,
}

impl Default for RecipeBuilder {
    fn default() -> RecipeBuilder {
        RecipeBuilder {
            // The default list is a constant that parses: covered by the
            // `default_recipe_is_valid` test.
            widths: parse_widths(DEFAULT_SIZES).unwrap_or_default(),
            formats: vec![Format::Jpeg],
            jpeg_quality: Quality(DEFAULT_JPEG_QUALITY),
            webp_quality: Quality(DEFAULT_WEBP_QUALITY),
            upscale: Upscale::Skip,
            background: Rgb::WHITE,
            limits: Limits::default(),
            replacements: Vec::new(),
            template: Template::default(),
        }
    }
}

impl RecipeBuilder {
    /// Sets the widths.
    pub fn widths(mut self, widths: &[Width]) -> Self {
        self.widths = widths.to_vec();
        self
    }
    /// Sets the output formats.
    pub fn formats(mut self, formats: &[Format]) -> Self {
        self.formats = formats.to_vec();
        self
    }
    /// Sets the JPEG quality.
    pub fn jpeg_quality(mut self, q: Quality) -> Self {
        self.jpeg_quality = q;
        self
    }
    /// Sets the WebP quality.
    pub fn webp_quality(mut self, q: Quality) -> Self {
        self.webp_quality = q;
        self
    }
    /// Sets the upscale policy.
    pub fn upscale(mut self, upscale: Upscale) -> Self {
        self.upscale = upscale;
        self
    }
    /// Sets the JPEG background.
    pub fn background(mut self, background: Rgb) -> Self {
        self.background = background;
        self
    }
    /// Sets the limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
    /// Sets the prefix replacements (first match wins).
    pub fn replacements(mut self, replacements: Vec<Replacement>) -> Self {
        self.replacements = replacements;
        self
    }
    /// Sets the output key template.
    pub fn template(mut self, template: Template) -> Self {
        self.template = template;
        self
    }

    /// Checks the whole recipe, including the recursion guard: a recipe
    /// under which an output could be taken for a source is refused.
    pub fn build(self) -> Result<Recipe, RecipeError> {
        let widths = Widths::new(&self.widths)?;
        let mut formats = Vec::new();
        for f in self.formats {
            if !f.is_enabled() {
                return Err(RecipeError::FormatDisabled { format: f });
            }
            if !formats.contains(&f) {
                formats.push(f);
            }
        }
        if formats.is_empty() {
            return Err(RecipeError::invalid(
                "FORMATS",
                "",
                "at least one of jpeg, webp, png",
            ));
        }
        let keys = KeyRules::new(self.replacements, self.template)?;
        Ok(Recipe {
            widths,
            formats,
            jpeg_quality: self.jpeg_quality,
            webp_quality: self.webp_quality,
            upscale: self.upscale,
            background: self.background,
            limits: self.limits,
            keys,
        })
    }
}

/// Parses `SIZES`: comma-separated widths (spaces allowed around commas).
pub fn parse_widths(s: &str) -> Result<Vec<Width>, RecipeError> {
    let allowed = "widths from 1 to 16384";
    let mut out = Vec::new();
    for token in s.split(',') {
        let token = token.trim();
        let px: u32 = token
            .parse()
            .map_err(|_| RecipeError::invalid("SIZES", token, allowed))?;
        out.push(Width::new(px).ok_or_else(|| RecipeError::invalid("SIZES", token, allowed))?);
    }
    // Checked for duplicates and count here too, so the message names SIZES.
    Widths::new(&out)?;
    Ok(out)
}

/// Parses `FORMATS`: comma-separated format names.
pub fn parse_formats(s: &str) -> Result<Vec<Format>, RecipeError> {
    s.split(',')
        .map(|token| {
            let token = token.trim();
            Format::parse(token).ok_or_else(|| RecipeError::invalid("FORMATS", token, "jpeg, webp, png"))
        })
        .collect()
}

/// Parses a quality setting named `var`.
pub fn parse_quality(var: &'static str, s: &str) -> Result<Quality, RecipeError> {
    s.trim()
        .parse::<u8>()
        .ok()
        .and_then(Quality::new)
        .ok_or_else(|| RecipeError::invalid(var, s.trim(), "an integer from 1 to 100"))
}

/// Parses `REPLACEMENTS`: comma-separated `from:to` prefix pairs.
pub fn parse_replacements(s: &str) -> Result<Vec<Replacement>, RecipeError> {
    s.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(Replacement::parse)
        .collect()
}

fn parse_positive(var: &'static str, s: &str) -> Result<u64, RecipeError> {
    s.trim()
        .parse::<u64>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| RecipeError::invalid(var, s.trim(), "a positive integer"))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn parse(settings: &[(&str, &str)]) -> Result<Recipe, RecipeError> {
        Recipe::from_lookup(|name| {
            settings
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn default_recipe_is_valid() {
        let r = parse(&[]).unwrap();
        let widths: Vec<u32> = r.widths().as_slice().iter().map(|w| w.get()).collect();
        assert_eq!(widths, [360, 720, 1200, 2200]);
        assert_eq!(r.formats(), [Format::Jpeg]);
        assert_eq!(r.quality(Format::Jpeg), Quality::new(DEFAULT_JPEG_QUALITY));
        assert_eq!(r.quality(Format::WebP), Quality::new(DEFAULT_WEBP_QUALITY));
        assert_eq!(r.upscale(), Upscale::Skip);
        assert_eq!(r.background(), Rgb::WHITE);
        assert_eq!(r.limits(), Limits::default());
        assert!(r.keys().replacements().is_empty());
    }

    #[test]
    fn settings_of_2019_keep_working() {
        let r = parse(&[
            ("SIZES", "360,720,1200,2200"),
            ("REPLACEMENTS", "original:resized"),
        ])
        .unwrap();
        assert_eq!(r.widths().as_slice().len(), 4);
        assert_eq!(r.keys().replacements()[0].to_string(), "original:resized");
    }

    #[test]
    fn good_values() {
        let r = parse(&[
            ("SIZES", " 2200, 360 ,720"),
            ("FORMATS", "WebP,jpg,png"),
            ("JPEG_QUALITY", "90"),
            ("WEBP_QUALITY", "1"),
            ("UPSCALE", "source"),
            ("BACKGROUND", "#10A0fF"),
            ("MAX_INPUT_BYTES", "1000"),
            ("MAX_PIXELS", "2000"),
            ("KEY_TEMPLATE", "{dir}/{width}/{stem}.{ext}"),
            ("REPLACEMENTS", "a:b, c/d:e/f"),
        ])
        .unwrap();
        let widths: Vec<u32> = r.widths().as_slice().iter().map(|w| w.get()).collect();
        assert_eq!(widths, [360, 720, 2200]);
        assert_eq!(r.formats(), [Format::WebP, Format::Jpeg, Format::Png]);
        assert_eq!(r.quality(Format::Jpeg).map(Quality::get), Some(90));
        assert_eq!(r.quality(Format::WebP).map(Quality::get), Some(1));
        assert_eq!(r.upscale(), Upscale::SourceWidth);
        assert_eq!(r.background(), Rgb([0x10, 0xa0, 0xff]));
        assert_eq!(r.limits().max_input_bytes, 1000);
        assert_eq!(r.limits().max_pixels, 2000);
        assert_eq!(r.keys().replacements().len(), 2);
    }

    #[test]
    fn bad_values_name_the_variable_and_token() {
        let cases: &[(&str, &str)] = &[
            ("SIZES", "0"),
            ("SIZES", "16385"),
            ("SIZES", "360,abc"),
            ("SIZES", "360,,720"),
            ("SIZES", "-5"),
            ("SIZES", "360,360"),
            ("SIZES", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17"),
            ("SIZES", "99999999999999999999"),
            ("FORMATS", "jpeg,gif"),
            ("JPEG_QUALITY", "0"),
            ("JPEG_QUALITY", "101"),
            ("WEBP_QUALITY", "high"),
            ("REPLACEMENTS", "original"),
            ("REPLACEMENTS", ":resized"),
            ("REPLACEMENTS", "original:"),
            ("REPLACEMENTS", "original/../x:y"),
            ("REPLACEMENTS", "original:original"),
            ("REPLACEMENTS", "original:original/resized"),
            ("REPLACEMENTS", "photos/original:photos"),
            ("REPLACEMENTS", "a:b,b:c"),
            ("KEY_TEMPLATE", "{dir}/{stem}.{ext}"),
            ("KEY_TEMPLATE", "{dir}/{stem}-{width"),
            ("UPSCALE", "always"),
            ("BACKGROUND", "white"),
            ("MAX_INPUT_BYTES", "0"),
            ("MAX_PIXELS", "lots"),
        ];
        let mut out = String::new();
        for (var, value) in cases {
            let msg = match parse(&[(var, value)]) {
                Ok(_) => "accepted".to_owned(),
                Err(e) => e.to_string(),
            };
            out.push_str(&format!("{var}={value}\n    {msg}\n"));
        }
        insta::assert_snapshot!(out);
    }

    proptest! {
        /// Any string for any setting parses or errors; it never panics, and
        /// a rejection names the setting.
        #[test]
        fn any_value_parses_or_names_its_setting(i in 0..SETTINGS.len(), value in "\\PC{0,30}|[0-9,]{0,20}") {
            let var = SETTINGS[i].0;
            if let Err(e) = parse(&[(var, &value)]) {
                let msg = e.to_string();
                prop_assert!(msg.contains(var) || msg.contains("loop"), "{}", msg);
            }
        }

        /// Valid width lists round-trip through SIZES.
        #[test]
        fn widths_round_trip(ws in prop::collection::btree_set(1u32..=16384, 1..=16)) {
            let text = ws.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
            let r = parse(&[("SIZES", &text)]).unwrap();
            let got: Vec<u32> = r.widths().as_slice().iter().map(|w| w.get()).collect();
            prop_assert_eq!(got, ws.into_iter().collect::<Vec<_>>());
        }
    }
}
