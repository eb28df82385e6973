//! SIMD resizing (fast_image_resize, Lanczos3) from a ladder of levels
//! that depends on the source alone, strip by strip as the rows arrive.
//!
//! A size's pixels depend only on the source and that size, never on which
//! other sizes are made with it: adding a width to a recipe changes no
//! other variant's bytes (variants are judged current by their recipe's
//! fingerprint, which leaves the list of widths out).

use fast_image_resize as fir;

use rayon::prelude::*;

use super::decode::Rows;
use super::orient::stored;
use super::{Channels, RenderError};
use crate::geometry::Size;

/// Resizes the source read from `rows` to every size (in the stored
/// orientation) and hands each result to `finish`; returns what `finish`
/// returned, in the order of `sizes`.
///
/// **The ladder.** Level 0 is the source; each next level is the one
/// before halved on both axes, each pixel the mean of a 2×2 block (sizes
/// rounded up; an odd edge's pixels the mean of what there is). A size is
/// resized with Lanczos3 from the smallest level at least twice as large
/// on both axes, else from the source: Lanczos3 over a 2× or larger step
/// reads a fraction of the pixels and loses nothing visible (the
/// benchmark's SSIMULACRA2 column checks this), and a level is a function
/// of the source alone, so a size is made the same way whatever else is
/// made. (Resizing small sizes from larger *requested* sizes, as before,
/// made a 360-px variant's bytes depend on whether 720 was requested.
/// libjpeg's DCT-scaled decoding is not used for the same reason: its
/// scale would follow the largest requested size.) A size equal to the
/// source's is a copy.
///
/// **Strips.** The rows arrive a step at a time (a sixteenth of the image,
/// at least 128 rows, [`strip_rows`]); each level keeps a window of the
/// rows its sizes' filters and the next level still need. Each size is
/// made strip by strip: one fast_image_resize call per step on the rows
/// the window completes, with a crop box at the strip's source
/// coordinates, reading from the first row the strip's own filter reaches
/// (never from where the window happens to start, which other sizes
/// decide). The pool resizes one step while this thread decodes the next
/// (libjpeg's state stays on its thread); the decoded image is never
/// whole in memory unless the format is decoded whole.
///
/// An RGBA source is premultiplied by its alpha as its rows arrive (a copy
/// of the source's own size is taken before); each size is divided once
/// made, as fast_image_resize does with `use_alpha`.
pub(super) fn resize_all<T: Send>(
    rows: Rows<'_>,
    sizes: &[Size],
    finish: &Finish<'_, T>,
) -> Result<Vec<T>, RenderError> {
    resize_all_with(rows, sizes, finish, None)
}

/// [`resize_all`], with the source window's gap set to `gap_rows` rows
/// when given (a test makes it too short, to check that the rows the gap
/// cannot hold are kept all the same).
fn resize_all_with<T: Send>(
    rows: Rows<'_>,
    sizes: &[Size],
    finish: &Finish<'_, T>,
    gap_rows: Option<u32>,
) -> Result<Vec<T>, RenderError> {
    let src_h = rows.height;
    let mut ladder = Ladder::new(&rows, sizes, gap_rows);
    let mut rows = Some(rows);
    loop {
        // Every row read and every level halved: this pass makes the last
        // rows of every size.
        let done = ladder.levels.iter().all(|l| l.end == l.height);
        let n = strip_rows(src_h).min(src_h - ladder.levels[0].end);
        ladder.step(rows.as_mut().filter(|_| n > 0), n)?;
        if done {
            break;
        }
        ladder.drop_done(n, gap_rows.is_some());
        // Every row is read: libjpeg's buffers (a progressive JPEG's
        // coefficients) and a whole decode go now, before the last strips
        // fill the sizes.
        if ladder.levels[0].end == src_h {
            if let Some(rows) = rows.take() {
                rows.finish()?;
            }
        }
    }
    ladder.finish(sizes, finish)
}

