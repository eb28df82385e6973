//! Settings: environment-style `NAME=value` strings into a [`Recipe`]. The
//! only layer that speaks of environment variables; everything below takes
//! typed values. It never reads the environment itself: callers pass a
//! lookup (the CLI merges flags over the process environment, the Lambda reads its
//! configuration, tests pass a table).

use crate::keys::{ManifestTemplate, Replacement, Template};
use crate::recipe::{Recipe, RecipeBuilder};
use crate::values::{Format, Limits, Quality, RecipeError, Rgb, Upscale, Width, Widths};

/// One setting [`Recipe::from_lookup`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setting {
    /// The variable's name, e.g. `SIZES`.
    pub name: &'static str,
    /// What it means and its default, for help texts.
    pub meaning: &'static str,
}

/// Every setting [`Recipe::from_lookup`] reads, in the order adapters list
/// them. Adapters print this table in their help and map their own flags
/// onto these names.
pub const SETTINGS: &[Setting] = &[
    Setting {
        name: "SIZES",
        meaning: "output widths in px, comma-separated (default 360,720,1200,2200)",
    },
    Setting {
        name: "FORMATS",
        meaning: "output formats: jpeg, webp, png (default jpeg)",
    },
    Setting {
        name: "JPEG_QUALITY",
        meaning: "JPEG quality 1-100 (default 85)",
    },
    Setting {
        name: "WEBP_QUALITY",
        meaning: "lossy WebP quality 1-100 (default 80)",
    },
    Setting {
        name: "REPLACEMENTS",
        meaning: "from:to prefix pairs, comma-separated (default none)",
    },
    Setting {
        name: "KEY_TEMPLATE",
        meaning: "output key template (default {dir}/{stem}-{width}.{ext})",
    },
    Setting {
        name: "MANIFEST",
        meaning: "true | false: a JSON manifest per source listing its variants, srcset and placeholders (default false)",
    },
    Setting {
        name: "MANIFEST_TEMPLATE",
        meaning: "manifest key template (default {dir}/{stem}.json)",
    },
    Setting {
        name: "UPSCALE",
        meaning: "skip | source: widths wider than the source (default skip)",
    },
    Setting {
        name: "BACKGROUND",
        meaning: "#rrggbb behind transparency in JPEG (default #ffffff)",
    },
    Setting {
        name: "MAX_INPUT_BYTES",
        meaning: "largest source in bytes (default 67108864)",
    },
    Setting {
        name: "MAX_PIXELS",
        meaning: "largest source in pixels (default 100000000)",
    },
];

/// A setting could not be turned into a [`Recipe`]. Messages name the
/// variable and the offending token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// A setting holds a value outside what it allows.
    #[error("invalid {var} value `{token}`: expected {allowed}")]
    Invalid {
        /// The setting (environment variable name).
        var: &'static str,
        /// The offending token.
        token: String,
        /// What the setting allows.
        allowed: &'static str,
    },
    /// The format is valid but this build was compiled without it.
    #[error("format `{format}` is not compiled into this build (enable the cargo feature `{format}`)")]
    FormatDisabled {
        /// The format asked for.
        format: Format,
    },
    /// The recursion guard refused `REPLACEMENTS`: an output could be taken
    /// for a source.
    #[error("invalid REPLACEMENTS: outputs could loop back as sources: {reason}")]
    Loop {
        /// Which rule makes outputs look like sources.
        reason: String,
    },
}

impl SettingsError {
    fn invalid(var: &'static str, token: &str, allowed: &'static str) -> SettingsError {
        SettingsError::Invalid {
            var,
            token: token.to_owned(),
            allowed,
        }
    }
}

/// Names the setting a recipe error came from.
impl From<RecipeError> for SettingsError {
    fn from(e: RecipeError) -> SettingsError {
        match e {
            RecipeError::Widths { widths, expected } => SettingsError::invalid("SIZES", &widths, expected),
            RecipeError::NoFormats => {
                SettingsError::invalid("FORMATS", "", "at least one of jpeg, webp, png")
            }
            RecipeError::FormatDisabled { format } => SettingsError::FormatDisabled { format },
            RecipeError::Template { template, expected } => {
                SettingsError::invalid("KEY_TEMPLATE", &template, expected)
            }
            RecipeError::ManifestTemplate { template, expected } => {
                SettingsError::invalid("MANIFEST_TEMPLATE", &template, expected)
            }
            RecipeError::Replacement { pair, expected } => {
                SettingsError::invalid("REPLACEMENTS", &pair, expected)
            }
            RecipeError::Loop { reason } => SettingsError::Loop { reason },
        }
    }
}

