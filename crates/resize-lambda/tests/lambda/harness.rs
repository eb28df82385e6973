//! Real components for the Lambda tests: moto's S3 server, the S3 world and
//! the local Lambda Runtime API (from `resize-testkit`), and the real
//! `bootstrap` binary run against them.

use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

pub use resize_testkit::runtime_api::{Answer, RuntimeApi};
pub use resize_testkit::{capture, fixture, lock, World, BUCKET, WAIT};

/// The secret access key handed to `bootstrap`; it must never be logged.
pub const SECRET: &str = "SECRET-DO-NOT-LOG-123";

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

// -------------------------------------------------------------- lambda ----

/// The real `bootstrap` binary against a [`RuntimeApi`], killed on drop.
pub struct Lambda {
    child: Child,
    pub api: RuntimeApi,
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
        let api = RuntimeApi::start().expect("start the Runtime API");
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
        match self.api.answer(id) {
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
            .init_error()
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
        self.api.polled()
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
        let first = self.api.first_next()?;
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
    }
}
