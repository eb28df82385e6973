//! Per-image lines, the progress display and the end-of-run summary.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use resize_core::{error_chain, Action, Decision, Outcome, Plan, Report};
use serde::Serialize;

/// What happened to one key, as printed and summarised.
#[derive(Debug, Serialize)]
pub struct ImageLine {
    pub key: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub bytes_in: u64,
    pub variants: Vec<Variant>,
    /// The manifest written (or, in a dry run, planned with what its key
    /// holds), when the run writes manifests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<ManifestLine>,
    /// A folder that could not be listed, not an image: listed with the
    /// failures, never counted as an image.
    #[serde(skip)]
    pub folder: bool,
}

/// The JSON form of the core's `ManifestOutput`.
#[derive(Debug, Serialize)]
pub struct ManifestLine {
    pub key: String,
    /// Its size; absent in a dry run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// What the key holds now (dry run only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<String>,
    /// Written, or a run would write it (with its variants even when it
    /// is current itself).
    #[serde(skip)]
    pub writes: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Written,
    Planned,
    Skipped,
    Failed,
}

/// The JSON form of the core's `Variant`.
#[derive(Debug, Serialize)]
pub struct Variant {
    pub key: String,
    pub width: u32,
    pub height: u32,
    pub format: String,
    /// Encoded size; absent in a dry run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// What the key holds now (dry run only): `missing`, `current`, or why
    /// it is stale.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<String>,
    /// Whether the run writes it (dry run only): the core's decision
    /// (`Planned::decision`), never read from `found`.
    #[serde(skip)]
    pub writes: bool,
    /// Why a current variant is written anyway (`forced`, `size unknown`),
    /// from the same decision; `None` when `found` says why.
    #[serde(skip)]
    pub rewritten: Option<&'static str>,
}

impl ImageLine {
    pub fn failed(key: &str, reason: String) -> ImageLine {
        ImageLine {
            key: key.to_owned(),
            status: Status::Failed,
            reason: Some(reason),
            bytes_in: 0,
            variants: Vec::new(),
            manifest: None,
            folder: false,
        }
    }

    /// A folder that could not be listed.
    pub fn folder_failed(key: &str, reason: String) -> ImageLine {
        ImageLine {
            folder: true,
            ..ImageLine::failed(key, reason)
        }
    }

    pub fn from_report(report: Report) -> ImageLine {
        let (status, reason, variants) = match report.outcome {
            Outcome::Written(vs) => (Status::Written, None, vs.into_iter().map(Variant::from).collect()),
            Outcome::Skipped(skip) => (Status::Skipped, Some(skip.to_string()), Vec::new()),
            Outcome::Failed(e) => (Status::Failed, Some(error_chain(&e)), Vec::new()),
            // `Outcome` is non-exhaustive; a new kind is reported, not lost.
            #[allow(unreachable_patterns)]
            other => (Status::Failed, Some(format!("{other:?}")), Vec::new()),
        };
        ImageLine {
            key: report.key,
            status,
            reason,
            bytes_in: report.bytes_in,
            variants,
            manifest: report.manifest.map(|m| ManifestLine {
                key: m.key,
                bytes: m.bytes,
                found: None,
                writes: true,
            }),
            folder: false,
        }
    }

    fn bytes_out(&self) -> u64 {
        let manifest = self.manifest.as_ref().and_then(|m| m.bytes);
        self.variants.iter().filter_map(|v| v.bytes).chain(manifest).sum()
    }

    /// Whether a manifest was written, or a run would write one.
    fn manifest_stale(&self) -> bool {
        self.manifest.as_ref().is_some_and(|m| m.writes)
    }
}

/// A plan as a dry run prints it: the variants a run would write, each
/// with what its key holds now.
pub fn planned(plan: Plan<'_>) -> ImageLine {
    let writes = plan.writes_manifest();
    let (status, reason, variants) = match &plan.action {
        Action::Write(planned) => {
            let variants = planned
                .iter()
                .map(|p| Variant {
                    found: Some(p.found.to_string()),
                    writes: p.decision.writes(),
                    rewritten: match p.decision {
                        Decision::Forced | Decision::SizeUnknown => Some(p.decision.name()),
                        _ => None,
                    },
                    ..Variant::from(p.variant.clone())
                })
                .collect();
            (Status::Planned, None, variants)
        }
        Action::Skip(skip) => (Status::Skipped, Some(skip.to_string()), Vec::new()),
        Action::Fail(e) => (Status::Failed, Some(error_chain(e)), Vec::new()),
        // `Action` is non-exhaustive; a new kind is reported, not lost.
        #[allow(unreachable_patterns)]
        other => (Status::Failed, Some(format!("{other:?}")), Vec::new()),
    };
    let manifest = match &plan.action {
        Action::Write(_) => plan.manifest.map(|m| ManifestLine {
            key: m.key,
            bytes: None,
            found: Some(m.found.to_string()),
            writes,
        }),
        _ => None,
    };
    ImageLine {
        key: plan.key,
        status,
        reason,
        bytes_in: plan.bytes_in,
        variants,
        manifest,
        folder: false,
    }
}

