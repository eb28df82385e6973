//! An S3 proxy on loopback, served and forwarded by hyper, that counts every
//! request (method, key, status, bytes returned) and injects faults: 500
//! InternalError, 503 SlowDown, connection resets (RST) and stalls.
//!
//! Each request is read whole before the proxy decides, so the server
//! never sees half a request: a fault is always a clean refusal the client
//! has to retry, as with S3 itself.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use crate::lock;

/// A fault the proxy can inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// 500 with S3's `InternalError` body.
    InternalError,
    /// 503 with S3's `SlowDown` body.
    SlowDown,
    /// The connection is reset (RST) without an answer.
    Reset,
    /// No answer for [`STALL`], then the connection closes.
    Stall,
    /// 403 with S3's `AccessDenied` body: credentials without the right.
    AccessDenied,
}

/// Every kind, in the order [`Mode::FirstAttemptOfEvery`] takes turns.
pub const ALL_FAULTS: [Fault; 4] = [Fault::InternalError, Fault::SlowDown, Fault::Reset, Fault::Stall];

/// How long a stalled request waits; longer than the attempt timeouts the
/// tests give their clients.
pub const STALL: Duration = Duration::from_secs(4);

/// Which requests fail.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// None.
    Pass,
    /// The first attempt of every `n`-th distinct request (method and
    /// path) fails, the fault kinds taking turns; retries pass. A rate the
    /// SDK's three attempts always absorb.
    FirstAttemptOfEvery(usize),
    /// Every request with this method fails: S3 down for good.
    Always(&'static str, Fault),
    /// Every `n`-th request fails with this fault, retries or not: S3
    /// throttling a busy prefix, which no fixed number of attempts beats.
    EveryNth(usize, Fault),
    /// S3 for credentials without `s3:ListBucket` on the object's key: a
    /// read of a missing object is answered 403 `AccessDenied`, not 404.
    /// `list` says whether listing the bucket is allowed (a prefix-scoped
    /// `s3:ListBucket`); when it is not, every listing is 403 too.
    MissingAsDenied {
        /// Whether ListObjectsV2 is answered.
        list: bool,
    },
}

/// One request as the proxy saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logged {
    /// `GET`, `HEAD`, `PUT`, …
    pub method: String,
    /// The path after the bucket, percent-decoded: the object key (empty
    /// for bucket-level requests such as a listing).
    pub key: String,
    /// The status sent back; `None` for a reset or a stall.
    pub status: Option<u16>,
    /// Body bytes sent back.
    pub bytes: u64,
    /// The injected fault, if any.
    pub fault: Option<Fault>,
}

#[derive(Default)]
struct State {
    attempts: HashMap<String, u32>,
    distinct: usize,
    /// Requests so far.
    seen: usize,
    log: Vec<Logged>,
}

struct Shared {
    upstream: u16,
    mode: Mutex<Mode>,
    state: Mutex<State>,
}

/// The proxy; stops on drop.
pub struct S3Proxy {
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
    /// The loopback port to point clients at.
    pub port: u16,
}

