//! Real components for the Lambda tests: a `moto_server` child process as
//! S3, a local Lambda Runtime API served over HTTP/1.1, and the real
//! `bootstrap` binary run against both.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use serde_json::Value;

/// How long a test waits for an answer, a server or an exit.
pub const WAIT: Duration = Duration::from_secs(60);

/// The secret access key handed to `bootstrap`; it must never be logged.
pub const SECRET: &str = "SECRET-DO-NOT-LOG-123";

pub const BUCKET: &str = "resize-photos";

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn fixture(rel: &str) -> Vec<u8> {
    let path = workspace_root().join("fixtures").join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()))
}

/// An event document from `fixtures/events/`, with `BUCKET` replaced.
pub fn event(name: &str) -> Value {
    let text = String::from_utf8(fixture(&format!("events/{name}.json"))).expect("event is UTF-8");
    serde_json::from_str(&text.replace("BUCKET", BUCKET))
        .unwrap_or_else(|e| panic!("fixtures/events/{name}.json is not JSON: {e}"))
}

/// An S3 notification with one record per `(eventName, encoded key)`,
/// built from the record of `s3-put.json`.
pub fn s3_event(records: &[(&str, &str)]) -> Value {
    let template = event("s3-put")["Records"][0].clone();
    let records: Vec<Value> = records
        .iter()
        .map(|(name, key)| {
            let mut r = template.clone();
            r["eventName"] = Value::from(*name);
            r["s3"]["object"]["key"] = Value::from(*key);
            r
        })
        .collect();
    serde_json::json!({ "Records": records })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("cannot bind a loopback port")
        .port()
}

/// Copies a child's output into a shared string, line by line.
fn capture(stream: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            lock(&into).push_str(&String::from_utf8_lossy(&line));
            line.clear();
        }
    });
}

// ---------------------------------------------------------------- moto ----

/// A `moto_server` child process, killed on drop.
pub struct Moto {
    child: Child,
    pub port: u16,
    log: Arc<Mutex<String>>,
}

fn moto_binary() -> PathBuf {
    let path = std::env::var_os("MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv/bin/moto_server"));
    assert!(
        path.is_file(),
        "moto_server not found at {} (set MOTO_SERVER to override). The Lambda tests need a real \
         S3-compatible server: run `.ci/run` or `cargo xtask ci`, which install moto into \
         <workspace>/.venv, or `python3 -m venv .venv && .venv/bin/pip install 'moto[server]'`.",
        path.display()
    );
    path
}

impl Moto {
    /// Starts moto on a free loopback port.
    pub fn start() -> Moto {
        let mut last = String::new();
        for _ in 0..3 {
            match Moto::start_on(free_port()) {
                Ok(m) => return m,
                Err(e) => last = e,
            }
        }
        panic!("moto_server did not start: {last}");
    }

