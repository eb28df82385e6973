//! `resize-cli`: turn folders of photos into every size and format a website
//! needs, with the same recipe and key rules as the Lambda.
//!
//! This crate is glue: it walks directories, implements the core's
//! `Storage` trait over the file system, runs jobs on worker threads and
//! prints a summary. All image and key logic lives in `resize-core`.

mod args;
mod cloud;
mod fs_storage;
mod html;
#[cfg(target_os = "linux")]
mod huge_pages;
mod location;
mod report;
mod state;
mod walk;

use std::collections::HashMap;
use std::io::IsTerminal;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{mpsc, Mutex};
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use resize_core::{Action, Fetched, JobOptions, Meta, Object, Outcome, Recipe, Skip, Storage, StorageError};
use resize_s3::S3Store;

use crate::args::Args;
use crate::cloud::Cloud;
use crate::fs_storage::FsStorage;
use crate::location::{Location, S3Url};
use crate::report::{ImageLine, Summary};

#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOCATOR: huge_pages::HugePages = huge_pages::HugePages;

/// Where variants are written and where local sources are read. A local
/// `--out` store does both: it knows the walked files, and reads a source
/// from where the walk found it. With an S3 `--out`, local sources have a
/// read-only store of their own.
enum Stores {
    Local(FsStorage),
    S3 { sources: FsStorage, out: S3Store },
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
    let recipe = Recipe::from_lookup(|name| args.setting(name))
        .map_err(|e| Failure::Usage(anyhow::Error::new(e).context("invalid settings")))?;
    let inputs: Vec<Location> = args
        .inputs
        .iter()
        .map(|a| Location::parse(a.as_os_str()))
        .collect::<Result<_, _>>()
        .map_err(|e| usage(e.into()))?;
    let out = Location::parse(args.out.as_os_str()).map_err(|e| usage(e.into()))?;
    let page = match &args.html {
        Some(_) if args.dry_run => {
            return Err(usage(anyhow::anyhow!(
                "--html writes a page of the photos written, and a dry run writes nothing: drop one of them"
            )))
        }
        Some(path) => Some(html::page_path(path).map_err(usage)?),
        None => None,
    };
    let html_base = match &args.html_base {
        Some(text) => Some(html::parse_base(text).map_err(usage)?),
        None => None,
    };
    let s3_inputs: Vec<&S3Url> = inputs
        .iter()
        .filter_map(|l| match l {
            Location::S3(u) => Some(u),
            Location::Local(_) => None,
        })
        .collect();
    let local_inputs: Vec<PathBuf> = inputs
        .iter()
        .filter_map(|l| match l {
            Location::Local(p) => Some(p.clone()),
            Location::S3(_) => None,
        })
        .collect();
    let s3_out = match &out {
        Location::S3(u) => Some(u),
        Location::Local(_) => None,
    };
    cloud::refuse_loops(&recipe, &s3_inputs, s3_out).map_err(usage)?;
    let cloud = if s3_inputs.is_empty() && s3_out.is_none() {
        None
    } else {
        Some(Cloud::connect(&s3_inputs, s3_out).map_err(usage)?)
    };

    // Local sources are walked now (a folder is small next to a bucket);
    // a bucket's keys are listed while the first images render.
    let walked = match &out {
        Location::Local(dir) => walk::walk(&local_inputs, Some(dir.as_path())),
        Location::S3(_) => walk::walk(&local_inputs, None),
    }
    .map_err(usage)?;
    let stores = match (&out, &cloud) {
        (Location::Local(dir), _) => {
            Stores::Local(FsStorage::new(dir, &walked.files, args.dry_run).map_err(usage)?)
        }
        (Location::S3(url), Some(cloud)) => Stores::S3 {
            sources: FsStorage::sources_only(&walked.files),
            out: cloud.destination(url),
        },
        // An S3 `--out` connects the cloud above.
        (Location::S3(_), None) => return Err(Failure::Other(anyhow::anyhow!("no S3 connection for --out"))),
    };
    let buckets: Vec<S3Store> = match &cloud {
        Some(cloud) => s3_inputs.iter().map(|u| cloud.bucket(u)).collect(),
        None => Vec::new(),
    };
    let outputs = stores.outputs();
    let local_reader = stores.local_sources();

    let progress = report::Progress::new(0, std::io::stderr().is_terminal(), args.quiet);
    let lines: Mutex<Vec<ImageLine>> = Mutex::new(Vec::new());
    let jobs = args.jobs();
    let options = JobOptions {
        force: args.force,
        budget: args.budget(),
    };
    let (queue, taken) = mpsc::sync_channel::<Item>(QUEUE);
    let taken = Mutex::new(taken);
    let record = |line: ImageLine| {
        progress.image_done(&line);
        lines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(line);
    };

