//! The run's threads: one feeds a bounded queue (the walked files, grouped
//! by the outputs they would write, then each bucket's listing), and
//! `--jobs` workers take keys from it, plan each and carry the plan out
//! (or, in a dry run, report the plan).
//!
//! Images run on plain worker threads, so at most `--jobs` are in flight,
//! and those render while their estimates fit the memory budget (a thread
//! waits for room in `carry_out`); each image's sizes are rendered in
//! parallel on rayon's pool, which these threads only wait on and never
//! steal from. A full queue holds the feeder back, so memory does not grow
//! with the bucket.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::{mpsc, Mutex};

use resize_core::{Action, Fetched, JobOptions, Meta, Object, Outcome, Recipe, Skip, Storage, StorageError};
use resize_s3::S3Store;

use crate::location::S3Url;
use crate::report::{self, ImageLine, Progress};
use crate::walk::SourceFile;

/// Keys queued for the workers at most: a bucket is listed as fast as
/// images are done, not ahead of them.
const QUEUE: usize = 1024;

/// What a run's threads work on.
pub struct Work<'a> {
    pub recipe: &'a Recipe,
    pub options: JobOptions,
    pub dry_run: bool,
    pub jobs: usize,
    /// The walked local files, read through `local_sources`.
    pub files: &'a [SourceFile],
    pub local_sources: &'a dyn Storage,
    /// The S3 inputs, each with its store.
    pub buckets: Vec<(&'a S3Url, S3Store)>,
    /// Where every output goes.
    pub outputs: &'a dyn Storage,
    pub progress: &'a Progress,
}

