//! Aspect-ratio arithmetic: exact widths, rounded heights, no upscaling.

use crate::recipe::{Upscale, Widths};

/// An output size in pixels, in the upright (oriented) frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Size {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// The height that keeps the aspect ratio of `src_w`×`src_h` at `width`:
/// `round(src_h × width / src_w)`, at least 1. Rounds half up, in integers,
/// so 16:9 sources give exact heights (no 2199-px widths from floored
/// heights re-fitted, as the 2019 code did).
pub fn height_for(src_w: u32, src_h: u32, width: u32) -> u32 {
    if src_w == 0 {
        return 1;
    }
    let (w, h, sw) = (u64::from(width), u64::from(src_h), u64::from(src_w));
    let rounded = (2 * h * w + sw) / (2 * sw);
    // For width ≤ src_w the result is ≤ src_h; wider widths are clamped
    // rather than wrapped.
    u32::try_from(rounded).unwrap_or(u32::MAX).max(1)
}

/// The sizes to make from an upright source of `src_w`×`src_h`, ascending.
///
/// Under [`Upscale::Skip`] widths wider than the source are dropped (an
/// empty list means nothing fits). Under [`Upscale::SourceWidth`] they are
/// replaced by one size at the source width.
pub fn target_sizes(src_w: u32, src_h: u32, widths: &Widths, upscale: Upscale) -> Vec<Size> {
    let mut out: Vec<Size> = Vec::new();
    for w in widths.as_slice() {
        let width = match (w.get() <= src_w, upscale) {
            (true, _) => w.get(),
            (false, Upscale::Skip) => continue,
            (false, Upscale::SourceWidth) => src_w,
        };
        let size = Size {
            width,
            height: height_for(src_w, src_h, width),
        };
        if !out.contains(&size) {
            out.push(size);
        }
    }
    out
}
