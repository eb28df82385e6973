//! `--html PAGE` in a real browser: headless Chromium loads the page the
//! CLI wrote and reports, per photo, which variant it chose, whether it
//! loaded and what it shows. The markup alone cannot prove that `sizes`,
//! `srcset`, the WebP `<source>`, the relative percent-encoded URLs and
//! the `width`/`height` attributes work together; a browser can.
//!
//! Chromium is Debian's `/usr/bin/chromium` (or `$CHROMIUM`); `.ci/run`
//! installs it. A missing browser fails the tests rather than skipping
//! them, so CI cannot pass without having looked.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{decode, Sandbox};

/// One source photo of the page and what it must look like upright.
struct Photo {
    /// The source key, relative to the input folder: also the `<img>`'s alt.
    key: &'static str,
    /// Upright size in pixels.
    size: (u32, u32),
    /// Colours at the centres of the top-left and bottom-right quadrants,
    /// with the tolerance for the codecs' losses.
    top_left: [u8; 3],
    bottom_right: [u8; 3],
    tolerance: u8,
}

/// The generated gradients: red follows x in `landscape`, so a mirrored or
/// rotated image shows as wrong colours, not just a wrong size.
fn landscape(x: u32, y: u32, w: u32, h: u32) -> [u8; 3] {
    [ramp(x, w), ramp(y, h), 60]
}
fn portrait(x: u32, y: u32, w: u32, h: u32) -> [u8; 3] {
    [60, ramp(x, w), ramp(y, h)]
}
fn beach(x: u32, y: u32, w: u32, h: u32) -> [u8; 3] {
    [ramp(y, h), 200, ramp(x, w)]
}
fn ramp(v: u32, of: u32) -> u8 {
    u8::try_from(v * 255 / of).expect("below 256")
}

type Gradient = fn(u32, u32, u32, u32) -> [u8; 3];

/// The generated sources: all wide enough for the 2200 px variant but the
/// portrait, whose 1600 px stop it at 1200 (never upscaled). The beach, in
/// a subfolder, has a space and a comma in its name: unless the page
/// percent-encodes them, `srcset` ends its URLs at the space and the
/// browser drops the WebP candidates.
const GENERATED: [(&str, u32, u32, Gradient); 3] = [
    ("landscape.jpg", 2400, 1600, landscape),
    ("portrait.jpg", 1600, 2400, portrait),
    ("trips/summer 2024, beach.jpg", 2400, 1600, beach),
];

/// Every photo on the page, in the page's (key) order.
fn photos() -> Vec<Photo> {
    let mut out: Vec<Photo> = GENERATED
        .iter()
        .map(|&(key, w, h, f)| Photo {
            key,
            size: (w, h),
            top_left: f(w / 4, h / 4, w, h),
            bottom_right: f(3 * w / 4, 3 * h / 4, w, h),
            tolerance: 40,
        })
        .collect();
    // Stored 4032×3024 with EXIF orientation 6; the quadrant colours are
    // fixtures/README.md's (as in pixels.rs). A variant that kept the tag
    // after being rotated would be turned again by the browser.
    out.push(Photo {
        key: "phone-orient6.jpg",
        size: (3024, 4032),
        top_left: [212, 58, 48],
        bottom_right: [45, 64, 193],
        tolerance: 60,
    });
    out.sort_by_key(|p| p.key);
    out
}

/// The sandbox after `resize-cli --formats jpeg,webp --html site/index.html
/// --out out in`: the page one folder away from the variants, so every URL
/// on it starts with `../out/`.
fn site() -> Sandbox {
    let sb = Sandbox::new();
    for (key, w, h, f) in GENERATED {
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y, w, h)));
        let path = sb.path(&format!("in/{key}"));
        fs::create_dir_all(path.parent().expect("a parent")).expect("create input dir");
        img.save_with_format(&path, image::ImageFormat::Jpeg)
            .unwrap_or_else(|e| panic!("write {key}: {e}"));
    }
    sb.copy_fixture("phone-orient6.jpg", "in/phone-orient6.jpg");
    sb.run(&[
        "--formats",
        "jpeg,webp",
        "--html",
        "site/index.html",
        "--out",
        "out",
        "in",
    ])
    .expect_code(0);
    sb
}

