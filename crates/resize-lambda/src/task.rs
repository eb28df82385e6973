//! What happened to one task, and every way the Lambda tells it: the log
//! line, the metrics, the Batch Operations answer and the invocation's
//! summary all read the one [`TaskResult`], and a job's result is the
//! core's [`Report`] itself, not a copy of it.
//!
//! Pure: no SDK, no async runtime.

use resize_core::{error_chain, Outcome, Report};
use serde_json::{json, Value};

use crate::batch::{ResultCode, TaskAnswer};
use crate::events::Task;

/// What happened to one task.
#[derive(Debug)]
pub enum TaskResult {
    /// The core ran a job for the key: its report.
    Job(Report),
    /// Nothing to do, for a reason the adapter found before any job (a
    /// version no longer current, `DELETE_VARIANTS` off): which.
    Skipped(String),
    /// The task failed before or without a job (the deadline, a version
    /// lookup, the runtime shutting down).
    Failed {
        /// Whether retrying could succeed.
        transient: bool,
        /// The error and its causes.
        error: String,
    },
}

/// A task's result, read one way by every reader.
#[derive(Debug, PartialEq, Eq)]
pub enum Fate<'a> {
    /// Variants (and perhaps the manifest) were written.
    Written {
        /// How many variants.
        variants: usize,
        /// Bytes read from the source.
        bytes_in: u64,
        /// Bytes written: the variants and the manifest.
        bytes_out: u64,
        /// The manifest written with them, if any.
        manifest: Option<&'a str>,
    },
    /// A removed source's variants were deleted: how many.
    Deleted(usize),
    /// Nothing to do, for a normal reason: which.
    Skipped(String),
    /// The task failed.
    Failed {
        /// Whether retrying could succeed (storage trouble, the deadline).
        transient: bool,
        /// The error and its causes.
        error: String,
    },
}

impl TaskResult {
    /// A failure found by the adapter itself.
    pub fn failed(transient: bool, error: String) -> TaskResult {
        TaskResult::Failed { transient, error }
    }

    /// How every reader sees it.
    pub fn fate(&self) -> Fate<'_> {
        match self {
            TaskResult::Job(report) => match &report.outcome {
                Outcome::Written(vs) => {
                    let manifest = report.manifest.as_ref();
                    let manifest_bytes = manifest.and_then(|m| m.bytes);
                    Fate::Written {
                        variants: vs.len(),
                        bytes_in: report.bytes_in,
                        bytes_out: vs.iter().filter_map(|v| v.bytes).chain(manifest_bytes).sum(),
                        manifest: manifest.map(|m| m.key.as_str()),
                    }
                }
                Outcome::Deleted(keys) => Fate::Deleted(keys.len()),
                Outcome::Skipped(skip) => Fate::Skipped(skip.to_string()),
                Outcome::Failed(e) => Fate::Failed {
                    transient: e.is_transient(),
                    error: error_chain(e),
                },
                // `Outcome` is non-exhaustive; a new kind is reported, not lost.
                #[allow(unreachable_patterns)]
                other => Fate::Failed {
                    transient: false,
                    error: format!("{other:?}"),
                },
            },
            TaskResult::Skipped(why) => Fate::Skipped(why.clone()),
            TaskResult::Failed { transient, error } => Fate::Failed {
                transient: *transient,
                error: error.clone(),
            },
        }
    }

    /// Whether the task failed in a way a retry could fix.
    pub fn is_transient_failure(&self) -> bool {
        // Read directly: `fate` would print the error's chain to answer a yes or no.
        match self {
            TaskResult::Job(report) => matches!(&report.outcome, Outcome::Failed(e) if e.is_transient()),
            TaskResult::Skipped(_) => false,
            TaskResult::Failed { transient, .. } => *transient,
        }
    }

    /// How Batch Operations should count the task.
    pub fn batch_answer(&self, task_id: &str) -> TaskAnswer {
        let (code, text) = match self.fate() {
            Fate::Written {
                variants,
                bytes_in,
                bytes_out,
                manifest,
            } => {
                (
                    ResultCode::Succeeded,
                    match manifest {
                        Some(m) => {
                            format!("wrote {variants} variant(s) and manifest {m}, {bytes_out} bytes from {bytes_in}")
                        }
                        None => format!("wrote {variants} variant(s), {bytes_out} bytes from {bytes_in}"),
                    },
                )
            }
            Fate::Deleted(n) => (ResultCode::Succeeded, format!("deleted {n} variant(s)")),
            // Variants, keys outside the source prefixes, non-images and
            // sources gone since the manifest was made are all done: a job
            // over a whole bucket must not count its own outputs as failures.
            Fate::Skipped(why) => (ResultCode::Succeeded, format!("skipped: {why}")),
            Fate::Failed {
                transient: true,
                error,
            } => (ResultCode::TemporaryFailure, error),
            Fate::Failed {
                transient: false,
                error,
            } => (ResultCode::PermanentFailure, error),
        };
        TaskAnswer::new(task_id, code, &text)
    }
}

/// The key a task is about.
pub fn task_key(t: &Task) -> &str {
    match t {
        Task::Created { key, .. } | Task::Removed { key, .. } | Task::Listed { key, .. } => key,
    }
}

/// The answer to an S3, SNS or EventBridge invocation: what its records
/// came to.
pub fn summary(results: &[(Task, TaskResult)], ignored: usize) -> Value {
    let fates: Vec<(&Task, Fate<'_>)> = results.iter().map(|(t, r)| (t, r.fate())).collect();
    let count = |f: fn(&Fate<'_>) -> bool| fates.iter().filter(|(_, r)| f(r)).count();
    json!({
        "records": results.len(),
        "written": count(|r| matches!(r, Fate::Written { .. })),
        "deleted": fates
            .iter()
            .map(|(_, r)| match r {
                Fate::Deleted(n) => *n,
                _ => 0,
            })
            .sum::<usize>(),
        "skipped": count(|r| matches!(r, Fate::Skipped(_))),
        "failed": fates
            .iter()
            .filter_map(|(t, r)| match r {
                Fate::Failed { error, .. } => Some(json!({ "key": task_key(t), "error": error })),
                _ => None,
            })
            .collect::<Vec<_>>(),
        "ignored": ignored,
    })
}

/// How a transient failure is named in the invocation's error (Lambda
/// retries the invocation): the key and the failure.
pub fn retried(task: &Task, result: &TaskResult) -> String {
    // The shape earlier releases printed, which logs and alarms may match.
    #[derive(Debug)]
    #[allow(dead_code)]
    struct Failed<'a> {
        transient: bool,
        error: &'a str,
    }
    match result.fate() {
        Fate::Failed { transient, error } => format!(
            "{}: {:?}",
            task_key(task),
            Failed {
                transient,
                error: &error
            }
        ),
        other => format!("{}: {other:?}", task_key(task)),
    }
}