    // One thread lists and feeds the queue (a full queue holds it back, so
    // memory does not grow with the bucket); images run on `jobs` plain
    // worker threads, so at most `jobs` are in flight, and those render
    // while their estimates fit the memory budget (a thread waits for
    // room in `carry_out`); each image's sizes are rendered in parallel on
    // rayon's pool, which these threads only wait on and never steal from.
    std::thread::scope(|scope| {
        let feeder = scope.spawn(|| {
            // Owned here, so the queue closes when the feeding is done.
            let queue = queue;
            let mut slots = Slots::default();
            let mut send = |input: Input, key: &str, then: Vec<String>| -> ControlFlow<()> {
                if let Some(first) = slots.taken_by(&recipe, key) {
                    record(ImageLine::failed(key, collision(&first)));
                    for other in &then {
                        record(ImageLine::failed(other, collision(&first)));
                    }
                    return ControlFlow::Continue(());
                }
                progress.listed(1 + then.len() as u64);
                match queue.send(Item {
                    input,
                    key: key.to_owned(),
                    then,
                }) {
                    Ok(()) => ControlFlow::Continue(()),
                    // Every worker is gone: nothing more to feed.
                    Err(_) => ControlFlow::Break(()),
                }
            };
            // Local files whose outputs would land on each other's (`a.gif`,
            // `a.png`) go to one worker together, in key order: the first
            // that takes its outputs keeps them and the rest fail, so a
            // broken `a.gif`, or an earlier run's variant, reserves nothing.
            let mut groups: HashMap<(String, String), Vec<String>> = HashMap::new();
            let mut order = Vec::new();
            for file in &walked.files {
                // A file named on the command line that is no source fails
                // with the reason (`x.heic`, `x.svg`); one found by walking a
                // folder is skipped, as the job would.
                match recipe.source_key(&file.key) {
                    Err(e) if file.named => {
                        record(ImageLine::failed(&file.key, format!("not processed: {e}")))
                    }
                    Err(_) => order.push((file.key.clone(), None)),
                    Ok(src) => {
                        let slot = (src.out_dir().to_owned(), src.stem().to_owned());
                        let group = groups.entry(slot.clone()).or_default();
                        if group.is_empty() {
                            order.push((file.key.clone(), Some(slot)));
                        }
                        group.push(file.key.clone());
                    }
                }
            }
            for (key, slot) in order {
                let then = slot
                    .and_then(|slot| groups.remove(&slot))
                    .map(|group| group.into_iter().skip(1).collect())
                    .unwrap_or_default();
                if send(Input::Local, &key, then).is_break() {
                    return;
                }
            }
            for (i, (url, store)) in s3_inputs.iter().zip(&buckets).enumerate() {
                progress.listing(true);
                let listed = store.list(&url.prefix, &mut |key| send(Input::Bucket(i), key, Vec::new()));
                if let Err(e) = listed {
                    record(ImageLine::failed(
                        &url.to_string(),
                        format!("listing stopped: {}", resize_core::error_chain(&e)),
                    ));
                }
            }
            progress.listing(false);
        });
        for _ in 0..jobs {
            scope.spawn(|| loop {
                let next = taken
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .recv();
                let Ok(Item { input, key, then }) = next else {
                    break;
                };
                let sources: &dyn Storage = match input {
                    Input::Local => local_reader,
                    Input::Bucket(i) => match buckets.get(i) {
                        Some(store) => store,
                        None => break,
                    },
                };
                // The key, then those that would write over its outputs,
                // each tried only while no earlier one took them.
                let mut owner: Option<String> = None;
                for key in std::iter::once(key).chain(then) {
                    if let Some(first) = &owner {
                        record(ImageLine::failed(&key, collision(first)));
                        continue;
                    }
                    let storage = Routed {
                        sources,
                        outputs,
                        source: &key,
                    };
                    // One path for both: the dry run stops after the plan.
                    let plan = resize_core::plan_job(&storage, &recipe, &key, options.clone());
                    let line = if args.dry_run {
                        if takes_outputs(&plan.action) {
                            owner = Some(key.clone());
                        }
                        report::planned(plan)
                    } else {
                        let report = resize_core::carry_out(&storage, plan);
                        if matches!(
                            report.outcome,
                            Outcome::Written(_) | Outcome::Skipped(Skip::UpToDate)
                        ) {
                            owner = Some(key.clone());
                        }
                        ImageLine::from_report(report)
                    };
                    record(line);
                }
            });
        }
        // The feeder ends when every key is queued; dropping its sender
        // then lets the workers drain the queue and stop.
        let _ = feeder.join();
    });
    progress.finish();
    if let (false, Stores::Local(fs)) = (args.dry_run, &stores) {
        fs.state
            .flush()
            .context("cannot update the output directory's state file")
            .map_err(Failure::Other)?;
    }