/// The state of [`resize_all`]: the levels' windows of rows, each size
/// being made (a copy of the source, or strips from a level), and the
/// buffer the source's next rows arrive in.
struct Ladder {
    channels: Channels,
    src_w: u32,
    /// Bytes per source row.
    line: usize,
    /// Bytes of the gap before the arriving rows (see [`Ladder::new`]).
    gap: usize,
    /// Sizes equal to the source's: each one's index in the sizes, and its pixels.
    copies: Vec<(usize, Vec<u8>)>,
    /// Every other size: its index in the sizes, its level and its strips.
    strips: Vec<(usize, usize, Strips)>,
    levels: Vec<Level>,
    /// Where the source's next rows arrive, after the gap.
    spare: Vec<u8>,
}

impl Ladder {
    fn new(rows: &Rows<'_>, sizes: &[Size], gap_rows: Option<u32>) -> Ladder {
        let (src_w, src_h, channels) = (rows.width, rows.height, rows.channels);
        let mut copies: Vec<(usize, Vec<u8>)> = Vec::new();
        let mut strips: Vec<(usize, usize, Strips)> = Vec::new();
        for (i, &size) in sizes.iter().enumerate() {
            let (w, h) = stored(size, rows.orientation);
            if (w, h) == (src_w, src_h) {
                copies.push((i, vec![0; w as usize * h as usize * channels.count()]));
            } else {
                let k = level_for((src_w, src_h), (w, h));
                let level_h = level_size((src_w, src_h), k).1;
                strips.push((i, k, Strips::new((w, h), level_h, channels)));
            }
        }
        let depth = strips.iter().map(|s| s.1).max().unwrap_or(0);
        let levels: Vec<Level> = (0..=depth)
            .map(|k| {
                let (width, height) = level_size((src_w, src_h), k);
                Level {
                    width,
                    height,
                    window: Vec::new(),
                    live: 0,
                    start: 0,
                    end: 0,
                }
            })
            .collect();
        let line = src_w as usize * channels.count();
        // The source's rows arrive in a second buffer, after a gap as long
        // as the filters can reach back (`reach_back`): once a step is
        // done, the few older rows still needed go into the gap and the
        // buffers swap. Appending to the window instead moved every step's
        // rows (still to be resized) to its front once the step was done:
        // 3% of a 15 MP photo's CPU in memmove.
        let gap = gap_rows.unwrap_or_else(|| reach_back(&strips)) as usize * line;
        Ladder {
            channels,
            src_w,
            line,
            gap,
            copies,
            strips,
            levels,
            spare: Vec::new(),
        }
    }

    /// One step: the pool halves what the last step read down the ladder
    /// and resizes what the windows complete, while this thread reads the
    /// next `n` rows from `rows` (libjpeg's state is not `Send`).
    fn step(&mut self, rows: Option<&mut Rows<'_>>, n: u32) -> Result<(), RenderError> {
        let Ladder {
            channels,
            src_w,
            line,
            gap,
            copies,
            strips,
            levels,
            spare,
        } = self;
        let (channels, line, gap) = (*channels, *line, *gap);
        let (first, deeper) = levels.split_at_mut(1);
        let source = &mut first[0];
        // Exact, not doubled: the buffers' size repeats step after step,
        // and a doubled capacity would be touched memory held to the end.
        // (A buffer already as long is cut, not filled again: its bytes
        // are all written before they are read.)
        spare.reserve_exact((gap + n as usize * line).saturating_sub(spare.len()));
        spare.resize(gap + n as usize * line, 0);
        let incoming = &mut spare[gap..];
        let source_view = source.view(channels);
        let at = source.end as usize * line;
        let mut resized = Ok(());
        let mut read = Ok(());
        rayon::in_place_scope(|s| {
            s.spawn(|_| {
                let mut views = vec![source_view];
                for level in deeper.iter_mut() {
                    // `views` holds the level above, which is never empty.
                    if let Some(above) = views.last() {
                        halve_into(above, level, channels);
                    }
                    views.push(level.view(channels));
                }
                resized = strips
                    .par_iter_mut()
                    .try_for_each(|(_, k, s)| s.advance(&views[*k]));
            });
            if let Some(rows) = rows {
                read = rows.read(incoming);
                if read.is_ok() {
                    for (_, copy) in copies.iter_mut() {
                        copy[at..at + incoming.len()].copy_from_slice(incoming);
                    }
                    if channels == Channels::Rgba {
                        read = multiply_alpha(incoming, *src_w, n);
                    }
                }
            }
        });
        resized?;
        read
    }

