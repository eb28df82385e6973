//! The README's memory table: for photos of common sizes and kinds, the
//! working set `resize_core::working_set` estimates (the figure the Lambda
//! and the CLI admit images by) and the smallest Lambda memory size that
//! renders the photo alone (the estimate plus the Lambda's reserve).
//!
//! `cargo run --release -p resize-bench --bin memory_table`

use std::io::Cursor;

use anyhow::Context;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::ImageEncoder;
use resize_core::{working_set, Format, Recipe};

/// `RESERVE_MB` in resize-lambda's config.
const RESERVE_MB: u64 = 80;

fn jpeg(width: u32, height: u32, progressive: bool) -> anyhow::Result<Vec<u8>> {
    let mut c = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_RGB);
    c.set_fastest_defaults();
    c.set_size(width as usize, height as usize);
    c.set_chroma_sampling_pixel_sizes((2, 2), (2, 2));
    if progressive {
        c.set_progressive_mode();
    }
    let mut started = c.start_compress(Vec::new())?;
    // Flat grey: the estimate reads only the header.
    let row = vec![128u8; width as usize * 3];
    for _ in 0..height {
        started.write_scanlines(&row)?;
    }
    Ok(started.finish()?)
}

fn png(width: u32, height: u32, alpha: bool) -> anyhow::Result<Vec<u8>> {
    let channels = if alpha { 4 } else { 3 };
    let pixels = vec![128u8; width as usize * height as usize * channels];
    let mut out = Vec::new();
    let color = if alpha {
        image::ExtendedColorType::Rgba8
    } else {
        image::ExtendedColorType::Rgb8
    };
    PngEncoder::new_with_quality(Cursor::new(&mut out), CompressionType::Fast, FilterType::Up)
        .write_image(&pixels, width, height, color)?;
    Ok(out)
}

fn main() -> anyhow::Result<()> {
    let sizes = [
        ("12 MP", 4000, 3000),
        ("24 MP", 6000, 4000),
        ("48 MP", 8000, 6000),
        ("72 MP", 10392, 6928),
        ("100 MP", 12240, 8160),
    ];
    let recipes = [
        ("jpeg", Recipe::builder().build()?),
        (
            "jpeg,webp",
            Recipe::builder().formats(&[Format::Jpeg, Format::WebP]).build()?,
        ),
    ];
    println!("| photo (3:2) | kind | working set, JPEG | Lambda memory, JPEG | working set, JPEG+WebP | Lambda memory, JPEG+WebP |");
    println!("|---|---|---:|---:|---:|---:|");
    for (name, w, h) in sizes {
        let kinds: [(&str, Vec<u8>); 4] = [
            ("baseline JPEG", jpeg(w, h, false)?),
            ("progressive JPEG", jpeg(w, h, true)?),
            ("PNG, RGB", png(w, h, false)?),
            ("PNG, RGBA", png(w, h, true)?),
        ];
        for (kind, bytes) in &kinds {
            let mut row = format!("| {name} | {kind} |");
            for (_, recipe) in &recipes {
                let mb = working_set(bytes, recipe)
                    .with_context(|| format!("{name} {kind}"))?
                    .div_ceil(1 << 20);
                row += &format!(" {mb} MB | {} MB |", mb + RESERVE_MB);
            }
            println!("{row}");
        }
    }
    Ok(())
}
