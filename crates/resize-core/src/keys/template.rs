//! The output key template: parsing (with the rules that keep outputs under
//! their directory and recognisable) and rendering.

use crate::values::RecipeError;

/// The default output key template.
pub const DEFAULT_TEMPLATE: &str = "{dir}/{stem}-{width}.{ext}";

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Part {
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
///
/// ```
/// use resize_core::Template;
/// assert!(Template::parse("{dir}/{width}/{stem}.{ext}").is_ok());
/// let e = Template::parse("{dir}/{stem}.{ext}").unwrap_err();
/// assert_eq!(
///     e.to_string(),
///     "invalid key template `{dir}/{stem}.{ext}`: expected a template with \
///      {dir}, {stem}, {width} and {ext} once each and {height} at most once"
/// );
/// ```
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
        let parts = VARIANTS.parse(text).map_err(|expected| RecipeError::Template {
            template: text.to_owned(),
            expected,
        })?;
        Ok(Template {
            text: text.to_owned(),
            parts,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub(crate) fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The key for these values. `parse` guarantees a literal starting
    /// with `/` follows `{dir}`; it is dropped when `dir` is empty.
    pub(crate) fn render(&self, values: &Values<'_>) -> String {
        render_parts(&self.parts, values)
    }

    /// The template rendered up to its first size or format placeholder:
    /// the longest prefix every output key of `dir`/`stem` starts with.
    pub(crate) fn prefix(&self, dir: &str, stem: &str) -> String {
        let cut = self
            .parts
            .iter()
            .position(|p| matches!(p, Part::Width | Part::Height | Part::Ext))
            .unwrap_or(self.parts.len());
        render_parts(&self.parts[..cut], &Values::source(dir, stem))
    }
}

/// The default manifest key template.
pub const DEFAULT_MANIFEST_TEMPLATE: &str = "{dir}/{stem}.json";

/// The key template of a source's manifest, with the placeholders `{dir}`
/// and `{stem}`. It must start with `{dir}/`, contain `{stem}` once and
/// end with `.json`: a manifest stays under its directory, names its
/// source, and never has an image's extension, so it is never a source
/// (and never a variant: those end in an image format's extension).
///
/// ```
/// use resize_core::ManifestTemplate;
/// assert!(ManifestTemplate::parse("{dir}/manifests/{stem}.json").is_ok());
/// let e = ManifestTemplate::parse("{dir}/{stem}-{width}.json").unwrap_err();
/// assert_eq!(
///     e.to_string(),
///     "invalid manifest template `{dir}/{stem}-{width}.json`: expected only the placeholders {dir} and {stem}"
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestTemplate {
    text: String,
    parts: Vec<Part>,
}

impl Default for ManifestTemplate {
    fn default() -> ManifestTemplate {
        ManifestTemplate {
            text: DEFAULT_MANIFEST_TEMPLATE.to_owned(),
            parts: vec![
                Part::Dir,
                Part::Lit("/".to_owned()),
                Part::Stem,
                Part::Lit(".json".to_owned()),
            ],
        }
    }
}

impl ManifestTemplate {
    /// Parses a manifest template, see the type's documentation.
    pub fn parse(text: &str) -> Result<ManifestTemplate, RecipeError> {
        let parts = MANIFESTS
            .parse(text)
            .map_err(|expected| RecipeError::ManifestTemplate {
                template: text.to_owned(),
                expected,
            })?;
        Ok(ManifestTemplate {
            text: text.to_owned(),
            parts,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub(crate) fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The manifest key of the source `stem` whose outputs go to `dir`.
    pub(crate) fn render(&self, dir: &str, stem: &str) -> String {
        render_parts(&self.parts, &Values::source(dir, stem))
    }
}

/// The key grammar's placeholders, by the name a template writes in
/// braces. A new placeholder joins here and in [`Part`], then in
/// [`Values`] (what it renders from), in each [`Grammar`] that allows it
/// and in the recursion guard's reader (`guard::readings`: what it may
/// match), which the fuzz targets check against the rendered keys.
const PLACEHOLDERS: &[(&str, Part)] = &[
    ("dir", Part::Dir),
    ("stem", Part::Stem),
    ("width", Part::Width),
    ("height", Part::Height),
    ("ext", Part::Ext),
];

/// What a placeholder renders from: the source's output directory and
/// stem, and the output's size and extension (0 and empty for a key that
/// has none, a manifest's).
pub(crate) struct Values<'a> {
    pub(crate) dir: &'a str,
    pub(crate) stem: &'a str,
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) ext: &'a str,
}

impl<'a> Values<'a> {
    /// The values that come from the source alone.
    pub(crate) fn source(dir: &'a str, stem: &'a str) -> Values<'a> {
        Values {
            dir,
            stem,
            width: 0,
            height: 0,
            ext: "",
        }
    }
}

/// The rules of one kind of template: which placeholders it may hold,
/// which exactly once and which at most once, and how it must end. Every
/// template starts with `{dir}/`, so its keys stay under their directory.
/// Each placeholder appears in one place only: the recursion guard
/// recognises outputs by matching keys against the template, which is only
/// sound when every value appears once (a second `{dir}` let an output
/// pass for a source; found by the `recipe` fuzz target).
struct Grammar {
    /// The placeholders allowed, and what is expected when another is used.
    allowed: &'static [Part],
    unknown: &'static str,
    /// Exactly once each, and at most once each; what is expected otherwise.
    once: &'static [Part],
    at_most_once: &'static [Part],
    counts: &'static str,
    /// How the template must end, and what is expected otherwise.
    ends: fn(&[Part]) -> bool,
    ending: &'static str,
}

/// Variant keys: `{dir}`, `{stem}`, `{width}` and `{ext}` once each,
/// `{height}` at most once, ending in `.{ext}`, so that different widths
/// and formats never collide and a variant has an image's extension.
const VARIANTS: Grammar = Grammar {
    allowed: &[Part::Dir, Part::Stem, Part::Width, Part::Height, Part::Ext],
    unknown: "only the placeholders {dir} {stem} {width} {height} {ext}",
    once: &[Part::Dir, Part::Stem, Part::Width, Part::Ext],
    at_most_once: &[Part::Height],
    counts: "a template with {dir}, {stem}, {width} and {ext} once each and {height} at most once",
    ends: |parts| matches!(parts, [.., Part::Lit(l), Part::Ext] if l.ends_with('.')),
    ending: "a template ending in `.{ext}`",
};

/// Manifest keys: `{dir}` and `{stem}` once each, ending in `.json` after
/// something (`{dir}/.json` alone would be a hidden file named by no
/// source), so a manifest is never a source nor a variant.
const MANIFESTS: Grammar = Grammar {
    allowed: &[Part::Dir, Part::Stem],
    unknown: "only the placeholders {dir} and {stem}",
    once: &[Part::Dir, Part::Stem],
    at_most_once: &[],
    counts: "a template with {dir} and {stem} once each",
    ends: |parts| matches!(parts, [.., Part::Lit(l)] if l.ends_with(".json")),
    ending: "a template ending in `.json`",
};

impl Grammar {
    /// Parses `text` under these rules; `Err` says what is expected.
    fn parse(&self, text: &str) -> Result<Vec<Part>, &'static str> {
        let parts = split(text).map_err(|e| match e {
            Split::Unknown => self.unknown,
            Split::Bad(why) => why,
        })?;
        if parts
            .iter()
            .any(|p| !matches!(p, Part::Lit(_)) && !self.allowed.contains(p))
        {
            return Err(self.unknown);
        }
        if !matches!(parts.as_slice(), [Part::Dir, Part::Lit(l), ..] if l.starts_with('/')) {
            return Err("a template starting with `{dir}/`");
        }
        if !(self.ends)(&parts) {
            return Err(self.ending);
        }
        let count = |p: &Part| parts.iter().filter(|q| *q == p).count();
        if self.once.iter().any(|p| count(p) != 1) || self.at_most_once.iter().any(|p| count(p) > 1) {
            return Err(self.counts);
        }
        check_literals(&parts)?;
        Ok(parts)
    }
}

/// Segments wholly inside a literal (between two slashes) must be real
/// names, or outputs could climb out of `{dir}`.
fn check_literals(parts: &[Part]) -> Result<(), &'static str> {
    for p in parts {
        if let Part::Lit(l) = p {
            let inner: Vec<&str> = l.split('/').collect();
            if inner.len() > 2
                && inner[1..inner.len() - 1]
                    .iter()
                    .any(|s| s.is_empty() || *s == "." || *s == "..")
            {
                return Err("no empty, `.` or `..` path segments");
            }
            if l.contains('\0') || l.contains("//") {
                return Err("no empty path segments");
            }
        }
    }
    Ok(())
}