/// The page's inline probe. After `load` (and after any image still
/// loading then has finished), it writes a JSON report into
/// `<pre id="probe">` for `--dump-dom` to carry out. Each image is drawn
/// into a canvas, which decodes it synchronously: the colours prove the
/// pixels arrived upright. (`img.decode()` would be the obvious wait, but
/// under `--virtual-time-budget` its promises stall: at 1400 px only some
/// resolved within the budget and the report never appeared.)
const PROBE: &str = r#"<script>
(() => {
  const settled = img => img.complete ? Promise.resolve() : new Promise(done => {
    img.addEventListener("load", done, { once: true });
    img.addEventListener("error", done, { once: true });
  });
  const colours = img => {
    const canvas = document.createElement("canvas");
    canvas.width = 100;
    canvas.height = 100;
    const ctx = canvas.getContext("2d");
    try {
      ctx.drawImage(img, 0, 0, 100, 100);
      const at = (x, y) => [...ctx.getImageData(x, y, 1, 1).data.slice(0, 3)];
      return { top_left: at(25, 25), bottom_right: at(75, 75) };
    } catch (e) {
      return { error: String(e) };
    }
  };
  addEventListener("load", async () => {
    const images = [...document.images];
    await Promise.all(images.map(settled));
    const report = {
      inner_width: innerWidth,
      inner_height: innerHeight,
      device_pixel_ratio: devicePixelRatio,
      scroll_height: document.documentElement.scrollHeight,
      images: images.map(img => {
        const box = img.getBoundingClientRect();
        const src = img.currentSrc;
        return {
          alt: img.alt,
          file: decodeURIComponent(src.slice(src.lastIndexOf("/") + 1)),
          natural_width: img.naturalWidth,
          complete: img.complete,
          width: img.getAttribute("width"),
          height: img.getAttribute("height"),
          box: [box.width, box.height],
          ...colours(img),
        };
      }),
    };
    const pre = document.createElement("pre");
    pre.id = "probe";
    pre.textContent = JSON.stringify(report);
    document.body.append(pre);
  });
})();
</script>
"#;

/// The Chromium binary, or a failure that says how to get one.
fn chromium_binary() -> PathBuf {
    let path = std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        path.is_file(),
        "no Chromium at {}: these tests drive the --html page in a real browser. \
         Install it with `apt-get install chromium` (.ci/run does), or set CHROMIUM to its path",
        path.display()
    );
    path
}

/// How long one Chromium run may take before the test calls it hung. The
/// runs take a second or two; the budget is for a loaded CI machine.
const HANG: Duration = Duration::from_secs(60);

/// Runs headless Chromium on `page` with `args`, its own profile `name`
/// in the sandbox, and returns its stdout. Its stderr (dbus and GPU noise
/// on a server) only matters when it fails.
#[track_caller]
fn chromium(sb: &Sandbox, name: &str, args: &[&str], page: &Path) -> String {
    let dir = sb.path(&format!("chromium/{name}"));
    fs::create_dir_all(&dir).expect("create Chromium dir");
    let (stdout, stderr) = (dir.join("stdout"), dir.join("stderr"));
    let file = |p: &Path| fs::File::create(p).expect("create output file");
    let mut cmd = Command::new(chromium_binary());
    cmd.args([
        "--headless",
        // Tests run as root in CI, where the sandbox refuses to start.
        "--no-sandbox",
        "--disable-gpu",
        // Containers give /dev/shm 64 MB, too little for a tall page.
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
        "--allow-file-access-from-files",
        // Fast-forwards timers and waits for loads, then dumps or shoots;
        // on an idle page it returns as soon as nothing is pending.
        "--virtual-time-budget=10000",
    ])
    .arg(format!("--user-data-dir={}", dir.join("profile").display()))
    .args(args)
    .arg(file_url(page))
    // Files, not pipes: a renderer outliving a killed browser cannot
    // block the test on an open pipe.
    .stdin(Stdio::null())
    .stdout(file(&stdout))
    .stderr(file(&stderr))
    .env("HOME", &dir)
    .env("XDG_CONFIG_HOME", dir.join("config"))
    .env("XDG_CACHE_HOME", dir.join("cache"));
    let mut child = cmd.spawn().expect("start Chromium");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for Chromium") {
            break status;
        }
        if started.elapsed() > HANG {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "Chromium {args:?} still running after {HANG:?}; killed.\nstderr:\n{}",
                fs::read_to_string(&stderr).unwrap_or_default()
            );
        }
        thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "Chromium {args:?} failed: {status}\nstderr:\n{}",
        fs::read_to_string(&stderr).unwrap_or_default()
    );
    fs::read_to_string(&stdout).expect("Chromium's stdout")
}

