//! Key rules: which keys are sources, where their outputs go, and the
//! recursion guard that keeps outputs from ever being taken for sources.
//!
//! Keys are S3 object keys or relative paths, `/`-separated, already
//! URL-decoded. Replacements act on whole leading directory segments only,
//! so `original:resized` maps `original/trips/a.jpg` but never
//! `x/original/a.jpg` or `my-original.jpg`.

use std::fmt;

use crate::error::RecipeError;
use crate::recipe::{Format, Recipe, Upscale};

/// Longest key S3 accepts, in bytes; longer source or output keys are refused.
pub const MAX_KEY_BYTES: usize = 1024;

/// Source extensions recognised, compared case-insensitively.
pub const SOURCE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp", "gif", "tif", "tiff"];

/// The default output key template.
pub const DEFAULT_TEMPLATE: &str = "{dir}/{stem}-{width}.{ext}";

/// A `from:to` pair of leading directory prefixes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replacement {
    from: Vec<String>,
    to: Vec<String>,
}

impl Replacement {
    /// Parses `from:to`, where both sides are one or more `/`-separated
    /// segments (no empty, `.` or `..` segments; surrounding slashes are
    /// ignored).
    pub fn parse(pair: &str) -> Result<Replacement, RecipeError> {
        let allowed = "from:to with non-empty prefixes, e.g. original:resized";
        let (from, to) = pair
            .split_once(':')
            .ok_or_else(|| RecipeError::invalid("REPLACEMENTS", pair, allowed))?;
        let segments = |s: &str| -> Option<Vec<String>> {
            let s = s.trim().trim_matches('/');
            if s.is_empty() {
                return None;
            }
            s.split('/')
                .map(|seg| {
                    (!seg.is_empty() && seg != "." && seg != ".." && !seg.contains('\0'))
                        .then(|| seg.to_owned())
                })
                .collect()
        };
        match (segments(from), segments(to)) {
            (Some(from), Some(to)) => Ok(Replacement { from, to }),
            _ => Err(RecipeError::invalid("REPLACEMENTS", pair, allowed)),
        }
    }

    /// The source prefix, `/`-joined.
    pub fn from(&self) -> String {
        self.from.join("/")
    }

    /// The destination prefix, `/`-joined.
    pub fn to(&self) -> String {
        self.to.join("/")
    }
}

impl fmt::Display for Replacement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.from(), self.to())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Lit(String),
    Dir,
    Stem,
    Width,
    Height,
    Ext,
}

/// An output key template with the placeholders `{dir} {stem} {width}
/// {height} {ext}`. It must start with `{dir}` followed by `/`, contain
/// `{stem}` and `{width}`, and end with `.{ext}`, so that every output stays
/// under its directory and different widths and formats never collide.
/// When `{dir}` is empty (a key at the root) the `/` after it is dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    text: String,
    parts: Vec<Part>,
}

impl Default for Template {
    fn default() -> Template {
        Template {
            text: DEFAULT_TEMPLATE.to_owned(),
            parts: vec![
                Part::Dir,
                Part::Lit("/".to_owned()),
                Part::Stem,
                Part::Lit("-".to_owned()),
                Part::Width,
                Part::Lit(".".to_owned()),
                Part::Ext,
            ],
        }
    }
}

