//! A local Lambda Runtime API (2018-06-01) on a loopback port, served by
//! hyper: `GET /runtime/invocation/next` long-polls the queue of events,
//! `POST /runtime/invocation/{id}/response|error` and `/runtime/init/error`
//! are recorded for the test to wait on.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::{lock, WAIT};

/// What the function posted for one invocation.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// `POST …/response`, the body as JSON (or a JSON string if it is not).
    Response(Value),
    /// `POST …/error`.
    Error(Value),
}

impl Answer {
    /// The response; panics on an error.
    #[track_caller]
    pub fn response(self) -> Value {
        match self {
            Answer::Response(v) => v,
            Answer::Error(e) => panic!("expected a response, got an error: {e}"),
        }
    }

    /// The error; panics on a response.
    #[track_caller]
    pub fn error(self) -> Value {
        match self {
            Answer::Error(e) => e,
            Answer::Response(v) => panic!("expected an error, got a response: {v}"),
        }
    }
}

#[derive(Default)]
struct State {
    queue: VecDeque<(String, String)>,
    answers: HashMap<String, Answer>,
    /// `(Lambda-Runtime-Function-Error-Type header, body)`.
    init_error: Option<(Option<String>, String)>,
    first_next: Option<Instant>,
    shutdown: bool,
    /// The function's timeout, from which each invocation's deadline is
    /// set; [`DEFAULT_TIMEOUT`] unless [`RuntimeApi::set_timeout`] is used.
    timeout: Option<Duration>,
}

/// The function timeout the Runtime API gives invocations by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    ids: AtomicU64,
}

/// The Runtime API; shuts down on drop.
pub struct RuntimeApi {
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
    /// The loopback port it listens on (`AWS_LAMBDA_RUNTIME_API=127.0.0.1:<port>`).
    pub port: u16,
}

