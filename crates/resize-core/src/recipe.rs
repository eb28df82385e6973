//! The recipe: what to make from each source and where it goes, built once
//! and checked as a whole (including the recursion guard).
//!
//! Build one with [`Recipe::builder`]; the settings layer adds
//! `Recipe::from_lookup`, which reads environment-style settings into the
//! same builder.

use crate::keys::{KeyRules, ManifestTemplate, NotASource, Replacement, SourceKey, Template};
use crate::values::{Format, Limits, Quality, RecipeError, Rgb, Upscale, Width, Widths};

/// The version of the pipeline that turns a source into a variant's bytes.
/// Bump it in the change that alters any output byte (a codec, a filter,
/// a table, the ladder): every variant's [`Fingerprint`] changes with it,
/// so the next run or event rebuilds them all, once.
///
/// 1: the ladder of 2×2 means (sizes independent of each other), libjpeg
/// at full size, MS-SSIM/Robidoux JPEG tables.
pub const PIPELINE_VERSION: u32 = 1;

/// The version of the manifest document (its `"version"` field, and the
/// schema `fixtures/manifest.schema.json` describes). Bump it with any
/// change to what a manifest holds; every manifest is rewritten once.
pub const MANIFEST_VERSION: u32 = 1;

/// What determines a variant's bytes besides its source and its width:
/// the [`PIPELINE_VERSION`], the format, that format's quality, and for
/// JPEG the background behind transparency. Not the widths, the key
/// template or the upscale policy: they decide which variants exist, not
/// what any one holds. Stored with each variant; a variant whose
/// fingerprint differs from the recipe's is rebuilt.
///
/// The value is the first 8 bytes of the MD5 of a fixed text (see
/// [`Recipe::fingerprint`]), written as 16 lower-case hex digits: stable
/// across builds, platforms and releases that keep the pipeline version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 8]);

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// One thing a variant's bytes depend on besides its source and size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Input {
    /// [`PIPELINE_VERSION`].
    Pipeline,
    /// The format itself.
    Format,
    /// The format's quality setting.
    Quality,
    /// The colour behind transparency, for a format without alpha.
    Background,
}

/// What a `format` variant's [`Fingerprint`] covers, in the order its text
/// lists them: the one list of what makes a variant stale. A new input (a
/// metadata policy, a focal point) is one [`Input`], its line in
/// `Recipe::fingerprint_line` and its entry here, and the test
/// `fingerprints_cover_what_they_declare` says which formats it changes.
fn covers(format: Format) -> &'static [Input] {
    match format {
        Format::Jpeg => &[Input::Pipeline, Input::Format, Input::Quality, Input::Background],
        Format::WebP => &[Input::Pipeline, Input::Format, Input::Quality],
        Format::Png => &[Input::Pipeline, Input::Format],
    }
}

/// The first 8 bytes of the MD5 of `text`.
fn digest(text: &str) -> Fingerprint {
    use md5::{Digest, Md5};
    let digest = Md5::digest(text.as_bytes());
    let mut first = [0; 8];
    first.copy_from_slice(&digest[..8]);
    Fingerprint(first)
}

/// The default widths, those of the 2019 deployment.
const DEFAULT_WIDTHS: [u32; 4] = [360, 720, 1200, 2200];

/// Everything needed to turn one source into its renditions and keys.
#[derive(Clone, Debug)]
pub struct Recipe {
    widths: Widths,
    formats: Vec<Format>,
    jpeg_quality: Quality,
    webp_quality: Quality,
    upscale: Upscale,
    background: Rgb,
    limits: Limits,
    keys: KeyRules,
}