    /// Drops the rows no size and no deeper level needs any more; the
    /// source's window takes the step's `n` new rows. `gap_given`: a test
    /// set the gap, perhaps too short.
    fn drop_done(&mut self, n: u32, gap_given: bool) {
        for k in 0..self.levels.len() {
            let next = self.levels.get(k + 1).map_or(u32::MAX, |l| 2 * l.end);
            let keep = self
                .strips
                .iter()
                .filter(|s| s.1 == k)
                .map(|s| s.2.first_needed())
                .fold(next, u32::min);
            if k == 0 {
                let joined = self.levels[0].take_step(keep, n, &mut self.spare, self.gap, self.channels);
                // Tests run with debug assertions over every fixture: the
                // gap as sized holds what the filters reach back to.
                debug_assert!(!joined || gap_given, "the gap is shorter than the filters reach");
            } else {
                self.levels[k].drop_before(keep, self.channels);
            }
        }
    }

    /// Once every strip is made: each size's pixels (unpremultiplied) to
    /// `finish`, in the order of `sizes`, in parallel.
    fn finish<T: Send>(self, sizes: &[Size], finish: &Finish<'_, T>) -> Result<Vec<T>, RenderError> {
        let Ladder {
            channels,
            copies,
            strips,
            levels,
            ..
        } = self;
        drop(levels);
        let mut made: Vec<(usize, Vec<u8>)> = copies;
        for (i, _, strip) in strips {
            let mut pixels = strip.pixels;
            if channels == Channels::Rgba {
                divide_alpha(&mut pixels, strip.width, strip.height)?;
            }
            made.push((i, pixels));
        }
        made.sort_by_key(|m| m.0);
        let results: Vec<Result<T, RenderError>> = made
            .into_par_iter()
            .map(|(i, pixels)| finish(sizes[i], &pixels))
            .collect();
        // The first error of the largest size, as a user would look for it.
        let mut out = Vec::with_capacity(results.len());
        let mut failed = None;
        for result in results.into_iter().rev() {
            match result {
                Ok(v) => out.push(v),
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        out.reverse();
        Ok(out)
    }
}

/// The size of level `k` of a source of `source` pixels (stored
/// orientation): halved `k` times, rounding up.
pub(super) fn level_size(source: (u32, u32), k: usize) -> (u32, u32) {
    (0..k).fold(source, |(w, h), _| (w.div_ceil(2), h.div_ceil(2)))
}

/// How much larger than a size the level it is resized from must be, on
/// both axes. libvips's thumbnail leaves the same factor after its
/// shrink-on-load; at 1 (the largest level at least as large, as
/// libjpeg's DCT scaling was used before) a 360-px variant of a 12 MP
/// photo scores 2 SSIMULACRA2 points lower.
const GAP: u64 = 2;

/// The level a size (stored orientation) is resized from: the smallest at
/// least [`GAP`] times as large on both axes; 0, the source, when none is.
pub(super) fn level_for(source: (u32, u32), size: (u32, u32)) -> usize {
    let (mut k, mut at) = (0, source);
    loop {
        let next = (at.0.div_ceil(2), at.1.div_ceil(2));
        let twice = (u64::from(size.0) * GAP, u64::from(size.1) * GAP);
        if next == at || u64::from(next.0) < twice.0 || u64::from(next.1) < twice.1 {
            return k;
        }
        (k, at) = (k + 1, next);
    }
}

/// One level of the ladder: rows `start..end` of it, as far as made, in
/// `window[live..]`.
struct Level {
    width: u32,
    height: u32,
    window: Vec<u8>,
    /// Where row `start` begins in `window` (the source's window starts
    /// after a gap, `take_step`; the other levels' at 0).
    live: usize,
    start: u32,
    end: u32,
}

impl Level {
    fn view(&self, channels: Channels) -> Window<'_> {
        Window {
            pixels: &self.window[self.live..],
            width: self.width,
            start: self.start,
            end: self.end,
            last: self.end == self.height,
            channels,
        }
    }

    /// Forgets the rows before `keep` (clamped to the window).
    fn drop_before(&mut self, keep: u32, channels: Channels) {
        let keep = keep.clamp(self.start, self.end);
        let line = self.width as usize * channels.count();
        self.window
            .drain(..self.live + (keep - self.start) as usize * line);
        self.live = 0;
        self.start = keep;
    }

    /// Forgets the rows before `keep` and takes the `n` rows that follow
    /// `end` from `spare`, where they start after a gap of `gap` bytes:
    /// the rows still kept go into the gap and the buffers swap, so only
    /// those few rows are copied. Rows kept beyond the gap (never, while
    /// `reach_back` is right) are joined to the new ones by copying both;
    /// returns whether that happened.
    fn take_step(&mut self, keep: u32, n: u32, spare: &mut Vec<u8>, gap: usize, channels: Channels) -> bool {
        let keep = keep.clamp(self.start, self.end);
        let line = self.width as usize * channels.count();
        let kept = &self.window[self.live + (keep - self.start) as usize * line..];
        if kept.len() <= gap {
            let at = gap - kept.len();
            spare[at..gap].copy_from_slice(kept);
            std::mem::swap(&mut self.window, spare);
            self.live = at;
            self.start = keep;
            self.end += n;
            false
        } else {
            let mut joined = Vec::with_capacity(kept.len() + spare.len() - gap);
            joined.extend_from_slice(kept);
            joined.extend_from_slice(&spare[gap..]);
            self.window = joined;
            self.live = 0;
            self.start = keep;
            self.end += n;
            true
        }
    }
}

/// How many source rows before the last one read the sizes resized from
/// the source may still need once a step is done: a size's next output
/// row reaches back at most twice its filter's radius and three rows of
/// rounding from the source's end (`Strips::advance`, `first_needed`),
/// and halving needs at most the one row an odd end leaves.
fn reach_back(strips: &[(usize, usize, Strips)]) -> u32 {
    strips
        .iter()
        .filter(|s| s.1 == 0)
        .map(|s| reach_back_of(s.2.scale))
        .fold(2, u32::max)
}

/// [`reach_back`] of one size, `scale` source rows per output row.
pub(super) fn reach_back_of(scale: f64) -> u32 {
    // Lanczos3: a radius of 3 rows times the scale when shrinking.
    let radius = 3.0 * scale.max(1.0);
    (2.0 * radius).ceil() as u32 + scale.ceil() as u32 + 4
}

/// Makes every row of `below` (the next level) that `above`'s rows allow:
/// row `j` from rows `2j` and `2j + 1` (the last row alone when the height
/// is odd), each pixel the rounded mean of its 2×2 block. Rows are
/// independent, so the pool makes them in parallel (the halving of a
/// large photo's source is otherwise one thread's work while the other
/// waits).
fn halve_into(above: &Window<'_>, below: &mut Level, channels: Channels) {
    let ready = if above.last { below.height } else { above.end / 2 };
    if ready <= below.end {
        return;
    }
    let line = below.width as usize * channels.count();
    let have = below.window.len();
    below.window.reserve_exact((ready - below.end) as usize * line);
    below.window.resize(have + (ready - below.end) as usize * line, 0);
    // The level above's last row: its end once every row is there.
    let bottom = if above.last { above.end - 1 } else { u32::MAX };
    let first = below.end;
    let sum_len = above.width as usize * channels.count();
    below.window[have..]
        .par_chunks_exact_mut(line)
        .enumerate()
        // A few rows per task: each starts a row of sums of its own.
        .with_min_len(8)
        .for_each_init(
            || Vec::with_capacity(sum_len),
            |sum, (i, out)| {
                // `i` counts rows of one step: far below u32::MAX.
                let j = first + i as u32;
                let a = above.row(2 * j);
                let b = above.row((2 * j + 1).min(bottom));
                halve_pair(a, b, channels, sum, out);
            },
        );
    below.end = ready;
}

/// The whole-image form of the ladder's step (`stages::halve`).
pub(super) fn halve(pixels: &[u8], width: u32, height: u32, channels: Channels) -> (Vec<u8>, u32, u32) {
    let (hw, hh) = level_size((width, height), 1);
    let line = width as usize * channels.count();
    let mut out = vec![0; hw as usize * hh as usize * channels.count()];
    let mut sum = Vec::with_capacity(line);
    let rows: Vec<&[u8]> = pixels.chunks_exact(line.max(1)).collect();
    for (j, out) in out.chunks_exact_mut(hw as usize * channels.count()).enumerate() {
        let a = rows[2 * j];
        let b = rows[(2 * j + 1).min(rows.len() - 1)];
        halve_pair(a, b, channels, &mut sum, out);
    }
    (out, hw, hh)
}

/// One row of the next level from two rows of this one (`sum` is scratch).
fn halve_pair(a: &[u8], b: &[u8], channels: Channels, sum: &mut Vec<u16>, out: &mut [u8]) {
    sum.clear();
    sum.extend(a.iter().zip(b).map(|(x, y)| u16::from(*x) + u16::from(*y)));
    match channels {
        Channels::Gray => halve_row::<1>(sum, out),
        Channels::Rgb => halve_row_by_four::<3>(sum, out),
        Channels::Rgba => halve_row::<4>(sum, out),
    }
}

/// One halved row from the sums of two rows: each pixel the rounded mean
/// of two neighbouring sums; an odd last pixel its own column's.
fn halve_row<const C: usize>(sum: &[u16], out: &mut [u8]) {
    let pairs = sum.chunks_exact(2 * C);
    let odd = pairs.remainder();
    for (o, p) in out.chunks_exact_mut(C).zip(pairs) {
        for c in 0..C {
            // At most (4 × 255 + 2) / 4: fits in a byte.
            o[c] = ((p[c] + p[C + c] + 2) >> 2) as u8;
        }
    }
    if !odd.is_empty() {
        let at = out.len() - C;
        for c in 0..C {
            // A column alone: the rounded mean of its two rows.
            out[at + c] = ((odd[c] + 1) >> 1) as u8;
        }
    }
}

/// [`halve_row`] four pixels at a time: the same values, and for RGB twice
/// as fast (the compiler vectorises a 12-byte group where it leaves
/// 3-byte pixels one at a time; gray and RGBA are as fast either way).
fn halve_row_by_four<const C: usize>(sum: &[u16], out: &mut [u8]) {
    // Whole groups of four output pixels; the rest (and an odd last
    // column) as `halve_row` makes them.
    let groups = sum.len() / (8 * C);
    let (sum, sum_rest) = sum.split_at(groups * 8 * C);
    let (out, out_rest) = out.split_at_mut(groups * 4 * C);
    for (o, p) in out.chunks_exact_mut(4 * C).zip(sum.chunks_exact(8 * C)) {
        for k in 0..4 {
            for c in 0..C {
                // At most (4 × 255 + 2) / 4: fits in a byte.
                o[k * C + c] = ((p[2 * k * C + c] + p[(2 * k + 1) * C + c] + 2) >> 2) as u8;
            }
        }
    }
    halve_row::<C>(sum_rest, out_rest);
}

/// Source rows decoded per step of [`resize_all`]: at least 128, and at
/// most 16 steps per image. Each step's resize computes its horizontal
/// weights afresh (fast_image_resize keeps none between calls: a sine per
/// tap, 2200 × 9 of them for a 2200-px output), so 64-row steps cost an
/// 8 MP photo 30% more CPU; 16 steps cost nothing measurable, and the
/// window stays a sixteenth of the image.
pub(super) fn strip_rows(src_h: u32) -> u32 {
    src_h.div_ceil(16).max(128)
}

/// The rows of one level at hand: `start..end`.
struct Window<'a> {
    pixels: &'a [u8],
    width: u32,
    start: u32,
    end: u32,
    /// Whether `end` is the level's last row.
    last: bool,
    channels: Channels,
}

