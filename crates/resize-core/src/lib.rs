//! `resize-core` turns one image into every size and format a website
//! needs. It is pure: bytes and a [`Recipe`] in, [`Rendition`]s and keys out.
//! It reads no files, no environment and no clock, and runs no async code;
//! the adapters (`resize-cli`, the Lambda) do I/O through the [`Storage`]
//! trait.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use resize_core::{render, Format, Recipe};
//! # let mut bytes = Vec::new();
//! # image::RgbImage::from_pixel(1920, 1080, image::Rgb([90, 140, 200]))
//! #     .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Jpeg)?;
//! // The 2019 settings keep working.
//! let recipe = Recipe::from_lookup(|name| match name {
//!     "SIZES" => Some("360,720,1200,2200".into()),
//!     "REPLACEMENTS" => Some("original:resized".into()),
//!     "FORMATS" => Some("jpeg,webp".into()),
//!     _ => None,
//! })?;
//! let source = recipe.source_key("original/trips/a.jpg").expect("an image key");
//! for r in render(&bytes, &recipe)? {
//!     let key = recipe.output_key(&source, r.width, r.height, r.format);
//!     println!("{key}: {}x{} {} bytes", r.width, r.height, r.bytes.len());
//! }
//! // 2200 is wider than the 1920 px source: skipped, never upscaled.
//! assert_eq!(
//!     recipe.output_key(&source, 1200, 675, Format::WebP),
//!     "resized/trips/a-1200.webp"
//! );
//! # Ok(()) }
//! ```
//!
//! # Features
//! - `webp` (default): lossy WebP output through libwebp, which is C code
//!   built with the `cc` crate. Without it, asking for WebP is a recipe error.
//!
//! Decoding (JPEG, PNG, WebP, GIF, TIFF), resizing (fast_image_resize) and
//! JPEG and PNG encoding are pure Rust.

#![warn(missing_docs)]

mod encode;
mod error;
pub mod geometry;
pub mod keys;
pub mod recipe;
mod render;
pub mod storage;

pub use error::{error_chain, JobError, RecipeError, RenderError};
pub use keys::{Replacement, Skip, SourceKey, Template};
pub use recipe::{Format, Limits, Quality, Recipe, RecipeBuilder, Rgb, Upscale, Width, Widths};
#[doc(hidden)]
pub use render::stages;
pub use render::{plan, probe, render, Probe, Rendition};
pub use storage::{
    plan_outputs, run_job, JobOptions, MemoryStorage, Object, Outcome, PlannedOutput, Report, Storage,
    StorageError, WrittenVariant,
};
