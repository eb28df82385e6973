//! SIMD resizing (fast_image_resize, Lanczos3) and the cascade that makes
//! small sizes from larger ones already made.

use fast_image_resize as fir;
use rayon::prelude::*;

use super::decode::Source;
use super::orient::swaps_axes;
use super::{Channels, RenderError};
use crate::geometry::Size;

/// Resizes the source to every size (in the stored orientation), largest
/// first. A size is resized from the smallest one already made that is at
/// least twice as large on both axes, else from the source: Lanczos3 over a
/// 2× or larger step is indistinguishable from resizing the full image (the
/// benchmark's SSIMULACRA2 column checks this), and it reads a fraction of
/// the pixels. Sizes taken from the source are resized in parallel.
pub(super) fn resize_all(source: &Source, sizes: &[Size]) -> Result<Vec<(Size, Vec<u8>)>, RenderError> {
    let stored = |s: Size| {
        if swaps_axes(source.orientation) {
            (s.height, s.width)
        } else {
            (s.width, s.height)
        }
    };
    let mut order: Vec<Size> = sizes.to_vec();
    order.sort_by_key(|s| std::cmp::Reverse((s.width, s.height)));
    let stored_order: Vec<(u32, u32)> = order.iter().map(|&s| stored(s)).collect();
    let base = cascade_bases(&stored_order, &order);
    let first: Vec<(usize, Vec<u8>)> = (0..order.len())
        .into_par_iter()
        .filter(|&i| base[i].is_none())
        .map(|i| {
            let (w, h) = stored(order[i]);
            resize(&source.pixels, source.width, source.height, source.channels, w, h).map(|p| (i, p))
        })
        .collect::<Result<_, _>>()?;
    let mut made: Vec<Option<Vec<u8>>> = vec![None; order.len()];
    for (i, p) in first {
        made[i] = Some(p);
    }
    for i in 0..order.len() {
        if let Some(j) = base[i] {
            let (bw, bh) = stored(order[j]);
            let (w, h) = stored(order[i]);
            // `j < i` and sizes are made in order, so the base exists.
            let Some(from) = made[j].as_deref() else {
                return Err(RenderError::Resize {
                    width: w,
                    height: h,
                    message: "cascade base missing".to_owned(),
                });
            };
            made[i] = Some(resize(from, bw, bh, source.channels, w, h)?);
        }
    }
    Ok(order
        .into_iter()
        .zip(made)
        .filter_map(|(s, p)| p.map(|p| (s, p)))
        .rev()
        .collect())
}

/// For each size (largest first, stored orientation), the index of the
/// size it is resized from: the smallest earlier one at least twice as
/// large on both axes, or `None` for the source.
fn cascade_bases(stored: &[(u32, u32)], order: &[Size]) -> Vec<Option<usize>> {
    let mut base = Vec::with_capacity(stored.len());
    for (i, &(w, h)) in stored.iter().enumerate() {
        let from = (0..i)
            .filter(|&j| {
                let (bw, bh) = stored[j];
                bw >= 2 * w && bh >= 2 * h
            })
            .min_by_key(|&j| order[j].width);
        base.push(from);
    }
    base
}

pub(super) fn resize(
    pixels: &[u8],
    src_w: u32,
    src_h: u32,
    channels: Channels,
    width: u32,
    height: u32,
) -> Result<Vec<u8>, RenderError> {
    if (width, height) == (src_w, src_h) {
        return Ok(pixels.to_vec());
    }
    let err = |e: &dyn std::fmt::Display| RenderError::Resize {
        width,
        height,
        message: e.to_string(),
    };
    let pixel_type = match channels {
        Channels::Gray => fir::PixelType::U8,
        Channels::Rgb => fir::PixelType::U8x3,
        Channels::Rgba => fir::PixelType::U8x4,
    };
    let src = fir::images::ImageRef::new(src_w, src_h, pixels, pixel_type).map_err(|e| err(&e))?;
    let mut dst = fir::images::Image::new(width, height, pixel_type);
    // Lanczos3 like sharp and libvips; fir premultiplies alpha for U8x4 so
    // transparent pixels do not bleed their colour into edges.
    let options = fir::ResizeOptions::new()
        .resize_alg(fir::ResizeAlg::Convolution(fir::FilterType::Lanczos3))
        .use_alpha(true);
    fir::Resizer::new()
        .resize(&src, &mut dst, &options)
        .map_err(|e| err(&e))?;
    Ok(dst.into_vec())
}
