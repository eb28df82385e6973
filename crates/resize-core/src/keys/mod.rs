//! Key rules: which keys are sources, where their outputs go, and the
//! recursion guard that keeps outputs from ever being taken for sources.
//!
//! Keys are S3 object keys or relative paths, `/`-separated, already
//! URL-decoded. Replacements act on whole leading directory segments only,
//! so `original:resized` maps `original/trips/a.jpg` but never
//! `x/original/a.jpg` or `my-original.jpg`.
//!
//! Output keys can only be made from a [`SourceKey`], and a key becomes a
//! `SourceKey` only when every output it can have is a safe key: that is
//! what keeps `../50.jpg` out of reach of any caller.

mod guard;
mod replacement;
mod template;

use std::sync::Arc;

pub use replacement::Replacement;
pub use template::{ManifestTemplate, Template, DEFAULT_MANIFEST_TEMPLATE, DEFAULT_TEMPLATE};

use crate::values::{Format, RecipeError, Upscale, Widths};
use guard::Shape;
use replacement::{is_prefix, refuse_loops};
use template::Values;

/// Longest key S3 accepts, in bytes; longer source or output keys are refused.
pub const MAX_KEY_BYTES: usize = 1024;

/// Source extensions recognised, compared case-insensitively.
pub const SOURCE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp", "gif", "tif", "tiff"];

/// Why a key is not a source. Normal outcomes, not failures: adapters
/// report them as skips.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotASource {
    /// The key's extension is not one of [`SOURCE_EXTENSIONS`].
    #[error("not an image: extension is not one of {}", SOURCE_EXTENSIONS.join(", "))]
    NotAnImage,
    /// The key is empty, too long, absolute, or has empty, `.` or `..`
    /// segments or NUL bytes — or its output keys would.
    #[error("unsafe key: {0}")]
    UnsafeKey(&'static str),
    /// Replacements are configured and the key is under none of their sources.
    #[error("not under any source prefix of REPLACEMENTS")]
    OutsideSources,
    /// The key is under a destination prefix.
    #[error("under destination prefix `{0}`")]
    InDestination(String),
    /// The key has the shape of one of this recipe's outputs.
    #[error("looks like an output of this recipe")]
    LooksLikeOutput,
}

/// An output key would be longer than [`MAX_KEY_BYTES`]. [`Recipe::source_key`]
/// refuses keys whose outputs at the recipe's widths would be; a width of
/// more digits (an output at the source's width) can still reach it.
///
/// [`Recipe::source_key`]: crate::recipe::Recipe::source_key
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("output key for `{key}` would be {len} bytes, over the limit of {MAX_KEY_BYTES}")]
pub struct KeyTooLong {
    /// The source key.
    pub key: String,
    /// Length of the output key.
    pub len: usize,
}

/// A key accepted as a source, split into the parts outputs are named from.
/// Only [`Recipe::source_key`] makes one, after checking that every output
/// key it can give is safe.
///
/// [`Recipe::source_key`]: crate::recipe::Recipe::source_key
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceKey {
    key: String,
    out_dir: String,
    stem: String,
    /// The template of the rules that accepted the key, so that its outputs
    /// are named by the rules that checked them.
    template: Arc<Template>,
    /// Its manifest's key, when the rules write manifests (checked with
    /// the outputs).
    manifest: Option<String>,
}

impl SourceKey {
    /// The key as given.
    pub fn as_str(&self) -> &str {
        &self.key
    }

    /// The directory outputs go to (after replacements).
    pub fn out_dir(&self) -> &str {
        &self.out_dir
    }

    /// The file name without its extension.
    pub fn stem(&self) -> &str {
        &self.stem
    }

    /// What this source's outputs are named from: the directory they go
    /// to and the stem (a template has no other placeholder from the
    /// source). Two sources with one slot (`a.jpg`, `a.png`) would write
    /// the same keys: the one collision rule. The CLI orders a run's
    /// sources by it, so the first takes the outputs and the others fail;
    /// the job enforces it at the store, where a variant's metadata names
    /// its source (`JobError::Taken`).
    pub fn slot(&self) -> (&str, &str) {
        (&self.out_dir, &self.stem)
    }

