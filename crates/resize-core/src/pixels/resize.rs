//! SIMD resizing (fast_image_resize, Lanczos3) and the cascade that makes
//! small sizes from larger ones already made, each encoded as soon as it
//! exists.

use fast_image_resize as fir;

use super::decode::Source;
use super::orient::swaps_axes;
use super::{Channels, RenderError};
use crate::geometry::Size;

/// Resizes the source to every size (in the stored orientation) and hands
/// each result to `finish` as soon as it is made; returns what `finish`
/// returned, in the order of `sizes`.
///
/// A size is resized from the smallest other size at least twice as large
/// on both axes, else from the source: Lanczos3 over a 2× or larger step is
/// indistinguishable from resizing the full image (the benchmark's
/// SSIMULACRA2 column checks this), and it reads a fraction of the pixels.
/// The work is a tree on rayon: the sizes made from the source start
/// together; a size made from another starts the moment that one exists,
/// while that one is encoded. No core waits for every resize to end before
/// the first encode starts, which is what kept wall time near CPU time.
///
/// An RGBA source is premultiplied by its alpha once, in place, before the
/// sizes made from it (which then only divide their small results), unless
/// one size is the source's own: left
/// to fast_image_resize, each resize from the source would premultiply its
/// own full-size copy, 4 bytes per source pixel each — 800 MB for the two
/// largest sizes of a 100 MP PNG. The bytes are the same either way.
pub(super) fn resize_each<T: Send>(
    source: &mut Source,
    sizes: &[Size],
    finish: &Finish<'_, T>,
) -> Result<Vec<T>, RenderError> {
    // Not when a size is the source's own: a copy must stay exact, and
    // dividing what was multiplied is not for faint pixels.
    let stored_size = |s: &Size| {
        if swaps_axes(source.orientation) {
            (s.height, s.width)
        } else {
            (s.width, s.height)
        }
    };
    let copied = sizes
        .iter()
        .any(|s| stored_size(s) == (source.width, source.height));
    let source_alpha = if source.channels == Channels::Rgba && !copied {
        premultiply(source)?;
        Alpha::Premultiplied
    } else {
        Alpha::Straight
    };
    let source = &*source;
    let stored = |s: Size| {
        if swaps_axes(source.orientation) {
            (s.height, s.width)
        } else {
            (s.width, s.height)
        }
    };
    // Largest first: a base always comes before the sizes made from it.
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse((sizes[i].width, sizes[i].height)));
    let sorted: Vec<Size> = order.iter().map(|&i| sizes[i]).collect();
    let stored_order: Vec<(u32, u32)> = sorted.iter().map(|&s| stored(s)).collect();
    let base = cascade_bases(&stored_order, &sorted);
    let tree = Tree {
        sizes: &sorted,
        stored: &stored_order,
        children: (0..sorted.len())
            .map(|j| (0..sorted.len()).filter(|&i| base[i] == Some(j)).collect())
            .collect(),
        channels: source.channels,
        finish,
        done: (0..sorted.len()).map(|_| std::sync::Mutex::new(None)).collect(),
    };
    let from_source = (&source.pixels[..], source.width, source.height, source_alpha);
    rayon::scope(|s| {
        for i in (0..sorted.len()).filter(|&i| base[i].is_none()) {
            let tree = &tree;
            s.spawn(move |_| tree.make(i, from_source));
        }
    });
    // Walk largest first, so a failed base reports its own error before
    // the sizes that needed it.
    let mut results: Vec<Option<T>> = (0..sizes.len()).map(|_| None).collect();
    for (k, slot) in tree.done.into_iter().enumerate() {
        // A poisoned lock means `finish` panicked; the panic itself has
        // already propagated out of the scope above, so this is unreachable.
        let outcome = slot.into_inner().unwrap_or(None);
        let (w, h) = stored_order[k];
        let value = outcome.unwrap_or_else(|| {
            Err(RenderError::Resize {
                width: w,
                height: h,
                message: "cascade base missing".to_owned(),
            })
        })?;
        results[order[k]] = Some(value);
    }
    // Every slot was filled above or the function returned.
    Ok(results.into_iter().flatten().collect())
}

/// What is done with each resized size (orient, convert, encode).
pub(super) type Finish<'a, T> = dyn Fn(Size, &[u8]) -> Result<T, RenderError> + Sync + 'a;

