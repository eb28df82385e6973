//! One invocation: parse the event, run every task with bounded
//! concurrency, and answer the way the event source expects.
//!
//! A permanent problem with one image (corrupt, unsupported, over a limit)
//! is logged and counted and does not fail the invocation: retrying cannot
//! fix it. A transient one (S3 5xx, throttling, timeouts, refused
//! connections) fails its record — the invocation for S3, SNS and
//! EventBridge events, the message for SQS, the task for S3 Batch
//! Operations — so it is retried.
//!
//! Work still running when the function's time is nearly up is given up
//! on and answered as a transient failure: Lambda would otherwise end the
//! invocation with no answer, which Batch Operations counts as a
//! permanent failure of the task.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};
use resize_core::{error_chain, remove_variants, run_job, JobOptions, Report, Skip};
use resize_s3::{Client, S3Store, NULL_VERSION};
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tracing::{error, info, warn, Instrument};

use crate::batch::{self, BatchJob, ResultCode, TaskAnswer};
use crate::config::Config;
use crate::events::{self, Invocation, Task};
use crate::metrics::Metrics;
use crate::task::{self, task_key, Fate, TaskResult};

/// State built once at init and shared by every invocation.
pub struct App {
    /// The recipe and the function's settings.
    pub config: Config,
    /// The S3 client every bucket is reached through.
    pub client: Client,
    /// Bounds the sources fetched at once; the memory budget in the
    /// config bounds those rendered.
    pub permits: Arc<Semaphore>,
}

impl App {
    /// `bucket` as the core's storage, variants stamped with our `Cache-Control`.
    fn store(&self, bucket: &str) -> S3Store {
        S3Store::new(self.client.clone(), bucket, tokio::runtime::Handle::current())
            .with_cache_control(&self.config.cache_control)
            // Throttled requests keep trying for as long as one S3 call may take.
            .with_patience(self.config.s3_timeout)
    }
}

/// How long before the function's deadline unfinished work is given up
/// on, so that the answer still reaches Lambda.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(500);

/// Why an invocation fails, which asks Lambda to retry it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandleError {
    /// Records failed in a way a retry can fix: each one's key and failure.
    #[error("{} record(s) failed transiently and will be retried: {}", .0.len(), .0.join("; "))]
    Retry(Vec<String>),
    /// The answer to SQS could not be encoded.
    #[error("cannot encode the batch response: {0}")]
    Encode(String),
}

/// Handles one invocation payload; `Err` asks Lambda to retry it. Work
/// still running at `deadline` (the function's, less [`DEADLINE_MARGIN`])
/// is answered as a transient failure.
pub async fn handle(app: Arc<App>, payload: Value, deadline: Option<Instant>) -> Result<Value, HandleError> {
    let started = Instant::now();
    let metrics = Arc::new(Mutex::new(Metrics::default()));
    let answer = match events::parse(&payload) {
        Invocation::Ignored(why) => {
            info!(reason = %why, "event ignored");
            Ok(json!({ "ignored": why.to_string() }))
        }
        Invocation::Direct { tasks, ignored } => {
            for why in &ignored {
                info!(reason = %why, "record ignored");
            }
            let results = run_all(&app, tasks, &metrics, deadline).await;
            let transient: Vec<String> = results
                .iter()
                .filter(|(_, r)| r.is_transient_failure())
                .map(|(t, r)| task::retried(t, r))
                .collect();
            if transient.is_empty() {
                Ok(task::summary(&results, ignored.len()))
            } else {
                Err(HandleError::Retry(transient))
            }
        }
        Invocation::Sqs(items) => {
            let mut failures = Vec::new();
            let mut all = Vec::new();
            // Messages run together, so the whole batch shares the
            // concurrency bound rather than running one message at a time.
            let mut per_message = Vec::new();
            for item in &items {
                if let Some(why) = &item.ignored {
                    info!(message_id = %item.message_id, reason = %why, "message ignored");
                }
                per_message.push(item.tasks.len());
            }
            let tasks: Vec<Task> = items.iter().flat_map(|i| i.tasks.iter().cloned()).collect();
            let mut results = run_all(&app, tasks, &metrics, deadline).await.into_iter();
            for (item, n) in items.iter().zip(per_message) {
                let mine: Vec<(Task, TaskResult)> = results.by_ref().take(n).collect();
                if mine.iter().any(|(_, r)| r.is_transient_failure()) {
                    let mut failure = BatchItemFailure::default();
                    failure.item_identifier = item.message_id.clone();
                    failures.push(failure);
                }
                all.extend(mine);
            }
            if !failures.is_empty() {
                warn!(
                    failed_messages = failures.len(),
                    "messages will be retried by SQS"
                );
            }
            let mut response = SqsBatchResponse::default();
            response.batch_item_failures = failures;
            serde_json::to_value(response).map_err(|e| HandleError::Encode(e.to_string()))
        }
        Invocation::Batch(job) => Ok(batch_job(&app, job, &metrics, deadline).await),
    };
    let mut m = metrics
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    m.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    m.emit();
    answer
}

