//! `resize-cli`: turn folders of photos into every size and format a website
//! needs, with the same recipe and key rules as the Lambda.
//!
//! This crate is glue: it walks directories, implements the core's
//! `Storage` trait over the file system, runs jobs on worker threads and
//! prints a summary. All image and key logic lives in `resize-core`.

mod args;
mod atomic;
mod cloud;
mod fs_storage;
mod html;
#[cfg(target_os = "linux")]
mod huge_pages;
mod location;
mod report;
mod state;
mod walk;
mod work;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use resize_core::{JobOptions, Recipe, Storage, StorageError};
use resize_s3::S3Store;

use crate::args::Args;
use crate::cloud::Cloud;
use crate::fs_storage::{LocalRun, OutDir, SourceFiles};
use crate::location::{Location, S3Url};
use crate::report::{ImageLine, Summary};

#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOCATOR: huge_pages::HugePages = huge_pages::HugePages;

/// Where variants are written and where local sources are read. A local
/// `--out` run reads and writes through both of its stores; with an S3
/// `--out`, the walked files are read from where they are.
enum Stores {
    Local(LocalRun),
    S3 { sources: SourceFiles, out: S3Store },
}

impl Stores {
    fn outputs(&self) -> &dyn Storage {
        match self {
            Stores::Local(fs) => fs,
            Stores::S3 { out, .. } => out,
        }
    }

    fn local_sources(&self) -> &dyn Storage {
        match self {
            Stores::Local(fs) => fs,
            Stores::S3 { sources, .. } => sources,
        }
    }
}