impl Template {
    /// Parses a template, see the type's documentation for the rules.
    pub fn parse(text: &str) -> Result<Template, RecipeError> {
        let bad = |allowed| RecipeError::invalid("KEY_TEMPLATE", text, allowed);
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('{') {
                let (name, tail) = after
                    .split_once('}')
                    .ok_or_else(|| bad("placeholders closed with `}`"))?;
                parts.push(match name {
                    "dir" => Part::Dir,
                    "stem" => Part::Stem,
                    "width" => Part::Width,
                    "height" => Part::Height,
                    "ext" => Part::Ext,
                    _ => return Err(bad("only the placeholders {dir} {stem} {width} {height} {ext}")),
                });
                rest = tail;
            } else {
                let end = rest.find(['{', '}']).unwrap_or(rest.len());
                if rest[end..].starts_with('}') {
                    return Err(bad("placeholders opened with `{`"));
                }
                parts.push(Part::Lit(rest[..end].to_owned()));
                rest = &rest[end..];
            }
        }
        let starts_with_dir = matches!(parts.as_slice(), [Part::Dir, Part::Lit(l), ..] if l.starts_with('/'));
        if !starts_with_dir {
            return Err(bad("a template starting with `{dir}/`"));
        }
        let ends_with_ext = matches!(parts.as_slice(), [.., Part::Lit(l), Part::Ext] if l.ends_with('.'));
        if !ends_with_ext {
            return Err(bad("a template ending in `.{ext}`"));
        }
        // Each placeholder once ({height} at most once): the recursion guard
        // recognises outputs by matching keys against the template, which is
        // only sound when every value appears in one place. A second {dir}
        // let an output pass for a source (found by the `recipe` fuzz target).
        let count = |p: &Part| parts.iter().filter(|q| *q == p).count();
        if [Part::Dir, Part::Stem, Part::Width, Part::Ext]
            .iter()
            .any(|p| count(p) != 1)
            || count(&Part::Height) > 1
        {
            return Err(bad(
                "a template with {dir}, {stem}, {width} and {ext} once each and {height} at most once",
            ));
        }
        for p in &parts {
            if let Part::Lit(l) = p {
                let inner: Vec<&str> = l.split('/').collect();
                // Segments wholly inside the literal (between two slashes)
                // must be real names, or outputs could climb out of {dir}.
                if inner.len() > 2
                    && inner[1..inner.len() - 1]
                        .iter()
                        .any(|s| s.is_empty() || *s == "." || *s == "..")
                {
                    return Err(bad("no empty, `.` or `..` path segments"));
                }
                if l.contains('\0') || l.contains("//") {
                    return Err(bad("no empty path segments"));
                }
            }
        }
        Ok(Template {
            text: text.to_owned(),
            parts,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn render(&self, dir: &str, stem: &str, width: u32, height: u32, ext: &str) -> String {
        let mut out = String::new();
        let mut skip_slash = false;
        for p in &self.parts {
            match p {
                Part::Lit(l) => {
                    out.push_str(if skip_slash { &l[1..] } else { l });
                    skip_slash = false;
                }
                Part::Dir => {
                    out.push_str(dir);
                    // `parse` guarantees a literal starting with '/' follows.
                    skip_slash = dir.is_empty();
                }
                Part::Stem => out.push_str(stem),
                Part::Width => out.push_str(&width.to_string()),
                Part::Height => out.push_str(&height.to_string()),
                Part::Ext => out.push_str(ext),
            }
        }
        out
    }
}

/// Replacements and template, checked together by the recursion guard.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct KeyRules {
    replacements: Vec<Replacement>,
    template: Template,
}

impl KeyRules {
    /// Checks the rules. Refused: a destination prefix equal to, inside, or
    /// containing any source prefix, since outputs written there would
    /// be picked up again as sources.
    pub fn new(replacements: Vec<Replacement>, template: Template) -> Result<KeyRules, RecipeError> {
        for r in &replacements {
            for s in &replacements {
                if is_prefix(&r.to, &s.from) || is_prefix(&s.from, &r.to) {
                    return Err(RecipeError::Loop {
                        reason: format!(
                            "destination `{}` of `{r}` overlaps source prefix `{}` of `{s}`",
                            r.to(),
                            s.from()
                        ),
                    });
                }
            }
        }
        Ok(KeyRules {
            replacements,
            template,
        })
    }

    /// The replacements, first match wins.
    pub fn replacements(&self) -> &[Replacement] {
        &self.replacements
    }

