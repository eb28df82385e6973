//! S3 faults between the real `bootstrap` and the real S3 server: a proxy
//! on loopback that answers 500 InternalError, 503 SlowDown, resets
//! connections or stalls past the attempt timeout, on GET, HEAD and PUT.
//!
//! Each request is read whole before the proxy decides, so the server
//! never sees half a request: a fault is always a clean refusal the client
//! has to retry, as with S3 itself.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use resize_core::Recipe;
use serde_json::{json, Value};

use crate::harness::{fixture, read_request, s3_event, Lambda, Request, World};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    InternalError,
    SlowDown,
    Reset,
    Stall,
}

const ALL: [Fault; 4] = [Fault::InternalError, Fault::SlowDown, Fault::Reset, Fault::Stall];

#[derive(Clone, Copy, Debug)]
pub enum Mode {
    Pass,
    /// The first attempt of every `n`-th distinct request (method and
    /// path) fails, the fault kinds taking turns; retries pass. A rate the
    /// SDK's three attempts always absorb.
    FirstAttemptOfEvery(usize),
    /// Every request with this method fails: S3 down for good.
    Always(&'static str, Fault),
}

#[derive(Default)]
struct State {
    attempts: HashMap<String, u32>,
    distinct: usize,
    /// (method, fault) → how many were injected.
    injected: BTreeMap<(String, Fault), usize>,
}

pub struct FaultProxy {
    pub port: u16,
    mode: Arc<Mutex<Mode>>,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

/// Longer than the attempt timeout the tests give `bootstrap`.
const STALL: Duration = Duration::from_secs(4);

impl FaultProxy {
    pub fn start(upstream: u16, mode: Mode) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let proxy = FaultProxy {
            port,
            mode: Arc::new(Mutex::new(mode)),
            state: Arc::new(Mutex::new(State::default())),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (mode, state, stop) = (proxy.mode.clone(), proxy.state.clone(), proxy.stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (mode, state) = (mode.clone(), state.clone());
                thread::spawn(move || serve(conn, upstream, &mode, &state));
            }
        });
        proxy
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().expect("mode") = mode;
    }