/// Why a template does not split into parts.
enum Split {
    /// A placeholder the grammar does not know.
    Unknown,
    /// Unbalanced braces: what is expected instead.
    Bad(&'static str),
}

/// Splits a template into literals and placeholders.
fn split(text: &str) -> Result<Vec<Part>, Split> {
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('{') {
            let (name, tail) = after
                .split_once('}')
                .ok_or(Split::Bad("placeholders closed with `}`"))?;
            let (_, part) = PLACEHOLDERS
                .iter()
                .find(|(n, _)| *n == name)
                .ok_or(Split::Unknown)?;
            parts.push(part.clone());
            rest = tail;
        } else {
            let end = rest.find(['{', '}']).unwrap_or(rest.len());
            if rest[end..].starts_with('}') {
                return Err(Split::Bad("placeholders opened with `{`"));
            }
            parts.push(Part::Lit(rest[..end].to_owned()));
            rest = &rest[end..];
        }
    }
    Ok(parts)
}

/// The key `parts` render to. A literal starting with `/` follows `{dir}`
/// (every grammar says so); it is dropped when the directory is empty.
fn render_parts(parts: &[Part], v: &Values<'_>) -> String {
    let mut out = String::new();
    let mut skip_slash = false;
    for p in parts {
        match p {
            Part::Lit(l) => {
                out.push_str(if skip_slash {
                    l.strip_prefix('/').unwrap_or(l)
                } else {
                    l
                });
                skip_slash = false;
            }
            Part::Dir => {
                out.push_str(v.dir);
                skip_slash = v.dir.is_empty();
            }
            Part::Stem => out.push_str(v.stem),
            Part::Width => out.push_str(&v.width.to_string()),
            Part::Height => out.push_str(&v.height.to_string()),
            Part::Ext => out.push_str(v.ext),
        }
    }
    out
}