    /// The output key template.
    pub fn template(&self) -> &Template {
        &self.template
    }
}

fn is_prefix(prefix: &[String], of: &[String]) -> bool {
    of.len() >= prefix.len() && of[..prefix.len()] == *prefix
}

/// Why a key is not processed. Skips are normal outcomes, not errors.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Skip {
    /// The key's extension is not one of [`SOURCE_EXTENSIONS`].
    NotAnImage,
    /// The key is empty, too long, absolute, or has empty, `.` or `..`
    /// segments or NUL bytes.
    UnsafeKey(&'static str),
    /// Replacements are configured and the key is under none of their sources.
    OutsideSources,
    /// The key is under a destination prefix.
    InDestination(String),
    /// The key has the shape of one of this recipe's outputs.
    LooksLikeOutput,
    /// Every variant exists and is newer than the source.
    UpToDate,
    /// The source is narrower than every requested width (upscale policy `skip`).
    TooNarrow {
        /// The oriented source width.
        width: u32,
    },
    /// The object carries the metadata of one of our variants.
    IsVariant,
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::NotAnImage => write!(
                f,
                "not an image: extension is not one of {}",
                SOURCE_EXTENSIONS.join(", ")
            ),
            Skip::UnsafeKey(why) => write!(f, "unsafe key: {why}"),
            Skip::OutsideSources => f.write_str("not under any source prefix of REPLACEMENTS"),
            Skip::InDestination(p) => write!(f, "under destination prefix `{p}`"),
            Skip::LooksLikeOutput => f.write_str("looks like an output of this recipe"),
            Skip::UpToDate => f.write_str("all variants are up to date"),
            Skip::TooNarrow { width } => write!(
                f,
                "source is {width} px wide, narrower than every requested width"
            ),
            Skip::IsVariant => f.write_str("object is a variant made by resize"),
        }
    }
}

/// A key accepted as a source, split into the parts outputs are named from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceKey {
    key: String,
    out_dir: String,
    stem: String,
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
}

/// Checks a key is safe to use as a path under a root: not empty, at most
/// [`MAX_KEY_BYTES`], relative, without NUL or empty, `.` or `..` segments.
pub fn check_key(key: &str) -> Result<(), Skip> {
    if key.is_empty() {
        return Err(Skip::UnsafeKey("empty"));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(Skip::UnsafeKey("longer than 1024 bytes"));
    }
    if key.contains('\0') {
        return Err(Skip::UnsafeKey("contains NUL"));
    }
    if key.starts_with('/') {
        return Err(Skip::UnsafeKey("absolute"));
    }
    for seg in key.split('/') {
        match seg {
            "" => return Err(Skip::UnsafeKey("empty path segment")),
            "." | ".." => return Err(Skip::UnsafeKey("`.` or `..` path segment")),
            _ => {}
        }
    }
    Ok(())
}

