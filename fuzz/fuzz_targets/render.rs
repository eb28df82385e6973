//! Any bytes through the whole pipeline: limits, decoding, orientation,
//! colour, resizing and every encoder. Must return an image or an error;
//! the memory estimate, read from the same header, must exist whenever
//! the image does; a header read from the first bytes says what the whole
//! file's does; an image with variants has placeholders, one without has
//! none.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use resize_core::Recipe;

fn recipe() -> &'static Recipe {
    static RECIPE: OnceLock<Recipe> = OnceLock::new();
    RECIPE.get_or_init(|| {
        Recipe::from_lookup(|name| {
            match name {
                // Small widths and a 4 MP limit keep each run fast; the limit
                // logic itself is what stops larger headers.
                "SIZES" => Some("8,40".to_owned()),
                "FORMATS" => Some("jpeg,webp,png".to_owned()),
                "MAX_PIXELS" => Some("4000000".to_owned()),
                _ => None,
            }
        })
        .expect("a valid recipe")
    })
}

fuzz_target!(|data: &[u8]| {
    // A plan trusts the header read from the first bytes: it must say
    // what the whole file says, or the whole file must fail.
    let limits = recipe().limits();
    for cut in [data.len() / 2, data.len().min(64 * 1024), data.len()] {
        if let Ok(Some(start)) = resize_core::adapter::probe_start(&data[..cut], data.len() as u64, limits) {
            if let Ok(whole) = resize_core::probe(data, limits) {
                assert_eq!(start, whole, "the first {cut} bytes disagree with the whole file");
            }
        }
    }
    let estimate = resize_core::working_set(data, recipe());
    let rendered = resize_core::render_with_placeholders(data, recipe());
    assert!(
        estimate.is_ok() || rendered.is_err(),
        "rendered without an estimate: {estimate:?}"
    );
    if let Ok(out) = rendered {
        assert_eq!(out.placeholders.is_some(), !out.renditions.is_empty());
        if let Some(p) = &out.placeholders {
            assert!(!p.thumbhash.is_empty() && p.data_url.starts_with("data:image/png;base64,"));
            assert!(p.dominant.len() == 7 && p.dominant.starts_with('#'), "{}", p.dominant);
        }
        for r in out.renditions {
            assert!(!r.bytes.is_empty(), "empty {:?} output", r.format);
            assert!(r.width <= 40 && r.height >= 1);
        }
    }
});
