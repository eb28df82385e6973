//! Settings as the environment gives them: `NAME=value` lines. Parsing
//! returns a recipe or an error naming the setting; a recipe it returns
//! always makes keys that pass the key checks, manifests' keys included
//! (`MANIFEST`, `MANIFEST_TEMPLATE`).

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
                    let manifest = source.manifest_key();
                    if let Some(m) = manifest {
                        assert!(is_safe(m), "manifest {m:?} from {key:?}");
                        assert!(recipe.source_key(m).is_err(), "manifest {m:?} is a source");
                        assert!(recipe.looks_like_output(m), "manifest {m:?} is not an output");
                    }
                    for w in recipe.widths().as_slice() {
                        for &f in recipe.formats() {
                            let out = source.output_key(w.get(), 7, f).expect("fits: checked by source_key");
                            assert!(is_safe(&out), "{out:?} from {key:?}");
                            assert!(recipe.source_key(&out).is_err(), "{out:?} is a source");
                            assert_ne!(Some(out.as_str()), manifest, "a variant at the manifest's key");
                        }
                    }
                    let _ = source.output_key(1, 1, Format::Jpeg);
                }
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});