/// An S3 Batch Operations invocation: every task answered, the
/// invocation itself a success whatever the tasks' fates.
async fn batch_job(
    app: &Arc<App>,
    job: BatchJob,
    metrics: &Arc<Mutex<Metrics>>,
    deadline: Option<Instant>,
) -> Value {
    info!(
        job_id = job.job_id.as_deref().unwrap_or("?"),
        schema = job.schema.as_deref().unwrap_or("?"),
        tasks = job.tasks.len(),
        "batch operations invocation"
    );
    if job.unanswerable > 0 {
        warn!(
            tasks = job.unanswerable,
            "batch tasks without a task id cannot be answered"
        );
    }
    let mut answers: Vec<Option<TaskAnswer>> = job.tasks.iter().map(|_| None).collect();
    let mut runnable = Vec::new();
    let mut slots = Vec::new();
    for (i, task) in job.tasks.iter().enumerate() {
        match (&job.arguments, &task.target) {
            (Err(why), _) | (_, Err(why)) => {
                error!(task_id = %task.task_id, error = %why, "batch task refused");
                answers[i] = Some(TaskAnswer::new(
                    &task.task_id,
                    ResultCode::PermanentFailure,
                    &why.to_string(),
                ));
            }
            (Ok(arguments), Ok(target)) => {
                runnable.push(Task::Listed {
                    bucket: target.bucket.clone(),
                    key: target.key.clone(),
                    version_id: target.version_id.clone(),
                    force: arguments.force,
                });
                slots.push(i);
            }
        }
    }
    for (i, (_, result)) in slots
        .into_iter()
        .zip(run_all(app, runnable, metrics, deadline).await)
    {
        answers[i] = Some(result.batch_answer(&job.tasks[i].task_id));
    }
    let answers: Vec<TaskAnswer> = answers.into_iter().flatten().collect();
    batch::response(&job, &answers)
}

/// Runs every task concurrently (bounded by the permits), keeping order.
/// Tasks unfinished at `deadline` are transient failures.
async fn run_all(
    app: &Arc<App>,
    tasks: Vec<Task>,
    metrics: &Arc<Mutex<Metrics>>,
    deadline: Option<Instant>,
) -> Vec<(Task, TaskResult)> {
    let mut set = tokio::task::JoinSet::new();
    for (i, task) in tasks.iter().cloned().enumerate() {
        let app = Arc::clone(app);
        let metrics = Arc::clone(metrics);
        // Spawned tasks do not inherit the span; pass it on so every line
        // names the invocation's request id.
        set.spawn(
            async move {
                let result = run_task(&app, &task).await;
                metrics
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .record(&result);
                (i, result)
            }
            .in_current_span(),
        );
    }
    let mut results: Vec<Option<TaskResult>> = tasks.iter().map(|_| None).collect();
    let mut out_of_time = false;
    loop {
        let next = match deadline {
            Some(at) => match tokio::time::timeout_at(at.into(), set.join_next()).await {
                Ok(next) => next,
                Err(_) => {
                    out_of_time = true;
                    break;
                }
            },
            None => set.join_next().await,
        };
        match next {
            Some(Ok((i, r))) => results[i] = Some(r),
            // The task body catches panics itself; a join error means the
            // runtime is shutting down. Unfilled slots are reported below.
            Some(Err(e)) => error!(error = %e, "task did not finish"),
            None => break,
        }
    }
    if out_of_time {
        // A job already rendering runs on to its end on its blocking
        // thread; its S3 writes are whole or absent, and the retry finds
        // whatever it finished current.
        set.abort_all();
        warn!(
            unfinished = results.iter().filter(|r| r.is_none()).count(),
            "the function's time is nearly up; unfinished tasks are answered as transient failures"
        );
    }
    let unfinished = if out_of_time {
        "the function's time ran out before this task finished"
    } else {
        "task did not finish"
    };
    tasks
        .into_iter()
        .zip(results)
        .map(|(t, r)| {
            let r = r.unwrap_or_else(|| TaskResult::failed(true, unfinished.to_owned()));
            (t, r)
        })
        .collect()
}