impl S3Proxy {
    /// Starts a proxy to the S3 server on `upstream` (a loopback port).
    pub fn start(upstream: u16, mode: Mode) -> std::io::Result<S3Proxy> {
        let (runtime, listener, port) = crate::loopback_server(2)?;
        let shared = Arc::new(Shared {
            upstream,
            mode: Mutex::new(mode),
            state: Mutex::new(State::default()),
        });
        let server = Arc::clone(&shared);
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                // A second handle on the socket, so a `Reset` can set
                // SO_LINGER 0 (close sends RST) on the connection hyper owns.
                let Ok(handle) = stream.into_std().and_then(|s| Ok((s.try_clone()?, s))) else {
                    continue;
                };
                let (raw, std_stream) = handle;
                if std_stream.set_nonblocking(true).is_err() {
                    continue;
                }
                let Ok(stream) = tokio::net::TcpStream::from_std(std_stream) else {
                    continue;
                };
                let shared = Arc::clone(&server);
                let raw = Arc::new(Mutex::new(Some(raw)));
                tokio::spawn(async move {
                    let service =
                        service_fn(move |req| handle_request(Arc::clone(&shared), Arc::clone(&raw), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(S3Proxy {
            shared,
            runtime: Some(runtime),
            port,
        })
    }

    /// Changes which requests fail from now on.
    pub fn set_mode(&self, mode: Mode) {
        *lock(&self.shared.mode) = mode;
    }

    /// Every request so far, in arrival order.
    pub fn log(&self) -> Vec<Logged> {
        lock(&self.shared.state).log.clone()
    }

    /// Requests so far with this method whose key starts with `prefix`.
    pub fn count(&self, method: &str, prefix: &str) -> usize {
        lock(&self.shared.state)
            .log
            .iter()
            .filter(|l| l.method == method && l.key.starts_with(prefix))
            .count()
    }

    /// Faults injected so far, by method and kind.
    pub fn injected(&self) -> BTreeMap<(String, Fault), usize> {
        let mut out = BTreeMap::new();
        for l in &lock(&self.shared.state).log {
            if let Some(f) = l.fault {
                *out.entry((l.method.clone(), f)).or_insert(0) += 1;
            }
        }
        out
    }
}

impl Drop for S3Proxy {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

type Reply = Response<Full<Bytes>>;

/// Why a connection ends without an answer.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by the fault proxy")
    }
}

impl std::error::Error for Dropped {}

/// The object key of a path-style request (`/bucket/key`), decoded.
fn key_of(path: &str) -> String {
    let rest = path.trim_start_matches('/');
    let key = rest.split_once('/').map_or("", |(_, k)| k);
    percent_decode(key)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn handle_request(
    shared: Arc<Shared>,
    raw: Arc<Mutex<Option<std::net::TcpStream>>>,
    req: Request<Incoming>,
) -> Result<Reply, Dropped> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(|_| Dropped)?.to_bytes();
    let method = parts.method.as_str().to_owned();
    let key = key_of(parts.uri.path());
    let fault = decide(&shared, &method, parts.uri.path());
    let mut logged = Logged {
        method: method.clone(),
        key,
        status: None,
        bytes: 0,
        fault,
    };
    let Some(fault) = fault else {
        let hidden = matches!(*lock(&shared.mode), Mode::MissingAsDenied { .. });
        let result = forward(shared.upstream, parts, body)
            .await
            .map(|r| match r.status() {
                StatusCode::NOT_FOUND if hidden && !logged.key.is_empty() => {
                    error_reply(&method, StatusCode::FORBIDDEN, "AccessDenied")
                }
                _ => r,
            });
        if let Ok(r) = &result {
            logged.status = Some(r.status().as_u16());
            logged.bytes = r.body().size_hint_exact();
        }
        lock(&shared.state).log.push(logged);
        return result;
    };
    // Logged before acting: a client that gives up on a stall drops this
    // future, and the request must still count.
    let refusal = match fault {
        Fault::InternalError => Some(error_reply(
            &method,
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
        )),
        Fault::SlowDown => Some(error_reply(&method, StatusCode::SERVICE_UNAVAILABLE, "SlowDown")),
        Fault::AccessDenied => Some(error_reply(&method, StatusCode::FORBIDDEN, "AccessDenied")),
        Fault::Reset | Fault::Stall => None,
    };
    if let Some(r) = &refusal {
        logged.status = Some(r.status().as_u16());
        logged.bytes = r.body().size_hint_exact();
    }
    lock(&shared.state).log.push(logged);
    match (fault, refusal) {
        (_, Some(r)) => Ok(r),
        (Fault::Reset, None) => {
            if let Some(s) = lock(&raw).take() {
                let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
            }
            Err(Dropped)
        }
        (_, None) => {
            tokio::time::sleep(STALL).await;
            Err(Dropped)
        }
    }
}

trait ExactSize {
    fn size_hint_exact(&self) -> u64;
}

impl ExactSize for Full<Bytes> {
    fn size_hint_exact(&self) -> u64 {
        hyper::body::Body::size_hint(self).exact().unwrap_or(0)
    }
}

fn decide(shared: &Shared, method: &str, path: &str) -> Option<Fault> {
    let mode = *lock(&shared.mode);
    let mut s = lock(&shared.state);
    let attempt = {
        let a = s.attempts.entry(format!("{method} {path}")).or_insert(0);
        *a += 1;
        *a
    };
    s.seen += 1;
    match mode {
        Mode::Pass => None,
        Mode::EveryNth(n, f) => s.seen.is_multiple_of(n).then_some(f),
        Mode::Always(m, f) => (m == method).then_some(f),
        Mode::MissingAsDenied { list } => {
            let listing = method == "GET" && key_of(path).is_empty();
            (listing && !list).then_some(Fault::AccessDenied)
        }
        Mode::FirstAttemptOfEvery(n) if attempt == 1 => {
            s.distinct += 1;
            s.distinct
                .is_multiple_of(n)
                .then(|| ALL_FAULTS[(s.distinct / n) % ALL_FAULTS.len()])
        }
        Mode::FirstAttemptOfEvery(_) => None,
    }
}

fn error_reply(method: &str, status: StatusCode, code: &str) -> Reply {
    let body = if method == "HEAD" {
        Bytes::new()
    } else {
        Bytes::from(format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected</Message></Error>"
        ))
    };
    Response::builder()
        .status(status)
        .header("content-type", "application/xml")
        .body(Full::new(body))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// Headers that belong to one connection, not to the message.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "transfer-encoding",
    "expect",
    "te",
    "upgrade",
];

/// Sends the request upstream on a fresh connection and relays the whole
/// answer.
async fn forward(upstream: u16, parts: hyper::http::request::Parts, body: Bytes) -> Result<Reply, Dropped> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", upstream))
        .await
        .map_err(|_| Dropped)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| Dropped)?;
    tokio::spawn(conn);
    let mut builder = Request::builder()
        .method(parts.method.clone())
        .uri(parts.uri.clone());
    for (k, v) in &parts.headers {
        if !HOP_BY_HOP.contains(&k.as_str()) && k != "content-length" {
            builder = builder.header(k, v);
        }
    }
    let request = builder.body(Full::new(body)).map_err(|_| Dropped)?;
    let answer = sender.send_request(request).await.map_err(|_| Dropped)?;
    let (parts, body) = answer.into_parts();
    let body = body.collect().await.map_err(|_| Dropped)?.to_bytes();
    let mut reply = Response::builder().status(parts.status);
    for (k, v) in &parts.headers {
        // A HEAD's Content-Length is the object's size: keep it as it is.
        if !HOP_BY_HOP.contains(&k.as_str()) {
            reply = reply.header(k, v);
        }
    }
    reply.body(Full::new(body)).map_err(|_| Dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_decoded_path_after_the_bucket() {
        for (path, key) in [
            ("/bucket/original/a.jpg", "original/a.jpg"),
            ("/bucket/original/a%20b%2B%25.jpg", "original/a b+%.jpg"),
            ("/bucket/na%C3%AFve.jpg", "naïve.jpg"),
            ("/bucket", ""),
            ("/bucket/", ""),
            ("/bucket/100%zz", "100%zz"),
        ] {
            assert_eq!(key_of(path), key, "{path}");
        }
    }
}
