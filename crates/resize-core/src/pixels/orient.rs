//! EXIF orientation, applied to each small output after resizing.

use image::metadata::Orientation;
use image::{imageops, ImageBuffer, Pixel};

use super::{Channels, RenderError};
use crate::geometry::Size;

/// `pixels` (`width` × `height`, stored orientation) turned upright.
pub(super) fn orient(
    pixels: &[u8],
    width: u32,
    height: u32,
    channels: Channels,
    orientation: Orientation,
) -> Result<Vec<u8>, RenderError> {
    let upright = match channels {
        Channels::Gray => turn::<image::Luma<u8>>(pixels, width, height, orientation),
        Channels::Rgb => turn::<image::Rgb<u8>>(pixels, width, height, orientation),
        Channels::Rgba => turn::<image::Rgba<u8>>(pixels, width, height, orientation),
    };
    // The buffer is width × height × channels by construction (fir's
    // output); a mismatch would be a bug, reported as an error rather than
    // a panic.
    upright.ok_or_else(|| RenderError::Orient {
        width,
        height,
        message: "pixel buffer does not match its size".to_owned(),
    })
}

/// One new buffer per orientation, read from the borrowed one; the same
/// steps as `DynamicImage::apply_orientation`.
fn turn<P: Pixel<Subpixel = u8> + 'static>(
    pixels: &[u8],
    width: u32,
    height: u32,
    orientation: Orientation,
) -> Option<Vec<u8>> {
    let image = ImageBuffer::<P, &[u8]>::from_raw(width, height, pixels)?;
    let turned = match orientation {
        Orientation::NoTransforms => ImageBuffer::from_raw(width, height, pixels.to_vec())?,
        Orientation::FlipHorizontal => imageops::flip_horizontal(&image),
        Orientation::Rotate180 => imageops::rotate180(&image),
        Orientation::FlipVertical => imageops::flip_vertical(&image),
        Orientation::Rotate90FlipH => {
            let mut t = imageops::rotate90(&image);
            imageops::flip_horizontal_in_place(&mut t);
            t
        }
        Orientation::Rotate90 => imageops::rotate90(&image),
        Orientation::Rotate270FlipH => {
            let mut t = imageops::rotate270(&image);
            imageops::flip_horizontal_in_place(&mut t);
            t
        }
        Orientation::Rotate270 => imageops::rotate270(&image),
    };
    Some(turned.into_raw())
}

pub(super) fn swaps_axes(o: Orientation) -> bool {
    matches!(
        o,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    )
}

/// An upright `size` as stored: width and height swapped for the
/// orientations that rotate by 90°.
pub(super) fn stored(size: Size, o: Orientation) -> (u32, u32) {
    if swaps_axes(o) {
        (size.height, size.width)
    } else {
        (size.width, size.height)
    }
}
