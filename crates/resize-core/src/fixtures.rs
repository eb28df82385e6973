//! Test-only: the fixture images the core's unit tests use, compiled in
//! (resize-core's sources do no I/O, tests included: `cargo xtask ci
//! core-deps`). Lowest layer, so that every module's tests may use it.

/// The bytes of `fixtures/images/<name>`; panics for a fixture not listed.
pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let bytes: &[u8] = match name {
        "alpha.png" => include_bytes!("../../../fixtures/images/alpha.png"),
        "animated.gif" => include_bytes!("../../../fixtures/images/animated.gif"),
        "phone-orient6.jpg" => include_bytes!("../../../fixtures/images/phone-orient6.jpg"),
        "photo-4x3.jpg" => include_bytes!("../../../fixtures/images/photo-4x3.jpg"),
        "photo.tiff" => include_bytes!("../../../fixtures/images/photo.tiff"),
        "still.webp" => include_bytes!("../../../fixtures/images/still.webp"),
        other => panic!("no fixture {other} compiled in: add it to fixtures.rs"),
    };
    bytes.to_vec()
}