/// `file://` URL of an absolute path, percent-encoding all but the
/// characters a path segment keeps as they are.
fn file_url(path: &Path) -> String {
    let mut url = String::from("file://");
    for &b in path.to_str().expect("UTF-8 path").as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            url.push(char::from(b));
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    url
}

/// The probe's report of the page in a `width`-wide window at `dpr`
/// device pixels per CSS pixel. The probe page is a copy of the CLI's
/// page beside it (same relative URLs), with [`PROBE`] appended; the
/// CLI's page itself is left as it is.
#[track_caller]
fn probe(sb: &Sandbox, width: u32, dpr: u32) -> Value {
    let page = fs::read_to_string(sb.path("site/index.html")).expect("the page");
    assert_eq!(page.matches("</body>").count(), 1, "one </body> in:\n{page}");
    let probed = sb.write(
        "site/probe.html",
        page.replace("</body>", &format!("{PROBE}</body>")).as_bytes(),
    );
    // Taller than the page: the images are `loading="lazy"` and load only
    // near the viewport, so every one must be inside it.
    let dom = chromium(
        sb,
        &format!("probe-{width}-{dpr}"),
        &[
            &format!("--window-size={width},8000"),
            &format!("--force-device-scale-factor={dpr}"),
            "--dump-dom",
        ],
        &probed,
    );
    let Some(json) = dom
        .split_once("<pre id=\"probe\">")
        .and_then(|(_, rest)| rest.split_once("</pre>"))
        .map(|(json, _)| json)
    else {
        panic!("the probe wrote no report: `load` never came or an image never settled. DOM:\n{dom}");
    };
    // The dump escapes text as HTML.
    let json = json
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&");
    let report: Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("probe report ({e}):\n{json}"));
    let n = |f: &str| report[f].as_f64().unwrap_or_else(|| panic!("{f} in {report:#}"));
    assert_eq!(
        (n("inner_width"), n("device_pixel_ratio")),
        (f64::from(width), f64::from(dpr)),
        "the window Chromium gave (innerWidth, devicePixelRatio)"
    );
    assert!(
        n("scroll_height") <= n("inner_height"),
        "the page is taller than the window, so lazy images below it would not load: {report:#}"
    );
    report
}

/// Which WebP variant the browser must choose.
#[derive(Clone, Copy, Debug)]
enum Want {
    AtMost(u32),
    Exactly(u32),
}

/// Checks the report's images against `photos()`, one `(key, Want)` per
/// photo, in page order: each loaded, chose the wanted WebP, carries
/// `width`/`height` of the upright aspect, is laid out at that aspect and
/// shows the right colours the right way up.
#[track_caller]
fn check(report: &Value, table: &[(&str, Want)]) {
    let images = report["images"].as_array().expect("images");
    let photos = photos();
    let keys: Vec<&str> = photos.iter().map(|p| p.key).collect();
    let alts: Vec<&str> = images.iter().map(|i| i["alt"].as_str().expect("alt")).collect();
    assert_eq!(alts, keys, "one <img> per source, alt = source key, in key order");
    assert_eq!(table.iter().map(|t| t.0).collect::<Vec<_>>(), keys, "the table");
    for ((photo, image), (_, want)) in photos.iter().zip(images).zip(table) {
        let what = format!("{} in {report:#}", photo.key);
        assert_eq!(image["complete"], true, "complete: {what}");
        assert!(
            image["natural_width"].as_u64() > Some(0),
            "not decoded (naturalWidth 0): {what}"
        );
        // The file the browser chose: `{stem}-{width}.webp`.
        let file = image["file"].as_str().expect("file");
        let name = photo.key.rsplit('/').next().expect("a name");
        let stem = &name[..name.rfind('.').expect("an extension")];
        let chosen = file
            .strip_prefix(&format!("{stem}-"))
            .and_then(|rest| rest.strip_suffix(".webp"))
            .and_then(|w| w.parse::<u32>().ok())
            .unwrap_or_else(|| panic!("chose {file}, not one of {stem}-*.webp: {what}"));
        match *want {
            Want::AtMost(most) => assert!(chosen <= most, "chose {file}, wanted ≤ {most}: {what}"),
            Want::Exactly(w) => assert_eq!(chosen, w, "chose {file}: {what}"),
        }
        // The attributes reserve the upright aspect before the image
        // arrives; rounding allows a pixel of height.
        let (w0, h0) = (f64::from(photo.size.0), f64::from(photo.size.1));
        let attr = |a: &str| -> f64 {
            image[a]
                .as_str()
                .and_then(|v| v.parse::<u32>().ok())
                .filter(|v| *v > 0)
                .map(f64::from)
                .unwrap_or_else(|| panic!("{a} attribute missing or not positive: {what}"))
        };
        let (aw, ah) = (attr("width"), attr("height"));
        assert!(
            (ah - aw * h0 / w0).abs() <= 1.0,
            "width×height {aw}×{ah} is not the aspect of {w0}×{h0}: {what}"
        );
        let (bw, bh) = (
            image["box"][0].as_f64().expect("box width"),
            image["box"][1].as_f64().expect("box height"),
        );
        assert!(
            bw > 0.0 && (bh - bw * h0 / w0).abs() <= 1.0,
            "laid out {bw}×{bh}, not at the aspect of {w0}×{h0}: {what}"
        );
        for (corner, expected) in [("top_left", photo.top_left), ("bottom_right", photo.bottom_right)] {
            let got: Vec<u8> = image[corner]
                .as_array()
                .unwrap_or_else(|| panic!("no {corner} colour: {what}"))
                .iter()
                .map(|c| u8::try_from(c.as_u64().expect("a channel")).expect("a byte"))
                .collect();
            crate::support::assert_near(
                &format!("{} {corner} as shown", photo.key),
                &got,
                &expected,
                photo.tolerance,
            );
        }
    }
}