impl Recipe {
    /// A builder starting from the defaults.
    pub fn builder() -> RecipeBuilder {
        RecipeBuilder::default()
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

    /// The prefix replacements, first match wins.
    pub fn replacements(&self) -> &[Replacement] {
        self.keys.replacements()
    }

    /// The output key template.
    pub fn template(&self) -> &Template {
        self.keys.template()
    }

    /// Decides whether `key` is a source under this recipe; a
    /// [`SourceKey`] names its outputs.
    ///
    /// ```
    /// use resize_core::{NotASource, Recipe, Replacement};
    /// let recipe = Recipe::builder()
    ///     .replacements(vec![Replacement::parse("original:resized")?])
    ///     .build()?;
    /// let src = recipe.source_key("original/trips/a.jpg")?;
    /// assert_eq!(src.out_dir(), "resized/trips");
    /// assert_eq!(
    ///     recipe.source_key("resized/trips/a-360.jpg"),
    ///     Err(NotASource::InDestination("resized".into()))
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn source_key(&self, key: &str) -> Result<SourceKey, NotASource> {
        self.keys.source_key(key)
    }

    /// The [`Fingerprint`] of this recipe's variants in `format`: the MD5
    /// of `resize pipeline {PIPELINE_VERSION}`, the format's name, its
    /// quality (`quality {q}`, JPEG and WebP) and, for JPEG, the background
    /// (`background {rrggbb}`), one per line.
    ///
    /// ```
    /// use resize_core::{Format, Quality, Recipe};
    /// let recipe = Recipe::builder().build()?;
    /// let higher = Recipe::builder().jpeg_quality(Quality::new(90).ok_or("range")?).build()?;
    /// assert_ne!(recipe.fingerprint(Format::Jpeg), higher.fingerprint(Format::Jpeg));
    /// // WebP's bytes do not depend on the JPEG quality.
    /// assert_eq!(recipe.fingerprint(Format::WebP), higher.fingerprint(Format::WebP));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fingerprint(&self, format: Format) -> Fingerprint {
        let text: String = covers(format)
            .iter()
            .map(|&input| self.fingerprint_line(input, format))
            .collect();
        digest(&text)
    }

    /// The line `input` adds to the text a `format` fingerprint hashes.
    /// An input whose value adds nothing (a default that earlier releases
    /// did not record) may return an empty line: fingerprints made before
    /// it existed stay current.
    fn fingerprint_line(&self, input: Input, format: Format) -> String {
        match input {
            Input::Pipeline => format!("resize pipeline {PIPELINE_VERSION}\n"),
            Input::Format => format!("{}\n", format.name()),
            Input::Quality => self
                .quality(format)
                .map_or_else(String::new, |q| format!("quality {}\n", q.get())),
            Input::Background => {
                let [r, g, b] = self.background.0;
                format!("background {r:02x}{g:02x}{b:02x}\n")
            }
        }
    }

    /// The manifest key template, when the recipe writes manifests.
    pub fn manifest(&self) -> Option<&ManifestTemplate> {
        self.keys.manifest()
    }

    /// The [`Fingerprint`] of this recipe's manifests: everything a
    /// manifest's text depends on besides its source and the variants'
    /// bytes — the manifest's schema version, the widths, the upscale
    /// policy, the key rules, and each format's [`Recipe::fingerprint`] in
    /// recipe order. A manifest whose fingerprint differs is rewritten.
    pub fn manifest_fingerprint(&self) -> Fingerprint {
        let mut text = format!("resize manifest {}\n", MANIFEST_VERSION);
        let widths: Vec<String> = self
            .widths
            .as_slice()
            .iter()
            .map(|w| w.get().to_string())
            .collect();
        text += &format!("widths {}\nupscale {:?}\n", widths.join(","), self.upscale);
        text += &format!("template {}\n", self.template().as_str());
        if let Some(m) = self.manifest() {
            text += &format!("manifest {}\n", m.as_str());
        }
        for r in self.replacements() {
            text += &format!("replacement {r}\n");
        }
        for &f in &self.formats {
            text += &format!("{} {}\n", f.name(), self.fingerprint(f));
        }
        digest(&text)
    }

    /// Whether `key` could be one of this recipe's outputs (for some source).
    pub fn looks_like_output(&self, key: &str) -> bool {
        self.keys.looks_like_output(key)
    }

