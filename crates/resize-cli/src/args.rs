//! Command-line arguments. Flags and environment variables feed the same
//! core parser ([`resize_core::Recipe::from_lookup`]); a flag wins over its
//! variable.

// The field comments below are clap's help text, read on a terminal, not
// rendered as HTML: `<picture>` and bare URLs are meant literally there.
#![allow(rustdoc::invalid_html_tags, rustdoc::bare_urls)]

use std::path::PathBuf;

use clap::Parser;
use resize_core::MemoryBudget;

const AFTER_HELP: &str = "\
Examples:
  # The 2019 deployment's job, on a local folder:
  resize-cli --sizes 360,720,1200,2200 --out site/ photos/

  # JPEG and WebP twins, outputs for original/... going to resized/...:
  resize-cli --formats jpeg,webp --replace original:resized --out out/ bucket-copy/

  # What would be written, as JSON, without writing anything:
  resize-cli --dry-run --json --out out/ photos/

  # A manifest per photo and a page that shows them all with <picture>:
  resize-cli --formats jpeg,webp --html out/index.html --out out/ photos/

  # Backfill a bucket, as the Lambda would have done on upload:
  resize-cli --replace original:resized --out s3://photos s3://photos/original/

Each file's path relative to its INPUT directory (for a file argument, its
name) is its key; an S3 object's key is its key in the bucket. Outputs are
written to OUT/<output key>, by default {dir}/{stem}-{width}.{ext}. Widths
wider than a photo are skipped, never upscaled. Variants already made from
the same source with the same settings are kept unless --force.

S3 uses the default AWS credential chain and region; AWS_ENDPOINT_URL_S3 and
S3_FORCE_PATH_STYLE=true point it at an S3-compatible server.

Every flag can also be given as an environment variable (SIZES, FORMATS,
JPEG_QUALITY, WEBP_QUALITY, REPLACEMENTS, KEY_TEMPLATE, MANIFEST,
MANIFEST_TEMPLATE, UPSCALE, BACKGROUND, MAX_INPUT_BYTES, MAX_PIXELS); flags win.

Exit status: 0 all images succeeded, 1 some image failed (the others are
still written), 2 usage error.";

/// Turn photos into every size and format a website needs.
#[derive(Debug, Parser)]
#[command(name = "resize-cli", version, about, after_help = AFTER_HELP)]
pub struct Args {
    /// Image files or directories (searched recursively), or s3://BUCKET[/PREFIX].
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,

    /// Directory, or s3://BUCKET[/PREFIX], the variants are written under.
    #[arg(long, short, value_name = "DIR|S3_URL")]
    pub out: PathBuf,

    /// Output widths in pixels, comma-separated (env SIZES; default 360,720,1200,2200).
    #[arg(long, value_name = "LIST")]
    pub sizes: Option<String>,

    /// Output formats: jpeg, webp, png (env FORMATS; default jpeg).
    #[arg(long, value_name = "LIST")]
    pub formats: Option<String>,

    /// JPEG quality, 1-100 (env JPEG_QUALITY; default 85).
    #[arg(long, value_name = "N")]
    pub jpeg_quality: Option<String>,

    /// Lossy WebP quality, 1-100 (env WEBP_QUALITY; default 80).
    #[arg(long, value_name = "N")]
    pub webp_quality: Option<String>,

    /// Replace a leading key prefix, e.g. original:resized (repeatable) (env REPLACEMENTS).
    #[arg(long = "replace", value_name = "FROM:TO")]
    pub replace: Vec<String>,

    /// Output key template (env KEY_TEMPLATE; default {dir}/{stem}-{width}.{ext}).
    #[arg(long, value_name = "TEMPLATE")]
    pub key_template: Option<String>,

    /// Write a JSON manifest per source: its variants, a srcset per format and
    /// placeholders (env MANIFEST; `--manifest=false` turns it off).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub manifest: Option<String>,

