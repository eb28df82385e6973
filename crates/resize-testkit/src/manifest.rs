//! Manifest documents checked against their schema,
//! `fixtures/manifest.schema.json` (JSON Schema draft 2020-12), by the
//! reference implementation: Python's `jsonschema`, run from
//! `<workspace>/.venv` (where `.ci/run` and `cargo xtask ci` install it)
//! or from the python `RESIZE_PYTHON` names. Rust's own validators would
//! be a second opinion written by the same hands as the writer; this one
//! is not.

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::workspace_root;

/// Run by `python -c SCRIPT SCHEMA` with the document on stdin. Exits 0
/// when it is valid, 1 when it is not (one `JSON path: message` line per
/// error on stdout), 2 when the schema itself is not a valid draft
/// 2020-12 schema, 3 when jsonschema cannot be imported.
const SCRIPT: &str = r#"
import json, sys
sys.stdout.reconfigure(encoding="utf-8")
sys.stderr.reconfigure(encoding="utf-8")
try:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError
except ImportError as e:
    print(f"cannot import jsonschema: {e}", file=sys.stderr)
    sys.exit(3)

try:
    with open(sys.argv[1], "rb") as f:
        schema = json.load(f)
    Draft202012Validator.check_schema(schema)
except (OSError, ValueError) as e:
    print(f"cannot read the schema: {e}")
    sys.exit(2)
except SchemaError as e:
    print(f"{e.json_path}: {e.message}")
    sys.exit(2)

def unique(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"duplicate property {key!r}")
        seen[key] = value
    return seen

def constant(name):
    raise ValueError(f"{name} is not JSON")

try:
    document = json.loads(
        sys.stdin.buffer.read().decode("utf-8"), object_pairs_hook=unique, parse_constant=constant
    )
except ValueError as e:
    print(f"$: not a JSON document: {e}")
    sys.exit(1)

errors = sorted(
    Draft202012Validator(schema).iter_errors(document), key=lambda e: (e.json_path, e.message)
)
for e in errors:
    print(f"{e.json_path}: {e.message}")
sys.exit(1 if errors else 0)
"#;

/// Checks a manifest document against `fixtures/manifest.schema.json`:
/// `Err` lists every error, one `JSON path: message` line each (e.g.
/// `$.variants[0].fingerprint: 'x' does not match '^[0-9a-f]{16}$'`), or
/// says why the check could not run (no python, no jsonschema, an invalid
/// schema).
///
/// Runs `<workspace>/.venv/bin/python`, or the python the environment
/// variable `RESIZE_PYTHON` names, which must have `jsonschema` (4.20 or
/// later).
pub fn validate_manifest(json: &[u8]) -> Result<(), String> {
    let python = std::env::var_os("RESIZE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv/bin/python"));
    validate_with(&python, json)
}

/// Panics, with every error and the document, unless `json` is a valid
/// manifest (see [`validate_manifest`]).
#[track_caller]
pub fn assert_valid_manifest(json: &[u8]) {
    if let Err(errors) = validate_manifest(json) {
        panic!(
            "not a valid manifest: {errors}\n--- the document ---\n{}",
            String::from_utf8_lossy(json)
        );
    }
}

