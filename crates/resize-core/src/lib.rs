//! `resize-core` turns one image into every size and format a website
//! needs. It is pure: bytes and a [`Recipe`] in, [`Rendition`]s and keys out.
//! It reads no files, no environment and no clock, and runs no async code;
//! the adapters (`resize-cli`, the Lambda) do I/O through the [`Storage`]
//! trait.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use resize_core::{render, Format, Recipe, Replacement, Width};
//! # let mut bytes = Vec::new();
//! # image::RgbImage::from_pixel(1920, 1080, image::Rgb([90, 140, 200]))
//! #     .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Jpeg)?;
//! let recipe = Recipe::builder()
//!     .widths(&[360, 720, 1200, 2200].map(|w| Width::new(w).expect("a valid width")))
//!     .formats(&[Format::Jpeg, Format::WebP])
//!     .replacements(vec![Replacement::parse("original:resized")?])
//!     .build()?;
//! let source = recipe.source_key("original/trips/a.jpg")?;
//! for r in render(&bytes, &recipe)? {
//!     let key = source.output_key(r.width, r.height, r.format)?;
//!     println!("{key}: {}x{} {} bytes", r.width, r.height, r.bytes.len());
//! }
//! // 2200 is wider than the 1920 px source: skipped, never upscaled.
//! assert_eq!(
//!     source.output_key(1200, 675, Format::WebP)?,
//!     "resized/trips/a-1200.webp"
//! );
//! // The 2019 settings keep working, as environment-style strings.
//! let same = Recipe::from_lookup(|name| match name {
//!     "SIZES" => Some("360,720,1200,2200".into()),
//!     "REPLACEMENTS" => Some("original:resized".into()),
//!     "FORMATS" => Some("jpeg,webp".into()),
//!     _ => None,
//! })?;
//! assert_eq!(same.widths(), recipe.widths());
//! # Ok(()) }
//! ```
//!
//! With a [`Storage`] (S3, a directory, [`MemoryStorage`]), [`run_job`] takes
//! one key from source to stored variants: [`plan_job`] decides (and is a
//! dry run by itself), [`carry_out`] renders and writes; variants of a
//! removed source go with [`remove_variants`].
//!
//! The root holds what an embedder uses: the entry points, the recipe, the
//! [`Storage`] seam, what a job reports and the errors. What only the
//! adapters need (metadata names, the settings table, URL helpers,
//! defaults) is in [`adapter`]; the pipeline's stages one at a time are in
//! [`stages`].
//!
//! # Features
//! - `webp` (default): lossy WebP output through libwebp, which is C code
//!   built with the `cc` crate. Without it, asking for WebP is a recipe error.
//!
//! JPEG decoding and encoding go through libjpeg (libjpeg-turbo with
//! mozjpeg's extras, C and SIMD assembly built by `mozjpeg-sys`); PNG, WebP,
//! GIF and TIFF decoding, resizing (fast_image_resize) and PNG encoding are
//! Rust.

#![warn(missing_docs)]
// Every type a public item returns or holds can be named by an embedder.
#![warn(unnameable_types)]

// Layers, lowest first (ARCHITECTURE.md; `cargo xtask ci` checks that each
// module names only modules of lower layers, and that this line and
// ARCHITECTURE's state the layers it checks):
// `values`, `fixtures` → `geometry` → `keys` → `recipe` → `pixels`, `storage`, `budget` → `manifest` → `job` → `settings`
mod budget;
#[cfg(test)]
mod fixtures;
mod geometry;
mod job;
mod keys;
mod manifest;
mod pixels;
mod recipe;
mod settings;
mod storage;
mod values;

pub use budget::{Admission, MemoryBudget, OverBudget};
pub use job::{
    carry_out, error_chain, plan_job, remove_variants, run_job, Action, Decision, Found, JobError,
    JobOptions, ManifestOutput, Outcome, Plan, Planned, Report, Skip, Variant,
};
pub use keys::{KeyTooLong, ManifestTemplate, NotASource, Replacement, SourceKey, Template};
pub use manifest::{Manifest, ManifestEntry};
pub use pixels::{
    probe, render, render_owned, render_with_placeholders, working_set, Placeholders, Probe, RenderError,
    Rendered, Rendition, SourceFormat,
};
pub use recipe::{Fingerprint, Recipe, RecipeBuilder};
pub use settings::SettingsError;
pub use storage::{Fetched, MemoryStorage, Meta, Object, Storage, StorageError, StoredObject};
pub use values::{Format, Limits, Quality, RecipeError, Rgb, Upscale, Width, Widths};

/// What the adapters (the CLI, the Lambda, the S3 store) need beyond the
/// root: the metadata names variants carry, the store-facing parts of the
/// job, the settings table and its parsing, the manifest's URL helpers,
/// and the defaults and limits they print. An embedder that runs jobs
/// through [`run_job`] needs none of it.
pub mod adapter {
    pub use crate::job::{
        judge, plan_variants, HEADER_BYTES, META_FINGERPRINT, META_SOURCE, META_SOURCE_VERSION,
    };
    pub use crate::keys::{DEFAULT_MANIFEST_TEMPLATE, DEFAULT_TEMPLATE, MAX_KEY_BYTES, SOURCE_EXTENSIONS};
    pub use crate::manifest::{manifest_owner, relative_key, srcset, url_path};
    pub use crate::pixels::{probe_start, PLACEHOLDER_MAX_SIDE};
    pub use crate::recipe::{MANIFEST_VERSION, PIPELINE_VERSION};
    pub use crate::settings::{Setting, SETTINGS};
    pub use crate::storage::{content_version, VersionHasher};
    pub use crate::values::{
        parse_bool, DEFAULT_JPEG_QUALITY, DEFAULT_MAX_INPUT_BYTES, DEFAULT_MAX_PIXELS, DEFAULT_WEBP_QUALITY,
        MAX_WIDTH, MAX_WIDTHS,
    };
}

/// The pipeline's stages one at a time: the functions [`render`] calls, for
/// profiling (the stage benchmark in `resize-bench`) or for programs that
/// want the decoded or resized pixels themselves.
pub mod stages {
    pub use crate::pixels::{decode, encode, halve, placeholders, resize, Channels, Decoded};
}