/// A narrow window at one device pixel per CSS pixel: `sizes` says 100vw,
/// so every photo needs ~500 pixels: a small WebP (the browser supports the
/// `<source>`'s type), never the 1200 or 2200. 500 px, not a phone's 400:
/// headless Chromium widens narrower windows to 500 (the desktop
/// minimum), and the probe fails on any other width; at one device pixel
/// per CSS pixel both need the 720 variant.
#[test]
fn narrow_window_loads_small_webp_variants() {
    let sb = site();
    let report = probe(&sb, 500, 1);
    check(
        &report,
        &[
            ("landscape.jpg", Want::AtMost(720)),
            ("phone-orient6.jpg", Want::AtMost(720)),
            ("portrait.jpg", Want::AtMost(720)),
            ("trips/summer 2024, beach.jpg", Want::AtMost(720)),
        ],
    );
}

/// A wide window at two device pixels per CSS pixel: the 960 px column
/// needs 1920 pixels, so the 2200 px WebP; the portrait has nothing wider
/// than 1200 (1600 px source, never upscaled), so that.
#[test]
fn wide_hidpi_window_loads_the_largest_webp_variants() {
    let sb = site();
    let report = probe(&sb, 1400, 2);
    check(
        &report,
        &[
            ("landscape.jpg", Want::Exactly(2200)),
            ("phone-orient6.jpg", Want::Exactly(2200)),
            ("portrait.jpg", Want::Exactly(1200)),
            ("trips/summer 2024, beach.jpg", Want::Exactly(2200)),
        ],
    );
}

/// A screenshot of the unmodified page, kept at `target/browser/preview.png`
/// for a human to look at. It must be the window's size and not blank: the
/// first photo (a full-colour gradient) fills much of it, so the pixels'
/// spread is far above a white page with a line of text.
#[test]
fn screenshot_shows_the_photos() {
    let sb = site();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/browser");
    fs::create_dir_all(&dir).expect("create target/browser");
    let shot = dir.join("preview.png");
    let _ = fs::remove_file(&shot);
    chromium(
        &sb,
        "screenshot",
        &[
            "--window-size=1400,2000",
            "--force-device-scale-factor=1",
            &format!("--screenshot={}", shot.display()),
        ],
        &sb.path("site/index.html"),
    );
    let image = decode(&shot).to_luma8();
    assert_eq!(image.dimensions(), (1400, 2000), "screenshot size");
    let n = f64::from(image.width() * image.height());
    let mean = image.pixels().map(|p| f64::from(p.0[0])).sum::<f64>() / n;
    let var = image
        .pixels()
        .map(|p| (f64::from(p.0[0]) - mean).powi(2))
        .sum::<f64>()
        / n;
    assert!(
        var.sqrt() > 30.0,
        "screenshot looks blank: luma mean {mean:.1}, standard deviation {:.1}",
        var.sqrt()
    );
    println!(
        "screenshot: {} (luma mean {mean:.1}, standard deviation {:.1})",
        fs::canonicalize(&shot).expect("screenshot path").display(),
        var.sqrt()
    );
}