impl Window<'_> {
    /// Row `r`, which must be in the window (`start..end`).
    fn row(&self, r: u32) -> &[u8] {
        let line = self.width as usize * self.channels.count();
        let at = (r - self.start) as usize * line;
        &self.pixels[at..at + line]
    }
}

/// One size resized from a level, row strip by row strip.
struct Strips {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
    /// Rows made so far.
    next: u32,
    /// Level rows per output row, and how far the filter reaches in level
    /// rows (Lanczos3: 3, times the scale when shrinking).
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
            // As `reach_back_of` counts it.
            radius: 3.0 * scale.max(1.0),
            resizer: fir::Resizer::new(),
        }
    }

    /// The first level row the next output row reaches (one row early,
    /// for rounding); `u32::MAX` when every row is made.
    fn first_needed(&self) -> u32 {
        if self.next >= self.height {
            return u32::MAX;
        }
        let centre = (f64::from(self.next) + 0.5) * self.scale;
        ((centre - self.radius).floor() - 1.0).max(0.0) as u32
    }

    /// Makes every output row whose filter the window covers, reading from
    /// the first row this size's filter reaches: the pixels, weights and
    /// crop offsets are those of this size alone, whatever other sizes
    /// keep in the window.
    fn advance(&mut self, window: &Window<'_>) -> Result<(), RenderError> {
        if self.next >= self.height || window.end == window.start {
            return Ok(());
        }
        // Row r reaches up to level row ceil((r + 0.5) × scale + radius),
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
        let from = self.first_needed().clamp(window.start, window.end - 1);
        let (width, rows) = (self.width, end - self.next);
        let err = |e: &dyn std::fmt::Display| RenderError::Resize {
            width,
            height: rows,
            message: e.to_string(),
        };
        let pixel_type = pixel_type(window.channels);
        let line = window.width as usize * window.channels.count();
        let in_view = window.end - from;
        let pixels = &window.pixels[(from - window.start) as usize * line..];
        let src =
            fir::images::ImageRef::new(window.width, in_view, pixels, pixel_type).map_err(|e| err(&e))?;
        let bytes = width as usize * window.channels.count();
        let out = &mut self.pixels[self.next as usize * bytes..end as usize * bytes];
        let mut dst = fir::images::Image::from_slice_u8(width, rows, out, pixel_type).map_err(|e| err(&e))?;
        let top = f64::from(self.next) * self.scale - f64::from(from);
        let height = (f64::from(rows) * self.scale).min(f64::from(in_view) - top);
        let options = fir::ResizeOptions::new()
            .resize_alg(fir::ResizeAlg::Convolution(lanczos3()))
            .crop(0.0, top, f64::from(window.width), height)
            .use_alpha(false);
        resize_typed(&mut self.resizer, &src, &mut dst, window.channels, &options).map_err(|e| err(&e))?;
        self.next = end;
        Ok(())
    }
}

