//! `--html PATH`: one static page showing the run's photos, each as a
//! `<picture>` made from its manifest — a `<source>` per extra format, an
//! `<img>` with `srcset`, `sizes`, `width` and `height` (nothing shifts as
//! images load), lazy loading, and the manifest's placeholder (dominant
//! colour and blurred image) behind it until the photo arrives. No
//! JavaScript: it is the markup a site would write, checked in a real
//! browser by the tests.

use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context};
use resize_core::adapter::url_path;
use serde::Deserialize;

/// The part of a manifest the page uses (the schema is
/// `fixtures/manifest.schema.json`; unknown fields are ignored, so a
/// newer manifest still shows).
#[derive(Debug, Deserialize)]
pub struct PageManifest {
    pub source: Source,
    pub variants: Vec<Entry>,
    pub placeholder: Placeholder,
}

#[derive(Debug, Deserialize)]
pub struct Source {
    pub key: String,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Deserialize)]
pub struct Entry {
    pub key: String,
    pub format: String,
    #[serde(rename = "type")]
    pub content_type: String,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
}

#[derive(Debug, Deserialize)]
pub struct Placeholder {
    pub color: String,
    pub data_url: String,
}

/// The layout width the page gives photos, and the `sizes` that says so:
/// a 960 px column (photos edge to edge, captions padded), the whole
/// viewport below it. At 400 px and DPR 1 a browser wants 400 device
/// pixels (the 720 px variant of the default widths); at 1400 px and
/// DPR 2, 1920 (the 2200 px one).
const COLUMN: u32 = 960;
const SIZES: &str = "(min-width: 960px) 960px, 100vw";

/// Checks `--html-base`: it is put before every output key inside
/// `srcset`, where whitespace or a comma would split a candidate.
pub fn parse_base(text: &str) -> anyhow::Result<String> {
    if text.is_empty() {
        bail!("--html-base is empty: give a URL such as https://cdn.example.com/ or a relative path such as ../out/");
    }
    if let Some(c) = text
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || *c == ',')
    {
        bail!(
            "--html-base `{text}` contains {}: it would split srcset candidates; percent-encode it",
            match c {
                ',' => "a comma".to_owned(),
                c => format!("{c:?}"),
            }
        );
    }
    if text.contains(['"', '<', '>', '\'', '#', '?']) {
        bail!(
            "--html-base `{text}` contains one of \" ' < > # ?: give the folder URL the output keys follow"
        );
    }
    // A scheme is allowed only when it is http or https: `javascript:`,
    // `data:` and the like would turn every image link into code or data.
    if let Some((scheme, _)) = text.split_once(':') {
        let is_scheme = !scheme.is_empty()
            && !scheme.contains('/')
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if is_scheme && !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            bail!(
                "--html-base `{text}` is a `{scheme}:` URL: give an http:// or https:// URL or a relative path"
            );
        }
    }
    Ok(if text.ends_with('/') {
        text.to_owned()
    } else {
        format!("{text}/")
    })
}

/// The base URL of a local output directory as seen from the page: the
/// relative path from the page's folder to `out`, percent-encoded, ending
/// in `/` (or empty when they are the same folder). Both must exist.
pub fn relative_base(page: &Path, out: &Path) -> anyhow::Result<String> {
    let page_dir = page
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let from = page_dir
        .canonicalize()
        .with_context(|| format!("cannot find the page's folder {}", page_dir.display()))?;
    let to = out
        .canonicalize()
        .with_context(|| format!("cannot find the output directory {}", out.display()))?;
    let from: Vec<Component> = from.components().collect();
    let to: Vec<Component> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".to_owned(); from.len() - common];
    for c in &to[common..] {
        let Some(name) = c.as_os_str().to_str() else {
            bail!(
                "the output directory {} is not UTF-8: give --html-base",
                out.display()
            );
        };
        parts.push(url_path(name));
    }
    let mut base = parts.join("/");
    if !base.is_empty() {
        base.push('/');
    }
    Ok(base)
}

