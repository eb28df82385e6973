//! SIMD resizing (fast_image_resize, Lanczos3) and the cascade that makes
//! small sizes from larger ones already made, each encoded as soon as it
//! exists.

use fast_image_resize as fir;

use image::metadata::Orientation;
use rayon::prelude::*;

use super::decode::{Rows, Source};
use super::orient::stored;
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
    let copied = sizes
        .iter()
        .any(|&s| stored(s, source.orientation) == (source.width, source.height));
    let source_alpha = if source.channels == Channels::Rgba && !copied {
        premultiply(source)?;
        Alpha::Premultiplied
    } else {
        Alpha::Straight
    };
    let source = &*source;
    let plan = Cascade::new(sizes, source.orientation);
    let tree = plan.tree(source.channels, finish);
    let from_source = (&source.pixels[..], source.width, source.height, source_alpha);
    rayon::scope(|s| {
        for i in plan.roots() {
            let tree = &tree;
            s.spawn(move |_| tree.make(i, from_source));
        }
    });
    plan.collect(tree)
}

/// Resizes a JPEG decoded a few rows at a time (`decode::jpeg_rows`) to
/// every size, as [`resize_each`] does a whole source: the sizes resized
/// from the source are made strip by strip while the rows arrive, so the
/// decoded image is never whole in memory, only a window of rows as tall
/// as the filters reach; then the rest of the cascade and `finish` run as
/// in [`resize_each`].
///
/// Each strip is one fast_image_resize call on the window with a crop box
/// at the strip's own source coordinates, and the window holds every row
/// the Lanczos3 filter reaches, so each output row is computed from the
/// same pixels with the same weights as from the whole image (up to
/// floating-point rounding of the crop offset: the tests allow 1 level).
pub(super) fn resize_streamed<T: Send>(
    rows: Rows<'_>,
    sizes: &[Size],
    finish: &Finish<'_, T>,
) -> Result<Vec<T>, RenderError> {
    let plan = Cascade::new(sizes, rows.orientation);
    let roots: Vec<usize> = plan.roots().collect();
    let (src_w, src_h, channels) = (rows.width, rows.height, rows.channels);
    let mut rows = Some(rows);
    let line = src_w as usize * channels.count();
    let mut strips: Vec<Strips> = roots
        .iter()
        .map(|&i| Strips::new(plan.stored[i], src_h, channels))
        .collect();
    // Rows `win_start..win_end` of the source, then (during a step) the
    // rows being decoded: one buffer, grown to its largest size once.
    let mut window: Vec<u8> = Vec::new();
    let (mut win_start, mut win_end) = (0u32, 0u32);
    // Each step resizes what the window completes (the roots in parallel,
    // on rayon's pool) while this thread decodes the next rows into the
    // window's tail: libjpeg is one thread, so the resizes cost no wall
    // time beside it.
    loop {
        let last = win_end == src_h;
        let n = strip_rows(src_h).min(src_h - win_end);
        let have = window.len();
        // Exact, not doubled: the window's size repeats step after step,
        // and a doubled capacity would be touched memory held to the end.
        window.reserve_exact(n as usize * line);
        window.resize(have + n as usize * line, 0);
        let (pixels, incoming) = window.split_at_mut(have);
        let view = Window {
            pixels,
            width: src_w,
            start: win_start,
            end: win_end,
            last,
            channels,
        };
        let mut resized = Ok(());
        let mut read = Ok(());
        // In place: the decoder stays on this thread (libjpeg's state is not
        // `Send`), only the resizes go to the pool.
        rayon::in_place_scope(|s| {
            s.spawn(|_| resized = strips.par_iter_mut().try_for_each(|s| s.advance(&view)));
            if let (true, Some(rows)) = (n > 0, rows.as_mut()) {
                read = rows.read(incoming);
                // Premultiplied as they arrive, as `resize_each` does the
                // whole source; the sizes are divided when made.
                if channels == Channels::Rgba && read.is_ok() {
                    read = multiply_alpha(incoming, src_w, n);
                }
            }
        });
        resized?;
        read?;
        // Every row is read: libjpeg's buffers (a progressive JPEG's
        // coefficients, the file's size in pixels × 2 per channel) go now,
        // before the last strips fill the sizes to their full size.
        if win_end + n == src_h {
            if let Some(rows) = rows.take() {
                rows.finish()?;
            }
        }
        if last {
            break;
        }
        // Drop the rows no size needs any more; the new ones are in place.
        let keep = strips
            .iter()
            .map(Strips::first_needed)
            .min()
            .unwrap_or(win_end)
            .clamp(win_start, win_end);
        window.drain(..(keep - win_start) as usize * line);
        win_start = keep;
        win_end += n;
    }
    drop(window);
    let tree = plan.tree(channels, finish);
    rayon::scope(|s| {
        for (&i, strip) in roots.iter().zip(strips) {
            let tree = &tree;
            s.spawn(move |_| {
                let mut pixels = strip.pixels;
                let divided = if channels == Channels::Rgba {
                    divide_alpha(&mut pixels, strip.width, strip.height)
                } else {
                    Ok(())
                };
                match divided {
                    Ok(()) => tree.finish_and_descend(i, pixels),
                    Err(e) => tree.record(i, Err(e)),
                }
            });
        }
    });
    plan.collect(tree)
}