/// What is done with each resized size (orient, convert, encode).
pub(super) type Finish<'a, T> = dyn Fn(Size, &[u8]) -> Result<T, RenderError> + Sync + 'a;

/// How an RGBA buffer's colour relates to its alpha.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Alpha {
    /// As decoded and encoded (or no alpha at all).
    Straight,
    /// Multiplied by alpha (an RGBA source's rows, as they arrive).
    Premultiplied,
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
    // Typed, like `resize_typed`: the untyped calls would build the
    // crate's code for five more pixel types.
    let Some(mut view) = fir::IntoImageViewMut::image_view_mut::<fir::pixels::U8x4>(&mut image) else {
        return Err(err(&"not RGBA"));
    };
    let md = fir::MulDiv::default();
    match to {
        Alpha::Premultiplied => md.multiply_alpha_inplace_typed(&mut view),
        Alpha::Straight => md.divide_alpha_inplace_typed(&mut view),
    }
    .map_err(|e| err(&e))
}

/// One Lanczos3 resize of straight pixels, as the stage function offers it
/// (`render` resizes strip by strip, `Strips::advance`).
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
    let pixel_type = pixel_type(channels);
    let src = fir::images::ImageRef::new(src_w, src_h, pixels, pixel_type).map_err(|e| err(&e))?;
    let mut dst = fir::images::Image::new(width, height, pixel_type);
    // Lanczos3 like sharp and libvips. fir premultiplies a copy of U8x4
    // input so transparent pixels do not bleed their colour into edges.
    let options = fir::ResizeOptions::new()
        .resize_alg(fir::ResizeAlg::Convolution(lanczos3()))
        .use_alpha(true);
    resize_typed(&mut fir::Resizer::new(), &src, &mut dst, channels, &options).map_err(|e| err(&e))?;
    Ok(dst.into_vec())
}

