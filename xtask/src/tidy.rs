//! `tidy`: checks of the source tree itself, run first by `cargo xtask ci`.
//!
//! - every Rust file under `crates/*/src` and `xtask/src` starts with a `//!` module doc;
//! - no `dbg!`, `todo!`, `unimplemented!` or `#[ignore]` anywhere in `crates/`, except
//!   `#[ignore = "benchmark; ..."]` on a benchmark that `cargo xtask bench` runs;
//! - no `.unwrap()` or `.expect(` in library or binary code (before a file's
//!   `#[cfg(test)]`) unless the line or the one above says why it cannot fail;
//! - no `#[error("…{source}…")]`: a message never repeats its source, which
//!   `error_chain` prints after it;
//! - no function in a crate's `src/` (outside tests) is longer than
//!   [`MAX_FN_LINES`] lines;
//! - no pending insta snapshot (`*.snap.new`) under `crates/`;
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
        // A module's tests in their own file (`mod tests;` under `#[cfg(test)]`).
        let test_module = rel.ends_with("/tests.rs");
        if rel.starts_with("crates/") && rel.contains("/src/") && !test_module {
            for (name, line, len) in long_functions(&text) {
                problems.push(format!(
                    "{rel}:{line}: `fn {name}` is {len} lines; split it below {MAX_FN_LINES} into steps that read as its story"
                ));
            }
        }
        let mut prev = "";
        for (i, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("#[cfg(test)]") || test_module {
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
    // A pending snapshot (`cargo insta` not yet run) is no test's truth.
    for pending in crate::files_under(&root.join("crates"))?.into_iter().filter(|p| {
        p.to_str()
            .is_some_and(|p| p.ends_with(".snap.new") && !p.contains("/target/"))
    }) {
        let rel = pending
            .strip_prefix(root)
            .unwrap_or(&pending)
            .display()
            .to_string();
        problems.push(format!("{rel}: a pending insta snapshot; accept or delete it"));
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

/// The longest a function may be outside tests, in lines from `fn` to its
/// closing brace: past it a function is doing several things, and the issue
/// that split `job` into rooms set it as the bar for every crate.
pub const MAX_FN_LINES: usize = 80;

/// Functions longer than [`MAX_FN_LINES`] in `text` (before its `#[cfg(test)]`),
/// as `(name, first line, lines)`. A small lexer blanks comments, strings and
/// character literals so that braces inside them are not counted.
pub fn long_functions(text: &str) -> Vec<(String, usize, usize)> {
    let code = code_only(text);
    let lines: Vec<&str> = code
        .lines()
        .take_while(|l| !l.trim_start().starts_with("#[cfg(test)]"))
        .collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(name) = fn_name(line) else { continue };
        // Walk from the `fn` to its body's closing brace; a `;` before any `{`
        // is a declaration without a body (a trait's, or an extern one).
        let mut depth = 0usize;
        let mut opened = false;
        let mut end = None;
        'walk: for (j, l) in lines.iter().enumerate().skip(i) {
            let start = if j == i { line.find("fn ").unwrap_or(0) } else { 0 };
            for c in l[start..].chars() {
                match c {
                    ';' if !opened && depth == 0 => break 'walk,
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => {
                        depth = depth.saturating_sub(1);
                        if opened && depth == 0 {
                            end = Some(j);
                            break 'walk;
                        }
                    }
                    _ => {}
                }
            }
        }
        if let Some(end) = end {
            let len = end - i + 1;
            if len > MAX_FN_LINES {
                found.push((name, i + 1, len));
            }
        }
    }
    found
}

/// The name after a `fn` keyword on this line of code, if it has one.
fn fn_name(line: &str) -> Option<String> {
    let mut words = line.split(|c: char| !(c.is_alphanumeric() || c == '_'));
    words.by_ref().find(|w| *w == "fn")?;
    let name: String = words.find(|w| !w.is_empty())?.to_owned();
    // `fn(u8) -> u8` is a type, not an item: the name must follow `fn ` directly.
    line.contains(&format!("fn {name}")).then_some(name)
}

/// `text` with every comment, string and character literal replaced by spaces,
/// keeping line breaks, so that only code's own braces remain.
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !prev_is_ident(&chars, i) {
            // A raw string: r"…" or r#"…"#, closed by a quote and as many hashes.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            while j < chars.len()
                && !(chars[j] == '"' && (1..=hashes).all(|h| chars.get(j + h) == Some(&'#')))
            {
                j += 1;
            }
            let end = (j + 1 + hashes).min(chars.len());
            out.extend(chars[i..end].iter().map(|&c| blank(c)));
            i = end;
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if let Some(&c) = chars.get(i) {
                    out.push(blank(c));
                }
                i += 1;
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{7f}') closes within a few
            // characters; a lifetime ('a) does not close at all.
            let close = if next == Some('\\') {
                (i + 3..chars.len().min(i + 12)).find(|&j| chars[j] == '\'')
            } else {
                (chars.get(i + 2) == Some(&'\'')).then_some(i + 2)
            };
            match close {
                Some(end) => {
                    out.extend(chars[i..=end].iter().map(|_| ' '));
                    i = end + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn prev_is_ident(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
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

    #[test]
    fn long_functions_are_counted_from_fn_to_its_brace() {
        // A function of `n` lines whose body holds `filler`.
        let func = |n: usize, filler: &str| {
            let mut f = String::from("pub(crate) fn long(x: u8) -> u8 {\n");
            for _ in 0..n - 2 {
                f.push_str(filler);
                f.push('\n');
            }
            f.push_str("}\n");
            f
        };
        let check = |text: &str, want: &[usize]| {
            let got: Vec<usize> = long_functions(text).iter().map(|(_, _, len)| *len).collect();
            assert_eq!(got, want, "{text}");
        };
        check(&func(80, "    x;"), &[]);
        check(&func(81, "    x;"), &[81]);
        // Braces in strings, raw strings, characters and comments do not close it.
        check(
            &func(81, r#"    let _ = ("}", r"}", '}', '\'', b'{'); // }"#),
            &[81],
        );
        check(&func(81, "    /* } */ let _: &'static str = r#\"}\"#;"), &[81]);
        // A declaration without a body, and a function type, are not functions.
        check(
            &format!(
                "trait T {{ fn t(&self); }}\n{}",
                func(81, "    let f: fn(u8) -> u8 = g;")
            ),
            &[81],
        );
        // Test code after `#[cfg(test)]` is not checked.
        check(&format!("#[cfg(test)]\nmod tests {{\n{}}}", func(90, "x;")), &[]);
    }
}