    /// The keys `key` would be a variant of by its name alone, each with
    /// the width its name says (see `job`'s `named_parent`).
    pub(crate) fn named_parents(&self, key: &str) -> Vec<(String, u32)> {
        self.keys.named_parents(key)
    }

    /// Refuses to write outputs under `destination` (a key prefix, the
    /// outputs' keys following it) of the store whose keys under
    /// `sources` are read as sources, when a run would take some output
    /// for a source: the recursion guard of [`Recipe::source_key`] for a
    /// destination inside the sources' store. Prefixes are folders
    /// (`original/`, or empty for the whole store).
    ///
    /// ```
    /// use resize_core::{Recipe, Replacement};
    /// let plain = Recipe::builder().build()?;
    /// // Outputs keep the shape of outputs under any folder: never sources.
    /// assert!(plain.refuse_destination_loop("", "site/").is_ok());
    /// let moved = Recipe::builder()
    ///     .replacements(vec![Replacement::parse("original:resized")?])
    ///     .build()?;
    /// assert!(moved.refuse_destination_loop("original/", "").is_ok());
    /// assert!(moved.refuse_destination_loop("original/", "site/").is_ok());
    /// // `original/site/resized/a-360.jpg` would be a source under `original/`.
    /// assert!(moved.refuse_destination_loop("original/", "original/site/").is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn refuse_destination_loop(&self, sources: &str, destination: &str) -> Result<(), RecipeError> {
        self.keys.refuse_destination_loop(sources, destination)
    }
}

/// Builds a [`Recipe`] from typed values; [`RecipeBuilder::build`] checks
/// the whole. Every value starts at its default (widths 360, 720, 1200,
/// 2200; JPEG at quality 85; no replacements; `{dir}/{stem}-{width}.{ext}`;
/// never upscale; white background; 64 MiB and 100 MP limits).
///
/// ```
/// use resize_core::{Format, Quality, Recipe, Replacement, Template, Width};
/// let widths: Vec<Width> = [480, 960].into_iter().filter_map(Width::new).collect();
/// let recipe = Recipe::builder()
///     .widths(&widths)
///     .formats(&[Format::Jpeg, Format::Png])
///     .jpeg_quality(Quality::new(90).ok_or("quality out of range")?)
///     .replacements(vec![Replacement::parse("uploads:web")?])
///     .template(Template::parse("{dir}/{width}/{stem}.{ext}")?)
///     .build()?;
/// let source = recipe.source_key("uploads/2024/beach.png")?;
/// assert_eq!(source.output_key(480, 320, Format::Jpeg)?, "web/2024/480/beach.jpg");
///
/// // The whole is checked: outputs under `web/` must not be sources.
/// let looping = Recipe::builder()
///     .replacements(vec![Replacement::parse("web:web/small")?])
///     .build();
/// assert!(looping.is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
    manifest: Option<ManifestTemplate>,
}

impl Default for RecipeBuilder {
    fn default() -> RecipeBuilder {
        RecipeBuilder {
            widths: DEFAULT_WIDTHS.into_iter().filter_map(Width::new).collect(),
            formats: vec![Format::Jpeg],
            jpeg_quality: Quality::DEFAULT_JPEG,
            webp_quality: Quality::DEFAULT_WEBP,
            upscale: Upscale::Skip,
            background: Rgb::WHITE,
            limits: Limits::default(),
            replacements: Vec::new(),
            template: Template::default(),
            manifest: None,
        }
    }
}

impl RecipeBuilder {
    /// Sets the widths: 1 to 16, distinct, in any order.
    pub fn widths(mut self, widths: &[Width]) -> Self {
        self.widths = widths.to_vec();
        self
    }
    /// Sets the output formats (repeats are dropped).
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

