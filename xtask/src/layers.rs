//! `layers`: resize-core's modules form layers, and a module may name only
//! modules of lower layers. Checked from the source: every `crate::` path
//! (in `use` lines and inline, outside comments and `#[cfg(test)]` code)
//! must start with the name of a lower layer's module, or the module's own.
//! A path through the crate root (`crate::Recipe`) hides where an item
//! lives, so it is refused too; so is `super::super`, which could reach the
//! root from a nested file.
//!
//! The table below is the layering; ARCHITECTURE.md and resize-core's
//! `lib.rs` must state the same line, so the documents and the check
//! cannot drift apart. The adapters (resize-cli, resize-lambda, resize-s3)
//! have no layers, but their files may not name each other in a circle.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// resize-core's modules, lowest layer first. Modules of one layer may not
/// name each other.
pub const CORE_LAYERS: &[&[&str]] = &[
    &["values", "fixtures"],
    &["geometry"],
    &["keys"],
    &["recipe"],
    &["pixels", "storage", "budget"],
    &["manifest"],
    &["job"],
    &["settings"],
];

pub fn run(root: &Path) -> Result<()> {
    let src = root.join("crates/resize-core/src");
    let mut problems = Vec::new();
    let mut found = BTreeSet::new();
    for path in crate::files_under(&src)? {
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let rel = path.strip_prefix(&src).unwrap_or(&path);
        let Some(module) = module_of(rel) else {
            continue;
        };
        found.insert(module.clone());
        let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        for p in check_file(&module, &text) {
            problems.push(format!("crates/resize-core/src/{}: {p}", rel.display()));
        }
    }
    let table: BTreeSet<String> = CORE_LAYERS
        .iter()
        .flat_map(|l| l.iter().map(|m| (*m).to_owned()))
        .collect();
    for m in found.difference(&table) {
        problems.push(format!(
            "module `{m}` is in no layer: add it to CORE_LAYERS and ARCHITECTURE.md"
        ));
    }
    for m in table.difference(&found) {
        problems.push(format!(
            "layer module `{m}` has no file under crates/resize-core/src"
        ));
    }
    let architecture = fs::read_to_string(root.join("ARCHITECTURE.md")).context("reading ARCHITECTURE.md")?;
    let line = layers_line();
    if !architecture.contains(&line) {
        problems.push(format!(
            "ARCHITECTURE.md does not state the layers as checked: `{line}`"
        ));
    }
    let lib = fs::read_to_string(src.join("lib.rs")).context("reading resize-core's lib.rs")?;
    if !lib.contains(&format!("// {line}")) {
        problems.push(format!(
            "crates/resize-core/src/lib.rs does not state the layers as checked: `// {line}`"
        ));
    }
    for adapter in ["resize-cli", "resize-lambda", "resize-s3"] {
        problems.extend(adapter_circles(&root.join("crates").join(adapter).join("src"))?);
    }
    if problems.is_empty() {
        eprintln!(
            "layers: resize-core's {} modules only name lower layers; no circles between the adapters' files",
            found.len()
        );
        return Ok(());
    }
    bail!(
        "{} layering problem(s):\n  {}",
        problems.len(),
        problems.join("\n  ")
    )
}

/// Circles between the files of an adapter crate (`src/*.rs`, the crate
/// root aside): a file that names a module (`crate::x`) which names it
/// back, directly or through others. Each circle is said once.
fn adapter_circles(src: &Path) -> Result<Vec<String>> {
    let mut names: Vec<(String, BTreeSet<String>)> = Vec::new();
    for path in crate::files_under(src)? {
        let Some(name) = path.file_stem().and_then(|n| n.to_str()) else {
            continue;
        };
        if path.extension().is_none_or(|e| e != "rs") || name == "main" || name == "lib" {
            continue;
        }
        let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let named = crate_paths(&code_of(&text)).into_iter().map(|(_, m)| m).collect();
        names.push((name.to_owned(), named));
    }
    let crate_name = src
        .parent()
        .and_then(|c| c.file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("?");
    Ok(circles(&names)
        .into_iter()
        .map(|c| {
            format!(
                "{crate_name}: its files name each other in a circle: {}",
                c.join(" → ")
            )
        })
        .collect())
}

/// Every circle in a graph of modules and the modules each names, as the
/// path from its least module back to it.
fn circles(graph: &[(String, BTreeSet<String>)]) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let names = |m: &str| graph.iter().find(|(n, _)| n == m).map(|(_, d)| d);
    // From each module, paths through greater modules only, so that a
    // circle is found once, from its least member.
    for (start, _) in graph {
        let mut stack = vec![vec![start.clone()]];
        while let Some(path) = stack.pop() {
            let Some(last) = path.last() else { continue };
            for next in names(last).into_iter().flatten() {
                if next == start {
                    let mut circle = path.clone();
                    circle.push(start.clone());
                    found.push(circle);
                } else if next > start && !path.contains(next) && names(next).is_some() {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push(longer);
                }
            }
        }
    }
    found
}

