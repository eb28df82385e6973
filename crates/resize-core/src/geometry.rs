//! Aspect-ratio arithmetic: exact widths, rounded heights, no upscaling.
//! Internal: the job plans with [`target_sizes`], the pixels layer resizes
//! to the sizes it returns.

use crate::values::{Upscale, Widths};

/// An output size in pixels, in the upright (oriented) frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Size {
    /// Width in pixels.
    pub(crate) width: u32,
    /// Height in pixels.
    pub(crate) height: u32,
}

/// The height that keeps the aspect ratio of `src_w`×`src_h` at `width`:
/// `round(src_h × width / src_w)`, at least 1. Rounds half up, in integers,
/// so 16:9 sources give exact heights (no 2199-px widths from floored
/// heights re-fitted, as the 2019 code did).
pub(crate) fn height_for(src_w: u32, src_h: u32, width: u32) -> u32 {
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
pub(crate) fn target_sizes(src_w: u32, src_h: u32, widths: &Widths, upscale: Upscale) -> Vec<Size> {
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::values::{Width, Widths};

    fn widths(s: &str) -> Widths {
        let ws: Vec<Width> = s
            .split(',')
            .map(|w| Width::new(w.parse().unwrap()).unwrap())
            .collect();
        Widths::new(&ws).unwrap()
    }

    #[track_caller]
    fn check(src: (u32, u32), sizes: &str, upscale: Upscale, expect: &[(u32, u32)]) {
        let got: Vec<(u32, u32)> = target_sizes(src.0, src.1, &widths(sizes), upscale)
            .into_iter()
            .map(|s| (s.width, s.height))
            .collect();
        assert_eq!(got, expect);
    }

    #[test]
    fn sizes() {
        let all = "360,720,1200,2200";
        // 16:9 is where the 2019 code produced 2199 and 359 px widths.
        check(
            (5120, 2880),
            all,
            Upscale::Skip,
            &[(360, 203), (720, 405), (1200, 675), (2200, 1238)],
        );
        check(
            (3264, 2448),
            all,
            Upscale::Skip,
            &[(360, 270), (720, 540), (1200, 900), (2200, 1650)],
        );
        check(
            (2560, 1600),
            all,
            Upscale::Skip,
            &[(360, 225), (720, 450), (1200, 750), (2200, 1375)],
        );
        // Upright phone photo (4032×3024 stored, orientation 6).
        check(
            (3024, 4032),
            all,
            Upscale::Skip,
            &[(360, 480), (720, 960), (1200, 1600), (2200, 2933)],
        );
        // Never upscaled by default; one rendition at the source width on request.
        check((1000, 500), all, Upscale::Skip, &[(360, 180), (720, 360)]);
        check(
            (1000, 500),
            all,
            Upscale::SourceWidth,
            &[(360, 180), (720, 360), (1000, 500)],
        );
        check((100, 50), all, Upscale::Skip, &[]);
        check((100, 50), all, Upscale::SourceWidth, &[(100, 50)]);
        check((720, 540), all, Upscale::Skip, &[(360, 270), (720, 540)]);
        // Extreme aspect ratios keep at least one pixel.
        check(
            (4000, 3),
            all,
            Upscale::Skip,
            &[(360, 1), (720, 1), (1200, 1), (2200, 2)],
        );
        check(
            (3, 4000),
            "1,2,3",
            Upscale::Skip,
            &[(1, 1333), (2, 2667), (3, 4000)],
        );
        check((1, 1), "1,360", Upscale::Skip, &[(1, 1)]);
    }

    proptest! {
        #[test]
        fn widths_exact_aspect_kept(sw in 1u32..=30000, sh in 1u32..=30000, w in 1u32..=16384) {
            let sizes = target_sizes(sw, sh, &Widths::new(&[Width::new(w).unwrap()]).unwrap(), Upscale::Skip);
            if w > sw {
                prop_assert!(sizes.is_empty());
            } else {
                prop_assert_eq!(sizes.len(), 1);
                let s = sizes[0];
                prop_assert_eq!(s.width, w);
                prop_assert!(s.height >= 1 && s.height <= sh);
                // The height is the nearest integer to the exact one.
                let exact = f64::from(sh) * f64::from(w) / f64::from(sw);
                prop_assert!((f64::from(s.height) - exact).abs() <= 0.5 + 1e-9 || (exact < 0.5 && s.height == 1));
            }
        }
    }
}
