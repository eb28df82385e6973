//! The harness: a sandbox directory holding copies of fixtures, a runner for
//! the binary with a clean environment, and image and JSON helpers.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use serde_json::Value;

/// Every setting variable the CLI reads; removed from every run so the
/// host environment cannot leak in.
pub const SETTING_VARS: [&str; 10] = [
    "SIZES",
    "FORMATS",
    "JPEG_QUALITY",
    "WEBP_QUALITY",
    "REPLACEMENTS",
    "KEY_TEMPLATE",
    "UPSCALE",
    "BACKGROUND",
    "MAX_INPUT_BYTES",
    "MAX_PIXELS",
];

/// Prefix of the CLI's temporary files.
pub const TEMP_PREFIX: &str = ".resize-tmp-";

/// The repository's fixtures (read only: tests copy from here).
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The `--json` report.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// Fails with the whole output when the exit code is not `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// A temporary directory; the binary runs with it as working directory, so
/// paths in arguments and messages are relative to it.
pub struct Sandbox {
    dir: tempfile::TempDir,
    root: PathBuf,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::tempdir().expect("temporary directory");
        let root = fs::canonicalize(dir.path()).expect("canonical temporary directory");
        Sandbox { dir, root }
    }

    /// `rel` inside the sandbox.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Copies fixture `from` (relative to `fixtures/images/`, or `fixtures/` for `bad/…`) to `to` in the sandbox.
    #[track_caller]
    pub fn copy_fixture(&self, from: &str, to: &str) -> PathBuf {
        let dest = self.path(to);
        fs::create_dir_all(dest.parent().expect("a parent")).expect("create parent");
        let src = if from.starts_with("bad/") {
            fixtures().join(from)
        } else {
            fixtures().join("images").join(from)
        };
        fs::copy(src, &dest).unwrap_or_else(|e| panic!("copy fixture {from}: {e}"));
        dest
    }

    /// Copies the whole fixtures tree to `to`, leaving out the files named
    /// (relative to `fixtures/`).
    pub fn copy_fixture_tree(&self, to: &str, leave_out: &[&str]) {
        fn copy(from: &Path, rel: &Path, to: &Path, leave_out: &[&str]) {
            for entry in fs::read_dir(from).expect("read fixtures") {
                let entry = entry.expect("fixture entry");
                let rel = rel.join(entry.file_name());
                if leave_out.iter().any(|l| Path::new(l) == rel) {
                    continue;
                }
                let dest = to.join(&rel);
                if entry.file_type().expect("file type").is_dir() {
                    fs::create_dir_all(&dest).expect("create dir");
                    copy(&entry.path(), &rel, to, leave_out);
                } else {
                    fs::copy(entry.path(), &dest).expect("copy fixture");
                }
            }
        }
        let dest = self.path(to);
        fs::create_dir_all(&dest).expect("create dir");
        // The sandbox keeps the good images at its top and the broken ones in `bad/`.
        copy(&fixtures().join("images"), Path::new(""), &dest, leave_out);
        fs::create_dir_all(dest.join("bad")).expect("create dir");
        copy(&fixtures().join("bad"), Path::new("bad"), &dest, leave_out);
    }

    /// Writes `bytes` to `rel`, creating directories.
    pub fn write(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let dest = self.path(rel);
        fs::create_dir_all(dest.parent().expect("a parent")).expect("create parent");
        fs::write(&dest, bytes).expect("write file");
        dest
    }

    /// Runs the binary with `--jobs 2` (unless `args` has `--jobs`) and
    /// `args`, in the sandbox.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[])
    }

    /// As [`Sandbox::run`], with extra environment variables.
    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = self.command(args, env);
        let out = cmd.output().expect("run resize-cli");
        Run {
            code: out.status.code().expect("exit code, not a signal"),
            stdout: String::from_utf8(out.stdout).expect("UTF-8 stdout"),
            stderr: String::from_utf8(out.stderr).expect("UTF-8 stderr"),
        }
    }

    /// As [`Sandbox::run`] with `--json` added, also returning the peak
    /// resident memory the run reports (`peak_rss_bytes`, from the kernel's
    /// `VmHWM` of the CLI's own address space), in KiB. `wait4`'s figure
    /// would not do: Linux carries the parent's (this test process's) peak
    /// into the child's across `exec`.
    pub fn run_measured(&self, args: &[&str]) -> (Run, u64) {
        let mut args = args.to_vec();
        if !args.contains(&"--json") {
            args.insert(0, "--json");
        }
        let run = self.run(&args);
        let peak = run.json()["peak_rss_bytes"]
            .as_u64()
            .unwrap_or_else(|| panic!("no peak_rss_bytes in the report:\n{}", run.stdout));
        (run, peak / 1024)
    }

    /// The command [`Sandbox::run_env`] runs.
    pub fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_resize-cli"));
        cmd.current_dir(&self.root);
        if !args.contains(&"--jobs") {
            cmd.args(["--jobs", "2"]);
        }
        cmd.args(args);
        for var in SETTING_VARS {
            cmd.env_remove(var);
        }
        // Colour and wrapping must not depend on the host.
        for var in [
            "CLICOLOR",
            "CLICOLOR_FORCE",
            "NO_COLOR",
            "COLUMNS",
            "RUST_BACKTRACE",
        ] {
            cmd.env_remove(var);
        }
        cmd.envs(env.iter().copied());
        cmd
    }

    /// Every file under `rel` (recursively), as sorted `/`-separated paths
    /// relative to `rel`. Empty when `rel` does not exist.
    pub fn files(&self, rel: &str) -> Vec<String> {
        files_under(&self.path(rel))
    }

    /// `text` with the sandbox's absolute path replaced by `[TMP]`.
    pub fn scrub(&self, text: &str) -> String {
        text.replace(&self.root.display().to_string(), "[TMP]")
            .replace(&self.dir.path().display().to_string(), "[TMP]")
    }
}

