//! One key from source to stored variants, in two steps every adapter
//! shares: [`plan_job`] reads the source and decides (what exists, what is
//! stale and why, what would be written), [`carry_out`] renders and
//! writes what the plan says. [`run_job`] is both; a dry run is the plan
//! alone. [`remove_variants`] deletes a removed source's variants.
//!
//! Requests per source, for a store that keeps metadata (S3): one ranged
//! GET of the source's first [`HEADER_BYTES`] (its size is checked before
//! the body is read; a header longer than that costs a GET of the whole),
//! one HEAD per
//! planned variant (every one: a variant another source made must not be
//! overwritten, so each is looked at; sent together through
//! [`Storage::head_many`]), then, when any output is written, a GET of the
//! whole source and one PUT per written output. A duplicate delivery
//! stops after the HEADs.

mod judge;
mod look;
mod outcome;
mod plan;
mod remove;
mod write;

pub use judge::{judge, Decision, Found, META_FINGERPRINT, META_SOURCE, META_SOURCE_VERSION};
pub use look::HEADER_BYTES;
pub use outcome::{error_chain, JobError, ManifestOutput, Outcome, Report, Skip, Variant};
pub use plan::{plan_job, plan_variants, Action, JobOptions, Plan, Planned};
pub use remove::remove_variants;
pub use write::carry_out;

use crate::recipe::Recipe;
use crate::storage::Storage;

/// Runs one key through the recipe: [`plan_job`], then [`carry_out`].
/// Never panics on bad input; every failure is in the report.
///
/// ```
/// use resize_core::{run_job, JobOptions, MemoryStorage, Outcome, Recipe, Replacement, Width};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let mut jpeg = Vec::new();
/// # image::RgbImage::from_pixel(1600, 900, image::Rgb([10, 120, 200]))
/// #     .write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)?;
/// let store = MemoryStorage::new();
/// store.insert("original/trips/a.jpg", jpeg);
/// let recipe = Recipe::builder()
///     .widths(&[360, 720].map(|w| Width::new(w).expect("a valid width")))
///     .replacements(vec![Replacement::parse("original:resized")?])
///     .build()?;
/// let report = run_job(&store, &recipe, "original/trips/a.jpg", JobOptions::default());
/// assert!(matches!(report.outcome, Outcome::Written(ref v) if v.len() == 2));
/// assert!(store.object("resized/trips/a-360.jpg").is_some());
/// assert!(store.object("resized/trips/a-720.jpg").is_some());
/// # Ok(()) }
/// ```
pub fn run_job(storage: &dyn Storage, recipe: &Recipe, key: &str, options: JobOptions) -> Report {
    carry_out(storage, plan_job(storage, recipe, key, options))
}

#[cfg(test)]
mod tests;
