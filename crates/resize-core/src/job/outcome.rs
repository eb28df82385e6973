//! What a job says happened: the [`Report`] of one key, its [`Outcome`],
//! the normal reasons to [`Skip`] a key and the [`JobError`]s that fail
//! one, and [`contain`], which turns a codec's panic into the key's
//! failure.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::judge::{Decision, Found};
use crate::budget::OverBudget;
use crate::keys::{KeyTooLong, NotASource};
use crate::pixels::RenderError;
use crate::storage::StorageError;
use crate::values::Format;

/// Why a key was not processed. Skips are normal outcomes, not failures;
/// the type is an [`Error`](std::error::Error) so that a caller who wants
/// a source or nothing can use `?`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Skip {
    /// The key is not a source under the recipe's key rules.
    #[error(transparent)]
    NotASource(#[from] NotASource),
    /// Every variant exists and is up to date.
    #[error("all variants are up to date")]
    UpToDate,
    /// The source is narrower than every requested width (upscale policy `skip`).
    #[error("source is {width} px wide, narrower than every requested width")]
    TooNarrow {
        /// The oriented source width.
        width: u32,
    },
    /// The object carries the metadata of one of our variants.
    #[error("object is a variant made by resize")]
    IsVariant,
    /// The object carries no metadata of ours, but its name and pixel size
    /// are those of a variant of a source beside it: `a-720.jpg`, 720 px
    /// wide and as tall as `a.jpg` is at that width (±1 px, which also
    /// catches the 2019 Lambda's 2199-px outputs). A store without metadata
    /// (files without the state file) or a variant made by another tool.
    #[error("looks like a {width} px variant of `{of}` (its name and size), not a source")]
    LooksLikeVariant {
        /// The source it would be made from.
        of: String,
        /// The width its name says.
        width: u32,
    },
    /// The source was gone when the job came to read it (deleted after
    /// the event was sent, or while a run was under way).
    #[error("source no longer exists")]
    Gone,
    /// Removal: the source exists again (a late event), so its variants stay.
    #[error("source exists again; variants kept")]
    Reappeared,
}

/// One job (one source key) failed. Messages name the key and the step;
/// the cause follows as the error's source (print with [`error_chain`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// Reading the source failed.
    #[error("cannot read `{key}`")]
    Get {
        /// The source key.
        key: String,
        /// The storage error.
        #[source]
        source: StorageError,
    },
    /// Writing a variant failed.
    #[error("cannot write `{key}`")]
    Put {
        /// The variant key.
        key: String,
        /// The storage error.
        #[source]
        source: StorageError,
    },
    /// Looking at a variant (or, for a removal, the source) failed.
    #[error("cannot check `{key}`")]
    Check {
        /// The key looked at.
        key: String,
        /// The storage error.
        #[source]
        source: StorageError,
    },
    /// Listing a removed source's variants failed.
    #[error("cannot list `{prefix}`")]
    List {
        /// The prefix listed.
        prefix: String,
        /// The storage error.
        #[source]
        source: StorageError,
    },
    /// Deleting a variant failed.
    #[error("cannot delete `{key}`")]
    Delete {
        /// The variant key.
        key: String,
        /// The storage error.
        #[source]
        source: StorageError,
    },
    /// The source could not be rendered.
    #[error("cannot render `{key}`")]
    Render {
        /// The source key.
        key: String,
        /// Why.
        #[source]
        source: RenderError,
    },
    /// The source needs more memory than the whole budget, even alone.
    #[error("cannot render `{key}`")]
    Memory {
        /// The source key.
        key: String,
        /// What it needs and what there is.
        #[source]
        source: OverBudget,
    },
    /// An output key would be longer than storage keys may be.
    #[error(transparent)]
    KeyTooLong(#[from] KeyTooLong),
    /// A variant key holds a variant of another source (`a.jpg` and
    /// `a.png` make the same keys); it is never overwritten.
    #[error(
        "its outputs would overwrite those of `{owner}` (`{variant}` was made from it); rename one of them"
    )]
    Taken {
        /// The variant key.
        variant: String,
        /// The source its metadata names.
        owner: String,
    },
    /// The manifest's key holds a document resize did not write; it is
    /// never overwritten.
    #[error(
        "`{key}` exists and is not a manifest made by resize; it is never overwritten (move it, or choose another MANIFEST_TEMPLATE)"
    )]
    NotAManifest {
        /// The manifest key.
        key: String,
    },
    /// A codec panicked; the message is the panic's.
    #[error("internal error while processing `{key}` (panic: {message})")]
    Panic {
        /// The source key.
        key: String,
        /// The panic's message.
        message: String,
    },
}

