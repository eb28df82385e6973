//! Colour: conversion of other RGB profiles to sRGB, and flattening
//! transparency onto the JPEG background.

use std::sync::Arc;

use moxcms::{ColorProfile, DataColorSpace, Layout, RenderingIntent, TransformExecutor, TransformOptions};

use super::Channels;
use crate::values::Rgb;

/// Composites RGBA over an opaque background, giving RGB.
pub(super) fn flatten(rgba: &[u8], bg: Rgb) -> Vec<u8> {
    let mut out = Vec::with_capacity(rgba.len() / 4 * 3);
    for px in rgba.chunks_exact(4) {
        let a = u32::from(px[3]);
        for (&c, &b) in px[..3].iter().zip(&bg.0) {
            let v = (u32::from(c) * a + u32::from(b) * (255 - a) + 127) / 255;
            // v ≤ (255·a + 255·(255−a) + 127) / 255 = 255, so it fits a u8.
            out.push(v as u8);
        }
    }
    out
}

/// Pixels of any layout as RGBA (gray and RGB opaque), for the placeholders.
pub(super) fn to_rgba(pixels: &[u8], channels: Channels) -> Vec<u8> {
    match channels {
        Channels::Rgba => pixels.to_vec(),
        Channels::Rgb => pixels
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
        Channels::Gray => pixels.iter().flat_map(|&g| [g, g, g, 255]).collect(),
    }
}

/// A transform from `icc` to sRGB, or `None` when the profile is not RGB,
/// cannot be parsed, or already maps colours onto themselves (sRGB).
pub(super) fn srgb_transform(
    icc: &[u8],
    layout: Layout,
) -> Option<Arc<dyn TransformExecutor<u8> + Send + Sync>> {
    let src = ColorProfile::new_from_slice(icc).ok()?;
    if src.color_space != DataColorSpace::Rgb {
        return None;
    }
    let transform = src
        .create_transform_8bit(
            layout,
            &ColorProfile::new_srgb(),
            layout,
            TransformOptions::default(),
        )
        .ok()?;
    // Probe a coarse colour cube: an sRGB-equivalent profile moves nothing by
    // more than rounding, and skipping it saves a pass per output.
    let channels = if layout == Layout::Rgba { 4 } else { 3 };
    let steps = [0u8, 51, 102, 153, 204, 255];
    let mut probe = Vec::new();
    for r in steps {
        for g in steps {
            for b in steps {
                probe.extend_from_slice(&[r, g, b, 255][..channels]);
            }
        }
    }
    let mut out = vec![0; probe.len()];
    transform.transform(&probe, &mut out).ok()?;
    let moved = probe.iter().zip(&out).any(|(a, b)| a.abs_diff(*b) > 2);
    moved.then_some(transform)
}

/// CMYK (4 bytes per pixel, as libjpeg gives them) to sRGB RGB: through the
/// embedded CMYK profile when there is one, as sharp and libvips do; else
/// the naive conversion (no ink is white, full black is black), which is
/// what a browser shows for an untagged CMYK JPEG. `inverted` samples
/// (Adobe's convention: 255 is no ink) are flipped first.
pub(super) fn cmyk_to_rgb(mut cmyk: Vec<u8>, inverted: bool, icc: Option<&[u8]>) -> Vec<u8> {
    if inverted {
        for v in &mut cmyk {
            *v = 255 - *v;
        }
    }
    if let Some(rgb) = icc.and_then(|icc| through_profile(&cmyk, icc)) {
        return rgb;
    }
    let mut rgb = Vec::with_capacity(cmyk.len() / 4 * 3);
    for px in cmyk.chunks_exact(4) {
        let k = 255 - u32::from(px[3]);
        for &ink in &px[..3] {
            // (255 − ink)·(255 − k) / 255 ≤ 255: fits a u8.
            rgb.push(((255 - u32::from(ink)) * k / 255) as u8);
        }
    }
    rgb
}

/// `cmyk` (0 = no ink) through a CMYK profile to sRGB, or `None` when the
/// profile is not a CMYK profile moxcms can use.
fn through_profile(cmyk: &[u8], icc: &[u8]) -> Option<Vec<u8>> {
    let src = ColorProfile::new_from_slice(icc).ok()?;
    if src.color_space != DataColorSpace::Cmyk {
        return None;
    }
    // Perceptual, the profile's default intent for photos and what sharp
    // and libvips use: out-of-gamut inks are compressed, not clipped.
    let transform = src
        .create_transform_8bit(
            Layout::Rgba,
            &ColorProfile::new_srgb(),
            Layout::Rgb,
            TransformOptions {
                rendering_intent: RenderingIntent::Perceptual,
                ..TransformOptions::default()
            },
        )
        .ok()?;
    let mut rgb = vec![0; cmyk.len() / 4 * 3];
    transform.transform(cmyk, &mut rgb).ok()?;
    Some(rgb)
}