    /// Manifest key template (env MANIFEST_TEMPLATE; default {dir}/{stem}.json).
    #[arg(long, value_name = "TEMPLATE")]
    pub manifest_template: Option<String>,

    /// Write a preview page of this run's photos (a <picture> per source, from its
    /// manifest) to PATH; turns --manifest on.
    #[arg(long, value_name = "PATH")]
    pub html: Option<PathBuf>,

    /// With --html: the URL the page puts before each output key (default: the output
    /// directory, relative to the page; for an S3 --out, https://BUCKET.s3.amazonaws.com/PREFIX/).
    #[arg(long, value_name = "URL", requires = "html")]
    pub html_base: Option<String>,

    /// Widths wider than the source: skip, or source (one output at the source width) (env UPSCALE).
    #[arg(long, value_name = "POLICY")]
    pub upscale: Option<String>,

    /// Background behind transparency in JPEG, #rrggbb (env BACKGROUND; default #ffffff).
    #[arg(long, value_name = "COLOUR")]
    pub background: Option<String>,

    /// Largest source file in bytes (env MAX_INPUT_BYTES; default 67108864).
    #[arg(long, value_name = "BYTES")]
    pub max_input_bytes: Option<String>,

    /// Largest source in pixels (env MAX_PIXELS; default 100000000).
    #[arg(long, value_name = "PIXELS")]
    pub max_pixels: Option<String>,

    /// Print the summary as one JSON document on stdout.
    #[arg(long)]
    pub json: bool,

    /// Plan only: read headers and list the variants, write nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Rebuild variants even when they are newer than their source.
    #[arg(long)]
    pub force: bool,

    /// Images processed at once, at most (default: number of CPUs).
    #[arg(long, short, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,

    /// Memory the images rendered at once may take together, e.g. 512M or 4G (plain numbers
    /// are MB); each waits until its estimate fits, and one that could never fit fails
    /// alone (default: half of this machine's memory).
    #[arg(long, value_name = "SIZE", value_parser = parse_memory)]
    pub memory: Option<u64>,

    /// No progress bar or per-image lines; only the summary.
    #[arg(long, short)]
    pub quiet: bool,
}

impl Args {
    /// The value of setting `name`: the flag if given, else the environment.
    pub fn setting(&self, name: &str) -> Option<String> {
        let flag = match name {
            "SIZES" => self.sizes.clone(),
            "FORMATS" => self.formats.clone(),
            "JPEG_QUALITY" => self.jpeg_quality.clone(),
            "WEBP_QUALITY" => self.webp_quality.clone(),
            "REPLACEMENTS" => (!self.replace.is_empty()).then(|| self.replace.join(",")),
            "KEY_TEMPLATE" => self.key_template.clone(),
            // The page is made from manifests.
            "MANIFEST" => self
                .manifest
                .clone()
                .or_else(|| self.html.as_ref().map(|_| "true".to_owned())),
            "MANIFEST_TEMPLATE" => self.manifest_template.clone(),
            "UPSCALE" => self.upscale.clone(),
            "BACKGROUND" => self.background.clone(),
            "MAX_INPUT_BYTES" => self.max_input_bytes.clone(),
            "MAX_PIXELS" => self.max_pixels.clone(),
            _ => None,
        };
        flag.or_else(|| std::env::var(name).ok())
    }

    /// The memory budget shared by the images: `--memory`, else half of
    /// the machine's memory, else (where that cannot be read) unlimited.
    pub fn budget(&self) -> MemoryBudget {
        match self.memory {
            Some(bytes) => MemoryBudget::new(bytes, format!("the limit is {} MB (--memory)", bytes >> 20)),
            None => match machine_memory() {
                Some(total) => MemoryBudget::new(
                    total / 2,
                    format!(
                        "the limit is {} MB, half of this machine's memory (set it with --memory)",
                        (total / 2) >> 20
                    ),
                ),
                None => MemoryBudget::unlimited(),
            },
        }
    }

