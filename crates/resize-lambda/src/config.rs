//! Settings of the Lambda beyond the recipe, parsed from the same kind of
//! lookup as the recipe so it can be tested without touching the process
//! environment.

use std::time::Duration;

use resize_core::{MemoryBudget, Recipe, SettingsError};

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
    /// Images fetched at once within one invocation; how many of them
    /// render at once is the memory budget's decision.
    pub concurrency: usize,
    /// The function's memory in MB (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`).
    pub memory_mb: u64,
    /// What the images rendered at once may take together: the function's
    /// memory less [`RESERVE_MB`].
    pub budget: MemoryBudget,
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

/// Memory kept out of the images' budget, in MB: the runtime, the SDK,
/// tokio's and rayon's threads and the allocator's slack (the release
/// `bootstrap` peaked at 22 MiB over 110 small photos, `load.rs`), plus the
/// bodies fetched but not yet admitted (at most `concurrency` − 1 of them,
/// a few MB each for photos).
pub const RESERVE_MB: u64 = 80;
/// Sources fetched at once per core when `CONCURRENCY` is not set: one
/// renders while the other is fetched or written.
const FETCHES_PER_CORE: usize = 2;

impl Config {
    /// Reads the settings; `cpus` is the number of cores available.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>, cpus: usize) -> Result<Config, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let recipe = Recipe::from_lookup(&lookup)?;
        let flag = |var: &'static str| -> Result<bool, ConfigError> {
            match get(var) {
                None => Ok(false),
                Some(v) => resize_core::adapter::parse_bool(&v).ok_or(ConfigError::Invalid {
                    var,
                    token: v.trim().to_owned(),
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
            // The budget decides what renders at once; this only bounds
            // the bodies held while waiting for it.
            None => (FETCHES_PER_CORE * cpus).max(1),
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
            memory_mb: memory_mib,
            budget: MemoryBudget::new(
                memory_mib.saturating_sub(RESERVE_MB) << 20,
                format!(
                    "the function has {memory_mib} MB, of which {RESERVE_MB} MB are kept for the runtime"
                ),
            ),
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
        assert_eq!(c.memory_mb, 1024);
        assert_eq!(c.s3_attempt_timeout, Duration::from_secs(20));
        assert_eq!(c.s3_timeout, Duration::from_secs(60));
        let c = config(&[("S3_ATTEMPT_TIMEOUT_MS", "1500"), ("S3_TIMEOUT_MS", "9000")], 2).unwrap();
        assert_eq!(c.s3_attempt_timeout, Duration::from_millis(1500));
        assert_eq!(c.s3_timeout, Duration::from_secs(9));
    }

    #[test]
    fn the_budget_is_the_memory_less_the_reserve() {
        let at = |mb: &str| {
            let c = config(&[("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", mb)], 2).unwrap();
            (c.memory_mb, c.budget.bytes().unwrap() >> 20)
        };
        assert_eq!(at("256"), (256, 256 - RESERVE_MB));
        assert_eq!(at("1024"), (1024, 1024 - RESERVE_MB));
        // Below the reserve every image is refused with the figures, not
        // run into the kill.
        assert_eq!(at("64"), (64, 0));
        let message = config(&[("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")], 2)
            .unwrap()
            .budget
            .admit(300 << 20)
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            format!("needs about 300 MB of memory; the function has 256 MB, of which {RESERVE_MB} MB are kept for the runtime")
        );
        assert_eq!(config(&[], 2).unwrap().concurrency, 4);
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