    /// Starts moto on `port` and waits until it answers HTTP.
    pub fn start_on(port: u16) -> Result<Moto, String> {
        let mut child = Command::new(moto_binary())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run moto_server: {e}"))?;
        let log = Arc::new(Mutex::new(String::new()));
        capture(child.stdout.take().expect("piped"), Arc::clone(&log));
        capture(child.stderr.take().expect("piped"), Arc::clone(&log));
        let mut moto = Moto { child, port, log };
        let started = Instant::now();
        loop {
            if http_get_status(port).is_some_and(|s| s == 200) {
                return Ok(moto);
            }
            if let Ok(Some(status)) = moto.child.try_wait() {
                return Err(format!("moto_server exited ({status}): {}", lock(&moto.log)));
            }
            if started.elapsed() > WAIT {
                return Err(format!(
                    "moto_server did not answer on port {port}: {}",
                    lock(&moto.log)
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until moto has logged every request made before this call
    /// (a marker request is logged after them).
    pub fn sync(&self, client: &Client, rt: &tokio::runtime::Runtime) {
        static MARKS: AtomicU64 = AtomicU64::new(0);
        let mark = format!("sync-marker-{}", MARKS.fetch_add(1, Ordering::Relaxed));
        let _ = rt.block_on(client.head_object().bucket(BUCKET).key(&mark).send());
        let started = Instant::now();
        while self.requests(&format!("HEAD /{BUCKET}/{mark}")) == 0 {
            assert!(started.elapsed() < WAIT, "moto never logged {mark}");
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Requests moto logged whose request line starts with `line_prefix`,
    /// e.g. `PUT /bucket/resized/`.
    pub fn requests(&self, line_prefix: &str) -> usize {
        // werkzeug colours some request lines, so match inside the line.
        lock(&self.log)
            .lines()
            .filter(|l| l.contains(line_prefix))
            .count()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_get_status(port: u16) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

// --------------------------------------------------------------- world ----

/// An S3 server with one bucket, and a client for the test's own calls.
pub struct World {
    pub rt: tokio::runtime::Runtime,
    pub moto: Option<Moto>,
    pub port: u16,
    pub client: Client,
}

pub fn client(port: u16) -> Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .force_path_style(true)
        .build();
    Client::from_conf(config)
}

impl World {
    pub fn new() -> World {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let moto = Moto::start();
        let port = moto.port;
        let world = World {
            rt,
            moto: Some(moto),
            port,
            client: client(port),
        };
        world.create_bucket();
        world
    }

    pub fn moto(&self) -> &Moto {
        self.moto.as_ref().expect("moto is running")
    }

    pub fn create_bucket(&self) {
        self.rt
            .block_on(self.client.create_bucket().bucket(BUCKET).send())
            .expect("create bucket");
    }

    /// Kills the S3 server.
    pub fn kill_moto(&mut self) {
        self.moto = None;
    }

    /// Starts a fresh (empty) S3 server on the same port.
    pub fn restart_moto(&mut self) {
        let started = Instant::now();
        let moto = loop {
            match Moto::start_on(self.port) {
                Ok(m) => break m,
                // The old socket may linger for a moment.
                Err(e) if started.elapsed() > WAIT => panic!("moto did not restart: {e}"),
                Err(_) => thread::sleep(Duration::from_millis(200)),
            }
        };
        self.moto = Some(moto);
        self.create_bucket();
    }

    pub fn s3(&self) -> resize_lambda::s3::S3 {
        resize_lambda::s3::S3::new(self.client.clone(), BUCKET)
    }

    pub fn put(&self, key: &str, bytes: Vec<u8>, metadata: &[(&str, &str)]) {
        let mut req = self
            .client
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .content_type("image/jpeg")
            .body(ByteStream::from(bytes));
        for (k, v) in metadata {
            req = req.metadata(*k, *v);
        }
        self.rt
            .block_on(req.send())
            .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
    }

    pub fn put_fixture(&self, key: &str, fixture_path: &str) {
        self.put(key, fixture(fixture_path), &[]);
    }

    pub fn get(&self, key: &str) -> Vec<u8> {
        self.rt
            .block_on(self.s3().get(key))
            .unwrap_or_else(|e| panic!("get {key}: {e}"))
            .0
    }

    pub fn head(&self, key: &str) -> Option<aws_sdk_s3::operation::head_object::HeadObjectOutput> {
        match self
            .rt
            .block_on(self.client.head_object().bucket(BUCKET).key(key).send())
        {
            Ok(h) => Some(h),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => None,
            Err(e) => panic!("head {key}: {e:?}"),
        }
    }

    pub fn delete(&self, key: &str) {
        self.rt
            .block_on(self.s3().delete(key))
            .unwrap_or_else(|e| panic!("delete {key}: {e}"));
    }

    /// Every key under `prefix`, sorted.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let mut keys = self
            .rt
            .block_on(self.s3().list(prefix))
            .unwrap_or_else(|e| panic!("list {prefix}: {e}"));
        keys.sort();
        keys
    }

    /// Pixel size of the image at `key`.
    pub fn dimensions(&self, key: &str) -> (u32, u32) {
        let img = image::load_from_memory(&self.get(key)).unwrap_or_else(|e| panic!("decode {key}: {e}"));
        (img.width(), img.height())
    }
}

// ------------------------------------------------------- runtime API ----

/// What the function posted for one invocation.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    Response(Value),
    Error(Value),
}

impl Answer {
    #[track_caller]
    pub fn response(self) -> Value {
        match self {
            Answer::Response(v) => v,
            Answer::Error(e) => panic!("expected a response, got an error: {e}"),
        }
    }

    #[track_caller]
    pub fn error(self) -> Value {
        match self {
            Answer::Error(e) => e,
            Answer::Response(v) => panic!("expected an error, got a response: {v}"),
        }
    }
}

#[derive(Default)]
struct ApiState {
    queue: VecDeque<(String, String)>,
    answers: HashMap<String, Answer>,
    /// `(Lambda-Runtime-Function-Error-Type header, body)`.
    init_error: Option<(Option<String>, String)>,
    first_next: Option<Instant>,
    shutdown: bool,
}

/// A local Lambda Runtime API (2018-06-01) on a loopback port.
pub struct RuntimeApi {
    state: Mutex<ApiState>,
    changed: Condvar,
    pub port: u16,
    ids: AtomicU64,
}

/// One HTTP/1.1 request, as the Runtime API emulator and the S3 fault
/// proxy read it: header names lowercased, the body de-chunked.
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

pub fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
    }
    if headers
        .get("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    {
        reader
            .get_mut()
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .ok()?;
    }
    let mut body = Vec::new();
    if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = headers
        .get("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        body.resize(n, 0);
        reader.read_exact(&mut body).ok()?;
    }
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

fn respond(stream: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) -> bool {
    let mut head = format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes()).is_ok() && stream.write_all(body).is_ok() && stream.flush().is_ok()
}

impl RuntimeApi {
    pub fn start() -> Arc<RuntimeApi> {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind runtime API");
        let api = Arc::new(RuntimeApi {
            state: Mutex::new(ApiState::default()),
            changed: Condvar::new(),
            port: listener.local_addr().expect("local addr").port(),
            ids: AtomicU64::new(0),
        });
        let server = Arc::clone(&api);
        thread::spawn(move || {
            for conn in listener.incoming() {
                if lock(&server.state).shutdown {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let api = Arc::clone(&server);
                thread::spawn(move || api.serve(conn));
            }
        });
        api
    }

    fn serve(&self, mut stream: TcpStream) {
        let Ok(read_half) = stream.try_clone() else { return };
        let mut reader = BufReader::new(read_half);
        while let Some(req) = read_request(&mut reader) {
            let ok = self.route(&mut stream, &req);
            let close = req
                .headers
                .get("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("close"));
            if !ok || close {
                return;
            }
        }
    }

    fn route(&self, stream: &mut TcpStream, req: &Request) -> bool {
        const PREFIX: &str = "/2018-06-01/runtime/";
        let Some(rest) = req.path.strip_prefix(PREFIX) else {
            return respond(stream, "404 Not Found", &[], b"{}");
        };
        let accepted = |stream: &mut TcpStream| respond(stream, "202 Accepted", &[], br#"{"status":"OK"}"#);
        let body = || {
            let text = String::from_utf8_lossy(&req.body).into_owned();
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        match (req.method.as_str(), rest) {
            ("GET", "invocation/next") => {
                let Some((id, event)) = self.next_event() else {
                    return false;
                };
                let deadline = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .expect("clock after 1970")
                    .as_millis()
                    + 60_000;
                respond(
                    stream,
                    "200 OK",
                    &[
                        ("Lambda-Runtime-Aws-Request-Id", id),
                        ("Lambda-Runtime-Deadline-Ms", deadline.to_string()),
                        (
                            "Lambda-Runtime-Invoked-Function-Arn",
                            "arn:aws:lambda:us-east-1:123456789012:function:resize".to_owned(),
                        ),
                        (
                            "Lambda-Runtime-Trace-Id",
                            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
                                .to_owned(),
                        ),
                    ],
                    event.as_bytes(),
                )
            }
            ("POST", "init/error") => {
                let kind = req.headers.get("lambda-runtime-function-error-type").cloned();
                lock(&self.state).init_error = Some((kind, String::from_utf8_lossy(&req.body).into_owned()));
                self.changed.notify_all();
                accepted(stream)
            }
            ("POST", path) => {
                let answer = match path.strip_prefix("invocation/").and_then(|p| p.rsplit_once('/')) {
                    Some((id, "response")) => Some((id, Answer::Response(body()))),
                    Some((id, "error")) => Some((id, Answer::Error(body()))),
                    _ => None,
                };
                let Some((id, answer)) = answer else {
                    return respond(stream, "404 Not Found", &[], b"{}");
                };
                lock(&self.state).answers.insert(id.to_owned(), answer);
                self.changed.notify_all();
                accepted(stream)
            }
            _ => respond(stream, "404 Not Found", &[], b"{}"),
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

    /// Queues an event; returns its request id.
    pub fn enqueue(&self, event: &Value) -> String {
        let n = self.ids.fetch_add(1, Ordering::Relaxed) + 1;
        let id = format!("c0ffee00-{:04x}-4000-8000-{n:012x}", self.port);
        lock(&self.state).queue.push_back((id.clone(), event.to_string()));
        self.changed.notify_all();
        id
    }

    fn wait_for<T>(&self, mut found: impl FnMut(&mut ApiState) -> Option<T>) -> Option<T> {
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

    fn shutdown(&self) {
        lock(&self.state).shutdown = true;
        self.changed.notify_all();
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

// -------------------------------------------------------------- lambda ----

/// The real `bootstrap` binary against a [`RuntimeApi`], killed on drop.
pub struct Lambda {
    child: Child,
    pub api: Arc<RuntimeApi>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    spawned: Instant,
    exit: Option<ExitStatus>,
}

impl Lambda {
    /// Starts `bootstrap` with the default settings, `settings` on top.
    pub fn start(world: &World, settings: &[(&str, &str)]) -> Lambda {
        Lambda::start_with_s3_port(world.port, settings)
    }

    /// As [`Lambda::start`], for an S3 endpoint on `s3_port` (maybe nothing).
    pub fn start_with_s3_port(s3_port: u16, settings: &[(&str, &str)]) -> Lambda {
        let api = RuntimeApi::start();
        let mut env: Vec<(String, String)> = [
            ("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{}", api.port)),
            ("AWS_LAMBDA_FUNCTION_NAME", "resize".to_owned()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512".to_owned()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET.to_owned()),
            ("AWS_ENDPOINT_URL_S3", format!("http://127.0.0.1:{s3_port}")),
            ("S3_FORCE_PATH_STYLE", "true".to_owned()),
            ("SIZES", "360,720,1200,2200".to_owned()),
            ("REPLACEMENTS", "original:resized".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (k, v) in settings {
            env.retain(|(name, _)| name != k);
            env.push(((*k).to_owned(), (*v).to_owned()));
        }
        // `cargo xtask bench --lambda` points this at the release build.
        let program =
            std::env::var_os("RESIZE_BOOTSTRAP").unwrap_or_else(|| env!("CARGO_BIN_EXE_bootstrap").into());
        let mut cmd = Command::new(program);
        cmd.env_clear();
        for keep in ["PATH", "HOME"] {
            if let Some(v) = std::env::var_os(keep) {
                cmd.env(keep, v);
            }
        }
        cmd.envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let spawned = Instant::now();
        let mut child = cmd.spawn().expect("cannot run bootstrap");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        capture(child.stdout.take().expect("piped"), Arc::clone(&stdout));
        capture(child.stderr.take().expect("piped"), Arc::clone(&stderr));
        Lambda {
            child,
            api,
            stdout,
            stderr,
            spawned,
            exit: None,
        }
    }

    pub fn stdout(&self) -> String {
        lock(&self.stdout).clone()
    }

    pub fn stderr(&self) -> String {
        lock(&self.stderr).clone()
    }

    /// Waits until the captured stdout contains `needle` (the reader
    /// threads may lag behind the answer), then returns it all.
    #[track_caller]
    pub fn stdout_with(&self, needle: &str) -> String {
        let started = Instant::now();
        loop {
            let out = self.stdout();
            if out.contains(needle) {
                return out;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "stdout never contained {needle:?}\n{}",
                self.logs()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn logs(&self) -> String {
        format!(
            "--- stdout ---\n{}--- stderr ---\n{}",
            self.stdout(),
            self.stderr()
        )
    }

    /// Queues an event without waiting.
    pub fn send(&self, event: &Value) -> String {
        self.api.enqueue(event)
    }

    /// Waits for the answer to request `id`.
    #[track_caller]
    pub fn answer(&mut self, id: &str) -> Answer {
        match self.api.wait_for(|s| s.answers.get(id).cloned()) {
            Some(a) => a,
            None => panic!(
                "no answer for {id} within {WAIT:?} (exit: {:?})\n{}",
                self.child.try_wait(),
                self.logs()
            ),
        }
    }

    /// Sends an event and waits for its answer.
    #[track_caller]
    pub fn invoke(&mut self, event: &Value) -> Answer {
        let id = self.send(event);
        self.answer(&id)
    }

    /// Sends an event and returns its request id with the answer.
    #[track_caller]
    pub fn invoke_with_id(&mut self, event: &Value) -> (String, Answer) {
        let id = self.send(event);
        let answer = self.answer(&id);
        (id, answer)
    }

    /// Waits for `POST /runtime/init/error`: `(error type header, body)`.
    #[track_caller]
    pub fn init_error(&self) -> (Option<String>, String) {
        self.api
            .wait_for(|s| s.init_error.clone())
            .unwrap_or_else(|| panic!("no init error within {WAIT:?}\n{}", self.logs()))
    }

    /// Waits for the process to exit.
    #[track_caller]
    pub fn exit_status(&mut self) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                self.exit = Some(s);
                return s;
            }
            assert!(
                started.elapsed() < WAIT,
                "bootstrap did not exit\n{}",
                self.logs()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether it has asked for an invocation yet.
    pub fn polled(&self) -> bool {
        lock(&self.api.state).first_next.is_some()
    }

    /// The process's peak resident memory so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        self.proc_status_kib("VmHWM:")
    }

    /// User + system CPU time the process has used so far, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).expect("/proc stat");
        // Fields after the parenthesised command name; utime and stime are
        // the 14th and 15th fields of the whole line.
        let rest = &stat[stat.rfind(')').expect("stat has a command name") + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 =
            fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
        ticks as f64 / clock_ticks_per_second()
    }

    fn proc_status_kib(&self, field: &str) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("/proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc status"))
    }

    /// Spawn → first `GET /invocation/next`, once it happened.
    pub fn cold_start(&self) -> Option<Duration> {
        let first = self.api.wait_for(|s| s.first_next)?;
        Some(first - self.spawned)
    }
}

/// `sysconf(_SC_CLK_TCK)`, asked of `getconf` once (to stay free of unsafe code).
fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        let out = Command::new("getconf").arg("CLK_TCK").output().expect("getconf");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("CLK_TCK is a number")
    })
}

impl Drop for Lambda {
    fn drop(&mut self) {
        if self.exit.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        self.api.shutdown();
    }
}