async fn run_task(app: &Arc<App>, task: &Task) -> TaskResult {
    let started = Instant::now();
    let result = match task {
        Task::Created { bucket, key, .. } => created(app, bucket, key, None, false).await,
        Task::Listed {
            bucket,
            key,
            version_id,
            force,
        } => created(app, bucket, key, version_id.as_deref(), *force).await,
        Task::Removed { bucket, key } => removed(app, bucket, key).await,
    };
    let ms = started.elapsed().as_millis() as u64;
    let key = task_key(task);
    match result.fate() {
        Fate::Written {
            variants,
            bytes_in,
            bytes_out,
            manifest: Some(m),
        } => {
            info!(key = %key, variants, manifest = %m, bytes_in, bytes_out, ms, "variants and manifest written")
        }
        Fate::Written {
            variants,
            bytes_in,
            bytes_out,
            manifest: None,
        } => info!(key = %key, variants, bytes_in, bytes_out, ms, "variants written"),
        Fate::Deleted(n) => info!(key = %key, deleted = n, ms, "variants deleted"),
        Fate::Skipped(why) => info!(key = %key, reason = %why, ms, "skipped"),
        Fate::Failed {
            transient: true,
            error,
        } => warn!(key = %key, error = %error, ms, "failed, will be retried"),
        Fate::Failed {
            transient: false,
            error,
        } => error!(key = %key, error = %error, ms, "failed permanently, not retried"),
    }
    result
}

/// An upload or a listed object: the core's job, on a blocking thread (it
/// calls S3 through the runtime's handle and renders on rayon's pool). The
/// core decides everything — source key, variant marker, size limit, what
/// is current — and contains a codec's panic as this image's failure.
///
/// `version_id` (Batch Operations) pins the source's reads to that version
/// while it is the current one. A version since replaced is skipped: its
/// variants would overwrite those of the newer photo, which has its own
/// event (and its own task, in a manifest of every version).
async fn created(
    app: &Arc<App>,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    force: bool,
) -> TaskResult {
    let Ok(_permit) = app.permits.acquire().await else {
        return TaskResult::failed(true, "shutting down".to_owned());
    };
    let mut store = app.store(bucket);
    // Only a source's version matters: the core skips other keys unread.
    let named = version_id.filter(|v| *v != NULL_VERSION && app.config.recipe.source_key(key).is_ok());
    if let Some(wanted) = named {
        match store.current_version(key).await {
            Err(e) => return TaskResult::failed(e.is_transient(), error_chain(&e)),
            Ok(None) => return TaskResult::Skipped(Skip::Gone.to_string()),
            Ok(Some(current)) if current != wanted => {
                return TaskResult::Skipped(format!(
                    "version `{wanted}` is no longer current (`{current}` is); variants follow the current version"
                ))
            }
            Ok(Some(_)) => store = store.with_version(key, wanted),
        }
    }
    let job_app = Arc::clone(app);
    blocking(key, move |key| {
        let options = JobOptions {
            budget: job_app.config.budget.clone(),
            force,
        };
        run_job(&store, &job_app.config.recipe, key, options)
    })
    .await
}

/// A removal: the core deletes the variants whose metadata names the
/// source, unless it exists again.
async fn removed(app: &Arc<App>, bucket: &str, key: &str) -> TaskResult {
    if !app.config.delete_variants {
        return TaskResult::Skipped("DELETE_VARIANTS is off".to_owned());
    }
    let store = app.store(bucket);
    let job_app = Arc::clone(app);
    blocking(key, move |key| {
        remove_variants(&store, &job_app.config.recipe, key)
    })
    .await
}

