//! `cargo xtask bench`: resize-cli against its peers on the same jobs, in
//! one run, as whole processes.
//!
//! Jobs per photo: JPEG (widths 360, 720, 1200, 2200, never wider than the
//! photo, quality 90, orientation applied, metadata stripped) and
//! JPEG+WebP (plus lossy WebP quality 80). Tools: resize-cli (the product),
//! the 2019 pipeline on today's image crate (`resize-bench`'s
//! `pipeline2019`, JPEG job only), vipsthumbnail (one call per output) and
//! sharp (one decode, a clone per output; also with `mozjpeg: true`, JPEG
//! job) when installed. Each figure is
//! the median of `--runs` runs (default 5), tools alternating within each
//! run. CPU is user + sys of the child (`wait4`), peak RSS its `ru_maxrss`
//! (for vipsthumbnail: CPU and wall summed over its calls, RSS the largest).
//! Quality: SSIMULACRA2 of every JPEG output against a linear-light Lanczos3
//! resize of the full decode (`resize-bench`'s `score`). The table goes to
//! stdout and `target/bench/report.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

const WIDTHS: &str = "360,720,1200,2200";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Job {
    Jpeg,
    JpegWebp,
}

impl Job {
    fn name(self) -> &'static str {
        match self {
            Job::Jpeg => "JPEG",
            Job::JpegWebp => "JPEG+WebP",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Tool {
    Resize,
    Sharp,
    /// sharp with `mozjpeg: true`, JPEG job only.
    SharpMozjpeg,
    Vips,
    Pipeline2019,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Resize => "resize-cli",
            Tool::Sharp => "sharp",
            Tool::SharpMozjpeg => "sharp mozjpeg",
            Tool::Vips => "vipsthumbnail",
            Tool::Pipeline2019 => "2019 pipeline",
        }
    }
}

/// One measured run.
#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    cpu: f64,
    wall: f64,
    rss_kib: u64,
}

struct Options {
    corpus: PathBuf,
    runs: usize,
    install_peers: bool,
    smoke: bool,
    lambda: bool,
}

fn parse(args: &[String], root: &Path) -> Result<Options> {
    let mut o = Options {
        corpus: root.join("fixtures/images"),
        runs: 5,
        install_peers: false,
        smoke: false,
        lambda: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--corpus" => o.corpus = PathBuf::from(it.next().context("--corpus needs a directory")?),
            "--runs" => {
                o.runs = it
                    .next()
                    .context("--runs needs a number")?
                    .parse()
                    .context("--runs")?
            }
            "--install-peers" => o.install_peers = true,
            // Also the Lambda path: the benchmark profile's bootstrap against moto, per photo.
            "--lambda" => o.lambda = true,
            // CI: one run, one small fixture, debug build; proves the harness works.
            "--smoke" => {
                o.smoke = true;
                o.runs = 1;
            }
            other => {
                bail!("unknown bench option `{other}` (--corpus DIR, --runs N, --install-peers, --smoke, --lambda)")
            }
        }
    }
    if o.runs == 0 {
        bail!("--runs must be at least 1");
    }
    Ok(o)
}

pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let o = parse(args, root)?;
    let bench_dir = root.join("target/bench");
    fs::create_dir_all(&bench_dir)?;
    if o.install_peers {
        install_peers(&bench_dir)?;
    }
    // The smoke run takes the debug binaries `cargo test --workspace` builds
    // (resize-cli and resize-bench have integration tests that run them), so
    // after CI's test step this builds nothing: a plain `cargo build -p ...`
    // would unify features differently and rebuild the image stack.
    let build: &[&str] = if o.smoke {
        &["test", "--workspace", "--locked", "--no-run"]
    } else {
        &[
            "build",
            "--locked",
            "--profile",
            "perf",
            "-p",
            "resize-cli",
            "-p",
            "resize-bench",
        ]
    };
    let status = crate::cargo().args(build).current_dir(root).status()?;
    if !status.success() {
        bail!("building the benchmark binaries failed");
    }
    let bin = root.join("target").join(if o.smoke { "debug" } else { "perf" });

    let mut photos: Vec<PathBuf> = fs::read_dir(&o.corpus)
        .with_context(|| format!("reading corpus {}", o.corpus.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg"))
        })
        .collect();
    photos.sort();
    if o.smoke {
        // One mid-sized photo that every tool makes several widths of.
        photos = vec![root.join("fixtures/images/photo-16x9.jpg")];
    }
    if photos.is_empty() {
        bail!("no JPEG photos in {}", o.corpus.display());
    }

    let sharp_script = sharp_script(&bench_dir)?;
    let mut tools = vec![Tool::Resize, Tool::Pipeline2019];
    if which("vipsthumbnail") {
        tools.push(Tool::Vips);
    }
    if sharp_script.is_some() {
        tools.extend([Tool::Sharp, Tool::SharpMozjpeg]);
    }
    tools.sort();
    let missing: Vec<&str> = [Tool::Vips, Tool::Sharp]
        .iter()
        .filter(|t| !tools.contains(t))
        .map(|t| t.name())
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "not installed, left out: {} (cargo xtask bench --install-peers)",
            missing.join(", ")
        );
    }

    let mut results: BTreeMap<(String, Job, Tool), Row> = BTreeMap::new();
    for photo in &photos {
        let name = photo
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        for job in [Job::Jpeg, Job::JpegWebp] {
            let mut samples: BTreeMap<Tool, Vec<Sample>> = BTreeMap::new();
            for run in 0..o.runs {
                for &tool in &tools {
                    if matches!(tool, Tool::Pipeline2019 | Tool::SharpMozjpeg) && job == Job::JpegWebp {
                        continue;
                    }
                    let out = bench_dir
                        .join("out")
                        .join(tool.name().replace(' ', "-"))
                        .join(&name)
                        .join(job.name());
                    let _ = fs::remove_dir_all(&out);
                    fs::create_dir_all(&out)?;
                    let s = measure_tool(tool, job, &bin, photo, &out, sharp_script.as_deref())
                        .with_context(|| {
                            format!("{} on {name} ({}), run {}", tool.name(), job.name(), run + 1)
                        })?;
                    samples.entry(tool).or_default().push(s);
                }
            }
            for (tool, s) in samples {
                let out = bench_dir
                    .join("out")
                    .join(tool.name().replace(' ', "-"))
                    .join(&name)
                    .join(job.name());
                let (bytes, jpeg_bytes, score) = outputs(&bin, photo, &out)?;
                results.insert(
                    (name.clone(), job, tool),
                    Row {
                        cpu: median(s.iter().map(|s| s.cpu).collect()),
                        wall: median(s.iter().map(|s| s.wall).collect()),
                        rss_mib: median(s.iter().map(|s| s.rss_kib as f64 / 1024.0).collect()),
                        bytes,
                        jpeg_bytes,
                        score,
                    },
                );
            }
        }
    }
    let mut report = render(&results, &o, &tools);
    // Written before the Lambda part, so a failure there loses nothing.
    fs::write(bench_dir.join("report.md"), &report)?;
    if o.lambda {
        report.push_str(&lambda_figures(root, &o.corpus)?);
        fs::write(bench_dir.join("report.md"), &report)?;
    }
    print!("{report}");
    eprintln!("wrote {}", bench_dir.join("report.md").display());
    Ok(())
}

#[derive(Clone, Copy, Debug)]
struct Row {
    cpu: f64,
    wall: f64,
    rss_mib: f64,
    bytes: u64,
    jpeg_bytes: u64,
    score: Option<f64>,
}

fn measure_tool(
    tool: Tool,
    job: Job,
    bin: &Path,
    photo: &Path,
    out: &Path,
    sharp: Option<&Path>,
) -> Result<Sample> {
    let webp = job == Job::JpegWebp;
    match tool {
        Tool::Resize => {
            let mut c = Command::new(bin.join("resize-cli"));
            c.args([
                "-q",
                "--force",
                "--sizes",
                WIDTHS,
                "--jpeg-quality",
                "90",
                "--webp-quality",
                "80",
            ])
            .args(["--formats", if webp { "jpeg,webp" } else { "jpeg" }])
            .arg("--out")
            .arg(out)
            .arg(photo);
            measure(c)
        }
        Tool::Pipeline2019 => {
            let mut c = Command::new(bin.join("pipeline2019"));
            c.arg(photo).arg(out);
            measure(c)
        }
        Tool::Sharp | Tool::SharpMozjpeg => {
            let mut c = Command::new("node");
            c.arg(sharp.context("sharp is not installed")?)
                .arg(photo)
                .arg(out)
                .arg(if webp { "jpeg,webp" } else { "jpeg" })
                .args([WIDTHS, "90", "80"]);
            if tool == Tool::SharpMozjpeg {
                c.arg("mozjpeg");
            }
            measure(c)
        }
        Tool::Vips => {
            // vipsthumbnail makes one output per call; upscaling is off by
            // default, so widths over the photo's are still written at the
            // photo's size — we skip those calls, as the other tools do.
            let width = photo_width(photo)?;
            let mut total = Sample::default();
            for w in WIDTHS
                .split(',')
                .filter_map(|w| w.parse::<u32>().ok())
                .filter(|&w| w <= width)
            {
                let mut outs = vec![format!("{}/%s-{w}.jpg[Q=90,strip]", out.display())];
                if webp {
                    outs.push(format!("{}/%s-{w}.webp[Q=80,strip]", out.display()));
                }
                for o in outs {
                    let mut c = Command::new("vipsthumbnail");
                    c.arg(photo).args(["--size", &format!("{w}x"), "-o", &o]);
                    let s = measure(c)?;
                    total.cpu += s.cpu;
                    total.wall += s.wall;
                    total.rss_kib = total.rss_kib.max(s.rss_kib);
                }
            }
            Ok(total)
        }
    }
}