/// The layers as ARCHITECTURE.md writes them: `` `a` → `b`, `c` → … ``.
pub fn layers_line() -> String {
    CORE_LAYERS
        .iter()
        .map(|l| l.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", "))
        .collect::<Vec<_>>()
        .join(" → ")
}

/// The top-level module a file belongs to (`keys/guard.rs` → `keys`); the
/// crate root (`lib.rs`) only declares and re-exports, and is not checked.
fn module_of(rel: &Path) -> Option<String> {
    let first = rel.components().next()?.as_os_str().to_str()?;
    if first == "lib.rs" {
        return None;
    }
    Some(first.trim_end_matches(".rs").to_owned())
}

fn layer_of(module: &str) -> Option<usize> {
    CORE_LAYERS.iter().position(|l| l.contains(&module))
}

/// The problems in one file of `module`.
fn check_file(module: &str, text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let own = layer_of(module);
    let code = code_of(text);
    for (line, name) in crate_paths(&code) {
        if name == module {
            continue;
        }
        match (layer_of(&name), own) {
            (None, _) => problems.push(format!(
                "line {line}: `crate::{name}` is not a module path; name the module the item lives in"
            )),
            (Some(theirs), Some(mine)) if theirs >= mine => problems.push(format!(
                "line {line}: `{module}` names `crate::{name}`, which is not in a lower layer"
            )),
            _ => {}
        }
    }
    for (i, l) in code.lines().enumerate() {
        if l.contains("super::super") {
            problems.push(format!(
                "line {}: `super::super` reaches around the layers",
                i + 1
            ));
        }
    }
    problems
}

/// The file's code before its tests, with `//` comments blanked (lines are
/// kept so numbers stay right). Test code may build what it needs from any
/// layer.
fn code_of(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        out.push_str(line.find("//").map_or(line, |i| &line[..i]));
        out.push('\n');
    }
    out
}

/// The first segment of every `crate::` path, with its line number:
/// `crate::keys::X` and `crate::{keys::X, values}` give `keys` (and `values`).
fn crate_paths(code: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        // `$crate::` and identifiers ending in `crate` are not paths from the root.
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c == '$' || c == '_' || c.is_alphanumeric()) {
            continue;
        }
        let line = code[..at].matches('\n').count() + 1;
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            for name in group_heads(group) {
                out.push((line, name));
            }
        } else {
            out.push((line, ident(rest)));
        }
    }
    out
}

/// The first identifier of each comma-separated item of a `{…}` group.
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut start = true;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => start = true,
            c if start && (c.is_alphanumeric() || c == '_') => {
                heads.push(ident(&group[i..]));
                start = false;
            }
            _ => {}
        }
    }
    heads
}

fn ident(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(module: &str, text: &str, expect: &[&str]) {
        assert_eq!(check_file(module, text), expect);
    }

    #[test]
    fn layering() {
        check(
            "job",
            "use crate::keys::SourceKey;\nuse crate::{pixels::{self, Probe}, values};\n",
            &[],
        );
        check("keys", "use super::template::Part;\nuse crate::keys::x;\n", &[]);
        check(
            "keys",
            "use crate::{values::Format,\n    recipe::Recipe};\n",
            &["line 1: `keys` names `crate::recipe`, which is not in a lower layer"],
        );
        check(
            "storage",
            "fn f() -> crate::pixels::Probe { todo() }",
            &["line 1: `storage` names `crate::pixels`, which is not in a lower layer"],
        );
        check(
            "values",
            "let r: crate::Recipe;",
            &["line 1: `crate::Recipe` is not a module path; name the module the item lives in"],
        );
        check(
            "keys",
            "use super::super::job;",
            &["line 1: `super::super` reaches around the layers"],
        );
        // Comments, doc links and tests may name anything.
        check(
            "values",
            "/// See [`x`](crate::job::run_job).\nlet a = 1; // crate::job\n#[cfg(test)]\nuse crate::settings;\n",
            &[],
        );
        check("values", "macro_rules! m { () => { $crate::x } }", &[]);
    }

    #[test]
    fn architecture_line() {
        assert!(layers_line()
            .starts_with("`values`, `fixtures` → `geometry` → `keys` → `recipe` → `pixels`, `storage`"));
    }

    #[test]
    fn circles_are_found_once_from_their_least_module() {
        let graph = |edges: &[(&str, &[&str])]| -> Vec<(String, BTreeSet<String>)> {
            edges
                .iter()
                .map(|(m, d)| ((*m).to_owned(), d.iter().map(|s| (*s).to_owned()).collect()))
                .collect()
        };
        let check = |edges: &[(&str, &[&str])], want: &[&str]| {
            let got: Vec<String> = circles(&graph(edges)).iter().map(|c| c.join(" → ")).collect();
            assert_eq!(got, want, "{edges:?}");
        };
        check(&[("a", &["b"]), ("b", &[])], &[]);
        check(&[("a", &["b"]), ("b", &["a"])], &["a → b → a"]);
        check(&[("b", &["c"]), ("c", &["a"]), ("a", &["b"])], &["a → b → c → a"]);
        // A module outside the crate's files (`std`, the root) is no circle.
        check(&[("a", &["x"]), ("b", &["a"])], &[]);
    }
}
