//! What a web page needs to use a source's variants: the manifest
//! document ([`Manifest`], written next to the variants when the recipe
//! asks for it), `srcset` strings whose URLs survive any key, and paths
//! from a manifest to its variants.
//!
//! The document is written by hand rather than through serde: the core
//! keeps its dependencies to codecs and arithmetic (`cargo xtask ci`
//! refuses serde in it), and the writer's fixed field order is also what
//! [`manifest_owner`] recognises a manifest of ours by. Its shape is
//! `fixtures/manifest.schema.json`, which the tests validate every manifest
//! against.

use std::fmt::Write as _;

use crate::pixels::Placeholders;
use crate::recipe::{Fingerprint, MANIFEST_VERSION};
use crate::values::Format;

/// The first bytes of every manifest this crate writes, whatever its
/// version: how a manifest is told from any other JSON at its key.
const SIGNATURE: &str = "{\n  \"generator\": \"resize\",\n";

/// A source's manifest: what it was made from, every variant, a `srcset`
/// per format and the placeholders. [`Manifest::to_json`] writes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The manifest's own key (variant paths are relative to its folder).
    pub key: String,
    /// The source's key.
    pub source: String,
    /// The source's version (S3 ETag, or a file's content MD5).
    pub version: Option<String>,
    /// The source's upright width.
    pub width: u32,
    /// The source's upright height.
    pub height: u32,
    /// Every variant, sizes ascending, formats in recipe order.
    pub variants: Vec<ManifestEntry>,
    /// The source's placeholders.
    pub placeholders: Placeholders,
}

/// One variant in a [`Manifest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestEntry {
    /// Its key, relative to the bucket or output root.
    pub key: String,
    /// Its encoding.
    pub format: Format,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Encoded size.
    pub bytes: u64,
    /// The [`Fingerprint`] of the recipe it was made with, for its format.
    pub fingerprint: Fingerprint,
}

impl Manifest {
    /// The document, as pretty-printed JSON (two-space indents, one
    /// variant per line), ending in a newline.
    ///
    /// ```
    /// use resize_core::{Format, Manifest, ManifestEntry, Recipe};
    /// # let placeholders = resize_core::stages::placeholders(&[9, 9, 9, 255], 1, 1)?;
    /// let recipe = Recipe::builder().build()?;
    /// let manifest = Manifest {
    ///     key: "resized/trips/a.json".into(),
    ///     source: "original/trips/a.jpg".into(),
    ///     version: Some("9e107d9d372bb6826bd81d3542a419d6".into()),
    ///     width: 4000,
    ///     height: 3000,
    ///     variants: vec![ManifestEntry {
    ///         key: "resized/trips/a-360.jpg".into(),
    ///         format: Format::Jpeg,
    ///         width: 360,
    ///         height: 270,
    ///         bytes: 20480,
    ///         fingerprint: recipe.fingerprint(Format::Jpeg),
    ///     }],
    ///     placeholders,
    /// };
    /// let json = manifest.to_json();
    /// assert!(json.contains(r#""srcset": {"jpeg": "a-360.jpg 360w"}"#));
    /// assert_eq!(resize_core::adapter::manifest_owner(json.as_bytes()), Some("original/trips/a.jpg".into()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_json(&self) -> String {
        let mut o = String::from(SIGNATURE);
        // Writing to a String cannot fail.
        let _ = self.write_body(&mut o);
        o
    }

    fn write_body(&self, o: &mut String) -> std::fmt::Result {
        writeln!(o, "  \"version\": {MANIFEST_VERSION},")?;
        writeln!(o, "  \"source\": {{")?;
        writeln!(o, "    \"key\": {},", string(&self.source))?;
        match &self.version {
            Some(v) => writeln!(o, "    \"version\": {},", string(v))?,
            None => writeln!(o, "    \"version\": null,")?,
        }
        writeln!(o, "    \"width\": {},", self.width)?;
        writeln!(o, "    \"height\": {}", self.height)?;
        writeln!(o, "  }},")?;
        writeln!(
            o,
            "  \"aspect_ratio\": {},",
            aspect_ratio(self.width, self.height)
        )?;
        writeln!(o, "  \"variants\": [")?;
        for (i, v) in self.variants.iter().enumerate() {
            let relative = relative_key(&self.key, &v.key);
            write!(
                o,
                "    {{\"key\": {}, \"relative\": {}, \"url\": {}, \"format\": {}, \"type\": {}, \
                 \"width\": {}, \"height\": {}, \"bytes\": {}, \"fingerprint\": \"{}\"}}",
                string(&v.key),
                string(&relative),
                string(&url_path(&relative)),
                string(v.format.name()),
                string(v.format.content_type()),
                v.width,
                v.height,
                v.bytes,
                v.fingerprint,
            )?;
            o.push_str(if i + 1 < self.variants.len() { ",\n" } else { "\n" });
        }
        writeln!(o, "  ],")?;
        let mut formats: Vec<Format> = Vec::new();
        for v in &self.variants {
            if !formats.contains(&v.format) {
                formats.push(v.format);
            }
        }
        let sets: Vec<String> = formats
            .iter()
            .map(|&f| {
                let candidates: Vec<(String, u32)> = self
                    .variants
                    .iter()
                    .filter(|v| v.format == f)
                    .map(|v| (relative_key(&self.key, &v.key), v.width))
                    .collect();
                let borrowed: Vec<(&str, u32)> = candidates.iter().map(|(k, w)| (k.as_str(), *w)).collect();
                format!("{}: {}", string(f.name()), string(&srcset(&borrowed)))
            })
            .collect();
        writeln!(o, "  \"srcset\": {{{}}},", sets.join(", "))?;
        let p = &self.placeholders;
        writeln!(o, "  \"placeholder\": {{")?;
        writeln!(o, "    \"thumbhash\": {},", string(&p.thumbhash))?;
        writeln!(o, "    \"color\": {},", string(&p.dominant))?;
        writeln!(o, "    \"data_url\": {}", string(&p.data_url))?;
        writeln!(o, "  }}")?;
        writeln!(o, "}}")
    }
}

