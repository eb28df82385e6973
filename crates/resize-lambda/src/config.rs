//! Settings of the Lambda beyond the recipe, parsed from the same kind of
//! lookup as the recipe so it can be tested without touching the process
//! environment.

use std::time::Duration;

use resize_core::{Recipe, SettingsError};

/// Default `Cache-Control` of variants: their keys never change content
/// (a new upload rewrites them with the same bytes for the same source).
pub const DEFAULT_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// Everything the function reads at init.
#[derive(Clone, Debug)]
pub struct Config {
    /// The recipe shared with the CLI.
    pub recipe: Recipe,
    /// `Cache-Control` set on every variant.
    pub cache_control: String,
    /// Whether ObjectRemoved events delete the source's variants.
    pub delete_variants: bool,
    /// Use path-style S3 URLs (S3-compatible stores on an IP address).
    pub force_path_style: bool,
    /// Images processed at once within one invocation.
    pub concurrency: usize,
    /// Longest one S3 request attempt may take before it is retried.
    pub s3_attempt_timeout: Duration,
    /// Longest one S3 operation may take, all attempts together.
    pub s3_timeout: Duration,
}

/// A setting outside the recipe is invalid.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A recipe setting is invalid.
    #[error(transparent)]
    Recipe(#[from] SettingsError),
    /// A Lambda setting is invalid.
    #[error("invalid {var} value `{token}`: expected {allowed}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// The bad value.
        token: String,
        /// What is allowed.
        allowed: &'static str,
    },
}

/// Memory one image may need while decoded and resized, in MiB: a 24 MP
/// photo is 72 MiB as RGB, plus the resized copies and encoder buffers.
const MIB_PER_IMAGE: u64 = 192;
/// What the runtime, the SDK and the invocation's buffers take, in MiB.
const MIB_BASE: u64 = 64;

impl Config {
    /// Reads the settings; `cpus` is the number of cores available.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>, cpus: usize) -> Result<Config, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let recipe = Recipe::from_lookup(&lookup)?;
        let flag = |var: &'static str| -> Result<bool, ConfigError> {
            match get(var).map(|v| v.trim().to_ascii_lowercase()) {
                None => Ok(false),
                Some(v) if v == "true" || v == "1" => Ok(true),
                Some(v) if v == "false" || v == "0" => Ok(false),
                Some(v) => Err(ConfigError::Invalid {
                    var,
                    token: v,
                    allowed: "true or false",
                }),
            }
        };
        let memory_mib = match get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") {
            None => 1024,
            Some(v) => v.trim().parse::<u64>().map_err(|_| ConfigError::Invalid {
                var: "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                token: v,
                allowed: "memory in MB",
            })?,
        };
        let concurrency = match get("CONCURRENCY") {
            Some(v) => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|&n| (1..=64).contains(&n))
                .ok_or(ConfigError::Invalid {
                    var: "CONCURRENCY",
                    token: v,
                    allowed: "an integer from 1 to 64",
                })?,
            // As many images as the memory holds, at most two per core
            // (one decoding while the other encodes or waits on S3).
            None => {
                let by_memory = memory_mib.saturating_sub(MIB_BASE) / MIB_PER_IMAGE;
                (by_memory as usize).clamp(1, (2 * cpus).max(1))
            }
        };
        let millis = |var: &'static str, default: u64| -> Result<Duration, ConfigError> {
            match get(var) {
                None => Ok(Duration::from_millis(default)),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|&ms| (100..=900_000).contains(&ms))
                    .map(Duration::from_millis)
                    .ok_or(ConfigError::Invalid {
                        var,
                        token: v,
                        allowed: "milliseconds from 100 to 900000",
                    }),
            }
        };
        let s3_attempt_timeout = millis("S3_ATTEMPT_TIMEOUT_MS", 20_000)?;
        let s3_timeout = millis("S3_TIMEOUT_MS", 60_000)?;
        Ok(Config {
            recipe,
            s3_attempt_timeout,
            s3_timeout,
            cache_control: get("CACHE_CONTROL").unwrap_or_else(|| DEFAULT_CACHE_CONTROL.to_owned()),
            delete_variants: flag("DELETE_VARIANTS")?,
            force_path_style: flag("S3_FORCE_PATH_STYLE")?,
            concurrency,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(settings: &[(&str, &str)], cpus: usize) -> Result<Config, ConfigError> {
        Config::from_lookup(
            |n| {
                settings
                    .iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| (*v).to_owned())
            },
            cpus,
        )
    }

    #[test]
    fn defaults() {
        let c = config(&[], 2).unwrap();
        assert_eq!(c.cache_control, DEFAULT_CACHE_CONTROL);
        assert!(!c.delete_variants);
        assert!(!c.force_path_style);
        assert_eq!(c.concurrency, 4);
        assert_eq!(c.s3_attempt_timeout, Duration::from_secs(20));
        assert_eq!(c.s3_timeout, Duration::from_secs(60));
        let c = config(&[("S3_ATTEMPT_TIMEOUT_MS", "1500"), ("S3_TIMEOUT_MS", "9000")], 2).unwrap();
        assert_eq!(c.s3_attempt_timeout, Duration::from_millis(1500));
        assert_eq!(c.s3_timeout, Duration::from_secs(9));
    }

    #[test]
    fn concurrency_follows_memory() {
        let at = |mb: &str| {
            config(&[("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", mb)], 2)
                .unwrap()
                .concurrency
        };
        assert_eq!(at("128"), 1);
        assert_eq!(at("512"), 2);
        assert_eq!(at("1769"), 4);
        assert_eq!(at("10240"), 4);
        assert_eq!(config(&[("CONCURRENCY", "3")], 2).unwrap().concurrency, 3);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let msg = |s: &[(&str, &str)]| config(s, 2).err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(
            msg(&[("DELETE_VARIANTS", "yes please")]),
            "invalid DELETE_VARIANTS value `yes please`: expected true or false"
        );
        assert_eq!(
            msg(&[("CONCURRENCY", "0")]),
            "invalid CONCURRENCY value `0`: expected an integer from 1 to 64"
        );
        assert_eq!(
            msg(&[("S3_TIMEOUT_MS", "5s")]),
            "invalid S3_TIMEOUT_MS value `5s`: expected milliseconds from 100 to 900000"
        );
        assert_eq!(
            msg(&[("SIZES", "360,abc")]),
            "invalid SIZES value `abc`: expected widths from 1 to 16384"
        );
        assert_eq!(
            msg(&[("REPLACEMENTS", "original:original/x")]),
            "invalid REPLACEMENTS: outputs could loop back as sources: destination `original/x` of \
             `original:original/x` overlaps source prefix `original` of `original:original/x`"
        );
    }
}
