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
        let bad = |expected| RecipeError::Template {
            template: text.to_owned(),
            expected,
        };
        let parts = split(text).map_err(bad)?;
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
        check_literals(&parts).map_err(bad)?;
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
    pub(crate) fn render(&self, dir: &str, stem: &str, width: u32, height: u32, ext: &str) -> String {
        render_parts(&self.parts, dir, stem, width, height, ext)
    }

    /// The template rendered up to its first size or format placeholder:
    /// the longest prefix every output key of `dir`/`stem` starts with.
    pub(crate) fn prefix(&self, dir: &str, stem: &str) -> String {
        let cut = self
            .parts
            .iter()
            .position(|p| matches!(p, Part::Width | Part::Height | Part::Ext))
            .unwrap_or(self.parts.len());
        render_parts(&self.parts[..cut], dir, stem, 0, 0, "")
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
        let bad = |expected| RecipeError::ManifestTemplate {
            template: text.to_owned(),
            expected,
        };
        let parts = split(text).map_err(|why| {
            // `split` knows the variant template's placeholders; name ours.
            bad(if why.starts_with("only the placeholders") {
                "only the placeholders {dir} and {stem}"
            } else {
                why
            })
        })?;
        if parts
            .iter()
            .any(|p| matches!(p, Part::Width | Part::Height | Part::Ext))
        {
            return Err(bad("only the placeholders {dir} and {stem}"));
        }
        if !matches!(parts.as_slice(), [Part::Dir, Part::Lit(l), ..] if l.starts_with('/')) {
            return Err(bad("a template starting with `{dir}/`"));
        }
        // `.json` after something: `{dir}/.json` alone would be a hidden file
        // named by no source.
        if !matches!(parts.as_slice(), [.., Part::Lit(l)] if l.ends_with(".json")) {
            return Err(bad("a template ending in `.json`"));
        }
        let count = |p: &Part| parts.iter().filter(|q| *q == p).count();
        if count(&Part::Dir) != 1 || count(&Part::Stem) != 1 {
            return Err(bad("a template with {dir} and {stem} once each"));
        }
        check_literals(&parts).map_err(bad)?;
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
        render_parts(&self.parts, dir, stem, 0, 0, "")
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

/// Splits a template into literals and placeholders; `Err` says what is
/// expected instead.
fn split(text: &str) -> Result<Vec<Part>, &'static str> {
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('{') {
            let (name, tail) = after.split_once('}').ok_or("placeholders closed with `}`")?;
            parts.push(match name {
                "dir" => Part::Dir,
                "stem" => Part::Stem,
                "width" => Part::Width,
                "height" => Part::Height,
                "ext" => Part::Ext,
                _ => return Err("only the placeholders {dir} {stem} {width} {height} {ext}"),
            });
            rest = tail;
        } else {
            let end = rest.find(['{', '}']).unwrap_or(rest.len());
            if rest[end..].starts_with('}') {
                return Err("placeholders opened with `{`");
            }
            parts.push(Part::Lit(rest[..end].to_owned()));
            rest = &rest[end..];
        }
    }
    Ok(parts)
}

fn render_parts(parts: &[Part], dir: &str, stem: &str, width: u32, height: u32, ext: &str) -> String {
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
                out.push_str(dir);
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
