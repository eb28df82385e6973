//! `cargo xtask fuzz [--seconds N] [--target NAME] [--sanitizer S]`: runs each
//! cargo-fuzz target in `fuzz/` for N seconds (default 60), seeded from the
//! fixtures, and reports executions per target. Installs cargo-fuzz when it
//! is missing. cargo-fuzz needs nightly flags; the stable toolchain accepts
//! them with `RUSTC_BOOTSTRAP=1` (no nightly can be fetched here).
//!
//! A crash fails the run and leaves its input in `fuzz/artifacts/<target>/`:
//! copy it into `fixtures/` and add a regression test.
//!
//! Runs grow the working corpus `fuzz/corpus/<target>/` (not committed).
//! `cargo xtask fuzz cmin [--target NAME]` merges it into the committed,
//! minimised corpus `fuzz/kept/<target>/` (libFuzzer's `-merge`: the fewest
//! inputs that cover what all of them cover), which every run, CI's short
//! ones too, reads as seeds: they start where the long runs stopped.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context, Result};

pub const TARGETS: [&str; 4] = ["render", "recipe", "keys", "events"];

/// libFuzzer's limits, the same for runs and merges: a header may ask for
/// 4 MP, so more than 1 GiB is a leak or a bomb.
const LIMITS: [&str; 3] = ["-rss_limit_mb=1024", "-timeout=10", "-max_len=262144"];

struct Options {
    seconds: u64,
    targets: Vec<String>,
    sanitizer: String,
    /// Minimise into `fuzz/kept/` instead of fuzzing.
    cmin: bool,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        seconds: 60,
        targets: Vec::new(),
        // Panics, overflows (debug assertions are on), timeouts and memory
        // blow-ups are what CI's short runs hunt; they need no sanitizer.
        // libjpeg and libwebp are C: a long run with `--sanitizer address`
        // checks their memory accesses too.
        sanitizer: "none".to_owned(),
        cmin: args.first().is_some_and(|a| a == "cmin"),
    };
    let mut it = args.iter().skip(usize::from(o.cmin));
    while let Some(a) = it.next() {
        let mut value = |what: &str| it.next().with_context(|| format!("{a} needs {what}")).cloned();
        match a.as_str() {
            "--seconds" => o.seconds = value("a number")?.parse().context("--seconds")?,
            "--target" => o.targets.push(value("a target name")?),
            "--sanitizer" => o.sanitizer = value("a sanitizer")?,
            other => bail!("unknown fuzz option `{other}` (--seconds N, --target NAME, --sanitizer S)"),
        }
    }
    if let Some(t) = o.targets.iter().find(|t| !TARGETS.contains(&t.as_str())) {
        bail!("unknown fuzz target `{t}` (targets: {})", TARGETS.join(", "));
    }
    if o.targets.is_empty() {
        o.targets = TARGETS.iter().map(|t| (*t).to_owned()).collect();
    }
    Ok(o)
}

pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let o = parse(args)?;
    ensure_cargo_fuzz(root)?;
    let fuzz = root.join("fuzz");
    if o.cmin {
        return minimise(&fuzz, &o);
    }
    let mut rows = Vec::new();
    for target in &o.targets {
        let seeds = seed_dir(root, target)?;
        let corpus = fuzz.join("corpus").join(target);
        fs::create_dir_all(&corpus)?;
        let kept = fuzz.join("kept").join(target);
        fs::create_dir_all(&kept)?;
        // New inputs go to the first directory; the others are read only.
        let out = crate::cargo()
            .args(["fuzz", "run", "--sanitizer", &o.sanitizer, target])
            .arg(&corpus)
            .arg(&kept)
            .arg(&seeds)
            .args([
                "--",
                &format!("-max_total_time={}", o.seconds),
                "-print_final_stats=1",
            ])
            .args(LIMITS)
            .env("RUSTC_BOOTSTRAP", "1")
            .current_dir(&fuzz)
            .stdout(Stdio::inherit())
            .stderr(Stdio::piped())
            .output()
            .with_context(|| format!("running cargo fuzz on {target}"))?;
        let log = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!(
                "fuzz target `{target}` failed; its input is in fuzz/artifacts/{target}/\n{}",
                tail.join("\n")
            );
        }
        let stat = |name: &str| {
            log.lines()
                .find_map(|l| l.strip_prefix(&format!("stat::{name}:")))
                .map_or_else(|| "?".to_owned(), |v| v.trim().to_owned())
        };
        let corpus_size = fs::read_dir(&corpus).map(|d| d.count()).unwrap_or(0);
        rows.push(format!(
            "| {target} | {}s | {} | {} | {corpus_size} | 0 |",
            o.seconds,
            stat("number_of_executed_units"),
            stat("average_exec_per_sec"),
        ));
    }
    println!("\n| target | time | executions | per second | corpus files | crashes |");
    println!("|---|---:|---:|---:|---:|---:|");
    for r in rows {
        println!("{r}");
    }
    Ok(())
}