/// Runs every key and returns a line for each, in no set order.
pub fn run(work: &Work<'_>) -> Vec<ImageLine> {
    let lines: Mutex<Vec<ImageLine>> = Mutex::new(Vec::new());
    let record = |line: ImageLine| {
        work.progress.image_done(&line);
        lines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(line);
    };
    let (queue, taken) = mpsc::sync_channel::<Item>(QUEUE);
    let taken = Mutex::new(taken);
    std::thread::scope(|scope| {
        // The queue moves into the feeder, so it closes when the feeding
        // is done; the workers then drain it and stop.
        let feeder = scope.spawn(|| feed(work, queue, &record));
        for _ in 0..work.jobs {
            scope.spawn(|| loop {
                let next = taken
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .recv();
                let Ok(item) = next else { break };
                if process(work, item, &record).is_break() {
                    break;
                }
            });
        }
        let _ = feeder.join();
    });
    lines
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One key to process and the input it came from.
struct Item {
    input: Input,
    key: String,
    /// Keys whose outputs would land on `key`'s, in key order: tried after
    /// it, each only while no earlier one took the outputs.
    then: Vec<String>,
}

#[derive(Clone, Copy)]
enum Input {
    /// The walked local files.
    Local,
    /// The `n`-th S3 input.
    Bucket(usize),
}

/// Feeds the queue: the walked files first, then each bucket as it is
/// listed.
fn feed(work: &Work<'_>, queue: mpsc::SyncSender<Item>, record: &(dyn Fn(ImageLine) + Sync)) {
    let mut slots = Slots::default();
    let mut send = |input: Input, key: &str, then: Vec<String>| -> ControlFlow<()> {
        if let Some(first) = slots.taken_by(work.recipe, key) {
            for other in std::iter::once(key).chain(then.iter().map(String::as_str)) {
                record(ImageLine::failed(other, collision(&first)));
            }
            return ControlFlow::Continue(());
        }
        work.progress.listed(1 + then.len() as u64);
        let item = Item {
            input,
            key: key.to_owned(),
            then,
        };
        match queue.send(item) {
            Ok(()) => ControlFlow::Continue(()),
            // Every worker is gone: nothing more to feed.
            Err(_) => ControlFlow::Break(()),
        }
    };
    for (key, then) in local_groups(work.recipe, work.files, record) {
        if send(Input::Local, &key, then).is_break() {
            return;
        }
    }
    for (i, (url, store)) in work.buckets.iter().enumerate() {
        work.progress.listing(true);
        let listed = store.list(&url.prefix, &mut |key| send(Input::Bucket(i), key, Vec::new()));
        if let Err(e) = listed {
            record(ImageLine::failed(
                &url.to_string(),
                format!("listing stopped: {}", resize_core::error_chain(&e)),
            ));
        }
    }
    work.progress.listing(false);
}

/// The walked files in key order, each with the later files whose outputs
/// would land on its own (`a.gif`, `a.png`: one slot), which go to one
/// worker together: the first that takes its outputs keeps them and the
/// rest fail, so a broken `a.gif`, or an earlier run's variant, reserves
/// nothing. A file named on the command line that is no source fails with
/// the reason (`x.heic`, `x.svg`); one found by walking a folder goes on,
/// for the job to skip.
fn local_groups(
    recipe: &Recipe,
    files: &[SourceFile],
    record: &(dyn Fn(ImageLine) + Sync),
) -> Vec<(String, Vec<String>)> {
    let mut groups: HashMap<(String, String), Vec<String>> = HashMap::new();
    let mut order = Vec::new();
    for file in files {
        match recipe.source_key(&file.key) {
            Err(e) if file.named => record(ImageLine::failed(&file.key, format!("not processed: {e}"))),
            Err(_) => order.push((file.key.clone(), None)),
            Ok(src) => {
                let (dir, stem) = src.slot();
                let slot = (dir.to_owned(), stem.to_owned());
                let group = groups.entry(slot.clone()).or_default();
                if group.is_empty() {
                    order.push((file.key.clone(), Some(slot)));
                }
                group.push(file.key.clone());
            }
        }
    }
    order
        .into_iter()
        .map(|(key, slot)| {
            let then = slot
                .and_then(|slot| groups.remove(&slot))
                .map(|group| group.into_iter().skip(1).collect())
                .unwrap_or_default();
            (key, then)
        })
        .collect()
}

/// Plans one item's key, then the keys that would write over its outputs,
/// each tried only while no earlier one took them; carries each plan out
/// unless the run is dry. Breaks when the item names no input.
fn process(work: &Work<'_>, item: Item, record: &(dyn Fn(ImageLine) + Sync)) -> ControlFlow<()> {
    let Item { input, key, then } = item;
    let sources: &dyn Storage = match input {
        Input::Local => work.local_sources,
        Input::Bucket(i) => match work.buckets.get(i) {
            Some((_, store)) => store,
            None => return ControlFlow::Break(()),
        },
    };
    let mut owner: Option<String> = None;
    for key in std::iter::once(key).chain(then) {
        if let Some(first) = &owner {
            record(ImageLine::failed(&key, collision(first)));
            continue;
        }
        let storage = Routed {
            sources,
            outputs: work.outputs,
            source: &key,
        };
        // One path for both: the dry run stops after the plan.
        let plan = resize_core::plan_job(&storage, work.recipe, &key, work.options.clone());
        let line = if work.dry_run {
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
    ControlFlow::Continue(())
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

/// Output slots ([`SourceKey::slot`](resize_core::SourceKey::slot)) taken
/// so far. The first key in listing order keeps its outputs; the others
/// fail rather than silently overwrite them.
#[derive(Default)]
struct Slots(HashMap<(String, String), String>);

impl Slots {
    /// The key that took `key`'s slot before it, if any.
    fn taken_by(&mut self, recipe: &Recipe, key: &str) -> Option<String> {
        let src = recipe.source_key(key).ok()?;
        let (dir, stem) = src.slot();
        let slot = (dir.to_owned(), stem.to_owned());
        match self.0.get(&slot) {
            Some(first) => Some(first.clone()),
            None => {
                self.0.insert(slot, key.to_owned());
                None
            }
        }
    }
}