/// Lanczos3, as fast_image_resize's own (`sinc(x) · sinc(x / 3)` on
/// −3..3), with one sine per tap instead of two: for `a = πx / 3`,
/// `sin(πx) = sin(3a) = 3 sin a − 4 sin³ a`. The weights agree to
/// rounding.
///
/// fast_image_resize computes its weights afresh on every call, twice per
/// strip per size, and takes the filter as a plain `fn`, so what it has
/// computed cannot be handed back to it. The same few taps come back
/// every strip, though: a scale of 5120/2200 = 128/55 repeats its phase
/// every 55 output pixels, so its 33,000 taps per row take some 800
/// values. A small per-thread table of the values last computed
/// ([`KERNEL_CACHE`]) answers nearly all of them, and answers exactly what
/// the kernel would: the bytes do not change, the sines (5% of a large
/// photo's CPU) mostly go.
fn lanczos3() -> fir::FilterType {
    fn kernel(x: f64) -> f64 {
        let bits = x.to_bits();
        // Fibonacci hashing: the top bits of the product spread
        // neighbouring floats over the table.
        let slot = (bits.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - KERNEL_CACHE_BITS)) as usize;
        KERNEL_CACHE.with(|cache| {
            // `slot` has KERNEL_CACHE_BITS bits: always in the table.
            let entry = &cache[slot];
            let (key, value) = entry.get();
            if key == bits {
                return value;
            }
            let value = lanczos3_at(x);
            entry.set((bits, value));
            value
        })
    }
    // A support of 3 is finite and positive, so `new` cannot fail; the
    // crate's own Lanczos3 would do the same work, only slower.
    fir::Filter::new("Lanczos3", kernel, 3.0).map_or(fir::FilterType::Lanczos3, fir::FilterType::Custom)
}

