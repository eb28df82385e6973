//! `tidy`: checks of the source tree itself, run first by `cargo xtask ci`.
//!
//! - every Rust file under `crates/*/src` and `xtask/src` starts with a `//!` module doc;
//! - no `dbg!`, `todo!`, `unimplemented!` or `#[ignore]` anywhere in `crates/`, except
//!   `#[ignore = "benchmark; ..."]` on a benchmark that `cargo xtask bench` runs;
//! - no `.unwrap()` or `.expect(` in library or binary code (before a file's
//!   `#[cfg(test)]`) unless the line or the one above says why it cannot fail;
//! - no `#[error("…{source}…")]`: a message never repeats its source, which
//!   `error_chain` prints after it;
//! - the release profile never sets `panic = "abort"` (the CLI contains panics per image).

use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};

pub fn run(root: &Path) -> Result<()> {
    let mut problems = Vec::new();
    let mut files = Vec::new();
    for dir in ["crates", "xtask/src"] {
        let rust = crate::files_under(&root.join(dir))?.into_iter().filter(|p| {
            p.extension().is_some_and(|e| e == "rs") && !p.components().any(|c| c.as_os_str() == "target")
        });
        files.extend(rust);
    }
    for path in &files {
        let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let rel = path.strip_prefix(root).unwrap_or(path).display().to_string();
        let in_src = rel.contains("/src/") || rel.starts_with("xtask/src");
        if in_src && !text.trim_start().starts_with("//!") {
            problems.push(format!("{rel}: missing `//!` module documentation"));
        }
        let mut prev = "";
        for (i, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("#[cfg(test)]") {
                break;
            }
            if rel.starts_with("crates/") && !code.starts_with("//") {
                for banned in ["dbg!(", "todo!(", "unimplemented!(", "#[ignore"] {
                    let benchmark = banned == "#[ignore" && code.starts_with("#[ignore = \"benchmark; ");
                    if code.contains(banned) && !benchmark {
                        problems.push(format!("{rel}:{}: `{banned}` is not allowed", i + 1));
                    }
                }
            }
            if code.starts_with("#[error(") && code.contains("{source") {
                problems.push(format!(
                    "{rel}:{}: an error message repeats its source; `error_chain` prints it after the message",
                    i + 1
                ));
            }
            let is_test_code = rel.contains("/tests/")
                || rel.contains("/examples/")
                || rel.contains("/benches/")
                || rel.starts_with("xtask");
            if !is_test_code && (code.contains(".unwrap()") || code.contains(".expect(")) {
                let justified = |l: &str| {
                    let l = l.to_lowercase();
                    l.contains("cannot fail") || l.contains("invariant") || l.contains("infallible")
                };
                if !justified(line) && !justified(prev) && !code.starts_with("//") {
                    problems.push(format!(
                        "{rel}:{}: unwrap/expect without a comment saying why it cannot fail",
                        i + 1
                    ));
                }
            }
            prev = line;
        }
    }
    let manifest = fs::read_to_string(root.join("Cargo.toml"))?;
    if manifest
        .lines()
        .any(|l| l.replace(' ', "").starts_with("panic=\"abort\""))
    {
        problems.push("Cargo.toml: panic = \"abort\" would stop per-image panic containment".to_owned());
    }
    if problems.is_empty() {
        eprintln!("tidy: {} files checked", files.len());
        Ok(())
    } else {
        bail!(
            "tidy found {} problem(s):\n  {}",
            problems.len(),
            problems.join("\n  ")
        )
    }
}