/// [`validate_manifest`] with `python`.
fn validate_with(python: &Path, json: &[u8]) -> Result<(), String> {
    let schema = workspace_root().join("fixtures/manifest.schema.json");
    let install = "Install it with `.venv/bin/pip install 'jsonschema>=4.20,<5'` (`.ci/run` and `cargo \
                   xtask ci` do), or set RESIZE_PYTHON to a python that has jsonschema.";
    let mut child = Command::new(python)
        .arg("-c")
        .arg(SCRIPT)
        .arg(&schema)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!(
                "cannot run {} ({e}): validating a manifest needs a python with jsonschema. Create \
                 <workspace>/.venv with `.ci/run` or `cargo xtask ci`, or by hand: `python3 -m venv \
                 .venv && .venv/bin/pip install 'jsonschema>=4.20,<5'`; or set RESIZE_PYTHON.",
                python.display()
            )
        })?;
    let stdin = child.stdin.take();
    // The document is written while the output is read, so that neither
    // side can wait on a full pipe.
    let (written, output) = std::thread::scope(|scope| {
        let writer = scope.spawn(move || match stdin {
            Some(mut stdin) => stdin.write_all(json),
            None => Ok(()),
        });
        let output = child.wait_with_output();
        (writer.join(), output)
    });
    let output = output.map_err(|e| format!("{} did not finish: {e}", python.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    match written {
        Ok(Ok(())) => {}
        // Python stops reading when it exits early (no jsonschema, a bad
        // schema): its exit status says why.
        Ok(Err(e)) if e.kind() == ErrorKind::BrokenPipe => {}
        Ok(Err(e)) => return Err(format!("cannot write the document to {}: {e}", python.display())),
        Err(_) => return Err("the thread writing the document panicked".to_owned()),
    }
    let mut report = stdout.trim_end().to_owned();
    if !stderr.trim().is_empty() {
        report.push_str("\n(stderr) ");
        report.push_str(stderr.trim_end());
    }
    match output.status.code() {
        Some(0) => Ok(()),
        Some(1) => Err(format!(
            "the manifest does not match {}:\n{report}",
            schema.display()
        )),
        Some(2) => Err(format!(
            "{} is not a valid JSON Schema (draft 2020-12):\n{report}",
            schema.display()
        )),
        Some(3) => Err(format!(
            "{} cannot import jsonschema ({}). {install}",
            python.display(),
            stderr.trim()
        )),
        _ => Err(format!(
            "{} failed ({}) validating the manifest:\n{report}",
            python.display(),
            output.status
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `Manifest::to_json` writes (copied from its output): a source
    /// with a space in its key, two JPEG and two WebP variants.
    const VALID: &str = r##"{
  "generator": "resize",
  "version": 1,
  "source": {
    "key": "original/trips/summer 2024.jpg",
    "version": "9e107d9d372bb6826bd81d3542a419d6",
    "width": 4000,
    "height": 3000
  },
  "aspect_ratio": 1.333333,
  "variants": [
    {"key": "resized/trips/summer 2024-360.jpg", "relative": "summer 2024-360.jpg", "url": "summer%202024-360.jpg", "format": "jpeg", "type": "image/jpeg", "width": 360, "height": 270, "bytes": 20480, "fingerprint": "0543bc77aaa566da"},
    {"key": "resized/trips/summer 2024-360.webp", "relative": "summer 2024-360.webp", "url": "summer%202024-360.webp", "format": "webp", "type": "image/webp", "width": 360, "height": 270, "bytes": 14336, "fingerprint": "9ee8f973039fc8c6"},
    {"key": "resized/trips/summer 2024-720.jpg", "relative": "summer 2024-720.jpg", "url": "summer%202024-720.jpg", "format": "jpeg", "type": "image/jpeg", "width": 720, "height": 540, "bytes": 61440, "fingerprint": "0543bc77aaa566da"},
    {"key": "resized/trips/summer 2024-720.webp", "relative": "summer 2024-720.webp", "url": "summer%202024-720.webp", "format": "webp", "type": "image/webp", "width": 720, "height": 540, "bytes": 40960, "fingerprint": "9ee8f973039fc8c6"}
  ],
  "srcset": {"jpeg": "summer%202024-360.jpg 360w, summer%202024-720.jpg 720w", "webp": "summer%202024-360.webp 360w, summer%202024-720.webp 720w"},
  "placeholder": {
    "thumbhash": "29cJXZSBh4eAiId3iHiHiIR/CIiH",
    "color": "#077808",
    "data_url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAACAAAAAXCAYAAABqBU3hAAAEbUlEQVR4Ae3AA6AkWZbG8f937o3IzKdyS2Oubdu2bdu2bdu2bWmMnpZKr54yMyLu+Xa3anqmhztr1a/e+EWn7EyciacJt4amRmRS03Q2vWFmMzPMDPOEhWED2AC2gC3BVsCWYAPYABaGuWEOzAUzwSygL9AJIqDawha2sAPbgAEAA4AMABhskAGwuUKAuMw8mwEDBgwYMGCDBTbUloEtnMIGGUAYYxkDGCwDBhkwOEEGwIABCwwYkxgDBgykwYIEEkguo05ZwcaZ4AAXwkkAxiBAApvLIiGNI8HGgGUsYcAyxthJkiRJkiTQDGmRFs2BEbXlDNtgg5MgsYwBBCAAZMAGG0iwwQYMgAUWGJOYJEka6aSRNEwDmsXkQBZG1OYF2IARJmUEIAAhCQEyyCAnUqI0OAFjAIEBY5IkSdKNpqQ5aZhmmCQCIUQgavMmAsCEjAAJJBEEkhBCgGyUCUpQgo1twFhgTGLsJElSjeZGI2mYCSiIhpCFEdXaBkCAZUCAkIQUhEQgAog0UiIlKCETMLYxYIwxSZJuNBpJo5E0kgY0xEQghBEV7WCuCIQkJCEFoSAkhBAgGSlBiWighDTIGJNAOkmSVCPVaGo0NxomBQ1REE2BJao5hgAESIBQBFIgBSiQhAyQQIITR8OZOIxtjLFNKkknjUaj0WgkjYZpQCpIiVQgiWp2uEIYgQQEKLACFCBhwEpMYiWmYZLEJCYxKZNOGknSSDfSjUaSmARSQSqwAoeo6W0EBMIII0zBDkxggjQkkDbpJN1IJ+kkbRKThsSkk3SjudFoNBqJSYwlTGAFjoIlarZNhEAAQgoiguYgo9AkGqIZWpqWSWuNlklLk5i0SSAxaZNupBvpRjpJJxYkwioQBUWAgtraBkIYQKIpiAxaBFMGRUFDNENL0zJpmbQ0aZM2CaQgbdJJOkk3MhvpJDEJQIAKqIICRVCZFhjRACRQEAqagqZgkghEAJGm2LQ0mSYxCSSQhgTSSWaS2Ug37MQYI0wBClJFKkhBpS24QiRCEinRFDQFTUFDNCANLU3apCEBAwhAgMHGbtgNu+FMDBACCqgCFamiCCq54H5GWCIRqSAVpEQijEiDDdgACCEJDJIAgxOc4IbdsBNjTAAFqEgdUkUEFRbcTwYhhBABFigAAQJABgFCCCFESAgIjJSIBm7gBk6QwQEu4A7ogA4pqNICAAEBBCIAEQghhAiECCAQARSJIlEUFIkChE04kSbEBG5AAwMOcEF0iB5REYVaywIMAsImEAUoiEJQJAoiEAUREgVRJIpEVVAkChBOgiRyQpoQE7gBBgdQwR24AzqgUGuZIwMYGcJQgIIoiEAUgiIRiIIoiCJRFRSJIlGA4iTcCAVCCCECYSDABegQHaJDFGqNHjAyyEaGgihAQRREEBREQRSJgigKQqJEUIAAIpNQIIFkJK6wgQAqUIAKFHChRhSwkUA2MoRBCCGEEEIIIaRAiJCICCQhRACSkIxUEA0QEIDBAgQWWOAAgn8ELH8O7/hE/O4AAAAASUVORK5CYII="
  }
}
"##;

    /// `VALID` with `from`, which must occur in it, replaced by `to` once.
    fn edit(from: &str, to: &str) -> String {
        assert!(VALID.contains(from), "the valid manifest has no {from:?}");
        VALID.replacen(from, to, 1)
    }

    /// `VALID` without the lines from `start` up to (not including) `end`.
    fn cut(start: &str, end: &str) -> String {
        let from = VALID.find(start).unwrap_or_else(|| panic!("no {start:?}"));
        let to = from + VALID[from..].find(end).unwrap_or_else(|| panic!("no {end:?}"));
        format!("{}{}", &VALID[..from], &VALID[to..])
    }

    /// Validates `doc`: it must pass when `expected` is empty, else fail
    /// with an error naming every fragment in `expected`.
    fn check(case: &str, doc: &str, expected: &[&str]) {
        match (validate_manifest(doc.as_bytes()), expected) {
            (Ok(()), []) => {}
            (Err(e), []) => panic!("{case}: should pass, got {e}"),
            (Ok(()), _) => panic!("{case}: should fail naming {expected:?}, passed:\n{doc}"),
            (Err(e), _) => {
                for fragment in expected {
                    assert!(e.contains(fragment), "{case}: no {fragment:?} in\n{e}");
                }
            }
        }
    }

    #[test]
    fn manifests_are_checked_against_the_schema() {
        let cases: Vec<(&str, String, &[&str])> = vec![
            ("the writer's output", VALID.to_owned(), &[]),
            (
                "an unknown source version",
                edit(
                    r#""version": "9e107d9d372bb6826bd81d3542a419d6""#,
                    r#""version": null"#,
                ),
                &[],
            ),
            (
                "missing placeholder",
                cut(",\n  \"placeholder\": {", "\n}\n"),
                &["$: 'placeholder' is a required property"],
            ),
            (
                "extra property",
                edit(
                    "\"height\": 3000\n",
                    "\"height\": 3000,\n    \"orientation\": 6\n",
                ),
                &["$.source: Additional properties are not allowed ('orientation' was unexpected)"],
            ),
            (
                "bad fingerprint",
                edit("\"0543bc77aaa566da\"", "\"0543BC77AAA566DA\""),
                &["$.variants[0].fingerprint: '0543BC77AAA566DA' does not match"],
            ),
            (
                "a space in a srcset URL",
                edit(
                    "\"jpeg\": \"summer%202024-360.jpg 360w",
                    "\"jpeg\": \"a b.jpg 360w",
                ),
                &["$.srcset.jpeg: 'a b.jpg 360w, summer%202024-720.jpg 720w' does not match"],
            ),
            (
                "version 2",
                edit("\"version\": 1,", "\"version\": 2,"),
                &["$.version: 1 was expected"],
            ),
            (
                "a gif variant",
                edit("\"format\": \"jpeg\"", "\"format\": \"gif\""),
                &["$.variants[0].format: 'gif' is not one of"],
            ),
            ("zero variants", cut("    {\"key\"", "  ],"), &["$.variants: []"]),
            (
                "a type that is not the format's",
                edit("\"type\": \"image/webp\"", "\"type\": \"image/jpeg\""),
                &["$.variants[1].type: 'image/webp' was expected"],
            ),
            (
                "a duplicate property",
                edit("\"width\": 4000,", "\"width\": 4000,\n    \"width\": 4000,"),
                &["$: not a JSON document: duplicate property 'width'"],
            ),
        ];
        for (case, doc, expected) in &cases {
            check(case, doc, expected);
        }
    }

    #[test]
    fn a_missing_python_says_how_to_install_one() {
        let e = validate_with(Path::new("/nonexistent/bin/python"), VALID.as_bytes())
            .expect_err("there is no python there");
        assert!(
            e.contains("/nonexistent/bin/python") && e.contains("pip install"),
            "{e}"
        );
    }

    #[test]
    #[should_panic(expected = "$.version: 1 was expected")]
    fn assert_valid_manifest_panics_with_the_errors() {
        assert_valid_manifest(edit("\"version\": 1,", "\"version\": 2,").as_bytes());
    }
}