/// Merges each target's working corpus into `fuzz/kept/<target>/`, keeping
/// only inputs that add coverage.
fn minimise(fuzz: &Path, o: &Options) -> Result<()> {
    for target in &o.targets {
        let kept = fuzz.join("kept").join(target);
        let merged = fuzz.join("kept").join(format!("{target}.merging"));
        let _ = fs::remove_dir_all(&merged);
        fs::create_dir_all(&merged)?;
        fs::create_dir_all(&kept)?;
        let status = crate::cargo()
            .args(["fuzz", "run", "--sanitizer", &o.sanitizer, target])
            .arg(&merged)
            .arg(&kept)
            .arg(fuzz.join("corpus").join(target))
            .args(["--", "-merge=1"])
            .args(LIMITS)
            .env("RUSTC_BOOTSTRAP", "1")
            .current_dir(fuzz)
            .status()
            .with_context(|| format!("minimising the corpus of {target}"))?;
        if !status.success() {
            bail!("merging the corpus of `{target}` failed");
        }
        fs::remove_dir_all(&kept)?;
        fs::rename(&merged, &kept)?;
        let files = crate::files_under(&kept)?;
        let bytes: u64 = files
            .iter()
            .filter_map(|f| fs::metadata(f).ok())
            .map(|m| m.len())
            .sum();
        println!(
            "{target}: {} inputs, {bytes} bytes in fuzz/kept/{target}/",
            files.len()
        );
    }
    Ok(())
}

fn ensure_cargo_fuzz(root: &Path) -> Result<()> {
    let present = crate::cargo()
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if present {
        return Ok(());
    }
    eprintln!("cargo-fuzz not found; installing it");
    let status = crate::cargo()
        .args(["install", "--locked", "cargo-fuzz"])
        .current_dir(root)
        .status()?;
    if !status.success() {
        bail!("cargo install cargo-fuzz failed");
    }
    Ok(())
}

/// Seeds for a target, regenerated each run under `target/fuzz-seeds/`
/// from the fixtures and a few hand-written inputs.
fn seed_dir(root: &Path, target: &str) -> Result<PathBuf> {
    let dir = root.join("target/fuzz-seeds").join(target);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    let fixtures = root.join("fixtures");
    let mut n = 0;
    let mut add = |bytes: &[u8]| -> Result<()> {
        n += 1;
        fs::write(dir.join(format!("seed-{n:03}")), bytes)?;
        Ok(())
    };
    match target {
        "render" => {
            for sub in ["images", "bad", "hostile"] {
                for path in files(&fixtures.join(sub))? {
                    let bytes = fs::read(&path)?;
                    // Large files slow every mutation; small ones cover the formats.
                    if bytes.len() <= 64 * 1024 {
                        add(&bytes)?;
                    }
                }
            }
        }
        "events" => {
            for path in files(&fixtures.join("events"))? {
                add(&fs::read(&path)?)?;
            }
        }
        "recipe" => {
            for seed in [
                "SIZES=360,720,1200,2200\nREPLACEMENTS=original:resized\nFORMATS=jpeg,webp",
                "SIZES=96\nKEY_TEMPLATE={dir}/{width}x{height}/{stem}.{ext}\nUPSCALE=source",
                "JPEG_QUALITY=101\nBACKGROUND=#ff00aa\nMAX_PIXELS=1\nMAX_INPUT_BYTES=0",
                "REPLACEMENTS=a:b,b/c:d\nKEY_TEMPLATE={stem}.{ext}",
            ] {
                add(seed.as_bytes())?;
            }
        }
        "keys" => {
            for seed in [
                "original:resized\n{dir}/{stem}-{width}.{ext}\noriginal/trips/a.jpg\noriginal/../x.png",
                "\n{dir}/{width}/{stem}.{ext}\na.jpg\n360/a.jpg\nb/a-360.jpg",
                "up/load:out\n{dir}/{stem}_{width}x{height}.{ext}\nup/load/x//y.JPG\nup/load/\u{0}.jpg",
            ] {
                add(seed.as_bytes())?;
            }
        }
        other => bail!("no seeds for `{other}`"),
    }
    // Inputs that once failed (`fixtures/fuzz/<target>/`) run first, every time.
    let found = fixtures.join("fuzz").join(target);
    if found.is_dir() {
        for path in files(&found)? {
            add(&fs::read(&path)?)?;
        }
    }
    Ok(dir)
}

/// The files below `dir` but its READMEs.
fn files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = crate::files_under(dir)?;
    out.retain(|p| p.extension().is_none_or(|e| e != "md"));
    Ok(out)
}