    /// The key of one output. Always a safe relative key (no empty, `.` or
    /// `..` segments, not absolute, never the source itself); `Err` only
    /// when it would be longer than [`MAX_KEY_BYTES`].
    ///
    /// ```
    /// use resize_core::{Format, Recipe, Replacement};
    /// let recipe = Recipe::builder()
    ///     .replacements(vec![Replacement::parse("original:resized")?])
    ///     .build()?;
    /// let source = recipe.source_key("original/trips/a.jpg")?;
    /// assert_eq!(source.output_key(360, 270, Format::Jpeg)?, "resized/trips/a-360.jpg");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn output_key(&self, width: u32, height: u32, format: Format) -> Result<String, KeyTooLong> {
        let key = self.render(width, height, format);
        if key.len() > MAX_KEY_BYTES {
            return Err(KeyTooLong {
                key: self.key.clone(),
                len: key.len(),
            });
        }
        Ok(key)
    }

    /// The longest prefix every output key of this source starts with (the
    /// template rendered up to its first size or format placeholder), for
    /// listing a source's variants when the source itself is gone.
    pub fn output_prefix(&self) -> String {
        self.template.prefix(&self.out_dir, &self.stem)
    }

    /// The key of the source's manifest, when the recipe writes manifests:
    /// a safe key of at most [`MAX_KEY_BYTES`] ending in `.json`, checked
    /// when the key was accepted.
    ///
    /// ```
    /// use resize_core::{ManifestTemplate, Recipe, Replacement};
    /// let recipe = Recipe::builder()
    ///     .replacements(vec![Replacement::parse("original:resized")?])
    ///     .manifest(Some(ManifestTemplate::default()))
    ///     .build()?;
    /// let source = recipe.source_key("original/trips/a.jpg")?;
    /// assert_eq!(source.manifest_key(), Some("resized/trips/a.json"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn manifest_key(&self) -> Option<&str> {
        self.manifest.as_deref()
    }

    fn render(&self, width: u32, height: u32, format: Format) -> String {
        self.template.render(&Values {
            dir: &self.out_dir,
            stem: &self.stem,
            width,
            height,
            ext: format.extension(),
        })
    }
}

/// Replacements, template and the shape of outputs, checked together by the
/// recursion guard. Built by `RecipeBuilder::build`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyRules {
    replacements: Vec<Replacement>,
    template: Arc<Template>,
    shape: Shape,
    formats: Vec<Format>,
    widest: u32,
    manifest: Option<ManifestTemplate>,
}

impl KeyRules {
    /// Checks the rules (see [`refuse_loops`]) for outputs in `formats` at
    /// `widths`.
    pub(crate) fn new(
        replacements: Vec<Replacement>,
        template: Template,
        formats: &[Format],
        widths: &Widths,
        upscale: Upscale,
        manifest: Option<ManifestTemplate>,
    ) -> Result<KeyRules, RecipeError> {
        refuse_loops(&replacements)?;
        let shape = Shape {
            exts: formats.iter().map(|f| f.extension()).collect(),
            widths: match upscale {
                // Under `skip`, outputs only ever have the recipe's widths.
                Upscale::Skip => Some(widths.as_slice().iter().map(|w| w.get()).collect()),
                Upscale::SourceWidth => None,
            },
        };
        Ok(KeyRules {
            replacements,
            template: Arc::new(template),
            shape,
            formats: formats.to_vec(),
            widest: widths.max().get(),
            manifest,
        })
    }

    pub(crate) fn replacements(&self) -> &[Replacement] {
        &self.replacements
    }

    pub(crate) fn template(&self) -> &Template {
        &self.template
    }

    pub(crate) fn manifest(&self) -> Option<&ManifestTemplate> {
        self.manifest.as_ref()
    }