    /// Faults injected so far, by method and kind.
    pub fn injected(&self) -> BTreeMap<(String, Fault), usize> {
        self.state.lock().expect("state").injected.clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(conn: TcpStream, upstream: u16, mode: &Mutex<Mode>, state: &Mutex<State>) {
    let mut reader = BufReader::new(conn);
    let Some(req) = read_request(&mut reader) else {
        return;
    };
    let mut conn = reader.into_inner();
    let fault = {
        let mode = *mode.lock().expect("mode");
        let mut s = state.lock().expect("state");
        let id = format!("{} {}", req.method, req.path);
        let attempt = {
            let a = s.attempts.entry(id).or_insert(0);
            *a += 1;
            *a
        };
        let fault = match mode {
            Mode::Pass => None,
            Mode::Always(method, f) => (method == req.method).then_some(f),
            Mode::FirstAttemptOfEvery(n) if attempt == 1 => {
                s.distinct += 1;
                (s.distinct % n == 0).then(|| ALL[(s.distinct / n) % ALL.len()])
            }
            Mode::FirstAttemptOfEvery(_) => None,
        };
        if let Some(f) = fault {
            *s.injected.entry((req.method.clone(), f)).or_insert(0) += 1;
        }
        fault
    };
    match fault {
        None => forward(&mut conn, upstream, &req),
        Some(Fault::InternalError) => {
            error_reply(&mut conn, &req, "500 Internal Server Error", "InternalError")
        }
        Some(Fault::SlowDown) => error_reply(&mut conn, &req, "503 Slow Down", "SlowDown"),
        Some(Fault::Reset) => {
            // Linger 0: close() sends RST instead of FIN.
            let _ = socket2::SockRef::from(&conn).set_linger(Some(Duration::ZERO));
            drop(conn);
        }
        Some(Fault::Stall) => {
            thread::sleep(STALL);
            let _ = conn.shutdown(Shutdown::Both);
        }
    }
}

fn error_reply(conn: &mut TcpStream, req: &Request, status: &str, code: &str) {
    let body = if req.method == "HEAD" {
        String::new()
    } else {
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected</Message></Error>")
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(head.as_bytes());
    if req.method != "HEAD" {
        let _ = conn.write_all(body.as_bytes());
    }
}

/// Sends the request upstream on a fresh connection and relays the answer,
/// marked `Connection: close` so the client never reuses this connection.
fn forward(conn: &mut TcpStream, upstream: u16, req: &Request) {
    let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    // Re-framed with a Content-Length (the body is de-chunked) and without
    // `Expect` (already answered) or keep-alive.
    let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.path);
    for (k, v) in &req.headers {
        if !["connection", "expect", "transfer-encoding", "content-length"].contains(&k.as_str()) {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str(&format!("Content-Length: {}\r\n", req.body.len()));
    head.push_str("Connection: close\r\n\r\n");
    if up.write_all(head.as_bytes()).is_err() || up.write_all(&req.body).is_err() {
        return;
    }
    let mut up = BufReader::new(up);
    let mut reply_head = String::new();
    loop {
        let mut line = String::new();
        if up.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line == "\r\n" {
            break;
        }
        if !line.to_ascii_lowercase().starts_with("connection:") {
            reply_head.push_str(&line);
        }
    }
    reply_head.push_str("Connection: close\r\n\r\n");
    if conn.write_all(reply_head.as_bytes()).is_err() {
        return;
    }
    let _ = std::io::copy(&mut up, conn);
    let _ = conn.shutdown(Shutdown::Write);
}

const SETTINGS: &[(&str, &str)] = &[
    // Small widths: every source below makes some, and debug builds stay quick.
    ("SIZES", "120,180,360,720"),
    ("REPLACEMENTS", "original:resized"),
    ("FORMATS", "jpeg,webp"),
    // Short, so a stalled attempt is given up on (and retried) quickly.
    ("S3_ATTEMPT_TIMEOUT_MS", "1500"),
    ("S3_TIMEOUT_MS", "30000"),
];

const SOURCES: &[(&str, &str)] = &[
    ("original/a/four-three.jpg", "images/photo-4x3.jpg"),
    ("original/a/sixteen-nine.jpg", "images/photo-16x9.jpg"),
    ("original/b/alpha.png", "images/alpha.png"),
    ("original/b/p3.jpg", "images/display-p3.jpg"),
    ("original/c/still.webp", "images/still.webp"),
];

/// Every variant under `resized/` is byte for byte what the core makes of
/// its own source (so none is truncated or holds another image), exactly
/// the expected set exists, and the sources are untouched.
#[track_caller]
fn check_outputs(world: &World) {
    let recipe = Recipe::from_lookup(|n| {
        SETTINGS
            .iter()
            .find(|(k, _)| *k == n)
            .map(|(_, v)| (*v).to_owned())
    })
    .expect("recipe");
    let mut expected = Vec::new();
    for (key, path) in SOURCES {
        let bytes = fixture(path);
        assert_eq!(world.get(key), bytes, "source {key} changed");
        let source = recipe.source_key(key).expect("a source");
        for r in resize_core::render(&bytes, &recipe).expect("renders") {
            let out = source
                .output_key(r.width, r.height, r.format)
                .expect("a short key");
            assert!(
                world.get(&out) == r.bytes,
                "{out} differs from a local render of {key}"
            );
            expected.push(out);
        }
    }
    expected.sort();
    assert_eq!(world.keys("resized/"), expected);
}

fn put_sources(world: &World) -> Value {
    for (key, path) in SOURCES {
        world.put_fixture(key, path);
    }
    let records: Vec<(&str, &str)> = SOURCES.iter().map(|(k, _)| ("ObjectCreated:Put", *k)).collect();
    s3_event(&records)
}

#[test]
fn faults_within_the_retry_budget_are_absorbed() {
    let world = World::new();
    let event = put_sources(&world);
    let proxy = FaultProxy::start(world.port, Mode::FirstAttemptOfEvery(2));
    let mut lambda = Lambda::start_with_s3_port(proxy.port, SETTINGS);
    let answer = lambda.invoke(&event).response();
    assert_eq!(
        answer["written"],
        json!(SOURCES.len()),
        "{answer}\n{}",
        lambda.stderr()
    );
    assert_eq!(answer["failed"], json!([]));
    check_outputs(&world);
    // Every kind of fault hit reads and writes alike.
    let injected = proxy.injected();
    for method in ["GET", "HEAD", "PUT"] {
        let n: usize = injected
            .iter()
            .filter(|((m, _), _)| m == method)
            .map(|(_, n)| n)
            .sum();
        assert!(n > 0, "no fault on {method}: {injected:?}");
    }
    for kind in ALL {
        assert!(
            injected.iter().any(|((_, f), _)| *f == kind),
            "{kind:?} never injected: {injected:?}"
        );
    }
    eprintln!("injected and survived: {injected:?}");
}

#[test]
fn puts_failing_for_good_fail_the_record_and_redelivery_finishes() {
    let world = World::new();
    let event = put_sources(&world);
    let proxy = FaultProxy::start(world.port, Mode::Always("PUT", Fault::SlowDown));
    let mut lambda = Lambda::start_with_s3_port(proxy.port, SETTINGS);
    // Transient: the invocation fails so Lambda retries it.
    let error = lambda.invoke(&event).error();
    let message = error["errorMessage"].as_str().unwrap_or_default();
    assert!(
        message.contains("original/a/four-three.jpg") && message.contains("failed transiently"),
        "{error}"
    );
    assert_eq!(
        world.keys("resized/"),
        Vec::<String>::new(),
        "a refused PUT left an object"
    );
    // S3 recovers; the same event delivered again finishes the job.
    proxy.set_mode(Mode::Pass);
    let answer = lambda.invoke(&event).response();
    assert_eq!(answer["written"], json!(SOURCES.len()), "{answer}");
    check_outputs(&world);
}
