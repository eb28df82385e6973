//! Colour: conversion of other RGB profiles to sRGB, and flattening
//! transparency onto the JPEG background.

use std::sync::Arc;

use moxcms::{ColorProfile, DataColorSpace, Layout, TransformExecutor, TransformOptions};

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
