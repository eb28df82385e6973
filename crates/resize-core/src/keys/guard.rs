//! The per-key recursion guard: whether a key has the shape of one of a
//! recipe's outputs, found by matching it against the template.

use std::ops::ControlFlow;

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
        readings(parts, key, self, &mut Taken::default(), &mut |_| {
            ControlFlow::Break(())
        })
        .is_break()
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
/// `exts`: the readings [`Shape::matches`] looks for, with what each
/// placeholder took.
pub(crate) fn parses(parts: &[Part], key: &str, exts: &[&'static str]) -> Vec<Parse> {
    let shape = Shape {
        exts: exts.to_vec(),
        widths: None,
    };
    let mut found = Vec::new();
    let _ = readings(parts, key, &shape, &mut Taken::default(), &mut |taken| {
        if let (Some(width), true) = (taken.width, taken.fits) {
            found.push(Parse {
                dir: taken.dir.to_owned(),
                stem: taken.stem.to_owned(),
                width,
            });
        }
        ControlFlow::Continue(())
    });
    found.dedup();
    found
}

/// What the placeholders took in one reading so far.
#[derive(Clone)]
struct Taken<'k> {
    dir: &'k str,
    stem: &'k str,
    /// The width, when the digits fit a `u32`.
    width: Option<u32>,
    /// Whether every number taken fits a `u32` (a rendered key's do).
    fits: bool,
}

impl Default for Taken<'_> {
    fn default() -> Self {
        Taken {
            dir: "",
            stem: "",
            width: None,
            fits: true,
        }
    }
}

/// The one reader of the key grammar: every way `s` reads as rendered
/// from `parts`, each placeholder matching what a template could have put
/// there (a width among `shape.widths` when given, an extension among
/// `shape.exts`), handed to `found` with what the placeholders took, until
/// `found` breaks. Backtracking; keys are at most 1 KiB and templates have
/// a handful of placeholders, so the search stays small.
fn readings<'k>(
    parts: &[Part],
    s: &'k str,
    shape: &Shape,
    taken: &mut Taken<'k>,
    found: &mut dyn FnMut(&Taken<'k>) -> ControlFlow<()>,
) -> ControlFlow<()> {
    let Some((first, rest)) = parts.split_first() else {
        return if s.is_empty() {
            found(taken)
        } else {
            ControlFlow::Continue(())
        };
    };
    match first {
        Part::Lit(l) => match s.strip_prefix(l.as_str()) {
            Some(r) => readings(rest, r, shape, taken, found),
            None => ControlFlow::Continue(()),
        },
        Part::Dir => {
            // An empty dir drops the '/' that starts the next literal.
            if let Some((Part::Lit(l), after)) = rest.split_first() {
                if let Some(tail) = s.strip_prefix(l.strip_prefix('/').unwrap_or(l)) {
                    taken.dir = "";
                    readings(after, tail, shape, taken, found)?;
                }
            }
            for (i, _) in s.match_indices('/').filter(|&(i, _)| i > 0) {
                taken.dir = &s[..i];
                readings(rest, &s[i..], shape, taken, found)?;
            }
            ControlFlow::Continue(())
        }
        Part::Stem => {
            let limit = s.find('/').unwrap_or(s.len());
            for i in (1..=limit).filter(|&i| s.is_char_boundary(i)) {
                taken.stem = &s[..i];
                readings(rest, &s[i..], shape, taken, found)?;
            }
            ControlFlow::Continue(())
        }
        Part::Width | Part::Height => {
            if s.starts_with('0') {
                return ControlFlow::Continue(());
            }
            // Up to 10 digits: any u32. Capping at 5 let a key with a taller
            // output height pass for a source (found by the `keys` fuzz target).
            let digits = s.bytes().take_while(u8::is_ascii_digit).count();
            for n in 1..=digits.min(10) {
                let value = s[..n].parse::<u32>().ok();
                let before = (taken.width, taken.fits);
                if matches!(first, Part::Width) {
                    if let Some(ws) = &shape.widths {
                        if !value.is_some_and(|v| ws.contains(&v)) {
                            continue;
                        }
                    }
                    taken.width = value;
                }
                taken.fits &= value.is_some();
                let went = readings(rest, &s[n..], shape, taken, found);
                (taken.width, taken.fits) = before;
                went?;
            }
            ControlFlow::Continue(())
        }
        Part::Ext => {
            for e in &shape.exts {
                if let Some(r) = s.strip_prefix(e) {
                    readings(rest, r, shape, taken, found)?;
                }
            }
            ControlFlow::Continue(())
        }
    }
}