impl Recipe {
    /// Parses environment-style settings (see [`SETTINGS`]). `lookup` returns
    /// a setting's value, or `None` when it is unset; empty values count as
    /// unset so that `SIZES=` in a deployment template means "default".
    ///
    /// ```
    /// use resize_core::Recipe;
    /// let recipe = Recipe::from_lookup(|name| match name {
    ///     "SIZES" => Some("360,720".to_owned()),
    ///     "REPLACEMENTS" => Some("original:resized".to_owned()),
    ///     _ => None,
    /// })?;
    /// assert_eq!(recipe.widths().as_slice().len(), 2);
    /// # Ok::<(), resize_core::SettingsError>(())
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Recipe, SettingsError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut b = Recipe::builder();
        if let Some(v) = get("SIZES") {
            b = b.widths(&parse_widths(&v)?);
        }
        if let Some(v) = get("FORMATS") {
            b = b.formats(&parse_formats(&v)?);
        }
        if let Some(v) = get("JPEG_QUALITY") {
            b = b.jpeg_quality(parse_quality("JPEG_QUALITY", &v)?);
        }
        if let Some(v) = get("WEBP_QUALITY") {
            b = b.webp_quality(parse_quality("WEBP_QUALITY", &v)?);
        }
        b = lookup_keys(b, &get)?;
        if let Some(v) = get("UPSCALE") {
            b = b.upscale(match v.trim().to_ascii_lowercase().as_str() {
                "skip" => Upscale::Skip,
                "source" => Upscale::SourceWidth,
                _ => return Err(SettingsError::invalid("UPSCALE", &v, "skip or source")),
            });
        }
        if let Some(v) = get("BACKGROUND") {
            let colour = Rgb::parse(v.trim())
                .ok_or_else(|| SettingsError::invalid("BACKGROUND", &v, "a colour like #ffffff"))?;
            b = b.background(colour);
        }
        let mut limits = Limits::default();
        if let Some(v) = get("MAX_INPUT_BYTES") {
            limits.max_input_bytes = parse_positive("MAX_INPUT_BYTES", &v)?;
        }
        if let Some(v) = get("MAX_PIXELS") {
            limits.max_pixels = parse_positive("MAX_PIXELS", &v)?;
        }
        Ok(b.limits(limits).build()?)
    }
}