    let mut lines = lines
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    lines.sort_by(|a, b| a.key.cmp(&b.key));
    if let Some(path) = &page {
        let base = match (&html_base, &out) {
            (Some(base), _) => base.clone(),
            (None, Location::S3(url)) => format!(
                "https://{}.s3.amazonaws.com/{}",
                url.bucket,
                resize_core::url_path(&url.prefix)
            ),
            // Found once the page's folder exists (below).
            (None, Location::Local(_)) => String::new(),
        };
        write_page(path, &base, &out, &lines, &recipe, outputs).map_err(Failure::Other)?;
    }
    lines.extend(walked.errors);
    lines.sort_by(|a, b| a.key.cmp(&b.key));
    let summary = Summary::new(lines, started.elapsed(), args.dry_run);
    summary.print(args.json).map_err(Failure::Other)?;
    Ok(summary)
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
        if resize_core::manifest_owner(&document).as_deref() != Some(line.key.as_str()) {
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
    let mut tmp = tempfile::Builder::new()
        .prefix(".resize-page-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot write {}", path.display()))?;
    std::io::Write::write_all(&mut tmp, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    // A temporary file is private; the page is for a browser or a web
    // server to read, like the variants.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    tmp.persist(path)
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

/// Keys queued for the workers at most: a bucket is listed as fast as
/// images are done, not ahead of them.
const QUEUE: usize = 1024;

/// One key to process and the input it came from.
struct Item {
    input: Input,
    key: String,
    /// Keys whose outputs would land on `key`'s, in key order: tried after
    /// it, each only while no earlier one took the outputs.
    then: Vec<String>,
}

/// Why a key's outputs are not written: `first` took them.
fn collision(first: &str) -> String {
    format!("its outputs would overwrite those of `{first}` (same name, other extension); rename one of them")
}

/// Whether a plan takes its key's outputs: it writes them, or they are
/// current.
fn takes_outputs(action: &Action) -> bool {
    matches!(action, Action::Write(_) | Action::Skip(Skip::UpToDate))
}

#[derive(Clone, Copy)]
enum Input {
    /// The walked local files.
    Local,
    /// The `n`-th S3 input.
    Bucket(usize),
}

/// The core's storage for one job: the source from its input, every
/// output (variants, the manifest) to and from the output store.
struct Routed<'a> {
    sources: &'a dyn Storage,
    outputs: &'a dyn Storage,
    /// The job's source: the one key read from the input. Any other read
    /// (the manifest, to tell whose it is) goes to the output store. Not
    /// told by shape: under REPLACEMENTS a source may look like an output
    /// (`original/trip-360.jpg`).
    source: &'a str,
}

impl Storage for Routed<'_> {
    fn head(&self, key: &str) -> Result<Option<Meta>, StorageError> {
        self.outputs.head(key)
    }

    fn head_many(&self, keys: &[&str]) -> Vec<Result<Option<Meta>, StorageError>> {
        self.outputs.head_many(keys)
    }

    fn get(&self, key: &str, limit: u64) -> Result<Fetched, StorageError> {
        if key != self.source {
            return self.outputs.get(key, limit);
        }
        self.sources.get(key, limit)
    }

    fn get_start(&self, key: &str, max: u64, limit: u64) -> Result<Fetched, StorageError> {
        self.sources.get_start(key, max, limit)
    }

    fn put(&self, key: &str, object: Object<'_>) -> Result<(), StorageError> {
        self.outputs.put(key, object)
    }

    fn put_many(&self, objects: &[(&str, Object<'_>)]) -> Vec<Result<(), StorageError>> {
        self.outputs.put_many(objects)
    }

    fn adopt(&self, key: &str, metadata: &[(&str, &str)]) -> Result<(), StorageError> {
        self.outputs.adopt(key, metadata)
    }
}

/// Output slots (directory and stem) taken so far: keys whose outputs
/// would land on another key's outputs (`a.jpg`, `a.png`). The first key
/// in listing order keeps its outputs; the others fail rather than
/// silently overwrite them.
#[derive(Default)]
struct Slots(HashMap<(String, String), String>);

impl Slots {
    /// The key that took `key`'s slot before it, if any.
    fn taken_by(&mut self, recipe: &Recipe, key: &str) -> Option<String> {
        let src = recipe.source_key(key).ok()?;
        let slot = (src.out_dir().to_owned(), src.stem().to_owned());
        match self.0.get(&slot) {
            Some(first) => Some(first.clone()),
            None => {
                self.0.insert(slot, key.to_owned());
                None
            }
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
