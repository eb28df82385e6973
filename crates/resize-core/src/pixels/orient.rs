//! EXIF orientation, applied to each small output after resizing.

use image::metadata::Orientation;
use image::DynamicImage;

use super::{Channels, RenderError};

pub(super) fn orient(
    pixels: Vec<u8>,
    width: u32,
    height: u32,
    channels: Channels,
    orientation: Orientation,
) -> Result<Vec<u8>, RenderError> {
    // The buffer is width × height × channels by construction (fir's output
    // or a clone of the decoded image); a mismatch would be a bug, reported
    // as an error rather than a panic.
    let mismatch = || RenderError::Orient {
        width,
        height,
        message: "pixel buffer does not match its size".to_owned(),
    };
    let mut image = match channels {
        Channels::Gray => {
            DynamicImage::ImageLuma8(image::GrayImage::from_raw(width, height, pixels).ok_or_else(mismatch)?)
        }
        Channels::Rgb => {
            DynamicImage::ImageRgb8(image::RgbImage::from_raw(width, height, pixels).ok_or_else(mismatch)?)
        }
        Channels::Rgba => {
            DynamicImage::ImageRgba8(image::RgbaImage::from_raw(width, height, pixels).ok_or_else(mismatch)?)
        }
    };
    image.apply_orientation(orientation);
    Ok(image.into_bytes())
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
