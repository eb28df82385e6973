//! The fuzz targets' own idea of a safe key, written here rather than taken
//! from the core it checks: a relative key of 1..=1024 bytes without NUL or
//! empty, `.` or `..` segments.

use resize_core::adapter::MAX_KEY_BYTES;

pub fn is_safe(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_KEY_BYTES
        && !key.contains('\0')
        && key.split('/').all(|s| !matches!(s, "" | "." | ".."))
}