/// Source rows decoded per step of [`resize_streamed`]: at least 128, and
/// at most 16 steps per image. Each step's resize computes its horizontal
/// weights afresh (fast_image_resize keeps none between calls: a sine per
/// tap, 2200 × 9 of them for a 2200-px output), so 64-row steps cost an
/// 8 MP photo 30% more CPU; 16 steps cost nothing measurable, and the
/// window stays a sixteenth of the image.
pub(super) fn strip_rows(src_h: u32) -> u32 {
    src_h.div_ceil(16).max(128)
}

/// The decoded rows at hand: `start..end` of the source.
struct Window<'a> {
    pixels: &'a [u8],
    width: u32,
    start: u32,
    end: u32,
    /// Whether `end` is the source's last row.
    last: bool,
    channels: Channels,
}

/// One size resized from a streamed source, row strip by row strip.
struct Strips {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
    /// Rows made so far.
    next: u32,
    /// Source rows per output row, and how far the filter reaches in
    /// source rows (Lanczos3: 3, times the scale when shrinking).
    scale: f64,
    radius: f64,
    /// Kept across strips, so its row buffers are reused.
    resizer: fir::Resizer,
}

impl Strips {
    fn new((width, height): (u32, u32), src_h: u32, channels: Channels) -> Strips {
        let scale = f64::from(src_h) / f64::from(height.max(1));
        Strips {
            width,
            height,
            pixels: vec![0; width as usize * height as usize * channels.count()],
            next: 0,
            scale,
            radius: 3.0 * scale.max(1.0),
            resizer: fir::Resizer::new(),
        }
    }

    /// The first source row the next output row reaches (one row early,
    /// for rounding); `u32::MAX` when every row is made.
    fn first_needed(&self) -> u32 {
        if self.next >= self.height {
            return u32::MAX;
        }
        let centre = (f64::from(self.next) + 0.5) * self.scale;
        ((centre - self.radius).floor() - 1.0).max(0.0) as u32
    }

    /// Makes every output row whose filter the window covers.
    fn advance(&mut self, window: &Window<'_>) -> Result<(), RenderError> {
        if self.next >= self.height || window.end == window.start {
            return Ok(());
        }
        // Row r reaches up to source row ceil((r + 0.5) × scale + radius),
        // exclusive; one row of slack for rounding.
        let end = if window.last {
            self.height
        } else {
            let last = ((f64::from(window.end) - 1.0 - self.radius) / self.scale - 0.5).floor();
            (last + 1.0).clamp(0.0, f64::from(self.height)) as u32
        };
        if end <= self.next {
            return Ok(());
        }
        let (width, rows) = (self.width, end - self.next);
        let err = |e: &dyn std::fmt::Display| RenderError::Resize {
            width,
            height: rows,
            message: e.to_string(),
        };
        let pixel_type = pixel_type(window.channels);
        let in_window = window.end - window.start;
        let src = fir::images::ImageRef::new(window.width, in_window, window.pixels, pixel_type)
            .map_err(|e| err(&e))?;
        let bytes = width as usize * window.channels.count();
        let out = &mut self.pixels[self.next as usize * bytes..end as usize * bytes];
        let mut dst = fir::images::Image::from_slice_u8(width, rows, out, pixel_type).map_err(|e| err(&e))?;
        let top = f64::from(self.next) * self.scale - f64::from(window.start);
        let height = (f64::from(rows) * self.scale).min(f64::from(in_window) - top);
        let options = fir::ResizeOptions::new()
            .resize_alg(fir::ResizeAlg::Convolution(fir::FilterType::Lanczos3))
            .crop(0.0, top, f64::from(window.width), height)
            .use_alpha(false);
        self.resizer
            .resize(&src, &mut dst, &options)
            .map_err(|e| err(&e))?;
        self.next = end;
        Ok(())
    }
}

/// The cascade's plan: sizes largest first, each with the size it is
/// resized from (`None`: the source).
struct Cascade {
    /// For each position in `sorted`, the index in the caller's `sizes`.
    order: Vec<usize>,
    sorted: Vec<Size>,
    /// `sorted` in the stored orientation.
    stored: Vec<(u32, u32)>,
    base: Vec<Option<usize>>,
}

impl Cascade {
    fn new(sizes: &[Size], orientation: Orientation) -> Cascade {
        // Largest first: a base always comes before the sizes made from it.
        let mut order: Vec<usize> = (0..sizes.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse((sizes[i].width, sizes[i].height)));
        let sorted: Vec<Size> = order.iter().map(|&i| sizes[i]).collect();
        let stored: Vec<(u32, u32)> = sorted.iter().map(|&s| stored(s, orientation)).collect();
        let base = cascade_bases(&stored, &sorted);
        Cascade {
            order,
            sorted,
            stored,
            base,
        }
    }