/// The output root's state file and its lock (`incremental.rs` tests them).
pub const STATE_FILE: &str = ".resize-state.json";
pub const LOCK_FILE: &str = ".resize-state.lock";

/// Every file under `dir` (recursively), as sorted `/`-separated paths
/// relative to it, but for output roots' state files and their locks.
/// Empty when `dir` does not exist.
pub fn files_under(dir: &Path) -> Vec<String> {
    fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) {
        let Ok(entries) = fs::read_dir(dir) else { return };
        for entry in entries {
            let entry = entry.expect("dir entry");
            let name = entry.file_name().into_string().expect("UTF-8 name");
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            if entry.file_type().expect("file type").is_dir() {
                walk(&entry.path(), &rel, out);
            } else if !rel.ends_with(STATE_FILE) && !rel.ends_with(LOCK_FILE) {
                out.push(rel);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, "", &mut out);
    out.sort();
    out
}

/// The modification time of a file.
#[track_caller]
pub fn mtime(path: &Path) -> SystemTime {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("mtime of {}: {e}", path.display()))
}

/// Sets the modification time of a file.
#[track_caller]
pub fn set_mtime(path: &Path, time: SystemTime) {
    fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(time))
        .unwrap_or_else(|e| panic!("set mtime of {}: {e}", path.display()));
}

/// A fixed point in time, `secs` after the epoch.
pub fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

/// Decodes an output, by content (not extension).
#[track_caller]
pub fn decode(path: &Path) -> image::DynamicImage {
    image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
        .decode()
        .unwrap_or_else(|e| panic!("decode {}: {e}", path.display()))
}

/// The container format of a file, by content.
#[track_caller]
pub fn format_of(path: &Path) -> image::ImageFormat {
    image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
        .format()
        .unwrap_or_else(|| panic!("{} is in no known format", path.display()))
}

/// The RGBA pixel at (`x`, `y`).
pub fn rgba_at(image: &image::DynamicImage, x: u32, y: u32) -> [u8; 4] {
    image.to_rgba8().get_pixel(x, y).0
}

/// Fails unless every channel of `actual` is within `tolerance` of `expected`.
#[track_caller]
pub fn assert_near(what: &str, actual: &[u8], expected: &[u8], tolerance: u8) {
    assert_eq!(actual.len(), expected.len(), "{what}: channel count");
    let close = actual
        .iter()
        .zip(expected)
        .all(|(a, e)| a.abs_diff(*e) <= tolerance);
    assert!(
        close,
        "{what}: got {actual:?}, expected {expected:?} ± {tolerance}"
    );
}

/// `round(h × w / w0)`, at least 1: the height the CLI must give a `w`-wide
/// output of a `w0`×`h` source. Computed here independently of the core.
pub fn expected_height(w0: u32, h: u32, w: u32) -> u32 {
    ((f64::from(h) * f64::from(w) / f64::from(w0)).round() as u32).max(1)
}

/// Replaces the values at the JSON paths given with `"[redacted]"`. A path
/// is `/`-separated object keys, `*` for every element of an array; a path
/// that matches nothing fails the test, so redactions cannot rot.
#[track_caller]
pub fn redact(value: &mut Value, paths: &[&str]) {
    fn go(v: &mut Value, parts: &[&str]) -> usize {
        let Some((first, rest)) = parts.split_first() else {
            *v = Value::String("[redacted]".to_owned());
            return 1;
        };
        match (*first, v) {
            ("*", Value::Array(items)) => items.iter_mut().map(|i| go(i, rest)).sum(),
            (key, Value::Object(map)) => map.get_mut(key).map_or(0, |child| go(child, rest)),
            _ => 0,
        }
    }
    for path in paths {
        let parts: Vec<&str> = path.split('/').collect();
        assert!(go(value, &parts) > 0, "redaction `{path}` matched nothing");
    }
}

/// The `(key, reason)` pairs of the report's `failed` or `skipped` list.
#[track_caller]
pub fn reasons(report: &Value, list: &str) -> BTreeMap<String, String> {
    report[list]
        .as_array()
        .unwrap_or_else(|| panic!("report has no `{list}` list"))
        .iter()
        .map(|r| {
            (
                r["key"].as_str().expect("key").to_owned(),
                r["reason"].as_str().expect("reason").to_owned(),
            )
        })
        .collect()
}

/// Every variant in the report: key → (width, height, format, bytes).
#[track_caller]
pub fn variants(report: &Value) -> BTreeMap<String, (u32, u32, String, Option<u64>)> {
    let mut out = BTreeMap::new();
    for line in report["results"].as_array().expect("results") {
        for v in line["variants"].as_array().expect("variants") {
            let n = |f: &str| u32::try_from(v[f].as_u64().expect("a number")).expect("fits u32");
            out.insert(
                v["key"].as_str().expect("variant key").to_owned(),
                (
                    n("width"),
                    n("height"),
                    v["format"].as_str().expect("format").to_owned(),
                    v["bytes"].as_u64(),
                ),
            );
        }
    }
    out
}

/// The report's `status` of source `key`.
#[track_caller]
pub fn status_of<'a>(report: &'a Value, key: &str) -> &'a str {
    report["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|l| l["key"] == key)
        .unwrap_or_else(|| panic!("no result for `{key}` in {report:#}"))["status"]
        .as_str()
        .expect("status")
}
