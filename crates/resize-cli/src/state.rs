//! The output root's state file: what S3 keeps as each variant's user
//! metadata (its source, the source's version, the recipe's fingerprint),
//! kept for files in one JSON file, `.resize-state.json`, beside the
//! variants.
//!
//! - **Trusted only while the file is as recorded.** An entry names the
//!   variant's size and modification time; a variant changed since (by
//!   hand, by another tool) has no metadata and is judged by modification
//!   time, as are variants of a root with no state file or an unreadable
//!   one.
//! - **Shared by concurrent runs.** A run keeps its new entries in memory
//!   and merges them into the file under an exclusive lock
//!   (`.resize-state.lock`): read the file again, add its entries, write a
//!   temporary file, rename it over the old. Entries are merged at most
//!   once a second and when the run ends, so an interrupted run loses at
//!   most a second of records; those variants are then judged by time.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::atomic;

/// The state file's name in the output root.
pub const STATE_FILE: &str = ".resize-state.json";
/// The lock taken while the state file is rewritten.
pub const LOCK_FILE: &str = ".resize-state.lock";
/// Whether a file name is one of the tool's own: a temporary file, the
/// state file or its lock (the walker skips them, and no output takes
/// their names).
pub fn is_own_file(name: &std::ffi::OsStr) -> bool {
    atomic::is_temp(name)
        || name
            .to_str()
            .is_some_and(|n| n.starts_with(STATE_FILE) || n == LOCK_FILE)
}

/// How often a run merges its new entries into the file.
const MERGE_EVERY: Duration = Duration::from_secs(1);

/// One variant's record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// User metadata as the core put it (name → value).
    pub metadata: BTreeMap<String, String>,
    /// The file's size when recorded.
    pub size: u64,
    /// Its modification time when recorded, in nanoseconds since 1970.
    pub modified_ns: u128,
}

impl Entry {
    /// Whether `file` is still the file this entry describes.
    pub fn describes(&self, file: &fs::Metadata) -> bool {
        file.len() == self.size && nanos(file.modified().ok()) == Some(self.modified_ns)
    }
}

pub fn nanos(t: Option<SystemTime>) -> Option<u128> {
    Some(t?.duration_since(UNIX_EPOCH).ok()?.as_nanos())
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct OnDisk {
    /// Output key → entry.
    variants: BTreeMap<String, Entry>,
}

/// The state of one output root, as read when the run started, plus what
/// this run has recorded.
pub struct State {
    root: PathBuf,
    entries: Mutex<Entries>,
}

struct Entries {
    /// As read, with this run's records over them.
    known: BTreeMap<String, Entry>,
    /// This run's records not yet merged into the file.
    unmerged: BTreeMap<String, Entry>,
    merged: Instant,
}

impl State {
    /// Reads the state file of `root`; a missing or unreadable one is an
    /// empty state (every variant judged by time).
    pub fn load(root: &Path) -> State {
        let read = read(&root.join(STATE_FILE));
        State {
            root: root.to_path_buf(),
            entries: Mutex::new(Entries {
                known: read.unwrap_or_default(),
                unmerged: BTreeMap::new(),
                merged: Instant::now(),
            }),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic while the lock was held left whole maps behind: every
        // change is one `insert` or `clear`.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The entry for `key`: this run's record, else the one read at the start.
    pub fn get(&self, key: &str) -> Option<Entry> {
        self.entries().known.get(key).cloned()
    }

    /// Records `entry` for `key`, merging into the file when a second has
    /// passed since the last merge.
    pub fn record(&self, key: &str, entry: Entry) -> std::io::Result<()> {
        let mut entries = self.entries();
        entries.known.insert(key.to_owned(), entry.clone());
        entries.unmerged.insert(key.to_owned(), entry);
        if entries.merged.elapsed() >= MERGE_EVERY {
            self.merge(&mut entries)?;
        }
        Ok(())
    }

    /// Merges what is left to merge; called when the run ends.
    pub fn flush(&self) -> std::io::Result<()> {
        let mut entries = self.entries();
        if entries.unmerged.is_empty() {
            return Ok(());
        }
        self.merge(&mut entries)
    }

    fn merge(&self, entries: &mut Entries) -> std::io::Result<()> {
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.root.join(LOCK_FILE))?;
        lock.lock()?;
        // Another run may have merged since this one started: read again,
        // under the lock, and add this run's entries to what is there.
        let path = self.root.join(STATE_FILE);
        let mut state = OnDisk {
            variants: read(&path).unwrap_or_default(),
        };
        state
            .variants
            .extend(entries.unmerged.iter().map(|(k, e)| (k.clone(), e.clone())));
        let written = serde_json::to_vec(&state)
            .map_err(std::io::Error::other)
            .and_then(|mut text| {
                text.push(b'\n');
                atomic::write(&path, &text).map_err(|e| e.error)
            });
        lock.unlock()?;
        written?;
        entries.unmerged.clear();
        entries.merged = Instant::now();
        Ok(())
    }
}

/// The variants the state file in `root` records (output key → entry);
/// `None` when there is none or it cannot be read.
pub fn recorded(root: &Path) -> Option<BTreeMap<String, Entry>> {
    read(&root.join(STATE_FILE))
}

fn read(path: &Path) -> Option<BTreeMap<String, Entry>> {
    let text = fs::read(path).ok()?;
    serde_json::from_slice::<OnDisk>(&text).ok().map(|s| s.variants)
}
