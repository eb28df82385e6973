//! `tidy`: checks of the source tree itself, run first by `cargo xtask ci`.
//!
//! - every Rust file under `crates/*/src` and `xtask/src` starts with a `//!` module doc;
//! - no `dbg!`, `todo!`, `unimplemented!` or `#[ignore]` anywhere in `crates/`, except
//!   `#[ignore = "benchmark; ..."]` on a benchmark that `cargo xtask bench` runs;
//! - no `.unwrap()` or `.expect(` in library or binary code (before a file's
//!   `#[cfg(test)]`) unless the line or the one above says why it cannot fail;
//! - no `#[error("…{source}…")]`: a message never repeats its source, which
//!   `error_chain` prints after it;
//! - the release profile never sets `panic = "abort"` (the CLI contains panics per image);
//! - the crates `release` leaves unoptimised (`[profile.release.package]`, for
//!   a short first build) are exactly those `perf` optimises again, each one
//!   in `Cargo.lock`: the benchmark and the Lambda package stay fully optimised.

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
    let lock = fs::read_to_string(root.join("Cargo.lock"))?;
    problems.extend(profile_lists(&manifest, &lock));
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

/// The `name = { opt-level = N }` lines of one `[profile.X.package]` table.
fn package_levels<'a>(manifest: &'a str, table: &str) -> Vec<(&'a str, &'a str)> {
    let header = format!("[profile.{table}.package]");
    manifest
        .lines()
        .skip_while(|l| l.trim() != header)
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with('['))
        .filter_map(|l| {
            let (name, rest) = l.split_once('=')?;
            let level = rest.split("opt-level").nth(1)?.trim_start_matches([' ', '=']);
            Some((name.trim(), level.split([' ', '}']).next().unwrap_or("")))
        })
        .collect()
}

/// Problems with the release profile's unoptimised crates (see the module doc).
fn profile_lists(manifest: &str, lock: &str) -> Vec<String> {
    let release = package_levels(manifest, "release");
    let perf = package_levels(manifest, "perf");
    let mut problems = Vec::new();
    for (name, level) in &release {
        if *level != "0" {
            problems.push(format!(
                "Cargo.toml: [profile.release.package] {name} has opt-level {level}, not 0"
            ));
        }
        if !perf.iter().any(|(p, l)| p == name && *l == "3") {
            problems.push(format!(
                "Cargo.toml: [profile.perf.package] must optimise {name} (opt-level = 3)"
            ));
        }
        if !lock.contains(&format!("name = \"{name}\"\n")) {
            problems.push(format!(
                "Cargo.toml: [profile.release.package] names {name}, which Cargo.lock does not have"
            ));
        }
    }
    for (name, _) in &perf {
        if !release.iter().any(|(r, _)| r == name) {
            problems.push(format!(
                "Cargo.toml: [profile.perf.package] {name} is not in [profile.release.package]"
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_lists_must_agree() {
        let lock = "name = \"a\"\nname = \"b\"\n";
        let check =
            |manifest: &str, want: usize| assert_eq!(profile_lists(manifest, lock).len(), want, "{manifest}");
        let good = "[profile.release.package]\na = { opt-level = 0 }\n\n[profile.perf]\nx = 1\n[profile.perf.package]\na = { opt-level = 3 }\n";
        check(good, 0);
        check(&good.replace("a = { opt-level = 3 }", "a = { opt-level = 2 }"), 1);
        check(
            &good.replace(
                "a = { opt-level = 0 }",
                "a = { opt-level = 0 }\nb = { opt-level = 0 }",
            ),
            1,
        );
        check(&good.replace("a = { opt-level = 0 }", "c = { opt-level = 0 }"), 3);
        check(&good.replace("a = { opt-level = 0 }", "a = { opt-level = 1 }"), 1);
    }
}
