//! `score <source> <output>...`: prints `<output>\t<ssimulacra2>` for each
//! output, against a reference made from the full decode of the source:
//! EXIF orientation applied, converted to linear light, resized with
//! Lanczos3 (fast_image_resize, f32) to the output's size.

use std::path::Path;

use anyhow::{Context, Result};
use fast_image_resize as fir;
use image::{DynamicImage, ImageDecoder, ImageReader};
use ssimulacra2::{compute_frame_ssimulacra2, LinearRgb};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let source = args.next().context("usage: score <source> <output>...")?;
    let full = linear(&decode_oriented(Path::new(&source))?);
    for output in args {
        let out = image::open(&output).with_context(|| format!("decoding {output}"))?;
        let (w, h) = (out.width(), out.height());
        let reference = resize_linear(&full, w, h)?;
        let distorted = linear(&out);
        let score = compute_frame_ssimulacra2(
            LinearRgb::new(to_pixels(&reference.2), w as usize, h as usize)?,
            LinearRgb::new(to_pixels(&distorted.2), w as usize, h as usize)?,
        )?;
        println!("{output}\t{score:.3}");
    }
    Ok(())
}

fn decode_oriented(path: &Path) -> Result<DynamicImage> {
    let mut decoder = ImageReader::open(path)?.with_guessed_format()?.into_decoder()?;
    let orientation = decoder.orientation()?;
    let mut img = DynamicImage::from_decoder(decoder)?;
    img.apply_orientation(orientation);
    Ok(img)
}

fn srgb_to_linear(v: u8) -> f32 {
    let c = f32::from(v) / 255.0;
    if c <= 0.04045 {
        c / 12.92
    } else {
        ((c + 0.055) / 1.055).powf(2.4)
    }
}

/// (width, height, interleaved linear RGB).
fn linear(img: &DynamicImage) -> (u32, u32, Vec<f32>) {
    let rgb = img.to_rgb8();
    let lut: Vec<f32> = (0..=255u8).map(srgb_to_linear).collect();
    (
        rgb.width(),
        rgb.height(),
        rgb.as_raw().iter().map(|&v| lut[usize::from(v)]).collect(),
    )
}

fn resize_linear(src: &(u32, u32, Vec<f32>), w: u32, h: u32) -> Result<(u32, u32, Vec<f32>)> {
    let bytes: Vec<u8> = src.2.iter().flat_map(|f| f.to_ne_bytes()).collect();
    let src_img = fir::images::ImageRef::new(src.0, src.1, &bytes, fir::PixelType::F32x3)?;
    let mut dst = fir::images::Image::new(w, h, fir::PixelType::F32x3);
    fir::Resizer::new().resize(
        &src_img,
        &mut dst,
        &fir::ResizeOptions::new().resize_alg(fir::ResizeAlg::Convolution(fir::FilterType::Lanczos3)),
    )?;
    let out: Vec<f32> = dst
        .buffer()
        .chunks_exact(4)
        .map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]]).clamp(0.0, 1.0))
        .collect();
    Ok((w, h, out))
}

fn to_pixels(v: &[f32]) -> Vec<[f32; 3]> {
    v.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect()
}
