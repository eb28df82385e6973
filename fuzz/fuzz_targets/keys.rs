//! Key rewriting and the recursion guard: the first line holds
//! `REPLACEMENTS`, the second `KEY_TEMPLATE`, the rest are keys. For every
//! key accepted as a source, every output is a safe key of at most 1024
//! bytes that is not itself a source, and lies under the destination; and
//! under any destination folder the recursion guard accepts, still no
//! source. Manifests are on (`{dir}/{stem}.json`): a source's manifest
//! key obeys the same rules, looks like an output and is no variant's key.

#![no_main]

use libfuzzer_sys::fuzz_target;
use resize_core::Recipe;

mod oracle;
use oracle::is_safe;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let replacements = lines.next().unwrap_or_default().to_owned();
    let template = lines.next().unwrap_or_default().to_owned();
    let Ok(recipe) = Recipe::from_lookup(|name| match name {
        "REPLACEMENTS" => Some(replacements.clone()),
        "KEY_TEMPLATE" => Some(template.clone()),
        "FORMATS" => Some("jpeg,webp".to_owned()),
        "MANIFEST" => Some("true".to_owned()),
        _ => None,
    }) else {
        return;
    };
    for key in lines {
        let Ok(source) = recipe.source_key(key) else {
            continue;
        };
        assert!(is_safe(key), "{key:?} accepted as a source");
        let destination = recipe
            .replacements()
            .iter()
            .find(|r| key.starts_with(&format!("{}/", r.from())))
            .map(|r| format!("{}/", r.to()));
        let manifest = source.manifest_key().expect("manifests are on");
        assert!(is_safe(manifest), "manifest {manifest:?} of {key:?}");
        assert!(recipe.source_key(manifest).is_err(), "manifest {manifest:?} is a source");
        assert!(recipe.looks_like_output(manifest), "manifest {manifest:?} does not look like an output");
        if let Some(d) = &destination {
            assert!(manifest.starts_with(d.as_str()), "{manifest:?} not under {d:?}");
        }
        for w in recipe.widths().as_slice() {
            for &f in recipe.formats() {
                for h in [1, 4_000_000_000] {
                    let out = source.output_key(w.get(), h, f).expect("fits: checked by source_key");
                    assert!(is_safe(&out), "{out:?} from {key:?}");
                    assert_ne!(out, key);
                    assert_ne!(out, manifest);
                    assert!(
                        recipe.source_key(&out).is_err(),
                        "{out:?} from {key:?} is a source"
                    );
                    if let Some(d) = &destination {
                        assert!(out.starts_with(d.as_str()), "{out:?} not under {d:?}");
                    }
                    // A destination folder the guard accepts in the
                    // sources' own store never puts an output where it
                    // would be listed as a source.
                    let first = key.split('/').next().unwrap_or_default();
                    for sources in ["".to_owned(), format!("{first}/")] {
                        for folder in ["", "site/", &format!("{first}/"), &format!("{first}/x/")] {
                            if recipe.refuse_destination_loop(&sources, folder).is_ok() {
                                let written = format!("{folder}{out}");
                                if written.starts_with(sources.as_str()) {
                                    assert!(
                                        recipe.source_key(&written).is_err(),
                                        "{written:?} (under {folder:?}) would be a source under {sources:?}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }
});

