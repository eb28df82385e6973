//! Prefix replacements (`original:resized`) and the recipe-level recursion
//! guard: no destination prefix may overlap a source prefix.

use std::fmt;

use crate::values::RecipeError;

/// A `from:to` pair of leading directory prefixes.
///
/// ```
/// use resize_core::Replacement;
/// let r = Replacement::parse("photos/original:photos/resized")?;
/// assert_eq!((r.from(), r.to()), ("photos/original".to_owned(), "photos/resized".to_owned()));
/// assert!(Replacement::parse("original/../x:y").is_err());
/// # Ok::<(), resize_core::RecipeError>(())
/// ```
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
        let bad = || RecipeError::Replacement {
            pair: pair.to_owned(),
            expected: "from:to with non-empty prefixes, e.g. original:resized",
        };
        let (from, to) = pair.split_once(':').ok_or_else(bad)?;
        match (segments(from), segments(to)) {
            (Some(from), Some(to)) => Ok(Replacement { from, to }),
            _ => Err(bad()),
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

    /// The source prefix's segments.
    pub(crate) fn source_segments(&self) -> &[String] {
        &self.from
    }

    /// The destination prefix's segments.
    pub(crate) fn destination_segments(&self) -> &[String] {
        &self.to
    }
}

impl fmt::Display for Replacement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.from(), self.to())
    }
}

fn segments(s: &str) -> Option<Vec<String>> {
    let s = s.trim().trim_matches('/');
    if s.is_empty() {
        return None;
    }
    s.split('/')
        .map(|seg| {
            (!seg.is_empty() && seg != "." && seg != ".." && !seg.contains('\0')).then(|| seg.to_owned())
        })
        .collect()
}

/// Refuses replacements whose outputs would be picked up again as sources:
/// a destination prefix equal to, inside, or containing any source prefix.
pub(crate) fn refuse_loops(replacements: &[Replacement]) -> Result<(), RecipeError> {
    for r in replacements {
        for s in replacements {
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
    Ok(())
}

/// Whether `prefix` is a leading run of whole segments of `of`.
pub(crate) fn is_prefix(prefix: &[String], of: &[String]) -> bool {
    of.len() >= prefix.len() && of[..prefix.len()] == *prefix
}