    /// See `Recipe::refuse_destination_loop`.
    pub(crate) fn refuse_destination_loop(
        &self,
        sources: &str,
        destination: &str,
    ) -> Result<(), RecipeError> {
        let segments = |p: &str| -> Vec<String> {
            p.split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let (sources, destination) = (segments(sources), segments(destination));
        // At the store's root the rules are the recipe's own, checked when
        // it was built; outside the sources no output is ever listed.
        if destination.is_empty() || !(is_prefix(&sources, &destination) || is_prefix(&destination, &sources))
        {
            return Ok(());
        }
        let looping = |reason: String| Err(RecipeError::Loop { reason });
        let shown = |segs: &[String]| format!("{}/", segs.join("/"));
        // Without replacements an output is no source because it has an
        // output's shape, and a template starts with `{dir}/`
        // (`Template::parse`), which keeps that shape under any folder.
        if self.replacements.is_empty() {
            return Ok(());
        }
        for r in &self.replacements {
            let mut written: Vec<String> = destination.clone();
            written.extend(r.destination_segments().iter().cloned());
            // Under a destination prefix the rules skip as outputs.
            if self
                .replacements
                .iter()
                .any(|t| is_prefix(t.destination_segments(), &written))
            {
                continue;
            }
            if let Some(s) = self.replacements.iter().find(|s| {
                is_prefix(s.source_segments(), &written) || is_prefix(&written, s.source_segments())
            }) {
                return looping(format!(
                    "outputs of `{r}` would be written under `{}`, inside source prefix `{}`",
                    shown(&written),
                    s.from()
                ));
            }
        }
        Ok(())
    }

    /// Whether `key` could be one of these rules' outputs (for some
    /// source): a variant, or a manifest when the rules write them.
    pub(crate) fn looks_like_output(&self, key: &str) -> bool {
        self.shape.matches(self.template.parts(), key) || self.looks_like_manifest(key)
    }

    /// The keys `key` would be a variant of at some width, read from its
    /// name alone: for each way it reads as an output at any width, the
    /// source keys of that directory and stem (every source extension, in
    /// lower and upper case) with the width. Empty under replacements,
    /// whose outputs live in destinations that are never sources.
    pub(crate) fn named_parents(&self, key: &str) -> Vec<(String, u32)> {
        if !self.replacements.is_empty() {
            return Vec::new();
        }
        // Any format's extension, not only this recipe's: the variant may be
        // from a run with other formats.
        let exts: Vec<&'static str> = Format::ALL.iter().map(|f| f.extension()).collect();
        let mut parents = Vec::new();
        for parse in guard::parses(self.template.parts(), key, &exts) {
            for ext in SOURCE_EXTENSIONS {
                for ext in [ext.to_string(), ext.to_ascii_uppercase()] {
                    let parent = if parse.dir.is_empty() {
                        format!("{}.{ext}", parse.stem)
                    } else {
                        format!("{}/{}.{ext}", parse.dir, parse.stem)
                    };
                    if parent != key {
                        parents.push((parent, parse.width));
                    }
                }
            }
        }
        parents
    }

    /// Whether `key` could be one of these rules' manifests.
    pub(crate) fn looks_like_manifest(&self, key: &str) -> bool {
        self.manifest
            .as_ref()
            .is_some_and(|m| self.shape.matches(m.parts(), key))
    }

    /// Decides whether `key` is a source; see `Recipe::source_key`.
    pub(crate) fn source_key(&self, key: &str) -> Result<SourceKey, NotASource> {
        // S3 consoles create `folder/` marker objects; they are not images.
        if key.ends_with('/') && key.len() > 1 {
            return Err(NotASource::NotAnImage);
        }
        check_key(key)?;
        // A manifest is never an image; say what it is rather than that.
        if self.replacements.is_empty() && self.looks_like_manifest(key) {
            return Err(NotASource::LooksLikeOutput);
        }
        let (dir, file) = key.rsplit_once('/').unwrap_or(("", key));
        let (stem, ext) = file.rsplit_once('.').ok_or(NotASource::NotAnImage)?;
        if stem.is_empty() || !SOURCE_EXTENSIONS.iter().any(|e| e.eq_ignore_ascii_case(ext)) {
            return Err(NotASource::NotAnImage);
        }
        let dir_segs: Vec<&str> = if dir.is_empty() {
            Vec::new()
        } else {
            dir.split('/').collect()
        };
        let out_dir = self.out_dir(key, dir, &dir_segs)?;
        let source = SourceKey {
            key: key.to_owned(),
            manifest: self.manifest.as_ref().map(|m| m.render(&out_dir, stem)),
            out_dir,
            stem: stem.to_owned(),
            template: Arc::clone(&self.template),
        };
        self.check_outputs(&source)?;
        Ok(source)
    }

    /// Where the outputs of a key in `dir` go, or why it is not a source.
    fn out_dir(&self, key: &str, dir: &str, dir_segs: &[&str]) -> Result<String, NotASource> {
        if let Some(r) = self
            .replacements
            .iter()
            .find(|r| starts_with(dir_segs, r.destination_segments()))
        {
            return Err(NotASource::InDestination(r.to()));
        }
        if self.replacements.is_empty() {
            if self.looks_like_output(key) {
                return Err(NotASource::LooksLikeOutput);
            }
            return Ok(dir.to_owned());
        }
        let r = self
            .replacements
            .iter()
            .find(|r| starts_with(dir_segs, r.source_segments()))
            .ok_or(NotASource::OutsideSources)?;
        let mut segs: Vec<&str> = r.destination_segments().iter().map(String::as_str).collect();
        segs.extend_from_slice(&dir_segs[r.source_segments().len()..]);
        Ok(segs.join("/"))
    }

    /// Refuses a source whose outputs would be unsafe keys. Widths and
    /// heights only ever add digits and formats only their extension, so
    /// one rendering at the widest width, the tallest height and every
    /// format decides for all: S3 refuses keys over 1024 bytes (say so now
    /// rather than fail the write after decoding), and a stem of `.` or
    /// `..` alone in a segment (`{dir}/{stem}/{width}.{ext}` with
    /// `...jpg`) would climb out of the destination.
    fn check_outputs(&self, source: &SourceKey) -> Result<(), NotASource> {
        for &format in &self.formats {
            let output = source.render(self.widest, u32::MAX, format);
            if output.len() > MAX_KEY_BYTES {
                return Err(NotASource::UnsafeKey(
                    "its output keys would be longer than 1024 bytes",
                ));
            }
            if check_key(&output).is_err() || output == source.key {
                return Err(NotASource::UnsafeKey(
                    "its output keys would have a `.` or `..` path segment",
                ));
            }
        }
        if let Some(manifest) = &source.manifest {
            if manifest.len() > MAX_KEY_BYTES {
                return Err(NotASource::UnsafeKey(
                    "its manifest key would be longer than 1024 bytes",
                ));
            }
            if check_key(manifest).is_err() {
                return Err(NotASource::UnsafeKey(
                    "its manifest key would have a `.` or `..` path segment",
                ));
            }
        }
        Ok(())
    }
}

/// Checks a key is safe to use as a path under a root: not empty, at most
/// [`MAX_KEY_BYTES`], relative, without NUL or empty, `.` or `..` segments.
pub(crate) fn check_key(key: &str) -> Result<(), NotASource> {
    let unsafe_key = |why| Err(NotASource::UnsafeKey(why));
    if key.is_empty() {
        return unsafe_key("empty");
    }
    if key.len() > MAX_KEY_BYTES {
        return unsafe_key("longer than 1024 bytes");
    }
    if key.contains('\0') {
        return unsafe_key("contains NUL");
    }
    if key.starts_with('/') {
        return unsafe_key("absolute");
    }
    for seg in key.split('/') {
        match seg {
            "" => return unsafe_key("empty path segment"),
            "." | ".." => return unsafe_key("`.` or `..` path segment"),
            _ => {}
        }
    }
    Ok(())
}

fn starts_with(segs: &[&str], prefix: &[String]) -> bool {
    segs.len() >= prefix.len() && segs.iter().zip(prefix).all(|(a, b)| *a == b)
}
#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::recipe::Recipe;