/// The page: one `<figure>` per manifest, in the order given.
pub fn page(manifests: &[PageManifest], base: &str) -> String {
    let mut o = String::new();
    o.push_str(concat!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
        "<meta name=\"generator\" content=\"resize\">\n<title>resize preview</title>\n<style>\n",
    ));
    let _ = write!(
        o,
        "body {{ font: 14px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: {COLUMN}px; }}\n\
         h1, figcaption {{ padding: 0 1ex; }}\n\
         figure {{ margin: 2em 0; }}\n\
         img {{ display: block; max-width: 100%; height: auto; background-size: cover; background-repeat: no-repeat; }}\n\
         table {{ border-collapse: collapse; margin-top: .5em; }}\n\
         td, th {{ padding: 0 1em 0 0; text-align: left; }}\n\
         td.n {{ text-align: right; }}\n"
    );
    o.push_str("</style>\n</head>\n<body>\n");
    let count = manifests.len();
    let _ = writeln!(o, "<h1>{count} photo{}</h1>", if count == 1 { "" } else { "s" });
    for (i, m) in manifests.iter().enumerate() {
        // The first photo is what a visitor sees first: fetched at once,
        // ahead of the rest; the others when they come near the viewport.
        let loading = if i == 0 {
            "loading=\"eager\" fetchpriority=\"high\""
        } else {
            "loading=\"lazy\""
        };
        figure(&mut o, m, base, loading);
    }
    o.push_str("</body>\n</html>\n");
    o
}

