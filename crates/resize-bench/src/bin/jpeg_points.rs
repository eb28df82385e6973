//! `jpeg_points [--quality Q] <photo>...`: the JPEG encoder settings tried
//! for issue 11. Each photo is decoded and resized to 360/720/1200/2200 px
//! by the pipeline's own stages, then every setting encodes every size at
//! quality Q (default 90, the benchmark's); prints, per setting, the encode
//! time per output pixel (one core, best of 5), the total bytes and the
//! mean SSIMULACRA2 against the resized buffer.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use mozjpeg::{qtable, ColorSpace, Compress};
use resize_core::{stages, Limits};
use ssimulacra2::{compute_frame_ssimulacra2, ColorPrimaries, Rgb as SRgb, TransferCharacteristic};

struct Setting {
    name: &'static str,
    /// Luma and chroma tables; `None`: libjpeg's (Annex K).
    table: Option<(&'static qtable::QTable, &'static qtable::QTable)>,
    quality: f32,
    /// Chroma quality relative to `quality`.
    chroma_offset: f32,
    progressive: bool,
}

fn encode(s: &Setting, rgb: &[u8], w: u32, h: u32) -> Result<Vec<u8>> {
    std::panic::catch_unwind(|| -> Result<Vec<u8>> {
        let mut c = Compress::new(ColorSpace::JCS_RGB);
        c.set_fastest_defaults();
        c.set_size(w as usize, h as usize);
        c.set_quality(s.quality);
        if let Some(t) = s.table {
            let q = s.quality;
            c.set_luma_qtable(&t.0.scaled(q, q));
            let cq = q + s.chroma_offset;
            c.set_chroma_qtable(&t.1.scaled(cq, cq));
        }
        c.set_chroma_sampling_pixel_sizes((2, 2), (2, 2));
        c.set_optimize_coding(true);
        if s.progressive {
            c.set_progressive_mode();
        }
        let mut started = c.start_compress(Vec::new())?;
        started.write_scanlines(rgb)?;
        Ok(started.finish()?)
    })
    .map_err(|_| anyhow::anyhow!("libjpeg panicked"))?
}

fn score(reference: &[u8], jpeg: &[u8], w: u32, h: u32) -> Result<f64> {
    let out = image::load_from_memory(jpeg)?.to_rgb8();
    let f = |v: &[u8]| -> Vec<[f32; 3]> {
        v.chunks_exact(3)
            .map(|p| [p[0] as f32 / 255.0, p[1] as f32 / 255.0, p[2] as f32 / 255.0])
            .collect()
    };
    let a = SRgb::new(
        f(reference),
        w as usize,
        h as usize,
        TransferCharacteristic::SRGB,
        ColorPrimaries::BT709,
    )?;
    let b = SRgb::new(
        f(out.as_raw()),
        w as usize,
        h as usize,
        TransferCharacteristic::SRGB,
        ColorPrimaries::BT709,
    )?;
    Ok(compute_frame_ssimulacra2(a, b)?)
}

fn main() -> Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut q = 90.0;
    if args.first().is_some_and(|a| a == "--quality") {
        q = args.get(1).context("--quality needs a number")?.parse()?;
        args.drain(..2);
    }
    use qtable::{MSSSIM_Chroma, MSSSIM_Luma, NRobidoux, PSNRHVS_Chroma, PSNRHVS_Luma};
    let s = |name, table, quality, chroma_offset, progressive| Setting {
        name,
        table,
        quality,
        chroma_offset,
        progressive,
    };
    let msssim = Some((&MSSSIM_Luma, &MSSSIM_Chroma));
    let robidoux = Some((&NRobidoux, &NRobidoux));
    let settings = [
        s("Annex K (libjpeg's), baseline", None, q, 0.0, false),
        s("Annex K, progressive", None, q, 0.0, true),
        s("Robidoux (mozjpeg's default), baseline", robidoux, q, 0.0, false),
        s("Robidoux, progressive", robidoux, q, 0.0, true),
        s("MS-SSIM, baseline", msssim, q, 0.0, false),
        s("MS-SSIM, progressive", msssim, q, 0.0, true),
        s(
            "PSNR-HVS, baseline",
            Some((&PSNRHVS_Luma, &PSNRHVS_Chroma)),
            q,
            0.0,
            false,
        ),
        s(
            "MS-SSIM luma, Robidoux chroma, baseline",
            Some((&MSSSIM_Luma, &NRobidoux)),
            q,
            0.0,
            false,
        ),
        s("MS-SSIM, chroma at Q-5, baseline", msssim, q, -5.0, false),
        s("MS-SSIM at Q-1, baseline", msssim, q - 1.0, 0.0, false),
        s("Annex K at Q-1, baseline", None, q - 1.0, 0.0, false),
    ];
    let mut sizes = Vec::new();
    for path in args {
        let bytes = std::fs::read(&path).with_context(|| path.clone())?;
        let d = stages::decode(&bytes, Limits::default())?;
        for w in [360u32, 720, 1200, 2200] {
            let h =
                ((u64::from(d.height) * u64::from(w) + u64::from(d.width) / 2) / u64::from(d.width)) as u32;
            let px = stages::resize(&d, w, h)?;
            sizes.push((w, h, px));
        }
    }
    println!("setting\tns/px\tbytes\tmean SSIMULACRA2");
    for s in &settings {
        let (mut bytes, mut scores, mut time, mut pixels) = (0usize, 0.0, Duration::ZERO, 0u64);
        for (w, h, px) in &sizes {
            let mut best = Duration::MAX;
            let mut out = Vec::new();
            for _ in 0..5 {
                let t = Instant::now();
                out = encode(s, px, *w, *h)?;
                best = best.min(t.elapsed());
            }
            time += best;
            pixels += u64::from(*w) * u64::from(*h);
            bytes += out.len();
            scores += score(px, &out, *w, *h)?;
        }
        println!(
            "{}\t{:.1}\t{}\t{:.2}",
            s.name,
            time.as_nanos() as f64 / pixels as f64,
            bytes,
            scores / sizes.len() as f64
        );
    }
    Ok(())
}