impl Recipe {
    /// Decides whether `key` is a source under this recipe.
    ///
    /// ```
    /// use resize_core::{Recipe, Skip};
    /// let recipe = Recipe::from_lookup(|n| (n == "REPLACEMENTS").then(|| "original:resized".into()))?;
    /// let src = recipe.source_key("original/trips/a.jpg").unwrap();
    /// assert_eq!(src.out_dir(), "resized/trips");
    /// assert_eq!(recipe.source_key("resized/trips/a-360.jpg"), Err(Skip::InDestination("resized".into())));
    /// # Ok::<(), resize_core::RecipeError>(())
    /// ```
    pub fn source_key(&self, key: &str) -> Result<SourceKey, Skip> {
        // S3 consoles create `folder/` marker objects; they are not images.
        if key.ends_with('/') && key.len() > 1 {
            return Err(Skip::NotAnImage);
        }
        check_key(key)?;
        let (dir, file) = match key.rsplit_once('/') {
            Some((dir, file)) => (dir, file),
            None => ("", key),
        };
        let (stem, ext) = file.rsplit_once('.').ok_or(Skip::NotAnImage)?;
        if stem.is_empty() || !SOURCE_EXTENSIONS.iter().any(|e| e.eq_ignore_ascii_case(ext)) {
            return Err(Skip::NotAnImage);
        }
        let dir_segs: Vec<&str> = if dir.is_empty() {
            Vec::new()
        } else {
            dir.split('/').collect()
        };
        let rules = &self.keys;
        if let Some(r) = rules.replacements.iter().find(|r| starts_with(&dir_segs, &r.to)) {
            return Err(Skip::InDestination(r.to()));
        }
        let out_dir = if rules.replacements.is_empty() {
            if self.looks_like_output(key) {
                return Err(Skip::LooksLikeOutput);
            }
            dir.to_owned()
        } else {
            let r = rules
                .replacements
                .iter()
                .find(|r| starts_with(&dir_segs, &r.from))
                .ok_or(Skip::OutsideSources)?;
            let mut segs: Vec<&str> = r.to.iter().map(String::as_str).collect();
            segs.extend_from_slice(&dir_segs[r.from.len()..]);
            segs.join("/")
        };
        let source = SourceKey {
            key: key.to_owned(),
            out_dir,
            stem: stem.to_owned(),
        };
        // S3 refuses keys over 1024 bytes; say so now rather than fail the
        // write after decoding. Widths never exceed the recipe's largest;
        // a height is at most 10 digits.
        let widest = self.widths.as_slice().iter().map(|w| w.get()).max().unwrap_or(0);
        let longest = self
            .formats
            .iter()
            .map(|&f| self.output_key(&source, widest, u32::MAX, f).len())
            .max()
            .unwrap_or(0);
        if longest > MAX_KEY_BYTES {
            return Err(Skip::UnsafeKey("its output keys would be longer than 1024 bytes"));
        }
        Ok(source)
    }

    /// The key of one output of `source`.
    pub fn output_key(&self, source: &SourceKey, width: u32, height: u32, format: Format) -> String {
        self.keys
            .template
            .render(&source.out_dir, &source.stem, width, height, format.extension())
    }

    /// The longest prefix every output key of `source` starts with (the
    /// template rendered up to its first size or format placeholder), for
    /// listing a source's variants when the source itself is gone.
    pub fn output_prefix(&self, source: &SourceKey) -> String {
        let t = &self.keys.template;
        let cut = t
            .parts
            .iter()
            .position(|p| matches!(p, Part::Width | Part::Height | Part::Ext))
            .unwrap_or(t.parts.len());
        let head = Template {
            text: String::new(),
            parts: t.parts[..cut].to_vec(),
        };
        head.render(&source.out_dir, &source.stem, 0, 0, "")
    }

    /// Whether `key` could be one of this recipe's outputs (for some source).
    pub fn looks_like_output(&self, key: &str) -> bool {
        let exts: Vec<&str> = self.formats.iter().map(|f| f.extension()).collect();
        let ctx = Shape {
            exts: &exts,
            widths: match self.upscale {
                // Under `skip`, outputs only ever have the recipe's widths.
                Upscale::Skip => Some(self.widths.as_slice().iter().map(|w| w.get()).collect()),
                Upscale::SourceWidth => None,
            },
        };
        match_parts(&self.keys.template.parts, key, &ctx)
    }
}

fn starts_with(segs: &[&str], prefix: &[String]) -> bool {
    segs.len() >= prefix.len() && segs.iter().zip(prefix).all(|(a, b)| *a == b)
}

struct Shape<'a> {
    exts: &'a [&'a str],
    widths: Option<Vec<u32>>,
}