fn figure(o: &mut String, m: &PageManifest, base: &str, loading: &str) {
    let url = |key: &str| format!("{base}{}", url_path(key));
    let srcset = |format: &str| -> String {
        let mut of: Vec<&Entry> = m.variants.iter().filter(|v| v.format == format).collect();
        of.sort_by_key(|v| v.width);
        of.iter()
            .map(|v| format!("{} {}w", url(&v.key), v.width))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut formats: Vec<&str> = Vec::new();
    for v in &m.variants {
        if !formats.contains(&v.format.as_str()) {
            formats.push(&v.format);
        }
    }
    // JPEG is what every browser shows: the `<img>`; the others are
    // `<source>`s the browser takes first when it supports their type.
    let fallback = if formats.contains(&"jpeg") {
        "jpeg"
    } else {
        formats.first().copied().unwrap_or("jpeg")
    };
    let mut img: Vec<&Entry> = m.variants.iter().filter(|v| v.format == fallback).collect();
    img.sort_by_key(|v| v.width);
    // `src` for browsers without srcset: the first at least as wide as
    // the column's usual need on a phone, else the widest.
    let (Some(src), Some(widest)) = (img.iter().find(|v| v.width >= 720).or(img.last()), img.last()) else {
        return;
    };
    // The box: the widest variant's size (never shown larger than the
    // largest image there is; the column narrows it), its height from the
    // source's shape, which a rounded variant height only approximates (a
    // 4000×3 panorama's 720 px variant is 720×1).
    let box_height = (u64::from(widest.width) * u64::from(m.source.height) + u64::from(m.source.width) / 2)
        / u64::from(m.source.width.max(1));
    let box_height = box_height.max(1);
    let placeholder = placeholder_style(m);
    o.push_str("<figure>\n<picture>\n");
    for f in formats.iter().filter(|f| **f != fallback) {
        let Some(kind) = m
            .variants
            .iter()
            .find(|v| v.format == *f)
            .map(|v| v.content_type.as_str())
        else {
            continue;
        };
        let _ = writeln!(
            o,
            "<source type=\"{}\" srcset=\"{}\" sizes=\"{SIZES}\">",
            attr(kind),
            attr(&srcset(f))
        );
    }
    let _ = writeln!(
        o,
        "<img src=\"{}\" srcset=\"{}\" sizes=\"{SIZES}\" width=\"{}\" height=\"{}\" {loading} \
         decoding=\"async\" alt=\"{}\"{placeholder}>",
        attr(&url(&src.key)),
        attr(&srcset(fallback)),
        widest.width,
        box_height,
        attr(&m.source.key),
    );
    o.push_str("</picture>\n");
    caption(o, m, &url);
    o.push_str("</figure>\n");
}

/// The placeholder as the `<img>`'s style attribute. It goes into CSS
/// inside an attribute, where the HTML escapes of `attr` are undone before
/// CSS reads it: only values of the shapes the schema allows are used.
fn placeholder_style(m: &PageManifest) -> String {
    if is_colour(&m.placeholder.color) && is_png_data_url(&m.placeholder.data_url) {
        format!(
            " style=\"background-color: {}; background-image: url('{}')\"",
            m.placeholder.color, m.placeholder.data_url
        )
    } else {
        String::new()
    }
}

/// The figure's caption: the source, its size and a table of its variants.
fn caption(o: &mut String, m: &PageManifest, url: &dyn Fn(&str) -> String) {
    o.push_str("<figcaption>\n");
    let _ = writeln!(
        o,
        "<strong>{}</strong> {}×{}\n<table>\n<tr><th>variant</th><th>size</th><th>bytes</th></tr>",
        text(&m.source.key),
        m.source.width,
        m.source.height
    );
    for v in &m.variants {
        let _ = writeln!(
            o,
            "<tr><td><a href=\"{}\">{}</a></td><td>{}×{}</td><td class=\"n\">{}</td></tr>",
            attr(&url(&v.key)),
            text(&v.key),
            v.width,
            v.height,
            v.bytes
        );
    }
    o.push_str("</table>\n</figcaption>\n");
}

/// `#rrggbb`, lower case.
fn is_colour(s: &str) -> bool {
    s.len() == 7
        && s.starts_with('#')
        && s[1..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `data:image/png;base64,` and base64 characters only.
fn is_png_data_url(s: &str) -> bool {
    s.strip_prefix("data:image/png;base64,").is_some_and(|b64| {
        !b64.is_empty()
            && b64
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
    })
}

/// Text for an HTML attribute value in double quotes.
fn attr(s: &str) -> String {
    text(s).replace('"', "&quot;").replace('\'', "&#39;")
}

/// Text for HTML content.
fn text(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Where the page goes: refuses a path that is a directory.
pub fn page_path(path: &Path) -> anyhow::Result<PathBuf> {
    if path.is_dir() || path.as_os_str().to_string_lossy().ends_with('/') {
        let shown = path.display().to_string();
        bail!(
            "--html {shown} is a directory: give the page's file name, e.g. {}/index.html",
            shown.trim_end_matches('/')
        );
    }
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bases() {
        #[track_caller]
        fn check(text: &str, expect: Result<&str, &str>) {
            let got = parse_base(text).map_err(|e| e.to_string());
            assert_eq!(got.as_deref(), expect.map_err(str::to_owned).as_deref(), "{text}");
        }
        check(
            "https://cdn.example.com/site",
            Ok("https://cdn.example.com/site/"),
        );
        check("../out/", Ok("../out/"));
        check("", Err("--html-base is empty: give a URL such as https://cdn.example.com/ or a relative path such as ../out/"));
        check("https://x/a b", Err("--html-base `https://x/a b` contains ' ': it would split srcset candidates; percent-encode it"));
        check("https://x/a,b", Err("--html-base `https://x/a,b` contains a comma: it would split srcset candidates; percent-encode it"));
        check("https://x/\"><script>", Err("--html-base `https://x/\"><script>` contains one of \" ' < > # ?: give the folder URL the output keys follow"));
    }

    #[test]
    fn placeholders_that_could_leave_css_are_dropped() {
        assert!(
            is_colour("#1e5ac8") && !is_colour("#1E5AC8") && !is_colour("red;x:y") && !is_colour("#12345")
        );
        assert!(is_png_data_url("data:image/png;base64,iVBORw0KGgo="));
        assert!(!is_png_data_url("data:image/png;base64,iVB')x"));
        assert!(!is_png_data_url("data:image/svg+xml;base64,PHN2Zz4="));
        assert!(!is_png_data_url("data:image/png;base64,"));
    }

    #[test]
    fn escaping() {
        assert_eq!(attr("a\"b'<c>&"), "a&quot;b&#39;&lt;c&gt;&amp;");
        assert_eq!(text("<b>&"), "&lt;b&gt;&amp;");
    }
}