/// Who a stored JSON document belongs to: `Some(source key)` when it is a
/// manifest this crate wrote (of any version), `None` for any other
/// document, which a job never overwrites. Reads only the fixed head the
/// writer always puts first.
pub fn manifest_owner(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    let rest = text.strip_prefix(SIGNATURE)?;
    // `"version": N,` then `"source": {` then `"key": "…"`.
    let (_, rest) = rest.split_once("\n  \"source\": {\n    \"key\": ")?;
    read_string(rest)
}

/// `width / height` to six decimals, without trailing zeros (a JSON number
/// a page can put in CSS `aspect-ratio`).
fn aspect_ratio(width: u32, height: u32) -> String {
    let ratio = f64::from(width) / f64::from(height.max(1));
    let text = format!("{ratio:.6}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// A JSON string literal: `"` and `\\` escaped, control characters as
/// `\uXXXX`, everything else as it is (UTF-8).
fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Reads back a JSON string literal as [`string`] writes it (the text
/// after its opening quote is `s` without it): `None` when it is not one.
fn read_string(s: &str) -> Option<String> {
    let mut chars = s.strip_prefix('"')?.chars();
    let mut out = String::new();
    loop {
        match chars.next()? {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                '"' => out.push('"'),
                '\\' => out.push('\\'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                _ => return None,
            },
            c => out.push(c),
        }
    }
}

/// The path from the folder of `from` (a key) to `to` (a key of the same
/// store), `/`-separated: `a-360.jpg` beside it, `360/a.jpg` below it,
/// `../a-360.jpg` from a subfolder.
///
/// ```
/// use resize_core::adapter::relative_key;
/// assert_eq!(relative_key("resized/trips/a.json", "resized/trips/a-360.jpg"), "a-360.jpg");
/// assert_eq!(relative_key("resized/trips/a.json", "resized/trips/360/a.jpg"), "360/a.jpg");
/// assert_eq!(relative_key("resized/manifests/trips/a.json", "resized/trips/a-360.jpg"), "../../trips/a-360.jpg");
/// assert_eq!(relative_key("a.json", "a-360.jpg"), "a-360.jpg");
/// ```
pub fn relative_key(from: &str, to: &str) -> String {
    let from_dir: Vec<&str> = match from.rsplit_once('/') {
        Some((dir, _)) => dir.split('/').collect(),
        None => Vec::new(),
    };
    let to_parts: Vec<&str> = to.split('/').collect();
    let (to_dir, to_file) = to_parts.split_at(to_parts.len() - 1);
    let common = from_dir.iter().zip(to_dir).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<&str> = vec![".."; from_dir.len() - common];
    parts.extend_from_slice(&to_dir[common..]);
    parts.extend_from_slice(to_file);
    parts.join("/")
}

/// `key` as a URL path: every byte but the unreserved characters
/// (`A–Z a–z 0–9 - . _ ~`) and `/` percent-encoded, UTF-8 first. A space
/// or a comma would split a `srcset` candidate; `%`, `#` and `?` would
/// change what a URL names; `+` reads as a space to S3's website
/// endpoints.
///
/// ```
/// use resize_core::adapter::url_path;
/// assert_eq!(url_path("trips/summer 2024/a+b,c-360.jpg"), "trips/summer%202024/a%2Bb%2Cc-360.jpg");
/// assert_eq!(url_path("100%/#1?.jpg"), "100%25/%231%3F.jpg");
/// assert_eq!(url_path("naïve.webp"), "na%C3%AFve.webp");
/// ```
pub fn url_path(key: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(key.len());
    for &b in key.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
    out
}

/// A `srcset` value: each `(URL path, width)` as `url Nw`, narrowest
/// first, the paths encoded by [`url_path`].
///
/// ```
/// use resize_core::adapter::srcset;
/// assert_eq!(srcset(&[("a b-720.jpg", 720), ("a b-360.jpg", 360)]), "a%20b-360.jpg 360w, a%20b-720.jpg 720w");
/// ```
pub fn srcset(candidates: &[(&str, u32)]) -> String {
    let mut sorted: Vec<&(&str, u32)> = candidates.iter().collect();
    sorted.sort_by_key(|(path, width)| (*width, *path));
    sorted
        .iter()
        .map(|(path, width)| format!("{} {width}w", url_path(path)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The decoding a browser applies to a URL path, for the property.
    fn decode(path: &str) -> Vec<u8> {
        let bytes = path.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ascii");
                out.push(u8::from_str_radix(hex, 16).expect("hex"));
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        out
    }

    proptest! {
        /// Any key: the path has no character that splits a candidate or
        /// changes what the URL names, and decodes back to the key.
        #[test]
        fn url_paths_round_trip_and_never_split(key in "\\PC{0,40}") {
            let path = url_path(&key);
            prop_assert!(path.bytes().all(|b| b.is_ascii_graphic()));
            prop_assert!(!path.contains([' ', ',', '#', '?', '+']));
            prop_assert_eq!(decode(&path), key.as_bytes());
            let set = srcset(&[(&key, 360), (&key, 96)]);
            prop_assert_eq!(set.split(", ").count(), 2);
            let first = format!("{} 96w", path);
            prop_assert!(set.starts_with(&first));
        }
    }
}
