//! `resize-cli`: turn folders of photos into every size and format a website
//! needs, with the same recipe and key rules as the Lambda.
//!
//! This crate is glue: it walks directories, implements the core's
//! `Storage` trait over the file system, runs jobs on worker threads and
//! prints a summary. All image and key logic lives in `resize-core`.

mod args;
mod fs_storage;
#[cfg(target_os = "linux")]
mod huge_pages;
mod report;
mod state;
mod walk;

use std::collections::HashMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use resize_core::{JobOptions, Recipe};

use crate::args::Args;
use crate::fs_storage::FsStorage;
use crate::report::{ImageLine, Summary};

#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOCATOR: huge_pages::HugePages = huge_pages::HugePages;

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
    let recipe = Recipe::from_lookup(|name| args.setting(name))
        .map_err(|e| Failure::Usage(anyhow::Error::new(e).context("invalid settings")))?;
    let walked = walk::walk(&args.inputs, &args.out).map_err(Failure::Usage)?;
    let storage = FsStorage::new(&args.out, &walked.files, args.dry_run)
        .context("cannot prepare the output directory")
        .map_err(Failure::Usage)?;

    let mut keys: Vec<&str> = walked.files.iter().map(|f| f.key.as_str()).collect();
    let mut collisions = Vec::new();
    for (key, first) in colliding(&recipe, &keys) {
        collisions.push(ImageLine::failed(
            key,
            format!("its outputs would overwrite those of `{first}` (same name, other extension); rename one of them"),
        ));
    }
    keys.retain(|k| !collisions.iter().any(|c| c.key == *k));
    let progress = report::Progress::new(keys.len() as u64, std::io::stderr().is_terminal(), args.quiet);
    let lines: Mutex<Vec<ImageLine>> = Mutex::new(Vec::with_capacity(keys.len()));
    let next = AtomicUsize::new(0);
    let jobs = args.jobs().min(keys.len().max(1));
    let options = JobOptions {
        force: args.force,
        budget: args.budget(),
    };

    // Images run on `jobs` plain worker threads, so at most `jobs` images
    // are in flight, and those render while their estimates fit the memory
    // budget (a thread waits for room in `carry_out`); each image's sizes
    // are rendered in parallel on rayon's pool, which these threads only
    // wait on and never steal from.
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(key) = keys.get(i) else { break };
                // One path for both: the dry run stops after the plan.
                let plan = resize_core::plan_job(&storage, &recipe, key, options.clone());
                let line = if args.dry_run {
                    report::planned(plan)
                } else {
                    ImageLine::from_report(resize_core::carry_out(&storage, &recipe, plan))
                };
                progress.image_done(&line);
                lines
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(line);
            });
        }
    });
    progress.finish();
    if !args.dry_run {
        storage
            .state
            .flush()
            .context("cannot update the output directory's state file")
            .map_err(Failure::Other)?;
    }

    let mut lines = lines
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    lines.extend(walked.errors);
    lines.extend(collisions);
    lines.sort_by(|a, b| a.key.cmp(&b.key));
    let summary = Summary::new(lines, started.elapsed(), args.dry_run);
    summary.print(args.json).map_err(Failure::Other)?;
    Ok(summary)
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Keys whose outputs would land on another key's outputs: the same
/// directory and stem with another extension (`a.jpg`, `a.png`). The first
/// key in sort order keeps its outputs; the others fail rather than
/// silently overwrite them.
fn colliding<'k>(recipe: &Recipe, keys: &[&'k str]) -> Vec<(&'k str, &'k str)> {
    let mut owners: HashMap<(String, String), &str> = HashMap::new();
    let mut out = Vec::new();
    for &key in keys {
        if let Ok(src) = recipe.source_key(key) {
            let slot = (src.out_dir().to_owned(), src.stem().to_owned());
            match owners.get(&slot) {
                Some(&first) => out.push((key, first)),
                None => {
                    owners.insert(slot, key);
                }
            }
        }
    }
    out
}