    /// Worker threads for images.
    pub fn jobs(&self) -> usize {
        self.jobs
            .map(usize::from)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

/// Parses `--memory`: a number of MB, or a number with a suffix K, M, G
/// or T (binary units; `MB`, `MiB`, `GB`, `GiB` too), at least 16 MB.
fn parse_memory(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "m" | "mb" | "mib" => 20,
        "k" | "kb" | "kib" => 10,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(format!(
                "`{text}` is not a size: expected a number of MB, or one like 512M or 4G"
            ))
        }
    };
    let value: f64 = number
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite())
        .ok_or_else(|| format!("`{text}` is not a size: expected a number of MB, or one like 512M or 4G"))?;
    let bytes = value * (1u64 << shift) as f64;
    // Below 16 MB not even a small photo renders; above 4096 TB is a typo.
    if !(16.0 * (1u64 << 20) as f64..=(1u64 << 52) as f64).contains(&bytes) {
        return Err(format!("`{text}` is out of range: expected from 16M to 4096T"));
    }
    Ok(bytes as u64)
}

/// The machine's memory (`MemTotal` in `/proc/meminfo`), in bytes.
fn machine_memory() -> Option<u64> {
    crate::report::proc_bytes("/proc/meminfo", "MemTotal:")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every setting of the core's table has a flag, and the flag's value
    /// is what the core is given.
    #[test]
    fn every_setting_has_a_flag() {
        let flags = [
            ("SIZES", "--sizes"),
            ("FORMATS", "--formats"),
            ("JPEG_QUALITY", "--jpeg-quality"),
            ("WEBP_QUALITY", "--webp-quality"),
            ("REPLACEMENTS", "--replace"),
            ("KEY_TEMPLATE", "--key-template"),
            ("MANIFEST", "--manifest"),
            ("MANIFEST_TEMPLATE", "--manifest-template"),
            ("UPSCALE", "--upscale"),
            ("BACKGROUND", "--background"),
            ("MAX_INPUT_BYTES", "--max-input-bytes"),
            ("MAX_PIXELS", "--max-pixels"),
        ];
        let mut argv = vec![
            "resize-cli".to_owned(),
            "--out".to_owned(),
            "o".to_owned(),
            "in".to_owned(),
        ];
        for (name, flag) in flags {
            argv.push(format!("{flag}=value of {name}"));
        }
        let args = Args::try_parse_from(argv).expect("every flag parses");
        for setting in resize_core::adapter::SETTINGS {
            assert_eq!(
                args.setting(setting.name),
                Some(format!("value of {}", setting.name)),
                "{} has no flag",
                setting.name
            );
        }
        assert_eq!(flags.len(), resize_core::adapter::SETTINGS.len());
    }

    #[test]
    fn memory_sizes() {
        #[track_caller]
        fn check(text: &str, expect: Result<u64, &str>) {
            assert_eq!(parse_memory(text), expect.map_err(str::to_owned), "{text}");
        }
        const MB: u64 = 1 << 20;
        check("512", Ok(512 * MB));
        check("512M", Ok(512 * MB));
        check("512mib", Ok(512 * MB));
        check("4G", Ok(4096 * MB));
        check(" 1.5 GB ", Ok(1536 * MB));
        check("65536K", Ok(64 * MB));
        check("16", Ok(16 * MB));
        let not_a_size =
            |t: &str| format!("`{t}` is not a size: expected a number of MB, or one like 512M or 4G");
        for bad in ["", "G", "lots", "-5", "1e3M", "4 GBs", "1.2.3G", "NaN"] {
            check(bad, Err(&not_a_size(bad)));
        }
        check("15", Err("`15` is out of range: expected from 16M to 4096T"));
        check("0", Err("`0` is out of range: expected from 16M to 4096T"));
        check(
            "99999T",
            Err("`99999T` is out of range: expected from 16M to 4096T"),
        );
    }
}
