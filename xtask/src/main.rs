//! Project automation: `cargo xtask <command>` (aliased in `.cargo/config.toml`).

mod bench;
mod ci;
mod dist;
mod fixtures;
mod fuzz;
mod layers;
mod python;
mod tidy;
mod tiff;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};

const HELP: &str = "\
usage: cargo xtask <command>

commands:
  bench [--corpus DIR] [--runs N] [--install-peers] [--smoke] [--lambda]
             resize-cli vs sharp, vipsthumbnail and the 2019 pipeline: CPU,
             wall, peak RSS, bytes, SSIMULACRA2; writes target/bench/report.md;
             --lambda adds the release bootstrap against moto, per photo
  dist       build target/lambda/resize-lambda/bootstrap.zip (release, x86_64
             provided.al2023) and check it needs glibc 2.34 at most
  fixtures   regenerate every generated file under fixtures/ (deterministic)
  fuzz [--seconds N] [--target NAME] [--sanitizer S]
             run each cargo-fuzz target in fuzz/ (render, recipe, keys,
             events) for N seconds (default 60), seeded from the fixtures
             and the kept corpus; installs cargo-fuzz when missing
  fuzz cmin [--target NAME]
             merge the working corpus into the committed, minimised
             fuzz/kept/<target>/
  ci [STEP...]
             run the CI checks in order, stopping at the first failure:
             fmt, tidy (tree checks), layers (resize-core's module layers), clippy, python (venv with moto and
             cfn-lint), template (cfn-lint and least privilege), test,
             bench-smoke, fuzz (10 s per target), doc, core-deps (resize-core
             invariants), deny.
             Naming steps runs only those (e.g. `cargo xtask ci core-deps deny`).
";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Print the context chain ourselves: returning the error from main would also
            // dump a backtrace whenever RUST_BACKTRACE is set, which only buries the
            // message naming the failed step.
            eprintln!("\nerror: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let root = project_root()?;
    // Every path below is relative to the project root, wherever cargo was run from.
    std::env::set_current_dir(&root).with_context(|| format!("changing directory to {}", root.display()))?;

    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("fixtures") => fixtures::run(&root),
        Some("ci") => ci::run(&root, &args[1..]),
        Some("dist") => dist::run(&root),
        Some("bench") => bench::run(&root, &args[1..]),
        Some("fuzz") => fuzz::run(&root, &args[1..]),
        Some("help" | "-h" | "--help") | None => {
            print!("{HELP}");
            Ok(())
        }
        Some(other) => {
            eprint!("{HELP}");
            bail!("unknown xtask command `{other}`")
        }
    }
}

/// A command running the cargo that launched us (so `cargo +nightly xtask`
/// stays on nightly), or `cargo` from `PATH` when run some other way.
fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Every file below `dir`, sorted so reports are stable. The one directory
/// walker of xtask; callers filter what they need.
fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in fs::read_dir(&d).with_context(|| format!("listing {}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// xtask lives at `<root>/xtask`, so the root is its manifest directory's parent.
fn project_root() -> Result<PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .context("xtask's manifest directory has no parent")
}