/// `REPLACEMENTS`, `KEY_TEMPLATE`, `MANIFEST` and `MANIFEST_TEMPLATE` onto
/// the builder.
fn lookup_keys(
    b: RecipeBuilder,
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<RecipeBuilder, SettingsError> {
    let mut b = b;
    if let Some(v) = get("REPLACEMENTS") {
        let replacements = v
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(Replacement::parse)
            .collect::<Result<Vec<_>, _>>()?;
        b = b.replacements(replacements);
    }
    if let Some(v) = get("KEY_TEMPLATE") {
        b = b.template(Template::parse(v.trim())?);
    }
    // The template is checked even while manifests are off, so that a typo
    // shows before the day they are turned on.
    let template = match get("MANIFEST_TEMPLATE") {
        Some(v) => ManifestTemplate::parse(v.trim())?,
        None => ManifestTemplate::default(),
    };
    if let Some(v) = get("MANIFEST") {
        let on = parse_bool("MANIFEST", &v)?;
        b = b.manifest(on.then_some(template));
    }
    Ok(b)
}

/// `SIZES`: comma-separated widths (spaces allowed around commas), checked
/// as a set here so that the message names the setting.
fn parse_widths(s: &str) -> Result<Vec<Width>, SettingsError> {
    let allowed = "widths from 1 to 16384";
    let mut out = Vec::new();
    for token in s.split(',') {
        let token = token.trim();
        let px: u32 = token
            .parse()
            .map_err(|_| SettingsError::invalid("SIZES", token, allowed))?;
        out.push(Width::new(px).ok_or_else(|| SettingsError::invalid("SIZES", token, allowed))?);
    }
    Widths::new(&out)?;
    Ok(out)
}

/// `FORMATS`: comma-separated format names.
fn parse_formats(s: &str) -> Result<Vec<Format>, SettingsError> {
    s.split(',')
        .map(|token| {
            let token = token.trim();
            Format::parse(token).ok_or_else(|| SettingsError::invalid("FORMATS", token, "jpeg, webp, png"))
        })
        .collect()
}

fn parse_quality(var: &'static str, s: &str) -> Result<Quality, SettingsError> {
    s.trim()
        .parse::<u8>()
        .ok()
        .and_then(Quality::new)
        .ok_or_else(|| SettingsError::invalid(var, s.trim(), "an integer from 1 to 100"))
}

/// A boolean setting ([`crate::parse_bool`]).
fn parse_bool(var: &'static str, s: &str) -> Result<bool, SettingsError> {
    crate::values::parse_bool(s).ok_or_else(|| SettingsError::invalid(var, s.trim(), "true or false"))
}

fn parse_positive(var: &'static str, s: &str) -> Result<u64, SettingsError> {
    s.trim()
        .parse::<u64>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| SettingsError::invalid(var, s.trim(), "a positive integer"))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::values::{DEFAULT_JPEG_QUALITY, DEFAULT_WEBP_QUALITY};

    fn parse(settings: &[(&str, &str)]) -> Result<Recipe, SettingsError> {
        Recipe::from_lookup(|name| {
            settings
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn default_recipe_is_valid() {
        let r = parse(&[]).unwrap();
        let widths: Vec<u32> = r.widths().as_slice().iter().map(|w| w.get()).collect();
        assert_eq!(widths, [360, 720, 1200, 2200]);
        assert_eq!(r.formats(), [Format::Jpeg]);
        assert_eq!(r.quality(Format::Jpeg), Quality::new(DEFAULT_JPEG_QUALITY));
        assert_eq!(r.quality(Format::WebP), Quality::new(DEFAULT_WEBP_QUALITY));
        assert_eq!(r.upscale(), Upscale::Skip);
        assert_eq!(r.background(), Rgb::WHITE);
        assert_eq!(r.limits(), Limits::default());
        assert!(r.replacements().is_empty());
    }

    #[test]
    fn settings_of_2019_keep_working() {
        let r = parse(&[
            ("SIZES", "360,720,1200,2200"),
            ("REPLACEMENTS", "original:resized"),
        ])
        .unwrap();
        assert_eq!(r.widths().as_slice().len(), 4);
        assert_eq!(r.replacements()[0].to_string(), "original:resized");
    }

    #[test]
    fn good_values() {
        let r = parse(&[
            ("SIZES", " 2200, 360 ,720"),
            ("FORMATS", "WebP,jpg,png"),
            ("JPEG_QUALITY", "90"),
            ("WEBP_QUALITY", "1"),
            ("UPSCALE", "source"),
            ("BACKGROUND", "#10A0fF"),
            ("MAX_INPUT_BYTES", "1000"),
            ("MAX_PIXELS", "2000"),
            ("KEY_TEMPLATE", "{dir}/{width}/{stem}.{ext}"),
            ("REPLACEMENTS", "a:b, c/d:e/f"),
        ])
        .unwrap();
        let widths: Vec<u32> = r.widths().as_slice().iter().map(|w| w.get()).collect();
        assert_eq!(widths, [360, 720, 2200]);
        assert_eq!(r.formats(), [Format::WebP, Format::Jpeg, Format::Png]);
        assert_eq!(r.quality(Format::Jpeg).map(Quality::get), Some(90));
        assert_eq!(r.quality(Format::WebP).map(Quality::get), Some(1));
        assert_eq!(r.upscale(), Upscale::SourceWidth);
        assert_eq!(r.background(), Rgb([0x10, 0xa0, 0xff]));
        assert_eq!(r.limits().max_input_bytes, 1000);
        assert_eq!(r.limits().max_pixels, 2000);
        assert_eq!(r.replacements().len(), 2);
    }

    #[test]
    fn bad_values_name_the_variable_and_token() {
        let cases: &[(&str, &str)] = &[
            ("SIZES", "0"),
            ("SIZES", "16385"),
            ("SIZES", "360,abc"),
            ("SIZES", "360,,720"),
            ("SIZES", "-5"),
            ("SIZES", "360,360"),
            ("SIZES", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17"),
            ("SIZES", "99999999999999999999"),
            ("FORMATS", "jpeg,gif"),
            ("JPEG_QUALITY", "0"),
            ("JPEG_QUALITY", "101"),
            ("WEBP_QUALITY", "high"),
            ("REPLACEMENTS", "original"),
            ("REPLACEMENTS", ":resized"),
            ("REPLACEMENTS", "original:"),
            ("REPLACEMENTS", "original/../x:y"),
            ("REPLACEMENTS", "original:original"),
            ("REPLACEMENTS", "original:original/resized"),
            ("REPLACEMENTS", "photos/original:photos"),
            ("REPLACEMENTS", "a:b,b:c"),
            ("KEY_TEMPLATE", "{dir}/{stem}.{ext}"),
            ("KEY_TEMPLATE", "{dir}/{stem}-{width"),
            ("UPSCALE", "always"),
            ("BACKGROUND", "white"),
            ("MAX_INPUT_BYTES", "0"),
            ("MAX_PIXELS", "lots"),
        ];
        let mut out = String::new();
        for (var, value) in cases {
            let msg = match parse(&[(var, value)]) {
                Ok(_) => "accepted".to_owned(),
                Err(e) => e.to_string(),
            };
            out.push_str(&format!("{var}={value}\n    {msg}\n"));
        }
        insta::assert_snapshot!(out);
    }

    proptest! {
        /// Any string for any setting parses or errors; it never panics, and
        /// a rejection names the setting.
        #[test]
        fn any_value_parses_or_names_its_setting(i in 0..SETTINGS.len(), value in "\\PC{0,30}|[0-9,]{0,20}") {
            let var = SETTINGS[i].name;
            if let Err(e) = parse(&[(var, &value)]) {
                let msg = e.to_string();
                prop_assert!(msg.contains(var) || msg.contains("loop"), "{}", msg);
            }
        }

        /// Valid width lists round-trip through SIZES.
        #[test]
        fn widths_round_trip(ws in prop::collection::btree_set(1u32..=16384, 1..=16)) {
            let text = ws.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
            let r = parse(&[("SIZES", &text)]).unwrap();
            let got: Vec<u32> = r.widths().as_slice().iter().map(|w| w.get()).collect();
            prop_assert_eq!(got, ws.into_iter().collect::<Vec<_>>());
        }
    }
}
