//! `bootstrap`: the Lambda function for the `provided.al2023` runtime.
//!
//! Init builds the recipe and the S3 client once; an invalid recipe is
//! reported to the Runtime API as an init error, so the function fails to
//! start with a clear message instead of failing every invocation.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;
use tokio::sync::Semaphore;
use tracing::Instrument;

use resize_lambda::config::Config;
use resize_lambda::handler::{self, App};

fn main() -> ExitCode {
    map_large_blocks();
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,aws_config=warn,aws_smithy_runtime=warn")
            }),
        )
        .with_current_span(true)
        .with_target(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            init_error("Runtime.Init", &format!("cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "runtime stopped");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), lambda_runtime::Error> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let config = match Config::from_lookup(|name| std::env::var(name).ok(), cpus) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "invalid configuration");
            init_error("Runtime.InvalidConfiguration", &e.to_string());
            std::process::exit(1);
        }
    };
    let client = resize_s3::client(resize_s3::ClientOptions {
        force_path_style: config.force_path_style,
        attempt_timeout: config.s3_attempt_timeout,
        timeout: config.s3_timeout,
        // Every request keeps S3_ATTEMPT_TIMEOUT_MS (and a GET's body may go
        // that long without a byte), as documented for the function.
        answer_timeout: None,
    })
    .await;
    let app = Arc::new(App {
        permits: Arc::new(Semaphore::new(config.concurrency)),
        client,
        config,
    });
    tracing::info!(
        widths = ?app.config.recipe.widths().as_slice().iter().map(|w| w.get()).collect::<Vec<_>>(),
        formats = ?app.config.recipe.formats(),
        concurrency = app.config.concurrency,
        memory_mb = app.config.memory_mb,
        budget_mb = app.config.budget.bytes().unwrap_or(0) >> 20,
        "initialised"
    );
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let app = Arc::clone(&app);
        async move {
            let span = tracing::info_span!("invocation", request_id = %event.context.request_id);
            let deadline = answer_by(event.context.deadline);
            handler::handle(app, event.payload, deadline)
                .instrument(span)
                .await
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}

/// When unfinished work must be given up on: [`handler::DEADLINE_MARGIN`]
/// before the invocation's deadline (milliseconds since the epoch, from
/// the Runtime API). `None` when there is none.
fn answer_by(deadline_ms: u64) -> Option<Instant> {
    if deadline_ms == 0 {
        return None;
    }
    let deadline = UNIX_EPOCH + Duration::from_millis(deadline_ms);
    let left = deadline
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    Some(Instant::now() + left.saturating_sub(handler::DEADLINE_MARGIN))
}

/// Has glibc's `malloc` map each block of 128 KiB and up on its own and
/// unmap it when freed, as the CLI does (see `huge_pages::map_large_blocks`
/// there): by default glibc raises that threshold to the largest block
/// freed so far, after which an image's multi-megabyte buffers (libjpeg's,
/// libwebp's, the resized sizes) come from its heaps and stay resident
/// after they are freed, which the next invocation's budget cannot see.
fn map_large_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only sets a tuning parameter; called before any
    // thread is started.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
    }
}

/// Reports an init failure to the Runtime API (`POST /runtime/init/error`).
/// A plain HTTP/1.1 request: the runtime client only exists after init.
fn init_error(error_type: &str, message: &str) {
    let Ok(api) = std::env::var("AWS_LAMBDA_RUNTIME_API") else {
        return;
    };
    let body = serde_json::json!({ "errorMessage": message, "errorType": error_type }).to_string();
    let request = format!(
        "POST /2018-06-01/runtime/init/error HTTP/1.1\r\nHost: {api}\r\n\
         Lambda-Runtime-Function-Error-Type: {error_type}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if let Ok(mut stream) = TcpStream::connect(&api) {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        if stream.write_all(request.as_bytes()).is_ok() {
            let mut reply = Vec::new();
            let _ = stream.read_to_end(&mut reply);
        }
    }
}
