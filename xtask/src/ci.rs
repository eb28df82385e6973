//! `cargo xtask ci`: the full pre-merge check, in the order that fails fastest.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

/// Crates that must never reach resize-core's normal dependency graph: the core stays
/// a pure library, with I/O, runtimes, CLIs and serialisation living in outer crates.
const FORBIDDEN_CORE_DEPS: &[&str] = &[
    "tokio",
    "lambda_runtime",
    "clap",
    "serde",
    "serde_json",
    "reqwest",
    "hyper",
];
const FORBIDDEN_CORE_DEP_PREFIXES: &[&str] = &["aws-", "aws_"];

/// Source text that would mean resize-core touches the outside world or the clock.
/// (A `SystemTime` may pass through as a value, a file's modification time; reading
/// the clock may not.)
const FORBIDDEN_CORE_SOURCE: &[&str] = &["std::fs", "std::env", "SystemTime::now", "Instant::now", "tokio"];

/// A named CI step; plain fn pointers keep the list a readable table.
type Step = (&'static str, fn(&Path) -> Result<()>);

pub fn run(root: &Path, only: &[String]) -> Result<()> {
    let steps: &[Step] = &[
        ("tools", tools),
        ("fmt", |root| cargo(root, &["fmt", "--all", "--", "--check"], &[])),
        ("tidy", crate::tidy::run),
        ("layers", crate::layers::run),
        ("clippy", |root| {
            cargo(
                root,
                &[
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--locked",
                    "--",
                    "-D",
                    "warnings",
                ],
                &[],
            )
        }),
        ("python", |root| crate::python::ensure_venv(root).map(drop)),
        ("template", crate::python::template),
        ("test", |root| {
            cargo(root, &["test", "--workspace", "--locked"], &[])
        }),
        // No timing assertions: proves the harness and its tools still run.
        ("bench-smoke", |root| {
            crate::bench::run(root, &["--smoke".to_owned()])
        }),
        // A short fixed run of every fuzz target; `cargo xtask fuzz` by hand
        // for long runs. Seeds include every earlier finding.
        ("fuzz", |root| {
            crate::fuzz::run(root, &["--seconds".to_owned(), "10".to_owned()])
        }),
        ("doc", |root| {
            cargo(
                root,
                &["doc", "--workspace", "--no-deps", "--locked"],
                &[("RUSTDOCFLAGS", "-D warnings")],
            )?;
            one_surface(root)
        }),
        ("core-deps", core_invariant),
        ("deny", deny),
    ];

    if let Some(unknown) = only.iter().find(|o| !steps.iter().any(|(n, _)| n == o)) {
        let names: Vec<&str> = steps.iter().map(|(n, _)| *n).collect();
        bail!("unknown ci step `{unknown}` (steps: {})", names.join(", "));
    }
    let selected = steps
        .iter()
        .filter(|(n, _)| only.is_empty() || only.iter().any(|o| o == n));

    let mut timings = Vec::new();
    let all = Instant::now();
    for (name, step) in selected {
        eprintln!("\n==> ci step: {name}");
        let started = Instant::now();
        let result = step(root);
        let took = started.elapsed().as_secs_f64();
        timings.push((*name, took));
        if let Err(e) = result {
            print_timings(&timings);
            return Err(e.context(format!("ci step `{name}` failed after {took:.1}s")));
        }
        eprintln!("==> ci step `{name}` passed in {took:.1}s");
    }
    print_timings(&timings);
    let what = if only.is_empty() {
        "ci"
    } else {
        "selected ci steps"
    };
    eprintln!("{what} passed in {:.1}s", all.elapsed().as_secs_f64());
    Ok(())
}

fn print_timings(timings: &[(&str, f64)]) {
    eprintln!("\nci timings:");
    for (name, secs) in timings {
        eprintln!("  {secs:>8.1}s  {name}");
    }
}

fn cargo(root: &Path, args: &[&str], envs: &[(&str, &str)]) -> Result<()> {
    let mut cmd = crate::cargo();
    cmd.args(args).current_dir(root);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    run_inherited(cmd)
}

fn run_inherited(mut cmd: Command) -> Result<()> {
    let shown = describe(&cmd);
    eprintln!("$ {shown}");
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` exited with {status}");
    }
    Ok(())
}

fn describe(cmd: &Command) -> String {
    let prog = Path::new(cmd.get_program())
        .file_name()
        .unwrap_or_else(|| OsStr::new("?"))
        .to_string_lossy()
        .into_owned();
    std::iter::once(prog)
        .chain(cmd.get_args().map(|a| a.to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// How rustdoc names an item's page: `struct.Recipe.html`, `fn.render.html`, ...
const ITEM_KINDS: [&str; 9] = [
    "struct.",
    "enum.",
    "fn.",
    "trait.",
    "constant.",
    "type.",
    "macro.",
    "static.",
    "union.",
];

/// resize-core's docs show each item once: no item is both a root
/// re-export and reachable through a public module (rustdoc's `all.html`
/// lists every public path).
fn one_surface(root: &Path) -> Result<()> {
    let all = root.join("target/doc/resize_core/all.html");
    let html = fs::read_to_string(&all).with_context(|| format!("reading {}", all.display()))?;
    let mut paths: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for href in html.split("href=\"").skip(1).filter_map(|h| h.split('"').next()) {
        let file = href.rsplit('/').next().unwrap_or(href);
        if let Some(name) = ITEM_KINDS
            .iter()
            .find_map(|k| file.strip_prefix(k))
            .and_then(|n| n.strip_suffix(".html"))
        {
            paths.entry(name.to_owned()).or_default().push(href.to_owned());
        }
    }
    let twice: Vec<String> = paths
        .iter()
        .filter(|(_, p)| p.len() > 1)
        .map(|(n, p)| format!("`{n}` at {}", p.join(" and ")))
        .collect();
    if paths.is_empty() {
        bail!(
            "{} lists no items; has rustdoc changed its format?",
            all.display()
        );
    }
    if !twice.is_empty() {
        bail!("resize-core's docs show items twice:\n  {}", twice.join("\n  "));
    }
    eprintln!("resize-core's docs show each of {} items once", paths.len());
    Ok(())
}

/// Crates resize-lambda and resize-cli may reach only through resize-s3.
const S3_ONLY_THROUGH_RESIZE_S3: &[&str] = &["aws-sdk-s3", "aws-config"];

/// The normal dependencies `package` names itself (depth 1 of `cargo tree`).
fn direct_deps(root: &Path, package: &str) -> Result<Vec<String>> {
    let mut cmd = crate::cargo();
    cmd.args([
        "tree", "-p", package, "-e", "normal", "--depth", "1", "--prefix", "none", "--locked",
    ])
    .current_dir(root)
    .stderr(Stdio::inherit());
    let shown = describe(&cmd);
    let output = cmd
        .output()
        .with_context(|| format!("could not start `{shown}`"))?;
    if !output.status.success() {
        bail!("`{shown}` exited with {}", output.status);
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect())
}

/// The programs the tests call, with the Debian package that has each:
/// checked first, so that a fresh machine hears what to install at once
/// rather than from a test failing twenty minutes in. `.ci/run` installs
/// them.
const TEST_TOOLS: &[(&str, &str, &str)] = &[
    (
        "djpeg",
        "libjpeg-turbo-progs",
        "decodes every JPEG output as browsers do",
    ),
    ("dwebp", "webp", "decodes every WebP output as browsers do"),
    (
        "chromium",
        "chromium",
        "shows the --html page (or set CHROMIUM to a Chromium binary)",
    ),
    (
        "python3",
        "python3-venv",
        "runs moto's S3 server, cfn-lint and jsonschema from .venv",
    ),
];

fn tools(_root: &Path) -> Result<()> {
    let found = |name: &str| {
        (name == "chromium" && std::env::var_os("CHROMIUM").is_some())
            || Command::new(name)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok()
    };
    let missing: Vec<&(&str, &str, &str)> = TEST_TOOLS.iter().filter(|(name, _, _)| !found(name)).collect();
    if missing.is_empty() {
        eprintln!("djpeg, dwebp, chromium and python3 present");
        return Ok(());
    }
    let mut text = String::from("the tests need programs this machine lacks:\n");
    for (name, package, why) in &missing {
        text.push_str(&format!("  {name} (Debian package {package}): {why}\n"));
    }
    let packages: Vec<&str> = missing.iter().map(|(_, p, _)| *p).collect();
    text.push_str(&format!(
        "install them with `apt-get install {}` (.ci/run does it, nasm included), then run `cargo xtask ci` again",
        packages.join(" ")
    ));
    bail!(text)
}

fn core_invariant(root: &Path) -> Result<()> {
    let mut cmd = crate::cargo();
    cmd.args([
        "tree",
        "-p",
        "resize-core",
        "-e",
        "normal",
        "--prefix",
        "none",
        "--locked",
    ])
    .current_dir(root)
    .stderr(Stdio::inherit());
    let shown = describe(&cmd);
    eprintln!("$ {shown}");
    let output = cmd
        .output()
        .with_context(|| format!("could not start `{shown}`"))?;
    if !output.status.success() {
        bail!("`{shown}` exited with {}", output.status);
    }
    let tree = String::from_utf8_lossy(&output.stdout);

    let mut problems = Vec::new();
    let mut names: Vec<&str> = tree.lines().filter_map(|l| l.split_whitespace().next()).collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        let banned = FORBIDDEN_CORE_DEPS.contains(&name)
            || FORBIDDEN_CORE_DEP_PREFIXES.iter().any(|p| name.starts_with(p));
        if banned {
            problems.push(format!("resize-core depends on forbidden crate `{name}`"));
        }
    }

    let src = root.join("crates/resize-core/src");
    for file in crate::files_under(&src)? {
        let text = fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        // libjpeg's error manager is the one place that needs `unsafe`.
        let unsafe_allowed = file.ends_with("pixels/libjpeg.rs");
        for (i, line) in text.lines().enumerate() {
            if !unsafe_allowed
                && ["unsafe {", "unsafe fn", "unsafe impl"]
                    .iter()
                    .any(|p| line.contains(p))
            {
                let shown = file.strip_prefix(root).unwrap_or(&file).display();
                problems.push(format!("{shown}:{}: `unsafe` outside pixels/libjpeg.rs", i + 1));
            }
            for pat in FORBIDDEN_CORE_SOURCE {
                if line.contains(pat) {
                    let shown = file.strip_prefix(root).unwrap_or(&file).display();
                    problems.push(format!("{shown}:{}: uses `{pat}`", i + 1));
                }
            }
        }
    }

    // Every S3 call of the function and of the CLI goes through resize-s3
    // (ARCHITECTURE.md): one place for retries, throttling and errors.
    for package in ["resize-lambda", "resize-cli"] {
        for name in direct_deps(root, package)? {
            if S3_ONLY_THROUGH_RESIZE_S3.contains(&name.as_str()) {
                problems.push(format!(
                    "{package} depends on `{name}` directly; S3 goes through resize-s3"
                ));
            }
        }
    }

    if problems.is_empty() {
        eprintln!("resize-core has no forbidden dependencies or APIs; resize-lambda and resize-cli reach S3 only through resize-s3");
        return Ok(());
    }
    for p in &problems {
        eprintln!("error: {p}");
    }
    bail!("{} resize-core invariant violation(s)", problems.len())
}

fn deny(root: &Path) -> Result<()> {
    let installed = crate::cargo()
        .args(["deny", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        eprintln!("cargo-deny not found; installing it");
        cargo(root, &["install", "--locked", "cargo-deny"], &[])?;
    }

    cargo(
        root,
        &["deny", "--locked", "check", "licenses", "bans", "sources"],
        &[],
    )?;

    // The advisory database is a git clone from GitHub. Where GitHub is unreachable
    // (sandboxed builders), `cargo deny check advisories` cannot fetch and fails, which
    // says nothing about our code; so fetch separately and decide from the outcome.
    let mut fetch = crate::cargo();
    fetch.args(["deny", "fetch", "db"]).current_dir(root);
    if run_inherited(fetch).is_ok() {
        return cargo(root, &["deny", "--locked", "check", "advisories"], &[]);
    }
    if cached_advisory_db().is_some() {
        eprintln!(
            "warning: could not fetch the RustSec advisory database; \
             checking advisories against the cached (possibly stale) copy"
        );
        return cargo(root, &["deny", "--offline", "check", "advisories"], &[]);
    }
    eprintln!(
        "warning: SKIPPED `cargo deny check advisories`: the RustSec advisory database \
         could not be fetched and no cached copy exists. Run it where GitHub is reachable."
    );
    Ok(())
}

/// cargo-deny clones the default database to `$CARGO_HOME/advisory-dbs/advisory-db-<hash>`.
fn cached_advisory_db() -> Option<PathBuf> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    fs::read_dir(cargo_home.join("advisory-dbs"))
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.is_dir()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("advisory-db"))
                && p.join(".git").exists()
        })
}
