//! Settings as the environment gives them: `NAME=value` lines. Parsing
//! returns a recipe or an error naming the setting; a recipe it returns
//! always makes keys that pass the key checks.

#![no_main]

use libfuzzer_sys::fuzz_target;
use resize_core::{Format, Recipe};

mod oracle;
use oracle::is_safe;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let settings: Vec<(&str, &str)> = text.lines().filter_map(|l| l.split_once('=')).collect();
    let lookup = |name: &str| {
        settings
            .iter()
            .rev()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    };
    match Recipe::from_lookup(lookup) {
        Ok(recipe) => {
            for key in ["original/trips/a.jpg", "a.png", "x/y/z.webp"] {
                if let Ok(source) = recipe.source_key(key) {
                    for w in recipe.widths().as_slice() {
                        for &f in recipe.formats() {
                            let out = source.output_key(w.get(), 7, f).expect("fits: checked by source_key");
                            assert!(is_safe(&out), "{out:?} from {key:?}");
                            assert!(recipe.source_key(&out).is_err(), "{out:?} is a source");
                        }
                    }
                    let _ = source.output_key(1, 1, Format::Jpeg);
                }
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});

