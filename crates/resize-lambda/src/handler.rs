//! One invocation: parse the event, run every task with bounded
//! concurrency, and answer the way the event source expects.
//!
//! A permanent problem with one image (corrupt, unsupported, over a limit)
//! is logged and counted and does not fail the invocation: retrying cannot
//! fix it. A transient one (S3 5xx, throttling, timeouts, refused
//! connections) fails its record — the invocation for S3, SNS and
//! EventBridge events, the message for SQS — so it is retried.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};
use resize_core::{error_chain, remove_variants, run_job, JobOptions, Outcome, Report};
use resize_s3::{Client, S3Store};
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tracing::{error, info, warn, Instrument};

use crate::config::Config;
use crate::events::{self, Invocation, Task};
use crate::metrics::Metrics;

/// State built once at init and shared by every invocation.
pub struct App {
    pub config: Config,
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

/// What happened to one task.
#[derive(Debug)]
pub enum TaskResult {
    Written {
        variants: usize,
        bytes_in: u64,
        bytes_out: u64,
    },
    Deleted(usize),
    Skipped(String),
    Failed {
        transient: bool,
        error: String,
    },
}

impl TaskResult {
    fn is_transient_failure(&self) -> bool {
        matches!(self, TaskResult::Failed { transient: true, .. })
    }
}

/// Handles one invocation payload; `Err` asks Lambda to retry it.
pub async fn handle(app: Arc<App>, payload: Value) -> Result<Value, String> {
    let started = Instant::now();
    let metrics = Arc::new(Mutex::new(Metrics::default()));
    let answer = match events::parse(&payload) {
        Invocation::Ignored(why) => {
            info!(reason = %why, "event ignored");
            Ok(json!({ "ignored": why }))
        }
        Invocation::Direct { tasks, ignored } => {
            for why in &ignored {
                info!(reason = %why, "record ignored");
            }
            let results = run_all(&app, tasks, &metrics).await;
            let transient: Vec<String> = results
                .iter()
                .filter(|(_, r)| r.is_transient_failure())
                .map(|(t, r)| format!("{}: {r:?}", task_key(t)))
                .collect();
            if transient.is_empty() {
                Ok(summary(&results, ignored.len()))
            } else {
                Err(format!(
                    "{} record(s) failed transiently and will be retried: {}",
                    transient.len(),
                    transient.join("; ")
                ))
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
            let mut results = run_all(&app, tasks, &metrics).await.into_iter();
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
            serde_json::to_value(response).map_err(|e| format!("cannot encode the batch response: {e}"))
        }
    };
    let mut m = metrics
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    m.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    m.emit();
    answer
}

fn task_key(t: &Task) -> &str {
    match t {
        Task::Created { key, .. } | Task::Removed { key, .. } => key,
    }
}

fn summary(results: &[(Task, TaskResult)], ignored: usize) -> Value {
    let count = |f: fn(&TaskResult) -> bool| results.iter().filter(|(_, r)| f(r)).count();
    json!({
        "records": results.len(),
        "written": count(|r| matches!(r, TaskResult::Written { .. })),
        "deleted": results
            .iter()
            .map(|(_, r)| match r {
                TaskResult::Deleted(n) => *n,
                _ => 0,
            })
            .sum::<usize>(),
        "skipped": count(|r| matches!(r, TaskResult::Skipped(_))),
        "failed": results
            .iter()
            .filter_map(|(t, r)| match r {
                TaskResult::Failed { error, .. } => Some(json!({ "key": task_key(t), "error": error })),
                _ => None,
            })
            .collect::<Vec<_>>(),
        "ignored": ignored,
    })
}

/// Runs every task concurrently (bounded by the permits), keeping order.
async fn run_all(app: &Arc<App>, tasks: Vec<Task>, metrics: &Arc<Mutex<Metrics>>) -> Vec<(Task, TaskResult)> {
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
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((i, r)) => results[i] = Some(r),
            // The task body catches panics itself; a join error means the
            // runtime is shutting down. Unfilled slots are reported below.
            Err(e) => error!(error = %e, "task did not finish"),
        }
    }
    tasks
        .into_iter()
        .zip(results)
        .map(|(t, r)| {
            let r = r.unwrap_or(TaskResult::Failed {
                transient: true,
                error: "task did not finish".to_owned(),
            });
            (t, r)
        })
        .collect()
}

async fn run_task(app: &Arc<App>, task: &Task) -> TaskResult {
    let started = Instant::now();
    let result = match task {
        Task::Created { bucket, key, .. } => created(app, bucket, key).await,
        Task::Removed { bucket, key } => removed(app, bucket, key).await,
    };
    let ms = started.elapsed().as_millis() as u64;
    match &result {
        TaskResult::Written {
            variants,
            bytes_in,
            bytes_out,
        } => {
            info!(key = %task_key(task), variants, bytes_in, bytes_out, ms, "variants written")
        }
        TaskResult::Deleted(n) => info!(key = %task_key(task), deleted = n, ms, "variants deleted"),
        TaskResult::Skipped(why) => info!(key = %task_key(task), reason = %why, ms, "skipped"),
        TaskResult::Failed {
            transient: true,
            error,
        } => {
            warn!(key = %task_key(task), error = %error, ms, "failed, will be retried")
        }
        TaskResult::Failed {
            transient: false,
            error,
        } => {
            error!(key = %task_key(task), error = %error, ms, "failed permanently, not retried")
        }
    }
    result
}

/// An upload: the core's job, on a blocking thread (it calls S3 through
/// the runtime's handle and renders on rayon's pool). The core decides
/// everything — source key, variant marker, size limit, what is current —
/// and contains a codec's panic as this image's failure.
async fn created(app: &Arc<App>, bucket: &str, key: &str) -> TaskResult {
    let Ok(_permit) = app.permits.acquire().await else {
        return failed(true, "shutting down".to_owned());
    };
    let store = app.store(bucket);
    let job_app = Arc::clone(app);
    blocking(key, move |key| {
        let options = JobOptions {
            budget: job_app.config.budget.clone(),
            ..JobOptions::default()
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
        Ok(report) => task_result(report),
        // The core contains panics; a join error means the runtime is
        // shutting down, and the record is worth another try.
        Err(e) => failed(true, format!("`{key}` did not finish: {e}")),
    }
}

fn task_result(report: Report) -> TaskResult {
    match report.outcome {
        Outcome::Written(vs) => TaskResult::Written {
            variants: vs.len(),
            bytes_in: report.bytes_in,
            bytes_out: vs.iter().filter_map(|v| v.bytes).sum(),
        },
        Outcome::Deleted(keys) => TaskResult::Deleted(keys.len()),
        Outcome::Skipped(skip) => TaskResult::Skipped(skip.to_string()),
        Outcome::Failed(e) => failed(e.is_transient(), error_chain(&e)),
        #[allow(unreachable_patterns)]
        other => failed(false, format!("{other:?}")),
    }
}

fn failed(transient: bool, error: String) -> TaskResult {
    TaskResult::Failed { transient, error }
}