    /// Writes a manifest per source at keys from this template (`None`, the
    /// default: no manifests).
    pub fn manifest(mut self, manifest: Option<ManifestTemplate>) -> Self {
        self.manifest = manifest;
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
            return Err(RecipeError::NoFormats);
        }
        let keys = KeyRules::new(
            self.replacements,
            self.template,
            &formats,
            &widths,
            self.upscale,
            self.manifest,
        )?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Each input a fingerprint declares changes exactly the fingerprints
    /// of the formats that declare it: changed one at a time, from the
    /// defaults. A new input adds its case here.
    #[test]
    fn fingerprints_cover_what_they_declare() {
        let default = Recipe::builder().build().unwrap();
        let quality = Quality::new(42).unwrap();
        let changed = |input: Input| -> Recipe {
            let b = Recipe::builder();
            match input {
                // The version is a constant: its line is checked by text.
                Input::Pipeline | Input::Format => b,
                Input::Quality => b.jpeg_quality(quality).webp_quality(quality),
                Input::Background => b.background(Rgb([1, 2, 3])),
            }
            .build()
            .unwrap()
        };
        for input in [Input::Quality, Input::Background] {
            let other = changed(input);
            for format in Format::ALL {
                assert_eq!(
                    other.fingerprint(format) != default.fingerprint(format),
                    covers(format).contains(&input),
                    "{input:?} for {format:?}"
                );
            }
        }
        for format in Format::ALL {
            let text: String = covers(format)
                .iter()
                .map(|&i| default.fingerprint_line(i, format))
                .collect();
            assert!(
                text.starts_with(&format!(
                    "resize pipeline {PIPELINE_VERSION}\n{}\n",
                    format.name()
                )),
                "{text}"
            );
            assert!(covers(format)
                .iter()
                .all(|&i| !default.fingerprint_line(i, format).is_empty()));
        }
    }

    /// One line per builder: the recipe it builds, or its error. Builder
    /// errors name the recipe's fields, never a setting.
    #[test]
    fn builder_errors_name_fields() {
        let w = |px: &[u32]| -> Vec<Width> { px.iter().filter_map(|&p| Width::new(p)).collect() };
        let r = |pair: &str| Replacement::parse(pair);
        let cases: Vec<(&str, Result<RecipeBuilder, RecipeError>)> = vec![
            ("defaults", Ok(Recipe::builder())),
            (
                "formats png,jpeg,png",
                Ok(Recipe::builder().formats(&[Format::Png, Format::Jpeg, Format::Png])),
            ),
            (
                "widths 720,360,720",
                Ok(Recipe::builder().widths(&w(&[720, 360, 720]))),
            ),
            ("no widths", Ok(Recipe::builder().widths(&[]))),
            (
                "17 widths",
                Ok(Recipe::builder().widths(&w(&(1..=17).collect::<Vec<_>>()))),
            ),
            ("no formats", Ok(Recipe::builder().formats(&[]))),
            (
                "replacement original",
                r("original").map(|r| Recipe::builder().replacements(vec![r])),
            ),
            (
                "replacements a:b, b/c:d",
                r("a:b").and_then(|a| Ok(Recipe::builder().replacements(vec![a, r("b/c:d")?]))),
            ),
            (
                "template {dir}/{stem}.{ext}",
                Template::parse("{dir}/{stem}.{ext}").map(|t| Recipe::builder().template(t)),
            ),
            (
                "template {dir}/../{stem}-{width}.{ext}",
                Template::parse("{dir}/../{stem}-{width}.{ext}").map(|t| Recipe::builder().template(t)),
            ),
        ];
        let mut out = String::new();
        for (what, builder) in cases {
            let got = match builder.and_then(RecipeBuilder::build) {
                Ok(r) => format!(
                    "widths {:?}, formats {:?}",
                    r.widths().as_slice().iter().map(|w| w.get()).collect::<Vec<_>>(),
                    r.formats()
                ),
                Err(e) => e.to_string(),
            };
            out.push_str(&format!("{what}\n    {got}\n"));
        }
        insta::assert_snapshot!(out);
    }
}