impl From<resize_core::Variant> for Variant {
    fn from(v: resize_core::Variant) -> Variant {
        Variant {
            key: v.key,
            width: v.width,
            height: v.height,
            format: v.format.to_string(),
            bytes: v.bytes,
            found: None,
            writes: true,
            rewritten: None,
        }
    }
}

/// A progress bar on a terminal, plain lines on stderr otherwise.
pub struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
}

impl Progress {
    /// A bar (on a terminal, unless quiet) of images done out of those
    /// queued so far (`listed`), with their rate and the time left.
    pub fn new(total: u64, terminal: bool, quiet: bool) -> Progress {
        let bar = (terminal && !quiet).then(|| {
            let bar = ProgressBar::new(total);
            // 20 columns of bar leave room for the counts in a 60-column
            // terminal; the rate with one decimal; the time left only once
            // there is a rate to tell it from (a quick first failure made
            // it "0s" with minutes of work left).
            if let Ok(style) = ProgressStyle::with_template(
                "{bar:20} {pos}/{len}{prefix} images  {rate}  ETA {left}  {wide_msg}",
            ) {
                let style = style
                    .with_key("rate", |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{:.1}/s", state.per_sec());
                    })
                    .with_key("left", |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                        if state.elapsed() < std::time::Duration::from_secs(3) || state.pos() < 2 {
                            let _ = write!(w, "…");
                        } else {
                            let _ = write!(w, "{:#}", indicatif::HumanDuration(state.eta()));
                        }
                    });
                bar.set_style(style);
            }
            bar
        });
        Progress { bar, quiet }
    }

    /// `n` more images are queued.
    pub fn listed(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc_length(n);
        }
    }

    /// Whether a bucket is still being listed (the total will grow).
    pub fn listing(&self, on: bool) {
        if let Some(bar) = &self.bar {
            bar.set_prefix(if on { "+ (listing)" } else { "" });
        }
    }

    pub fn image_done(&self, line: &ImageLine) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(bar) => {
                if line.status == Status::Failed {
                    bar.println(printable(&format!(
                        "FAIL {}: {}",
                        line.key,
                        line.reason.as_deref().unwrap_or("")
                    )));
                }
                if line.status == Status::Planned {
                    bar.println(plan_text(line));
                }
                bar.set_message(printable(&line.key));
                bar.inc(1);
            }
            None => {
                let text = match line.status {
                    Status::Written => format!(
                        "ok   {} ({} variants{})",
                        printable(&line.key),
                        line.variants.len(),
                        if line.manifest.is_some() { ", manifest" } else { "" }
                    ),
                    Status::Planned => plan_text(line),
                    Status::Skipped => printable(&format!(
                        "skip {}: {}",
                        line.key,
                        line.reason.as_deref().unwrap_or("")
                    )),
                    Status::Failed => printable(&format!(
                        "FAIL {}: {}",
                        line.key,
                        line.reason.as_deref().unwrap_or("")
                    )),
                };
                // Progress lines are best effort; a closed stderr must not stop the run.
                let _ = writeln!(std::io::stderr(), "{text}");
            }
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// A dry run's lines for one source: how many variants it writes, then
/// each variant, whether it is written, and what its path holds now.
fn plan_text(line: &ImageLine) -> String {
    let writes = line.variants.iter().filter(|v| v.writes).count();
    let mut text = format!("plan {} ({writes} variants)", printable(&line.key));
    for v in &line.variants {
        let what = if v.writes { "write" } else { "keep " };
        let found = v.found.as_deref().unwrap_or("");
        text.push_str(&format!(
            "\n       {what} {} ({}x{}): {found}",
            printable(&v.key),
            v.width,
            v.height
        ));
    }
    if let Some(m) = &line.manifest {
        let what = if m.writes { "write" } else { "keep " };
        let found = m.found.as_deref().unwrap_or("");
        text.push_str(&format!(
            "\n       {what} {} (manifest): {found}",
            printable(&m.key)
        ));
    }
    text
}

/// `text` for one line of a terminal: control characters in file names (a
/// newline, an escape sequence) are shown escaped (`\n`), never acted on.
pub fn printable(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The end-of-run summary; `--json` prints it as one document.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub dry_run: bool,
    pub images: usize,
    pub images_written: usize,
    pub images_skipped: usize,
    pub images_failed: usize,
    /// Folders that could not be listed (their images are not counted).
    #[serde(skip_serializing_if = "is_zero")]
    pub folders_failed: usize,
    pub variants_written: usize,
    /// Variants a run would write (dry run): those not current.
    pub variants_planned: usize,
    /// Manifests written, or (dry run) a run would write.
    pub manifests: usize,
    /// Dry run: why the variants a run would write are stale, with how
    /// many of each (`missing`, `made with other settings`, `not made by
    /// resize`: objects without our metadata a run would replace, …).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub stale: BTreeMap<String, usize>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub seconds: f64,
    /// Peak resident memory of this run (Linux: `VmHWM`), `null` elsewhere.
    pub peak_rss_bytes: Option<u64>,
    pub failed: Vec<Reason>,
    pub skipped: Vec<Reason>,
    pub results: Vec<ImageLine>,
}