/// One size's outcome; `None` until made (stays `None` when its base failed).
type Slot<T> = std::sync::Mutex<Option<Result<T, RenderError>>>;

/// The cascade as a tree of rayon tasks (see [`resize_each`]).
struct Tree<'a, T> {
    /// Sizes, largest first.
    sizes: &'a [Size],
    /// The same, in the stored orientation.
    stored: &'a [(u32, u32)],
    /// For each size, the sizes resized from it.
    children: Vec<Vec<usize>>,
    channels: Channels,
    finish: &'a Finish<'a, T>,
    done: Vec<Slot<T>>,
}

impl<T: Send> Tree<'_, T> {
    /// Resizes size `i` from `from` (pixels, width, height, alpha), then,
    /// at the same time, the sizes made from it and `finish` on it.
    fn make(&self, i: usize, from: (&[u8], u32, u32, Alpha)) {
        let (w, h) = self.stored[i];
        let outcome = match resize_from(from.0, from.1, from.2, self.channels, from.3, w, h) {
            Err(e) => Err(e),
            Ok(pixels) => {
                let mut finished = None;
                rayon::scope(|s| {
                    for &c in &self.children[i] {
                        let pixels = &pixels[..];
                        s.spawn(move |_| self.make(c, (pixels, w, h, Alpha::Straight)));
                    }
                    finished = Some((self.finish)(self.sizes[i], &pixels));
                });
                // `finished` is set inside the scope, which has returned.
                finished.unwrap_or_else(|| {
                    Err(RenderError::Resize {
                        width: w,
                        height: h,
                        message: "output was not finished".to_owned(),
                    })
                })
            }
        };
        if let Ok(mut slot) = self.done[i].lock() {
            *slot = Some(outcome);
        }
    }
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

/// How an RGBA buffer's colour relates to its alpha.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Alpha {
    /// As decoded and encoded (or no alpha at all).
    Straight,
    /// Multiplied by alpha already (an RGBA source, by [`premultiply`]).
    Premultiplied,
}

/// Multiplies an RGBA source's colour by its alpha, in place.
fn premultiply(source: &mut Source) -> Result<(), RenderError> {
    let (width, height) = (source.width, source.height);
    let err = |e: &dyn std::fmt::Display| RenderError::Resize {
        width,
        height,
        message: format!("cannot premultiply alpha: {e}"),
    };
    let mut image =
        fir::images::Image::from_slice_u8(width, height, &mut source.pixels, fir::PixelType::U8x4)
            .map_err(|e| err(&e))?;
    fir::MulDiv::default()
        .multiply_alpha_inplace(&mut image)
        .map_err(|e| err(&e))
}

/// One Lanczos3 resize of straight pixels, as the stage function offers it.
pub(super) fn resize(
    pixels: &[u8],
    src_w: u32,
    src_h: u32,
    channels: Channels,
    width: u32,
    height: u32,
) -> Result<Vec<u8>, RenderError> {
    resize_from(pixels, src_w, src_h, channels, Alpha::Straight, width, height)
}

/// One Lanczos3 resize; the result has straight alpha either way.
fn resize_from(
    pixels: &[u8],
    src_w: u32,
    src_h: u32,
    channels: Channels,
    alpha: Alpha,
    width: u32,
    height: u32,
) -> Result<Vec<u8>, RenderError> {
    if (width, height) == (src_w, src_h) && alpha == Alpha::Straight {
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
    // Lanczos3 like sharp and libvips. Alpha is premultiplied for U8x4 so
    // transparent pixels do not bleed their colour into edges: by fir (a
    // copy of the input) for straight input, already for a premultiplied
    // source, whose result is divided here as fir would.
    let options = fir::ResizeOptions::new()
        .resize_alg(fir::ResizeAlg::Convolution(fir::FilterType::Lanczos3))
        .use_alpha(alpha == Alpha::Straight);
    fir::Resizer::new()
        .resize(&src, &mut dst, &options)
        .map_err(|e| err(&e))?;
    if alpha == Alpha::Premultiplied {
        fir::MulDiv::default()
            .divide_alpha_inplace(&mut dst)
            .map_err(|e| err(&e))?;
    }
    Ok(dst.into_vec())
}