impl JobError {
    /// Whether retrying could succeed (storage trouble) rather than the
    /// input being at fault.
    pub fn is_transient(&self) -> bool {
        match self {
            JobError::Get { source, .. }
            | JobError::Put { source, .. }
            | JobError::Check { source, .. }
            | JobError::List { source, .. }
            | JobError::Delete { source, .. } => source.is_transient(),
            JobError::Render { .. }
            | JobError::Memory { .. }
            | JobError::KeyTooLong(_)
            | JobError::Taken { .. }
            | JobError::NotAManifest { .. }
            | JobError::Panic { .. } => false,
        }
    }
}

/// An error and its causes, `: `-joined (like anyhow's `{:#}`). No message
/// in this crate repeats its source, so nothing is printed twice. Both
/// adapters print errors this way.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// One variant of a source: where it goes and what it is. The same record
/// describes a planned variant (`bytes` is `None`) and a written one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Variant {
    /// Its key.
    pub key: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The encoding.
    pub format: Format,
    /// Encoded size, once written.
    pub bytes: Option<u64>,
}

/// A source's manifest, in a [`Plan`](super::Plan) (what its key holds) or a
/// [`Report`] (written: its size too).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestOutput {
    /// The manifest's key.
    pub key: String,
    /// What the key held when the job planned.
    pub found: Found,
    /// Whether the run writes it.
    pub decision: Decision,
    /// Its size, once written.
    pub bytes: Option<u64>,
}

/// What happened to one key.
#[derive(Debug)]
#[non_exhaustive]
pub enum Outcome {
    /// Variants were written.
    Written(Vec<Variant>),
    /// A removed source's variants were deleted (their keys).
    Deleted(Vec<String>),
    /// The key was not processed, for a normal reason.
    Skipped(Skip),
    /// Processing failed.
    Failed(JobError),
}

/// The report of one job.
#[derive(Debug)]
pub struct Report {
    /// The source key.
    pub key: String,
    /// Bytes read from the source (0 when skipped before reading).
    pub bytes_in: u64,
    /// What happened.
    pub outcome: Outcome,
    /// The manifest written, if one was (with the variants, or alone for
    /// variants already current).
    pub manifest: Option<ManifestOutput>,
}

/// Why a job stopped short of its end: a normal skip or a failure. The
/// steps of a plan or a removal return it, so that `?` takes either.
#[derive(Debug)]
pub(super) enum Stop {
    Skip(Skip),
    Fail(JobError),
}

impl From<Skip> for Stop {
    fn from(skip: Skip) -> Stop {
        Stop::Skip(skip)
    }
}

impl From<JobError> for Stop {
    fn from(e: JobError) -> Stop {
        Stop::Fail(e)
    }
}

impl From<KeyTooLong> for Stop {
    fn from(e: KeyTooLong) -> Stop {
        Stop::Fail(e.into())
    }
}

/// Runs `f`, turning a panic (a codec's bug) into this key's failure so
/// the rest of the batch still runs. The panic hook has printed it already.
pub(super) fn contain<T, E: From<JobError>>(key: &str, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        Err(JobError::Panic {
            key: key.to_owned(),
            message: panic_message(panic.as_ref()),
        }
        .into())
    })
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned())
}