impl RuntimeApi {
    /// Starts serving on a free loopback port.
    pub fn start() -> std::io::Result<RuntimeApi> {
        let (runtime, listener, port) = crate::loopback_server(1)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            ids: AtomicU64::new(0),
        });
        let server = Arc::clone(&shared);
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = Arc::clone(&server);
                tokio::spawn(async move {
                    let service = service_fn(move |req| route(Arc::clone(&shared), req));
                    // A client hanging up mid-request is its business.
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(RuntimeApi {
            shared,
            runtime: Some(runtime),
            port,
        })
    }

    /// Queues an event; returns its request id.
    pub fn enqueue(&self, event: &Value) -> String {
        let n = self.shared.ids.fetch_add(1, Ordering::Relaxed) + 1;
        let id = format!("c0ffee00-{:04x}-4000-8000-{n:012x}", self.port);
        lock(&self.shared.state)
            .queue
            .push_back((id.clone(), event.to_string()));
        self.shared.changed.notify_all();
        id
    }

    /// Sets the function's timeout: invocations handed out from now on get
    /// a deadline this far ahead (`Lambda-Runtime-Deadline-Ms`).
    pub fn set_timeout(&self, timeout: Duration) {
        lock(&self.shared.state).timeout = Some(timeout);
    }

    /// Waits up to [`WAIT`] for the answer to request `id`.
    pub fn answer(&self, id: &str) -> Option<Answer> {
        self.shared.wait_for(|s| s.answers.get(id).cloned())
    }

    /// Waits up to [`WAIT`] for `POST /runtime/init/error`: `(error type header, body)`.
    pub fn init_error(&self) -> Option<(Option<String>, String)> {
        self.shared.wait_for(|s| s.init_error.clone())
    }

    /// When the function first asked for an invocation, waiting up to [`WAIT`].
    pub fn first_next(&self) -> Option<Instant> {
        self.shared.wait_for(|s| s.first_next)
    }

    /// Whether the function has asked for an invocation yet.
    pub fn polled(&self) -> bool {
        lock(&self.shared.state).first_next.is_some()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        lock(&self.shared.state).shutdown = true;
        self.shared.changed.notify_all();
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Shared {
    fn wait_for<T>(&self, mut found: impl FnMut(&mut State) -> Option<T>) -> Option<T> {
        let started = Instant::now();
        let mut state = lock(&self.state);
        loop {
            if let Some(t) = found(&mut state) {
                return Some(t);
            }
            let left = WAIT.checked_sub(started.elapsed())?;
            state = self
                .changed
                .wait_timeout(state, left.min(Duration::from_millis(200)))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Blocks until an event is queued; `None` once shut down.
    fn next_event(&self) -> Option<(String, String)> {
        let mut state = lock(&self.state);
        state.first_next.get_or_insert_with(Instant::now);
        loop {
            if state.shutdown {
                return None;
            }
            if let Some(e) = state.queue.pop_front() {
                return Some(e);
            }
            state = self
                .changed
                .wait_timeout(state, Duration::from_millis(500))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, headers: &[(&str, String)], body: impl Into<Bytes>) -> Reply {
    let mut builder = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    for (k, v) in headers {
        builder = builder.header(*k, v.as_str());
    }
    builder
        .body(Full::new(body.into()))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

async fn route(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Reply, Infallible> {
    const PREFIX: &str = "/2018-06-01/runtime/";
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let error_type = req
        .headers()
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(reply(StatusCode::BAD_REQUEST, &[], "{}")),
    };
    let not_found = || reply(StatusCode::NOT_FOUND, &[], "{}");
    let accepted = || reply(StatusCode::ACCEPTED, &[], r#"{"status":"OK"}"#);
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return Ok(not_found());
    };
    let json = || {
        let text = String::from_utf8_lossy(&body).into_owned();
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Ok(match (method, rest) {
        (Method::GET, "invocation/next") => {
            let waiting = Arc::clone(&shared);
            let Ok(Some((id, event))) = tokio::task::spawn_blocking(move || waiting.next_event()).await
            else {
                return Ok(reply(StatusCode::GONE, &[], "{}"));
            };
            let timeout = lock(&shared.state).timeout.unwrap_or(DEFAULT_TIMEOUT);
            let deadline = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())
                + timeout.as_millis();
            reply(
                StatusCode::OK,
                &[
                    ("lambda-runtime-aws-request-id", id),
                    ("lambda-runtime-deadline-ms", deadline.to_string()),
                    (
                        "lambda-runtime-invoked-function-arn",
                        "arn:aws:lambda:us-east-1:123456789012:function:resize".to_owned(),
                    ),
                    (
                        "lambda-runtime-trace-id",
                        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
                            .to_owned(),
                    ),
                ],
                event,
            )
        }
        (Method::POST, "init/error") => {
            lock(&shared.state).init_error = Some((error_type, String::from_utf8_lossy(&body).into_owned()));
            shared.changed.notify_all();
            accepted()
        }
        (Method::POST, rest) => {
            let answer = match rest.strip_prefix("invocation/").and_then(|p| p.rsplit_once('/')) {
                Some((id, "response")) => Some((id, Answer::Response(json()))),
                Some((id, "error")) => Some((id, Answer::Error(json()))),
                _ => None,
            };
            let Some((id, answer)) = answer else {
                return Ok(not_found());
            };
            lock(&shared.state).answers.insert(id.to_owned(), answer);
            shared.changed.notify_all();
            accepted()
        }
        _ => not_found(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The API answers as Lambda's does, over real HTTP (the SDK's client
    /// is not needed: a raw HTTP/1.1 exchange is enough to see the wire).
    #[test]
    fn next_response_and_init_error_over_http() {
        use std::io::{Read, Write};
        let api = RuntimeApi::start().expect("start the Runtime API");
        let exchange = |request: String| {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", api.port)).expect("connect");
            s.write_all(request.as_bytes()).expect("write");
            let mut out = String::new();
            s.read_to_string(&mut out).expect("read");
            out
        };
        let id = api.enqueue(&serde_json::json!({"hello": 1}));
        let next = exchange(
            "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                .to_owned(),
        );
        assert!(next.starts_with("HTTP/1.1 200"), "{next}");
        assert!(
            next.contains(&format!("lambda-runtime-aws-request-id: {id}")),
            "{next}"
        );
        assert!(next.ends_with(r#"{"hello":1}"#), "{next}");
        assert!(api.polled());
        let body = r#"{"ok":true}"#;
        let posted = exchange(format!(
            "POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\nHost: x\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ));
        assert!(posted.starts_with("HTTP/1.1 202"), "{posted}");
        assert_eq!(
            api.answer(&id),
            Some(Answer::Response(serde_json::json!({"ok": true})))
        );
        let chunked = exchange(
            "POST /2018-06-01/runtime/init/error HTTP/1.1\r\nHost: x\r\n\
             Lambda-Runtime-Function-Error-Type: Runtime.Bad\r\nTransfer-Encoding: chunked\r\n\
             Connection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
                .to_owned(),
        );
        assert!(chunked.starts_with("HTTP/1.1 202"), "{chunked}");
        assert_eq!(
            api.init_error(),
            Some((Some("Runtime.Bad".to_owned()), "abc".to_owned()))
        );
        let unknown = exchange("GET /elsewhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_owned());
        assert!(unknown.starts_with("HTTP/1.1 404"), "{unknown}");
    }
}
