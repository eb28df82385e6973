//! The per-key recursion guard: whether a key has the shape of one of a
//! recipe's outputs, found by matching it against the template.

use super::template::Part;

/// What a recipe's outputs can look like beyond the template's literals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    /// The extensions of the recipe's formats.
    pub(crate) exts: Vec<&'static str>,
    /// The widths outputs can have, or `None` when any width is possible
    /// (upscale policy `source`: outputs at the source's width).
    pub(crate) widths: Option<Vec<u32>>,
}

impl Shape {
    /// Whether `key` could be rendered from `parts` for some source.
    pub(crate) fn matches(&self, parts: &[Part], key: &str) -> bool {
        match_parts(parts, key, self)
    }
}

/// Backtracking match of `s` against the template parts; placeholders match
/// what the template could have put there. Keys are at most 1 KiB and
/// templates have a handful of placeholders, so the search stays small.
fn match_parts(parts: &[Part], s: &str, shape: &Shape) -> bool {
    let Some((first, rest)) = parts.split_first() else {
        return s.is_empty();
    };
    match first {
        Part::Lit(l) => s
            .strip_prefix(l.as_str())
            .is_some_and(|r| match_parts(rest, r, shape)),
        Part::Dir => {
            // An empty dir drops the '/' that starts the next literal.
            if let Some((Part::Lit(l), after)) = rest.split_first() {
                if let Some(tail) = s.strip_prefix(l.strip_prefix('/').unwrap_or(l)) {
                    if match_parts(after, tail, shape) {
                        return true;
                    }
                }
            }
            s.match_indices('/')
                .any(|(i, _)| i > 0 && match_parts(rest, &s[i..], shape))
        }
        Part::Stem => {
            let limit = s.find('/').unwrap_or(s.len());
            (1..=limit)
                .filter(|&i| s.is_char_boundary(i))
                .any(|i| match_parts(rest, &s[i..], shape))
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
                let ok = match (first, &shape.widths) {
                    (Part::Width, Some(ws)) => num.parse().is_ok_and(|v: u32| ws.contains(&v)),
                    _ => true,
                };
                ok && match_parts(rest, &s[n..], shape)
            })
        }
        Part::Ext => shape
            .exts
            .iter()
            .any(|e| s.strip_prefix(e).is_some_and(|r| match_parts(rest, r, shape))),
    }
}

/// One way a key reads as an output of a template: the directory and stem
/// its source would have, and the width the key names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Parse {
    pub(crate) dir: String,
    pub(crate) stem: String,
    pub(crate) width: u32,
}

/// Every way `key` reads as an output of `parts` at any width, in one of
/// `exts`: what [`match_parts`] tries, with what each placeholder took.
pub(crate) fn parses(parts: &[Part], key: &str, exts: &[&'static str]) -> Vec<Parse> {
    let mut found = Vec::new();
    let mut taken = Taken::default();
    walk(parts, key, exts, &mut taken, &mut found);
    found.dedup();
    found
}

/// What the placeholders matched so far.
#[derive(Clone, Default)]
struct Taken<'k> {
    dir: &'k str,
    stem: &'k str,
    width: Option<u32>,
}

fn walk<'k>(
    parts: &[Part],
    s: &'k str,
    exts: &[&'static str],
    taken: &mut Taken<'k>,
    found: &mut Vec<Parse>,
) {
    let Some((first, rest)) = parts.split_first() else {
        if s.is_empty() {
            if let Some(width) = taken.width {
                found.push(Parse {
                    dir: taken.dir.to_owned(),
                    stem: taken.stem.to_owned(),
                    width,
                });
            }
        }
        return;
    };
    match first {
        Part::Lit(l) => {
            if let Some(r) = s.strip_prefix(l.as_str()) {
                walk(rest, r, exts, taken, found);
            }
        }
        Part::Dir => {
            // An empty dir drops the '/' that starts the next literal.
            if let Some((Part::Lit(l), after)) = rest.split_first() {
                if let Some(tail) = s.strip_prefix(l.strip_prefix('/').unwrap_or(l)) {
                    taken.dir = "";
                    walk(after, tail, exts, taken, found);
                }
            }
            for (i, _) in s.match_indices('/').filter(|&(i, _)| i > 0) {
                taken.dir = &s[..i];
                walk(rest, &s[i..], exts, taken, found);
            }
        }
        Part::Stem => {
            let limit = s.find('/').unwrap_or(s.len());
            for i in (1..=limit).filter(|&i| s.is_char_boundary(i)) {
                taken.stem = &s[..i];
                walk(rest, &s[i..], exts, taken, found);
            }
        }
        Part::Width | Part::Height => {
            if s.starts_with('0') {
                return;
            }
            let digits = s.bytes().take_while(u8::is_ascii_digit).count();
            for n in 1..=digits.min(10) {
                let Ok(value) = s[..n].parse::<u32>() else {
                    continue;
                };
                let before = taken.width;
                if matches!(first, Part::Width) {
                    taken.width = Some(value);
                }
                walk(rest, &s[n..], exts, taken, found);
                taken.width = before;
            }
        }
        Part::Ext => {
            for e in exts {
                if let Some(r) = s.strip_prefix(e) {
                    walk(rest, r, exts, taken, found);
                }
            }
        }
    }
}