    /// The sizes resized from the source.
    fn roots(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.sorted.len()).filter(|&i| self.base[i].is_none())
    }

    fn tree<'a, T>(&'a self, channels: Channels, finish: &'a Finish<'a, T>) -> Tree<'a, T> {
        Tree {
            sizes: &self.sorted,
            stored: &self.stored,
            children: (0..self.sorted.len())
                .map(|j| {
                    (0..self.sorted.len())
                        .filter(|&i| self.base[i] == Some(j))
                        .collect()
                })
                .collect(),
            channels,
            finish,
            done: (0..self.sorted.len())
                .map(|_| std::sync::Mutex::new(None))
                .collect(),
        }
    }

    /// The results in the caller's order, or the first error, largest
    /// first, so a failed base reports its own error before the sizes
    /// that needed it.
    fn collect<T>(&self, tree: Tree<'_, T>) -> Result<Vec<T>, RenderError> {
        let mut results: Vec<Option<T>> = (0..self.sorted.len()).map(|_| None).collect();
        for (k, slot) in tree.done.into_iter().enumerate() {
            // A poisoned lock means `finish` panicked; the panic itself has
            // already propagated out of the scope, so this is unreachable.
            let outcome = slot.into_inner().unwrap_or(None);
            let (w, h) = self.stored[k];
            let value = outcome.unwrap_or_else(|| {
                Err(RenderError::Resize {
                    width: w,
                    height: h,
                    message: "cascade base missing".to_owned(),
                })
            })?;
            results[self.order[k]] = Some(value);
        }
        // Every slot was filled above or the function returned.
        Ok(results.into_iter().flatten().collect())
    }
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
    /// Resizes size `i` from `from` (pixels, width, height, alpha), then
    /// goes on as [`Tree::finish_and_descend`].
    fn make(&self, i: usize, from: (&[u8], u32, u32, Alpha)) {
        let (w, h) = self.stored[i];
        match resize_from(from.0, from.1, from.2, self.channels, from.3, w, h) {
            Ok(pixels) => self.finish_and_descend(i, pixels),
            Err(e) => self.record(i, Err(e)),
        }
    }

    /// With size `i` made: at the same time, the sizes made from it and
    /// `finish` on it.
    fn finish_and_descend(&self, i: usize, pixels: Vec<u8>) {
        let (w, h) = self.stored[i];
        let mut finished = None;
        rayon::scope(|s| {
            for &c in &self.children[i] {
                let pixels = &pixels[..];
                s.spawn(move |_| self.make(c, (pixels, w, h, Alpha::Straight)));
            }
            finished = Some((self.finish)(self.sizes[i], &pixels));
        });
        // `finished` is set inside the scope, which has returned.
        let outcome = finished.unwrap_or_else(|| {
            Err(RenderError::Resize {
                width: w,
                height: h,
                message: "output was not finished".to_owned(),
            })
        });
        self.record(i, outcome);
    }

    fn record(&self, i: usize, outcome: Result<T, RenderError>) {
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
    multiply_alpha(&mut source.pixels, source.width, source.height)
}

/// Multiplies RGBA colour by alpha, in place.
fn multiply_alpha(pixels: &mut [u8], width: u32, height: u32) -> Result<(), RenderError> {
    mul_div(pixels, width, height, Alpha::Premultiplied)
}

/// Divides premultiplied RGBA colour by alpha, in place, as
/// fast_image_resize does after a resize with `use_alpha`.
fn divide_alpha(pixels: &mut [u8], width: u32, height: u32) -> Result<(), RenderError> {
    mul_div(pixels, width, height, Alpha::Straight)
}

/// Brings RGBA pixels to the alpha form `to`, in place.
fn mul_div(pixels: &mut [u8], width: u32, height: u32, to: Alpha) -> Result<(), RenderError> {
    let verb = match to {
        Alpha::Premultiplied => "premultiply",
        Alpha::Straight => "divide",
    };
    let err = |e: &dyn std::fmt::Display| RenderError::Resize {
        width,
        height,
        message: format!("cannot {verb} alpha: {e}"),
    };
    let mut image = fir::images::Image::from_slice_u8(width, height, pixels, fir::PixelType::U8x4)
        .map_err(|e| err(&e))?;
    let md = fir::MulDiv::default();
    match to {
        Alpha::Premultiplied => md.multiply_alpha_inplace(&mut image),
        Alpha::Straight => md.divide_alpha_inplace(&mut image),
    }
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
    let pixel_type = pixel_type(channels);
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

fn pixel_type(channels: Channels) -> fir::PixelType {
    match channels {
        Channels::Gray => fir::PixelType::U8,
        Channels::Rgb => fir::PixelType::U8x3,
        Channels::Rgba => fir::PixelType::U8x4,
    }
}