/// Runs a core job on a blocking thread inside the current span.
async fn blocking(key: &str, job: impl FnOnce(&str) -> Report + Send + 'static) -> TaskResult {
    let span = tracing::Span::current();
    let job_key = key.to_owned();
    let joined = tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        job(&job_key)
    })
    .await;
    match joined {
        Ok(report) => TaskResult::Job(report),
        // The core contains panics; a join error means the runtime is
        // shutting down, and the record is worth another try.
        Err(e) => TaskResult::failed(true, format!("`{key}` did not finish: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use resize_core::{JobError, MemoryStorage, Outcome, Recipe, StorageError};
    use resize_testkit::fixture;

    use super::*;

    /// A job's report, as the handler turns it into a task result, to the
    /// Batch Operations answer: its code, and text containing `says`.
    #[track_caller]
    fn check(result: TaskResult, code: ResultCode, says: &str) {
        let answer = result.batch_answer("task-1");
        assert_eq!(answer.task_id, "task-1");
        assert_eq!(answer.code, code, "{result:?} → {answer:?}");
        assert!(
            answer.text.contains(says),
            "{:?} does not say {says:?}",
            answer.text
        );
    }

    fn recipe() -> Recipe {
        Recipe::from_lookup(|name| {
            let value = match name {
                "SIZES" => "40,80",
                "FORMATS" => "jpeg",
                "REPLACEMENTS" => "original:resized",
                "MAX_PIXELS" => "20000000",
                _ => return None,
            };
            Some(value.to_owned())
        })
        .expect("a valid recipe")
    }

    /// Every outcome the core gives, from real jobs over an in-memory
    /// store, lands on the result code the issue asks for.
    #[test]
    fn every_outcome_maps_to_its_result_code() {
        let recipe = recipe();
        let store = MemoryStorage::new();
        store.insert("original/a b+c.jpg", fixture("images/photo-4x3.jpg"));
        store.insert("original/notes.txt", b"not an image".to_vec());
        store.insert("original/corrupt.jpg", fixture("bad/truncated-jpg.jpg"));
        store.insert("original/fake.png", fixture("bad/text-named.png"));
        store.insert("original/huge.png", fixture("bad/huge-header-png.png"));
        store.insert("original/tiny.png", fixture("images/one-pixel.png"));
        store.insert("elsewhere/a.jpg", fixture("images/photo-4x3.jpg"));
        let run = |key: &str, force: bool| {
            let options = JobOptions {
                force,
                ..JobOptions::default()
            };
            TaskResult::Job(run_job(&store, &recipe, key, options))
        };
        use ResultCode::*;
        check(run("original/a b+c.jpg", false), Succeeded, "wrote 2 variant(s)");
        check(
            run("original/a b+c.jpg", false),
            Succeeded,
            "skipped: all variants are up to date",
        );
        check(run("original/a b+c.jpg", true), Succeeded, "wrote 2 variant(s)");
        // The job's own outputs, in a manifest of the whole bucket.
        check(run("resized/a b+c-40.jpg", false), Succeeded, "skipped:");
        check(run("original/notes.txt", false), Succeeded, "skipped:");
        check(run("elsewhere/a.jpg", false), Succeeded, "skipped:");
        check(
            run("original/gone.jpg", false),
            Succeeded,
            "skipped: source no longer exists",
        );
        check(run("original/tiny.png", false), Succeeded, "skipped:");
        check(
            run("original/corrupt.jpg", false),
            PermanentFailure,
            "cannot render `original/corrupt.jpg`",
        );
        check(run("original/fake.png", false), PermanentFailure, "cannot render");
        check(
            run("original/huge.png", false),
            PermanentFailure,
            "over the limit of 20000000 pixels",
        );
        // Storage trouble: transient or not, as the store says.
        let storage = |transient: bool| {
            let message = "s3 get `k` failed: SlowDown (http 503)".to_owned();
            let source = if transient {
                StorageError::Transient {
                    message,
                    source: None,
                }
            } else {
                StorageError::Permanent {
                    message,
                    source: None,
                }
            };
            TaskResult::Job(Report {
                key: "k".to_owned(),
                bytes_in: 0,
                outcome: Outcome::Failed(JobError::Get {
                    key: "k".to_owned(),
                    source,
                }),
                manifest: None,
            })
        };
        check(
            storage(true),
            TemporaryFailure,
            "cannot read `k`: s3 get `k` failed: SlowDown",
        );
        check(storage(false), PermanentFailure, "cannot read `k`");
        let panicked = Outcome::Failed(JobError::Panic {
            key: "k".to_owned(),
            message: "boom".to_owned(),
        });
        check(
            TaskResult::Job(Report {
                key: "k".to_owned(),
                bytes_in: 0,
                outcome: panicked,
                manifest: None,
            }),
            PermanentFailure,
            "panic: boom",
        );
        // What the handler itself adds: time running out, a removal.
        check(
            TaskResult::failed(
                true,
                "the function's time ran out before this task finished".to_owned(),
            ),
            TemporaryFailure,
            "time ran out",
        );
        let deleted = Report {
            key: "k".to_owned(),
            bytes_in: 0,
            outcome: Outcome::Deleted(vec!["a".to_owned(), "b".to_owned(), "c".to_owned()]),
            manifest: None,
        };
        check(TaskResult::Job(deleted), Succeeded, "deleted 3");
    }
}