    fn recipe(settings: &[(&str, &str)]) -> Recipe {
        let owned: Vec<(String, String)> = settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match Recipe::from_lookup(|name| owned.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())) {
            Ok(r) => r,
            Err(e) => panic!("recipe {settings:?} should parse: {e}"),
        }
    }

    /// One line per key: the outputs for a 4000×3000 source, or the skip reason.
    fn plan(recipe: &Recipe, keys: &[&str]) -> String {
        let mut out = String::new();
        for key in keys {
            match recipe.source_key(key) {
                Ok(src) => {
                    let outs: Vec<String> = [360, 2200]
                        .into_iter()
                        .flat_map(|w| recipe.formats().iter().map(move |&f| (w, f)))
                        .map(|(w, f)| src.output_key(w, w * 3 / 4, f).unwrap())
                        .collect();
                    out.push_str(&format!("{key:?} -> {}\n", outs.join(" ")));
                }
                Err(skip) => out.push_str(&format!("{key:?} skipped: {skip}\n")),
            }
        }
        out
    }

    const KEYS: &[&str] = &[
        "original/trips/a.jpg",
        "original/a.JPG",
        "original/a.jpeg",
        "original/b.png",
        "original/c.webp",
        "original/d.gif",
        "original/e.tif",
        "original/f.TIFF",
        "original/several.dots.in.name.jpg",
        "original/no-extension",
        "original/.jpg",
        "original/archive.tar.gz",
        "original/with space+plus%percent.jpg",
        "original/naïve/日本.png",
        "original/",
        "x/original/a.jpg",
        "my-original.jpg",
        "originals/a.jpg",
        "resized/trips/a-360.jpg",
        "photos/original/a.jpg",
        "a-360.jpg",
        "a-361.jpg",
        "../a.jpg",
        "original/../a.jpg",
        "/original/a.jpg",
        "original//a.jpg",
        "",
    ];

    /// A destination inside the sources' store is refused exactly when a
    /// run would list one of its outputs as a source; and when it is not
    /// refused, the output keys of sample sources are indeed not sources.
    #[test]
    fn destinations_in_the_source_store() {
        #[track_caller]
        fn check(settings: &[(&str, &str)], sources: &str, destination: &str, refused: bool) {
            let r = recipe(settings);
            let got = r.refuse_destination_loop(sources, destination);
            assert_eq!(
                got.is_err(),
                refused,
                "{settings:?} {sources:?} -> {destination:?}: {got:?}"
            );
            if refused {
                return;
            }
            for key in ["original/a.jpg", "original/trips/b c.png", "a.jpg", "x/y/z.webp"] {
                let Some(key) = Some(format!("{sources}{key}")).filter(|k| r.source_key(k).is_ok()) else {
                    continue;
                };
                let src = r.source_key(&key).unwrap();
                for w in [360, 720] {
                    let written = format!("{destination}{}", src.output_key(w, 100, Format::Jpeg).unwrap());
                    if written.starts_with(sources) {
                        assert!(r.source_key(&written).is_err(), "{written} would be a source");
                    }
                }
            }
        }
        let moved: &[(&str, &str)] = &[("REPLACEMENTS", "original:resized")];
        let plain: &[(&str, &str)] = &[];
        let nested: &[(&str, &str)] = &[("KEY_TEMPLATE", "{dir}/thumbs/{stem}-{width}.{ext}")];
        // (settings, sources, destination, refused)
        check(moved, "original/", "", false);
        check(moved, "", "", false);
        check(moved, "original/", "site/", false);
        check(moved, "", "site/", false);
        check(moved, "original/", "original/site/", true);
        check(moved, "", "original/", true);
        check(moved, "original/", "resized/", false);
        check(plain, "", "", false);
        check(plain, "", "site/", false);
        check(plain, "photos/", "photos/out/", false);
        check(plain, "photos/", "other/", false);
        check(nested, "", "site/", false);
        check(nested, "photos/", "photos/out/", false);
    }

    #[test]
    fn plan_with_replacements() {
        let r = recipe(&[("REPLACEMENTS", "original:resized"), ("FORMATS", "jpeg,webp")]);
        insta::assert_snapshot!(plan(&r, KEYS));
    }

    #[test]
    fn plan_without_replacements() {
        let r = recipe(&[]);
        insta::assert_snapshot!(plan(&r, KEYS));
    }

    #[test]
    fn plan_with_multi_segment_replacements_first_match_wins() {
        let r = recipe(&[(
            "REPLACEMENTS",
            "photos/original:web/large,photos:web/other,original:resized",
        )]);
        insta::assert_snapshot!(plan(
            &r,
            &[
                "photos/original/a.jpg",
                "photos/b.jpg",
                "original/c.jpg",
                "web/large/a-360.jpg",
                "photos/originals/x.jpg"
            ]
        ));
    }

    #[test]
    fn plan_with_the_stem_alone_in_a_segment() {
        let r = recipe(&[("KEY_TEMPLATE", "{dir}/{stem}/{width}.{ext}")]);
        insta::assert_snapshot!(plan(
            &r,
            &[
                "a.jpg",
                "t/a.b.jpg",
                "...jpg",
                "..jpg",
                "3A60/..jpg",
                "a/...b.jpg",
                "t/.b.jpg"
            ]
        ));
    }

    #[track_caller]
    fn check_template(template: &str, key: &str, expect: Result<&str, &str>) {
        let got = Template::parse(template)
            .map(|t| recipe(&[("KEY_TEMPLATE", t.as_str()), ("FORMATS", "jpeg,webp,png")]));
        match (got, expect) {
            (Ok(r), Ok(want)) => {
                let src = r.source_key(key).unwrap_or_else(|s| panic!("{key} skipped: {s}"));
                let out = src.output_key(720, 405, Format::WebP).unwrap();
                assert_eq!(out, want);
                assert!(r.looks_like_output(&out), "{out} must look like an output");
                assert_eq!(r.source_key(&out), Err(NotASource::LooksLikeOutput));
            }
            (Err(e), Err(want)) => assert_eq!(e.to_string(), want),
            (got, want) => panic!("template {template}: got {got:?}, want {want:?}"),
        }
    }

    /// Manifest templates as a user could type them: the manifest key of
    /// `original/trips/a.jpg` under `original:resized`, or the error.
    #[test]
    fn manifest_templates() {
        let cases = [
            "{dir}/{stem}.json",
            "{dir}/manifests/{stem}.json",
            "{dir}/{stem}/index.json",
            "{dir}/{stem}.manifest.json",
            "",
            "{stem}.json",
            "{dir}{stem}.json",
            "manifests/{dir}/{stem}.json",
            "{dir}/{stem}",
            "{dir}/{stem}.JSON",
            "{dir}/.json",
            "{dir}/{stem}-{stem}.json",
            "{dir}/{dir}/{stem}.json",
            "{dir}/{stem}-{width}.json",
            "{dir}/{stem}.{ext}.json",
            "{dir}/{name}.json",
            "{dir}/{stem.json",
            "{dir}/stem}.json",
            "{dir}/../{stem}.json",
            "{dir}//{stem}.json",
            "{dir}/./{stem}.json",
        ];
        let mut out = String::new();
        for text in cases {
            let got = ManifestTemplate::parse(text).and_then(|m| {
                crate::recipe::Recipe::builder()
                    .replacements(vec![Replacement::parse("original:resized")?])
                    .manifest(Some(m))
                    .build()
            });
            let line = match got {
                Ok(r) => match r.source_key("original/trips/a.jpg") {
                    Ok(s) => format!("{:?}", s.manifest_key()),
                    Err(e) => format!("source refused: {e}"),
                },
                Err(e) => e.to_string(),
            };
            out.push_str(&format!("{text:?}\n    {line}\n"));
        }
        insta::assert_snapshot!(out);
    }

    #[test]
    fn templates() {
        check_template(
            "{dir}/{stem}-{width}.{ext}",
            "trips/a.jpg",
            Ok("trips/a-720.webp"),
        );
        check_template("{dir}/{stem}-{width}.{ext}", "a.jpg", Ok("a-720.webp"));
        check_template(
            "{dir}/{width}/{stem}.{ext}",
            "trips/a.jpg",
            Ok("trips/720/a.webp"),
        );
        check_template("{dir}/{width}/{stem}.{ext}", "a.jpg", Ok("720/a.webp"));
        check_template(
            "{dir}/{stem}_{width}x{height}.{ext}",
            "t/a.b.jpg",
            Ok("t/a.b_720x405.webp"),
        );
        check_template(
            "{dir}/{stem}.{ext}",
            "a.jpg",
            Err("invalid key template `{dir}/{stem}.{ext}`: expected a template with {dir}, {stem}, {width} and {ext} once each and {height} at most once"),
        );
        // Found by the `recipe` fuzz target: with {dir} twice, an output
        // (`t/360E=t2…`) did not match the template shape and passed for a
        // source. Each placeholder now appears once.
        check_template(
            "{dir}/{width}E={dir}2{width}/{stem}.{ext}",
            "t/a.jpg",
            Err("invalid key template `{dir}/{width}E={dir}2{width}/{stem}.{ext}`: expected a template with {dir}, {stem}, {width} and {ext} once each and {height} at most once"),
        );
        check_template(
            "{stem}-{width}.{ext}",
            "a.jpg",
            Err("invalid key template `{stem}-{width}.{ext}`: expected a template starting with `{dir}/`"),
        );
        check_template(
            "{dir}/{stem}-{width}",
            "a.jpg",
            Err("invalid key template `{dir}/{stem}-{width}`: expected a template ending in `.{ext}`"),
        );
        check_template(
            "{dir}/../{stem}-{width}.{ext}",
            "a.jpg",
            Err("invalid key template `{dir}/../{stem}-{width}.{ext}`: expected no empty, `.` or `..` path segments"),
        );
        check_template(
            "{dir}/{name}-{width}.{ext}",
            "a.jpg",
            Err("invalid key template `{dir}/{name}-{width}.{ext}`: expected only the placeholders {dir} {stem} {width} {height} {ext}"),
        );
    }

    /// Found by the `keys` fuzz target: an output whose height has more
    /// than five digits was accepted as a source.
    #[test]
    fn outputs_with_tall_heights_are_not_sources() {
        let r = recipe(&[("KEY_TEMPLATE", "{dir}/{stem}_{width}x{height}.{ext}")]);
        let src = r.source_key("up/load/y.JPG").unwrap();
        for h in [1, 99_999, 100_000, 4_000_000_000] {
            let out = src.output_key(360, h, Format::Jpeg).unwrap();
            assert_eq!(r.source_key(&out), Err(NotASource::LooksLikeOutput), "{out}");
        }
    }

    /// Found by a 4-minute run of the `keys` fuzz target
    /// (`fixtures/fuzz/keys/stem-dot-segment`): a stem of `.` or `..` alone
    /// in a template segment made `../50.jpg` and `3A60/./50.jpg`. Such
    /// sources are refused, so no output key with those segments can be
    /// obtained; under templates that keep the stem inside a longer segment
    /// the same keys stay sources.
    #[test]
    fn stems_that_would_make_dot_segments_are_refused() {
        let alone = recipe(&[("KEY_TEMPLATE", "{dir}/{stem}/{width}.{ext}"), ("SIZES", "50")]);
        let inside = recipe(&[("SIZES", "50")]);
        for (key, inside_output) in [("...jpg", "..-50.jpg"), ("3A60/..jpg", "3A60/.-50.jpg")] {
            assert_eq!(
                alone.source_key(key),
                Err(NotASource::UnsafeKey(
                    "its output keys would have a `.` or `..` path segment"
                )),
                "{key}"
            );
            let src = inside.source_key(key).unwrap();
            assert_eq!(src.output_key(50, 1, Format::Jpeg).unwrap(), inside_output);
        }
        // Dots that are not a whole segment are ordinary names.
        let src = alone.source_key("a/...b.jpg").unwrap();
        assert_eq!(src.output_key(50, 1, Format::Jpeg).unwrap(), "a/...b/50.jpg");
    }

    fn recipes() -> impl Strategy<Value = Recipe> {
        let replacements = prop::sample::select(vec![
            "",
            "original:resized",
            "photos/original:photos/resized",
            "a:b,c:d",
            "in/x:out,in/y:out2",
        ]);
        let templates = prop::sample::select(vec![
            "{dir}/{stem}-{width}.{ext}",
            "{dir}/{width}/{stem}.{ext}",
            "{dir}/{stem}_{width}x{height}.{ext}",
            "{dir}/w{width}/h{height}/{stem}.{ext}",
        ]);
        let formats = prop::sample::select(vec!["jpeg", "webp", "png", "jpeg,webp", "png,jpeg,webp"]);
        let upscale = prop::sample::select(vec!["skip", "source"]);
        (replacements, templates, formats, upscale).prop_map(|(r, t, f, u)| {
            recipe(&[
                ("REPLACEMENTS", r),
                ("KEY_TEMPLATE", t),
                ("FORMATS", f),
                ("UPSCALE", u),
            ])
        })
    }

    fn keys() -> impl Strategy<Value = String> {
        let segment = prop::sample::select(vec![
            "original",
            "resized",
            "photos",
            "a",
            "b",
            "c",
            "d",
            "in",
            "x",
            "y",
            "out",
            "w360",
            "360",
            "trips",
            "a b",
            "a+b",
            "%2F",
            "naïve",
            "日本",
            "..",
            ".",
            "",
            "back\\slash",
        ]);
        let stem = "[a-z0-9 .+%_-]{0,12}|[0-9]{1,4}|a-360|a_360x270";
        let ext = prop::sample::select(vec![
            "jpg", "JPG", "jpeg", "png", "webp", "gif", "tif", "tiff", "txt", "",
        ]);
        (prop::collection::vec(segment, 0..4), stem, ext).prop_map(|(dirs, stem, ext)| {
            let mut key = dirs.join("/");
            if !key.is_empty() {
                key.push('/');
            }
            key.push_str(&stem);
            if !ext.is_empty() {
                key.push('.');
                key.push_str(ext);
            }
            key
        })
    }

    proptest! {
        /// For every key accepted as a source and every output v of it:
        /// v ≠ k, v is not accepted as a source, v is a safe key, and v lies
        /// under the destination prefix whenever a replacement maps k.
        #[test]
        fn outputs_are_never_sources(recipe in recipes(), key in keys(), w in 1u32..=16384, h in 1u32..=20000) {
            let Ok(src) = recipe.source_key(&key) else { return Ok(()) };
            prop_assert!(check_key(&key).is_ok());
            for &format in recipe.formats() {
                let width = match recipe.upscale() {
                    Upscale::Skip => recipe.widths().as_slice()[(w as usize) % recipe.widths().as_slice().len()].get(),
                    Upscale::SourceWidth => w,
                };
                let v = src.output_key(width, h, format).unwrap();
                prop_assert_ne!(&v, &key);
                prop_assert!(recipe.source_key(&v).is_err(), "output {} of {} accepted as a source", v, key);
                prop_assert!(check_key(&v).is_ok(), "output {} is unsafe", v);
                let dir: Vec<&str> = key.split('/').collect();
                if let Some(r) = recipe.replacements().iter().find(|r| starts_with(&dir[..dir.len() - 1], r.source_segments())) {
                    prop_assert!(v.starts_with(&format!("{}/", r.to())), "{} not under {}", v, r.to());
                }
            }
        }

        /// The guard refuses every pair of overlapping prefixes.
        #[test]
        fn overlapping_prefixes_are_refused(a in "[a-c]{1,2}(/[a-c]{1,2}){0,2}", b in "[a-c]{1,2}(/[a-c]{1,2}){0,2}") {
            let ra = Replacement::parse(&format!("{a}:{b}"));
            let Ok(ra) = ra else { return Ok(()) };
            let rules = refuse_loops(std::slice::from_ref(&ra));
            let overlap = is_prefix(ra.source_segments(), ra.destination_segments()) || is_prefix(ra.destination_segments(), ra.source_segments());
            prop_assert_eq!(rules.is_err(), overlap);
        }

        /// Arbitrary keys (`..`, `//`, backslashes, NUL, very long ones)
        /// never panic; every output of an accepted one is a safe key of at
        /// most 1024 bytes under the destination prefix.
        #[test]
        fn arbitrary_keys(
            key in "\\PC{0,40}|[a/.\\\\\0]{0,12}|original/[a./\\\\]{0,12}\\.jpg|original/[ab]{1000,1030}\\.jpg",
            template in prop::sample::select(vec!["{dir}/{stem}-{width}.{ext}", "{dir}/{width}x{height}/{stem}.{ext}"]),
        ) {
            let r = recipe(&[("REPLACEMENTS", "original:resized"), ("KEY_TEMPLATE", template), ("FORMATS", "jpeg,webp")]);
            if let Ok(src) = r.source_key(&key) {
                prop_assert!(check_key(src.as_str()).is_ok());
                for format in [Format::Jpeg, Format::WebP] {
                    for (w, h) in [(360, 270), (2200, 4_000_000_000)] {
                        let v = src.output_key(w, h, format).unwrap();
                        prop_assert!(check_key(&v).is_ok(), "{:?} from {:?}", v, key);
                        prop_assert!(v.starts_with("resized/"), "{:?} from {:?}", v, key);
                    }
                }
            }
        }
    }

    #[test]
    fn output_prefixes() {
        let r = recipe(&[("REPLACEMENTS", "original:resized")]);
        let src = r.source_key("original/trips/a.b.jpg").unwrap();
        assert_eq!(src.output_prefix(), "resized/trips/a.b-");
        let r = recipe(&[("KEY_TEMPLATE", "{dir}/{width}/{stem}.{ext}")]);
        assert_eq!(r.source_key("a.jpg").unwrap().output_prefix(), "");
        assert_eq!(r.source_key("t/a.jpg").unwrap().output_prefix(), "t/");
        for key in ["t/a.jpg", "a.jpg"] {
            let src = r.source_key(key).unwrap();
            assert!(src
                .output_key(360, 270, Format::Jpeg)
                .unwrap()
                .starts_with(&src.output_prefix()));
        }
    }

    #[test]
    fn long_keys_are_refused() {
        let r = recipe(&[]);
        let key = format!("{}.jpg", "a".repeat(1021));
        assert_eq!(key.len(), 1025);
        assert_eq!(
            r.source_key(&key),
            Err(NotASource::UnsafeKey("longer than 1024 bytes"))
        );
        // A key that fits but whose `-2200` output would not.
        let key = format!("{}.jpg", "a".repeat(1016));
        assert_eq!(
            r.source_key(&key),
            Err(NotASource::UnsafeKey(
                "its output keys would be longer than 1024 bytes"
            ))
        );
        let key = format!("{}.jpg", "a".repeat(1015));
        let src = r.source_key(&key).unwrap();
        assert_eq!(src.output_key(2200, 1, Format::Jpeg).map(|k| k.len()), Ok(1024));
        // Wider than the recipe's widths (an output at the source width):
        // an error rather than a key S3 would refuse.
        assert_eq!(
            src.output_key(22000, 1, Format::Jpeg),
            Err(KeyTooLong {
                key: key.clone(),
                len: 1025
            })
        );
    }
}