fn main() -> ExitCode {
    #[cfg(target_os = "linux")]
    huge_pages::map_large_blocks();
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            // clap prints help/version to stdout with exit 0, usage errors with 2.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match run(&args) {
        Ok(summary) => {
            if summary.failed.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(Failure::Usage(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
        Err(Failure::Other(e)) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

enum Failure {
    /// Bad settings or paths: exit code 2.
    Usage(anyhow::Error),
    /// Anything else that stops the whole run.
    Other(anyhow::Error),
}

fn run(args: &Args) -> Result<Summary, Failure> {
    let started = Instant::now();
    let usage = |e: anyhow::Error| Failure::Usage(e);
    let setup = Setup::parse(args).map_err(usage)?;
    let Setup {
        recipe,
        inputs,
        out,
        page,
        html_base,
    } = &setup;
    let s3_inputs: Vec<&S3Url> = inputs.iter().filter_map(Location::s3).collect();
    let local_inputs: Vec<PathBuf> = inputs.iter().filter_map(Location::local).cloned().collect();
    let s3_out = out.s3();
    cloud::refuse_loops(recipe, &s3_inputs, s3_out).map_err(usage)?;
    let cloud = if s3_inputs.is_empty() && s3_out.is_none() {
        None
    } else {
        Some(Cloud::connect(&s3_inputs, s3_out).map_err(usage)?)
    };
    // Local sources are walked now (a folder is small next to a bucket);
    // a bucket's keys are listed while the first images render.
    let walked = walk::walk(&local_inputs, out.local().map(PathBuf::as_path)).map_err(usage)?;
    let stores = Stores::open(out, cloud.as_ref(), &walked, args.dry_run)?;
    let progress = report::Progress::new(0, std::io::stderr().is_terminal(), args.quiet);
    let work = work::Work {
        recipe,
        options: JobOptions {
            force: args.force,
            budget: args.budget(),
        },
        dry_run: args.dry_run,
        jobs: args.jobs(),
        files: &walked.files,
        local_sources: stores.local_sources(),
        buckets: match &cloud {
            Some(cloud) => s3_inputs.iter().map(|u| (*u, cloud.bucket(u))).collect(),
            None => Vec::new(),
        },
        outputs: stores.outputs(),
        progress: &progress,
    };
    let mut lines = work::run(&work);
    progress.finish();
    if let (false, Stores::Local(local)) = (args.dry_run, &stores) {
        local
            .out
            .state
            .flush()
            .context("cannot update the output directory's state file")
            .map_err(Failure::Other)?;
    }
    lines.sort_by(|a, b| a.key.cmp(&b.key));
    if let Some(path) = page {
        let base = match (html_base, out) {
            (Some(base), _) => base.clone(),
            (None, Location::S3(url)) => format!(
                "https://{}.s3.amazonaws.com/{}",
                url.bucket,
                resize_core::adapter::url_path(&url.prefix)
            ),
            // Found once the page's folder exists (`write_page`).
            (None, Location::Local(_)) => String::new(),
        };
        write_page(path, &base, out, &lines, recipe, stores.outputs()).map_err(Failure::Other)?;
    }
    lines.extend(walked.errors);
    lines.sort_by(|a, b| a.key.cmp(&b.key));
    let summary = Summary::new(lines, started.elapsed(), args.dry_run);
    summary.print(args.json).map_err(Failure::Other)?;
    Ok(summary)
}

/// What the arguments ask for, parsed; every error is a usage error.
struct Setup {
    recipe: Recipe,
    inputs: Vec<Location>,
    out: Location,
    /// The `--html` page's path.
    page: Option<PathBuf>,
    html_base: Option<String>,
}

impl Setup {
    fn parse(args: &Args) -> anyhow::Result<Setup> {
        let recipe = Recipe::from_lookup(|name| args.setting(name))
            .map_err(|e| anyhow::Error::new(e).context("invalid settings"))?;
        let inputs: Vec<Location> = args
            .inputs
            .iter()
            .map(|a| Location::parse(a.as_os_str()))
            .collect::<Result<_, _>>()?;
        let out = Location::parse(args.out.as_os_str())?;
        let page = match &args.html {
            Some(_) if args.dry_run => anyhow::bail!(
                "--html writes a page of the photos written, and a dry run writes nothing: drop one of them"
            ),
            Some(path) => Some(html::page_path(path)?),
            None => None,
        };
        let html_base = args.html_base.as_deref().map(html::parse_base).transpose()?;
        Ok(Setup {
            recipe,
            inputs,
            out,
            page,
            html_base,
        })
    }
}

impl Stores {
    /// The stores for `--out`: a local folder, or the S3 destination (with
    /// the walked files read from where they are).
    fn open(
        out: &Location,
        cloud: Option<&Cloud>,
        walked: &walk::Walked,
        dry_run: bool,
    ) -> Result<Stores, Failure> {
        Ok(match (out, cloud) {
            (Location::Local(dir), _) => Stores::Local(LocalRun {
                sources: SourceFiles::new(&walked.files),
                out: OutDir::new(dir, &walked.files, dry_run).map_err(Failure::Usage)?,
            }),
            (Location::S3(url), Some(cloud)) => Stores::S3 {
                sources: SourceFiles::new(&walked.files),
                out: cloud.destination(url),
            },
            // An S3 `--out` connects the cloud.
            (Location::S3(_), None) => {
                return Err(Failure::Other(anyhow::anyhow!("no S3 connection for --out")))
            }
        })
    }
}

/// Writes the `--html` page from the manifests of this run's sources that
/// have one (written now or already current), linking to `base` (for a
/// local `--out`, the directory relative to the page when `base` is
/// empty). Written whole or not at all, like every output.
fn write_page(
    path: &std::path::Path,
    base: &str,
    out: &Location,
    lines: &[ImageLine],
    recipe: &Recipe,
    outputs: &dyn Storage,
) -> anyhow::Result<()> {
    let mut manifests = Vec::new();
    let mut shown = std::collections::HashSet::new();
    for line in lines {
        // A failed source's manifest key may hold another source's
        // manifest (`a.png` beside `a.jpg`) or a user's JSON: not its own.
        if !matches!(line.status, report::Status::Written | report::Status::Skipped) {
            continue;
        }
        let Some(key) = recipe
            .source_key(&line.key)
            .ok()
            .and_then(|s| s.manifest_key().map(str::to_owned))
        else {
            continue;
        };
        if !shown.insert(key.clone()) {
            continue;
        }
        let document = match outputs.get(&key, 1 << 20) {
            Ok(f) => f.bytes,
            // No variant (too narrow), or a failed source: not on the page.
            Err(StorageError::NotFound(_)) => continue,
            Err(e) => return Err(anyhow::Error::new(e).context(format!("cannot read manifest `{key}`"))),
        };
        if resize_core::adapter::manifest_owner(&document).as_deref() != Some(line.key.as_str()) {
            continue;
        }
        match serde_json::from_slice::<html::PageManifest>(&document) {
            Ok(m) => manifests.push(m),
            Err(e) => eprintln!("warning: manifest `{key}` left off the page: {e}"),
        }
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let base = match out {
        Location::Local(out_dir) if base.is_empty() => html::relative_base(path, out_dir)?,
        _ => base.to_owned(),
    };
    let text = html::page(&manifests, &base);
    atomic::write(path, text.as_bytes())
        .map_err(|e| e.error)
        .with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!(
        "preview page: {} ({} photos; links to {})",
        path.display(),
        manifests.len(),
        if base.is_empty() {
            "its own folder"
        } else {
            base.as_str()
        }
    );
    Ok(())
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