/// Backtracking match of `s` against the template parts; placeholders match
/// what `render` could have put there. Keys are at most 1 KiB and templates
/// have a handful of placeholders, so the search stays small.
fn match_parts(parts: &[Part], s: &str, ctx: &Shape<'_>) -> bool {
    let Some((first, rest)) = parts.split_first() else {
        return s.is_empty();
    };
    match first {
        Part::Lit(l) => s
            .strip_prefix(l.as_str())
            .is_some_and(|r| match_parts(rest, r, ctx)),
        Part::Dir => {
            // An empty dir drops the '/' that starts the next literal.
            if let Some((Part::Lit(l), after)) = rest.split_first() {
                if let Some(tail) = s.strip_prefix(&l[1..]) {
                    if match_parts(after, tail, ctx) {
                        return true;
                    }
                }
            }
            s.match_indices('/')
                .any(|(i, _)| i > 0 && match_parts(rest, &s[i..], ctx))
        }
        Part::Stem => {
            let limit = s.find('/').unwrap_or(s.len());
            (1..=limit)
                .filter(|&i| s.is_char_boundary(i))
                .any(|i| match_parts(rest, &s[i..], ctx))
        }
        Part::Width | Part::Height => {
            // Up to 10 digits: any u32. Capping at 5 let a key with a taller
            // output height pass for a source (found by the `keys` fuzz target).
            let digits = s.bytes().take_while(u8::is_ascii_digit).count();
            (1..=digits.min(10)).any(|n| {
                let num = &s[..n];
                if num.starts_with('0') {
                    return false;
                }
                let ok = match (first, &ctx.widths) {
                    (Part::Width, Some(ws)) => num.parse().is_ok_and(|v: u32| ws.contains(&v)),
                    _ => true,
                };
                ok && match_parts(rest, &s[n..], ctx)
            })
        }
        Part::Ext => ctx
            .exts
            .iter()
            .any(|e| s.strip_prefix(e).is_some_and(|r| match_parts(rest, r, ctx))),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

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
                        .map(|(w, f)| recipe.output_key(&src, w, w * 3 / 4, f))
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

    #[track_caller]
    fn check_template(template: &str, key: &str, expect: Result<&str, &str>) {
        let got = Template::parse(template)
            .map(|t| recipe(&[("KEY_TEMPLATE", t.as_str()), ("FORMATS", "jpeg,webp,png")]));
        match (got, expect) {
            (Ok(r), Ok(want)) => {
                let src = r.source_key(key).unwrap_or_else(|s| panic!("{key} skipped: {s}"));
                let out = r.output_key(&src, 720, 405, Format::WebP);
                assert_eq!(out, want);
                assert!(r.looks_like_output(&out), "{out} must look like an output");
                assert_eq!(r.source_key(&out), Err(Skip::LooksLikeOutput));
            }
            (Err(e), Err(want)) => assert_eq!(e.to_string(), want),
            (got, want) => panic!("template {template}: got {got:?}, want {want:?}"),
        }
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
            Err("invalid KEY_TEMPLATE value `{dir}/{stem}.{ext}`: expected a template with {dir}, {stem}, {width} and {ext} once each and {height} at most once"),
        );
        // Found by the `recipe` fuzz target: with {dir} twice, an output
        // (`t/360E=t2…`) did not match the template shape and passed for a
        // source. Each placeholder now appears once.
        check_template(
            "{dir}/{width}E={dir}2{width}/{stem}.{ext}",
            "t/a.jpg",
            Err("invalid KEY_TEMPLATE value `{dir}/{width}E={dir}2{width}/{stem}.{ext}`: expected a template with {dir}, {stem}, {width} and {ext} once each and {height} at most once"),
        );
        check_template(
            "{stem}-{width}.{ext}",
            "a.jpg",
            Err("invalid KEY_TEMPLATE value `{stem}-{width}.{ext}`: expected a template starting with `{dir}/`"),
        );
        check_template(
            "{dir}/{stem}-{width}",
            "a.jpg",
            Err("invalid KEY_TEMPLATE value `{dir}/{stem}-{width}`: expected a template ending in `.{ext}`"),
        );
        check_template(
            "{dir}/../{stem}-{width}.{ext}",
            "a.jpg",
            Err("invalid KEY_TEMPLATE value `{dir}/../{stem}-{width}.{ext}`: expected no empty, `.` or `..` path segments"),
        );
        check_template(
            "{dir}/{name}-{width}.{ext}",
            "a.jpg",
            Err("invalid KEY_TEMPLATE value `{dir}/{name}-{width}.{ext}`: expected only the placeholders {dir} {stem} {width} {height} {ext}"),
        );
    }

    /// Found by the `keys` fuzz target: an output whose height has more
    /// than five digits was accepted as a source.
    #[test]
    fn outputs_with_tall_heights_are_not_sources() {
        let r = recipe(&[("KEY_TEMPLATE", "{dir}/{stem}_{width}x{height}.{ext}")]);
        let src = r.source_key("up/load/y.JPG").unwrap();
        for h in [1, 99_999, 100_000, 4_000_000_000] {
            let out = r.output_key(&src, 360, h, Format::Jpeg);
            assert_eq!(r.source_key(&out), Err(Skip::LooksLikeOutput), "{out}");
        }
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
                let v = recipe.output_key(&src, width, h, format);
                prop_assert_ne!(&v, &key);
                prop_assert!(recipe.source_key(&v).is_err(), "output {} of {} accepted as a source", v, key);
                prop_assert!(check_key(&v).is_ok(), "output {} is unsafe", v);
                let dir: Vec<&str> = key.split('/').collect();
                if let Some(r) = recipe.keys().replacements().iter().find(|r| starts_with(&dir[..dir.len() - 1], &r.from)) {
                    prop_assert!(v.starts_with(&format!("{}/", r.to())), "{} not under {}", v, r.to());
                }
            }
        }

        /// The guard refuses every pair of overlapping prefixes.
        #[test]
        fn overlapping_prefixes_are_refused(a in "[a-c]{1,2}(/[a-c]{1,2}){0,2}", b in "[a-c]{1,2}(/[a-c]{1,2}){0,2}") {
            let ra = Replacement::parse(&format!("{a}:{b}"));
            let Ok(ra) = ra else { return Ok(()) };
            let rules = KeyRules::new(vec![ra.clone()], Template::default());
            let overlap = is_prefix(&ra.from, &ra.to) || is_prefix(&ra.to, &ra.from);
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
                        let v = r.output_key(&src, w, h, format);
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
        assert_eq!(r.output_prefix(&src), "resized/trips/a.b-");
        let r = recipe(&[("KEY_TEMPLATE", "{dir}/{width}/{stem}.{ext}")]);
        assert_eq!(r.output_prefix(&r.source_key("a.jpg").unwrap()), "");
        assert_eq!(r.output_prefix(&r.source_key("t/a.jpg").unwrap()), "t/");
        for key in ["t/a.jpg", "a.jpg"] {
            let src = r.source_key(key).unwrap();
            assert!(r
                .output_key(&src, 360, 270, Format::Jpeg)
                .starts_with(&r.output_prefix(&src)));
        }
    }

    #[test]
    fn long_keys_are_refused() {
        let r = recipe(&[]);
        let key = format!("{}.jpg", "a".repeat(1021));
        assert_eq!(key.len(), 1025);
        assert_eq!(r.source_key(&key), Err(Skip::UnsafeKey("longer than 1024 bytes")));
        // A key that fits but whose `-2200` output would not.
        let key = format!("{}.jpg", "a".repeat(1016));
        assert_eq!(
            r.source_key(&key),
            Err(Skip::UnsafeKey("its output keys would be longer than 1024 bytes"))
        );
        let key = format!("{}.jpg", "a".repeat(1015));
        let src = r.source_key(&key).unwrap();
        assert_eq!(r.output_key(&src, 2200, 1, Format::Jpeg).len(), 1024);
    }
}