/// log2 of [`KERNEL_CACHE`]'s entries: 4096 of 16 bytes, 64 KiB a thread.
const KERNEL_CACHE_BITS: u32 = 12;

/// The key of an empty [`KERNEL_CACHE`] entry: the bits of a NaN, which
/// no tap position is.
const EMPTY_SLOT: u64 = 0x7ff8_0000_0000_0000;

thread_local! {
    /// Lanczos3 values by the bits of their argument.
    /// (Initialised at compile time, so a lookup is an offset from the
    /// thread's own block: no first-use check, no borrow flag.)
    static KERNEL_CACHE: [std::cell::Cell<(u64, f64)>; 1 << KERNEL_CACHE_BITS] =
        const { [const { std::cell::Cell::new((EMPTY_SLOT, 0.0)) }; 1 << KERNEL_CACHE_BITS] };
}

/// The Lanczos3 kernel at `x`.
fn lanczos3_at(x: f64) -> f64 {
    if x == 0.0 {
        return 1.0;
    }
    if !(-3.0..3.0).contains(&x) {
        return 0.0;
    }
    let a = std::f64::consts::PI * x / 3.0;
    let sin_a = a.sin();
    let sin_3a = sin_a * (3.0 - 4.0 * sin_a * sin_a);
    // sin(πx) / πx · sin(πx/3) / (πx/3), with πx = 3a.
    sin_3a * sin_a / (3.0 * a * a)
}