#[derive(Debug, Serialize)]
pub struct Reason {
    pub key: String,
    pub reason: String,
}

impl Summary {
    pub fn new(results: Vec<ImageLine>, elapsed: Duration, dry_run: bool) -> Summary {
        let count = |s: Status| results.iter().filter(|l| l.status == s && !l.folder).count();
        let reasons = |s: Status| -> Vec<Reason> {
            results
                .iter()
                .filter(|l| l.status == s)
                .map(|l| Reason {
                    key: l.key.clone(),
                    reason: l.reason.clone().unwrap_or_default(),
                })
                .collect()
        };
        let variants = |s: Status| -> usize {
            results
                .iter()
                .filter(|l| l.status == s)
                .flat_map(|l| &l.variants)
                .filter(|v| v.writes)
                .count()
        };
        let mut stale = BTreeMap::new();
        // What each variant a dry run writes holds now; a current one
        // written only because the run is forced counts as `forced`.
        for v in results.iter().flat_map(|l| &l.variants).filter(|v| v.writes) {
            let Some(found) = v.found.as_deref() else { continue };
            let reason = v.rewritten.unwrap_or(found);
            *stale.entry(reason.to_owned()).or_insert(0) += 1;
        }
        Summary {
            dry_run,
            images: results.iter().filter(|l| !l.folder).count(),
            folders_failed: results.iter().filter(|l| l.folder).count(),
            images_written: count(Status::Written),
            images_skipped: count(Status::Skipped),
            images_failed: count(Status::Failed),
            variants_written: variants(Status::Written),
            variants_planned: variants(Status::Planned),
            manifests: results.iter().filter(|l| l.manifest_stale()).count(),
            stale,
            bytes_in: results.iter().map(|l| l.bytes_in).sum(),
            bytes_out: results.iter().map(ImageLine::bytes_out).sum(),
            seconds: elapsed.as_secs_f64(),
            peak_rss_bytes: peak_rss_bytes(),
            failed: reasons(Status::Failed),
            skipped: reasons(Status::Skipped),
            results,
        }
    }

    pub fn print(&self, json: bool) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        if json {
            serde_json::to_writer_pretty(&mut out, self)?;
            writeln!(out)?;
        } else {
            let verb = if self.dry_run { "planned" } else { "written" };
            writeln!(
                out,
                "{} images: {} {verb}, {} skipped, {} failed; {} variants {verb}; {} in, {} out; {:.2} s",
                self.images,
                if self.dry_run {
                    self.images - self.images_skipped - self.images_failed
                } else {
                    self.images_written
                },
                self.images_skipped,
                self.images_failed,
                if self.dry_run {
                    self.variants_planned
                } else {
                    self.variants_written
                },
                human(self.bytes_in),
                human(self.bytes_out),
                self.seconds
            )?;
            if self.manifests > 0 {
                writeln!(out, "{} manifests {verb}", self.manifests)?;
            }
            if self.folders_failed > 0 {
                writeln!(
                    out,
                    "{} folders could not be read (see below)",
                    self.folders_failed
                )?;
            }
            if let Some(peak) = self.peak_rss_bytes {
                writeln!(out, "peak memory {:.1} MB", peak as f64 / f64::from(1 << 20))?;
            }
            if self.dry_run && self.variants_planned > 0 {
                let sources = self.images - self.images_skipped - self.images_failed;
                writeln!(
                    out,
                    "a real run would read {sources} sources whole and write {} variants (one PUT each on S3)",
                    self.variants_planned
                )?;
            }
            if !self.stale.is_empty() {
                let why: Vec<String> = self.stale.iter().map(|(k, n)| format!("{n} {k}")).collect();
                writeln!(out, "stale variants: {}", why.join(", "))?;
            }
            for f in &self.failed {
                writeln!(out, "{}", printable(&format!("failed: {}: {}", f.key, f.reason)))?;
            }
        }
        out.flush()?;
        Ok(())
    }
}

/// This process's peak resident memory, from `/proc/self/status`. Unlike
/// `getrusage`, whose figure carries over the parent's memory across
/// `fork`/`exec`, `VmHWM` belongs to this program's own address space.
fn peak_rss_bytes() -> Option<u64> {
    proc_bytes("/proc/self/status", "VmHWM:")
}

/// A `field: N kB` line of a `/proc` file, in bytes (Linux only).
pub fn proc_bytes(file: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    let kib: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