/// The upright width of a photo, from its header and EXIF orientation.
fn photo_width(photo: &Path) -> Result<u32> {
    let mut decoder = image::ImageReader::open(photo)?
        .with_guessed_format()?
        .into_decoder()?;
    use image::ImageDecoder;
    let (w, h) = decoder.dimensions();
    let o = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    use image::metadata::Orientation as O;
    Ok(match o {
        O::Rotate90 | O::Rotate270 | O::Rotate90FlipH | O::Rotate270FlipH => h,
        _ => w,
    })
}

/// Runs a child and reads its resource usage with `wait4`.
fn measure(mut cmd: Command) -> Result<Sample> {
    let started = Instant::now();
    let child = cmd
        .stdout(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("starting {:?}", cmd.get_program()))?;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own child, not yet waited for (we never call
    // `Child::wait`), and both pointers are to live locals.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed().as_secs_f64();
    if rc != pid {
        bail!("wait4 failed: {}", std::io::Error::last_os_error());
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        bail!("{:?} failed (status {status})", cmd.get_program());
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(Sample {
        cpu: secs(usage.ru_utime) + secs(usage.ru_stime),
        wall,
        rss_kib: usage.ru_maxrss as u64,
    })
}

/// Total bytes, JPEG bytes and mean SSIMULACRA2 of the JPEG outputs.
fn outputs(bin: &Path, photo: &Path, out: &Path) -> Result<(u64, u64, Option<f64>)> {
    let files = crate::files_under(out)?;
    let bytes = files
        .iter()
        .filter_map(|f| fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let jpegs: Vec<&PathBuf> = files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "jpg"))
        .collect();
    let jpeg_bytes = jpegs
        .iter()
        .filter_map(|f| fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    if jpegs.is_empty() {
        return Ok((bytes, 0, None));
    }
    let scored = Command::new(bin.join("score")).arg(photo).args(&jpegs).output()?;
    if !scored.status.success() {
        bail!("score failed: {}", String::from_utf8_lossy(&scored.stderr));
    }
    let scores: Vec<f64> = String::from_utf8_lossy(&scored.stdout)
        .lines()
        .filter_map(|l| l.rsplit('\t').next()?.parse().ok())
        .collect();
    let mean = (!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64);
    Ok((bytes, jpeg_bytes, mean))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn render(results: &BTreeMap<(String, Job, Tool), Row>, o: &Options, tools: &[Tool]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Benchmark\n");
    let _ = writeln!(
        s,
        "Corpus `{}`, median of {} run(s), tools alternating; {} cores. Widths {WIDTHS} (never wider \
         than the photo), JPEG q90, WebP q80. CPU = user+sys of the whole process; RSS = peak. \
         SSIMULACRA2: mean over JPEG outputs against a linear-light Lanczos3 reference (higher is better).\n",
        o.corpus.display(),
        o.runs,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let _ = writeln!(
        s,
        "| photo | job | tool | CPU s | wall s | peak RSS MiB | bytes | JPEG bytes | SSIMULACRA2 |"
    );
    let _ = writeln!(s, "|---|---|---|---:|---:|---:|---:|---:|---:|");
    for ((photo, job, tool), r) in results {
        let _ = writeln!(
            s,
            "| {photo} | {} | {} | {:.3} | {:.3} | {:.0} | {} | {} | {} |",
            job.name(),
            tool.name(),
            r.cpu,
            r.wall,
            r.rss_mib,
            r.bytes,
            r.jpeg_bytes,
            r.score.map_or("-".to_owned(), |v| format!("{v:.2}"))
        );
    }
    let _ = writeln!(s, "\n## Ratios of resize-cli to each peer (median over photos)\n");
    let _ = writeln!(
        s,
        "| job | peer | CPU | wall | peak RSS | JPEG bytes | SSIMULACRA2 difference |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|");
    let photos: Vec<&String> = {
        let mut p: Vec<&String> = results.keys().map(|k| &k.0).collect();
        p.dedup();
        p
    };
    for job in [Job::Jpeg, Job::JpegWebp] {
        for &peer in tools.iter().filter(|t| **t != Tool::Resize) {
            let mut cpu = Vec::new();
            let mut wall = Vec::new();
            let mut rss = Vec::new();
            let mut bytes = Vec::new();
            let mut score = Vec::new();
            for photo in &photos {
                let (Some(a), Some(b)) = (
                    results.get(&((*photo).clone(), job, Tool::Resize)),
                    results.get(&((*photo).clone(), job, peer)),
                ) else {
                    continue;
                };
                if b.cpu <= 0.0 || b.wall <= 0.0 {
                    continue;
                }
                cpu.push(a.cpu / b.cpu);
                wall.push(a.wall / b.wall);
                rss.push(a.rss_mib / b.rss_mib);
                if b.jpeg_bytes > 0 {
                    bytes.push(a.jpeg_bytes as f64 / b.jpeg_bytes as f64);
                }
                if let (Some(x), Some(y)) = (a.score, b.score) {
                    score.push(x - y);
                }
            }
            if cpu.is_empty() {
                continue;
            }
            let _ = writeln!(
                s,
                "| {} | {} | {:.2}x | {:.2}x | {:.2}x | {:.2}x | {:+.2} |",
                job.name(),
                peer.name(),
                median(cpu),
                median(wall),
                median(rss),
                median(bytes),
                median(score)
            );
        }
    }
    s
}

fn which(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// sharp's side of the JPEG and JPEG+WebP jobs (`xtask/bench/sharp-job.mjs`).
const SHARP_JOB: &str = include_str!("../bench/sharp-job.mjs");

/// Writes the sharp job script when sharp is installed under `target/bench/node`.
fn sharp_script(bench_dir: &Path) -> Result<Option<PathBuf>> {
    let node_dir = bench_dir.join("node");
    if !node_dir.join("node_modules/sharp").exists() || !which("node") {
        return Ok(None);
    }
    let script = node_dir.join("sharp-job.mjs");
    // Written next to node_modules, where `import sharp` resolves.
    fs::write(&script, SHARP_JOB)?;
    Ok(Some(script))
}

fn install_peers(bench_dir: &Path) -> Result<()> {
    if !which("vipsthumbnail") {
        let ok = Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", "libvips-tools"])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("warning: could not install libvips-tools (apt-get)");
        }
    }
    let node_dir = bench_dir.join("node");
    if !node_dir.join("node_modules/sharp").exists() {
        fs::create_dir_all(&node_dir)?;
        let status = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(&node_dir)
            .arg("sharp@0.34")
            .status()
            .context("running npm (Node.js) to install sharp")?;
        if !status.success() {
            bail!("npm install sharp failed");
        }
    }
    Ok(())
}

/// The Lambda path: the benchmark profile's `bootstrap` serving S3 events against moto,
/// driven by the ignored `lambda_bench` test of resize-lambda's harness.
fn lambda_figures(root: &Path, corpus: &Path) -> Result<String> {
    let status = crate::cargo()
        .args([
            "build",
            "--locked",
            "--profile",
            "perf",
            "-p",
            "resize-lambda",
            "--bin",
            "bootstrap",
        ])
        .current_dir(root)
        .status()?;
    if !status.success() {
        bail!("building the benchmark bootstrap failed");
    }
    let bootstrap = root.join("target/perf/bootstrap");
    let corpus = fs::canonicalize(corpus).with_context(|| format!("corpus {}", corpus.display()))?;
    let mut text = String::from(
        "\n## Lambda path\n\nThe `bootstrap` (benchmark profile `perf`) serving one S3 event per photo through the Runtime API, \
         reading and writing moto's S3 server on loopback (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE=512`). \
         Invocation = event handed out → answer posted, including the S3 GET, HEAD checks and PUTs. \
         Warm figures are medians of 5; peak RSS is the process's VmHWM after all of them.\n\n",
    );
    for formats in ["jpeg", "jpeg,webp"] {
        let out = crate::cargo()
            .args([
                "test",
                "--locked",
                "-p",
                "resize-lambda",
                "--test",
                "lambda",
                "--",
                "--ignored",
                "--exact",
                "bench::lambda_bench",
                "--nocapture",
            ])
            .env("RESIZE_BOOTSTRAP", &bootstrap)
            .env("RESIZE_BENCH_CORPUS", &corpus)
            .env("RESIZE_BENCH_FORMATS", formats)
            .current_dir(root)
            .stderr(Stdio::inherit())
            .output()?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!("the Lambda benchmark failed:\n{stdout}");
        }
        let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with('|')).collect();
        // The header once, then each run's rows.
        let skip = if formats == "jpeg" { 0 } else { 2 };
        for row in rows.into_iter().skip(skip) {
            text.push_str(row);
            text.push('\n');
        }
    }
    Ok(text)
}