/// `Resizer::resize` for the three pixel types a render uses: what the
/// crate's untyped `resize` does once it has matched the pixel type, but
/// without building its convolutions for the ten types we never pass
/// (16-bit, float, two-channel), which were a third of this crate's
/// compile time. The bytes are the same: it is the same call.
fn resize_typed(
    resizer: &mut fir::Resizer,
    src: &fir::images::ImageRef<'_>,
    dst: &mut fir::images::Image<'_>,
    channels: Channels,
    options: &fir::ResizeOptions,
) -> Result<(), fir::ResizeError> {
    fn typed<P: fir::PixelTrait>(
        resizer: &mut fir::Resizer,
        src: &fir::images::ImageRef<'_>,
        dst: &mut fir::images::Image<'_>,
        options: &fir::ResizeOptions,
    ) -> Result<(), fir::ResizeError> {
        use fir::{IntoImageView, IntoImageViewMut};
        match (src.image_view::<P>(), dst.image_view_mut::<P>()) {
            (Some(src), Some(mut dst)) => resizer.resize_typed(&src, &mut dst, options),
            _ => Err(fir::ResizeError::PixelTypesAreDifferent),
        }
    }
    match channels {
        Channels::Gray => typed::<fir::pixels::U8>(resizer, src, dst, options),
        Channels::Rgb => typed::<fir::pixels::U8x3>(resizer, src, dst, options),
        Channels::Rgba => typed::<fir::pixels::U8x4>(resizer, src, dst, options),
    }
}

fn pixel_type(channels: Channels) -> fir::PixelType {
    match channels {
        Channels::Gray => fir::PixelType::U8,
        Channels::Rgb => fir::PixelType::U8x3,
        Channels::Rgba => fir::PixelType::U8x4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::metadata::Orientation;
    use proptest::prelude::*;

    /// Every size, as `resize_all` makes it from `pixels` with the source
    /// window's gap `gap_rows` (`None`: as it is sized).
    fn sizes_of(
        pixels: &[u8],
        (w, h): (u32, u32),
        channels: Channels,
        sizes: &[Size],
        gap_rows: Option<u32>,
    ) -> Vec<Vec<u8>> {
        let source = super::super::decode::Source {
            pixels: pixels.to_vec(),
            width: w,
            height: h,
            channels,
            orientation: Orientation::NoTransforms,
            to_srgb: None,
        };
        let keep = |_: Size, p: &[u8]| Ok(p.to_vec());
        resize_all_with(Rows::whole(source), sizes, &keep, gap_rows).unwrap()
    }

    /// Rows kept past the source window's gap (a gap shorter than the
    /// filters reach) are joined to the next step's, and every size comes
    /// out as with a gap that holds them. (That the gap as sized is never
    /// too short is a debug assertion every rendering test checks.)
    #[test]
    fn rows_the_gap_cannot_hold_are_kept_all_the_same() {
        let (w, h) = (301, 1203);
        for channels in [Channels::Gray, Channels::Rgb, Channels::Rgba] {
            let c = channels.count();
            let pixels: Vec<u8> = (0..w as usize * h as usize * c)
                .map(|i| ((i * 2_654_435_761) >> 13) as u8)
                .collect();
            let sizes = [
                Size {
                    width: 300,
                    height: 1199,
                },
                Size {
                    width: 120,
                    height: 480,
                },
                Size {
                    width: 37,
                    height: 148,
                },
            ];
            let sized = sizes_of(&pixels, (w, h), channels, &sizes, None);
            let too_short = sizes_of(&pixels, (w, h), channels, &sizes, Some(0));
            assert!(sized == too_short, "{channels:?}: a short gap changed the pixels");
            assert_eq!(sized[0].len(), 300 * 1199 * c);
        }
    }

    proptest! {
        /// The unrolled row halving gives the plain one's bytes for every
        /// width, odd columns and leftover pixels included.
        #[test]
        fn halving_four_at_a_time_is_halving(sum in proptest::collection::vec(0u16..=510, 0..200)) {
            fn check<const C: usize>(sum: &[u16]) -> Result<(), TestCaseError> {
                let sum = &sum[..sum.len() / C * C];
                let pixels = sum.len() / C;
                let mut plain = vec![0; pixels.div_ceil(2) * C];
                let mut by_four = vec![1; plain.len()];
                halve_row::<C>(sum, &mut plain);
                halve_row_by_four::<C>(sum, &mut by_four);
                prop_assert_eq!(plain, by_four, "{} channels, {} pixels", C, pixels);
                Ok(())
            }
            check::<1>(&sum)?;
            check::<3>(&sum)?;
            check::<4>(&sum)?;
        }
    }
}
