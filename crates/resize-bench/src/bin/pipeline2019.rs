//! The 2019 pipeline, ported to today's image crate, as the benchmark's
//! baseline: `pipeline2019 <photo> <out-dir> [--webp Q]`.
//!
//! Faithful to the original: `load_from_memory`, Lanczos3 to width ×
//! floor(height × width / source width) with the image crate's own resize,
//! JPEG quality 90, widths in parallel with rayon, no EXIF orientation, no
//! colour management. With `--webp`, lossy WebP twins are not made (the
//! 2019 code had none), so only the JPEG job compares.

use std::path::PathBuf;

use anyhow::{Context, Result};
use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use rayon::prelude::*;

const WIDTHS: [u32; 4] = [360, 720, 1200, 2200];

fn main() -> Result<()> {
    let mut args = std::env::args_os().skip(1);
    let photo = PathBuf::from(args.next().context("usage: pipeline2019 <photo> <out-dir>")?);
    let out = PathBuf::from(args.next().context("usage: pipeline2019 <photo> <out-dir>")?);
    std::fs::create_dir_all(&out)?;
    let bytes = std::fs::read(&photo)?;
    let img = image::load_from_memory(&bytes)?;
    let stem = photo
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("photo")
        .to_owned();
    WIDTHS.par_iter().try_for_each(|&w| -> Result<()> {
        let h = (f64::from(img.height()) * f64::from(w) / f64::from(img.width())).floor() as u32;
        let resized = img.resize_exact(w, h.max(1), FilterType::Lanczos3).to_rgb8();
        let mut buf = Vec::new();
        JpegEncoder::new_with_quality(&mut buf, 90).encode_image(&resized)?;
        std::fs::write(out.join(format!("{stem}-{w}.jpg")), buf)?;
        Ok(())
    })
}
