//! `cargo xtask fixtures`: regenerates every generated file under `fixtures/`.
//!
//! Everything here is deterministic: no clocks, no unseeded randomness, and pixel
//! maths uses only `+ - * / sqrt` on f32 (all correctly rounded under IEEE 754), so the
//! same bytes come out on every machine and every run. Tests elsewhere reference the
//! file names, so they are fixed.

use std::borrow::Cow;
use std::fs;
use std::io::Cursor;
use std::path::Path;

use anyhow::{anyhow, bail, ensure, Context, Result};
use image::{ExtendedColorType, ImageEncoder};
use jpeg_encoder::{ColorType as JpegColor, Encoder as JpegEncoder, SamplingFactor};
use moxcms::ColorProfile;

use crate::tiff;

/// Colours of the orientation test card, upright.
const RED: [u8; 3] = [255, 0, 0];
const GREEN: [u8; 3] = [0, 255, 0];
const BLUE: [u8; 3] = [0, 0, 255];
const WHITE: [u8; 3] = [255, 255, 255];

/// The colour-managed fixtures: left half / right half values in the file's own space.
const PATCH_LEFT: [u8; 3] = [200, 60, 40];
const PATCH_RIGHT: [u8; 3] = [40, 160, 60];

pub fn run(root: &Path) -> Result<()> {
    let dir = root.join("fixtures");
    let mut out = Out {
        dir: &dir,
        written: Vec::new(),
    };

    orientation_set(&mut out)?;
    photos(&mut out)?;
    colour_managed(&mut out)?;
    pixel_formats(&mut out)?;
    bad(&mut out)?;
    jpeg_warnings(&mut out)?;
    hostile(&mut out)?;

    let total: usize = out.written.iter().map(|(_, n)| n).sum();
    for (name, len) in &out.written {
        println!("{len:>9}  fixtures/{name}");
    }
    println!("{total:>9}  total ({} files)", out.written.len());
    Ok(())
}

/// Writes files below `fixtures/` and remembers what it wrote for the summary.
struct Out<'a> {
    dir: &'a Path,
    written: Vec<(String, usize)>,
}

impl Out<'_> {
    fn write(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        let path = self.dir.join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        self.written.push((name.to_owned(), bytes.len()));
        Ok(())
    }
}

// ---------------------------------------------------------------------------------
// Orientation

/// For each EXIF orientation, store the upright test card transformed by the inverse
/// of that orientation, so a viewer that applies the tag shows the card upright.
fn orientation_set(out: &mut Out) -> Result<()> {
    let (uw, uh) = (120u32, 80u32);
    let card = |x: u32, y: u32| match (x < uw / 2, y < uh / 2) {
        (true, true) => RED,
        (false, true) => GREEN,
        (true, false) => BLUE,
        (false, false) => WHITE,
    };
    for n in 1..=8u16 {
        let (sw, sh) = if n >= 5 { (uh, uw) } else { (uw, uh) };
        let pixels = rgb_from_fn(sw, sh, |x, y| {
            let (ux, uy) = stored_to_upright(n, x, y, sw, sh);
            card(ux, uy)
        });
        let jpeg = Jpeg {
            quality: 95,
            sampling: SamplingFactor::R_4_4_4,
            ..Jpeg::default()
        }
        .app_segments(vec![(1, tiff::exif_app1(n, sw, sh)?)])
        .encode(&pixels, sw, sh, JpegColor::Rgb)?;
        out.write(&format!("images/orientation/orient-{n}.jpg"), &jpeg)?;
    }
    Ok(())
}

/// Where stored pixel (x, y) of a `sw`×`sh` image lands once EXIF orientation `n` is
/// applied for display. Filling stored pixels by looking up the upright image through
/// this map is exactly "store the inverse transform", with no inverse to get wrong.
fn stored_to_upright(n: u16, x: u32, y: u32, sw: u32, sh: u32) -> (u32, u32) {
    match n {
        2 => (sw - 1 - x, y),          // mirror horizontal
        3 => (sw - 1 - x, sh - 1 - y), // rotate 180
        4 => (x, sh - 1 - y),          // mirror vertical
        5 => (y, x),                   // transpose
        6 => (sh - 1 - y, x),          // rotate 90 CW to display
        7 => (sh - 1 - y, sw - 1 - x), // transverse
        8 => (y, sw - 1 - x),          // rotate 90 CCW (270 CW) to display
        _ => (x, y),                   // 1 (and anything invalid): as stored
    }
}

// ---------------------------------------------------------------------------------
// Photo-like images

fn photos(out: &mut Out) -> Result<()> {
    // 4:3 with every kind of metadata a privacy-stripping pipeline must remove.
    let (w, h) = (800, 600);
    let xmp = xmp_packet();
    let jpeg = Jpeg {
        quality: 90,
        sampling: SamplingFactor::R_4_2_0,
        ..Jpeg::default()
    }
    .app_segments(vec![(1, tiff::exif_app1(1, w, h)?), (1, xmp)])
    .encode(
        &rgb_from_fn(w, h, |x, y| photo_pixel(x, y, w, h)),
        w,
        h,
        JpegColor::Rgb,
    )?;
    let jpeg = insert_comment(&jpeg, b"SECRET-COMMENT")?;
    out.write("images/photo-4x3.jpg", &jpeg)?;

    let (w, h) = (1280, 720);
    let jpeg = Jpeg::default().encode(
        &rgb_from_fn(w, h, |x, y| photo_pixel(x, y, w, h)),
        w,
        h,
        JpegColor::Rgb,
    )?;
    out.write("images/photo-16x9.jpg", &jpeg)?;

    let (w, h) = (640, 480);
    let jpeg = Jpeg::default().encode(
        &rgb_from_fn(w, h, |x, y| photo_pixel(x, y, w, h)),
        w,
        h,
        JpegColor::Rgb,
    )?;
    out.write("images/photo-upper.JPG", &jpeg)?;

    phone_orient6(out)?;

    let (w, h) = (320, 240);
    let pixels = rgb_from_fn(w, h, |x, y| photo_pixel(x, y, w, h));
    let mut webp = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut webp)
        .encode(&pixels, w, h, ExtendedColorType::Rgb8)
        .context("encoding still.webp")?;
    out.write("images/still.webp", &webp)?;

    let mut tiff_bytes = Cursor::new(Vec::new());
    image::codecs::tiff::TiffEncoder::new(&mut tiff_bytes)
        .write_image(&pixels, w, h, ExtendedColorType::Rgb8)
        .context("encoding photo.tiff")?;
    out.write("images/photo.tiff", tiff_bytes.get_ref())?;
    Ok(())
}

/// A phone-style portrait shot: stored landscape 4032×3024 with orientation 6, upright
/// 3024×4032. Upright, the top-left quadrant is red-ish and the bottom-right blue-ish
/// over large soft areas, so tests can check orientation by sampling pixels.
fn phone_orient6(out: &mut Out) -> Result<()> {
    let (sw, sh) = (4032u32, 3024u32);
    let (uw, uh) = (sh, sw);
    let tl = [220.0, 60.0, 50.0]; // red-ish
    let tr = [70.0, 180.0, 80.0]; // green-ish
    let bl = [210.0, 190.0, 70.0]; // yellow-ish
    let br = [50.0, 70.0, 210.0]; // blue-ish
    let pixels = rgb_from_fn(sw, sh, |x, y| {
        let (ux, uy) = stored_to_upright(6, x, y, sw, sh);
        let u = ux as f32 / (uw - 1) as f32;
        let v = uy as f32 / (uh - 1) as f32;
        // Soft seams 40% of the frame wide: the quadrant centres stay pure colour.
        let sx = smoothstep((u - 0.5) / 0.4 + 0.5);
        let sy = smoothstep((v - 0.5) / 0.4 + 0.5);
        let shade = 0.88 + 0.12 * (1.0 - v);
        let mut px = [0u8; 3];
        for c in 0..3 {
            let top = tl[c] * (1.0 - sx) + tr[c] * sx;
            let bottom = bl[c] * (1.0 - sx) + br[c] * sx;
            px[c] = to_u8((top * (1.0 - sy) + bottom * sy) * shade);
        }
        px
    });
    let jpeg = Jpeg {
        quality: 75,
        ..Jpeg::default()
    }
    .app_segments(vec![(1, tiff::exif_app1(6, sw, sh)?)])
    .encode(&pixels, sw, sh, JpegColor::Rgb)?;
    out.write("images/phone-orient6.jpg", &jpeg)
}

/// Smooth gradients plus a few hard-edged shapes: compresses well but has edges, so
/// resampling and encoder bugs are visible.
fn photo_pixel(x: u32, y: u32, w: u32, h: u32) -> [u8; 3] {
    let u = x as f32 / (w.max(2) - 1) as f32;
    let v = y as f32 / (h.max(2) - 1) as f32;
    let aspect = w as f32 / h as f32;
    // Sky-to-ground gradient.
    let mut rgb = [
        70.0 + 150.0 * u * (1.0 - 0.5 * v),
        120.0 + 90.0 * (1.0 - v) - 30.0 * u,
        210.0 - 150.0 * v + 20.0 * u,
    ];
    // A bright "sun" disc with a hard edge.
    let (dx, dy) = ((u - 0.72) * aspect, v - 0.28);
    if (dx * dx + dy * dy).sqrt() < 0.14 {
        rgb = [250.0, 225.0, 120.0 - 40.0 * v];
    }
    // A dark "building" with a lit window band.
    if (0.10..0.32).contains(&u) && (0.42..0.97).contains(&v) {
        rgb = if (0.55..0.60).contains(&v) {
            [230.0, 200.0, 90.0]
        } else {
            [40.0 + 30.0 * v, 45.0, 62.0]
        };
    }
    // A thin diagonal "cable".
    if ((u * aspect - v) - 0.35).abs() < 0.006 {
        rgb = [20.0, 20.0, 25.0];
    }
    rgb.map(to_u8)
}

fn smoothstep(t: f32) -> f32 {
    let t = t.clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

fn to_u8(v: f32) -> u8 {
    // `as` saturates and truncates; round first so 254.6 becomes 255.
    (v + 0.5).clamp(0.0, 255.0) as u8
}

fn xmp_packet() -> Vec<u8> {
    let mut seg = b"http://ns.adobe.com/xap/1.0/\0".to_vec();
    seg.extend_from_slice(
        br#"<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">
   <dc:description><rdf:Alt><rdf:li xml:lang="x-default">SECRET-XMP</rdf:li></rdf:Alt></dc:description>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>"#,
    );
    seg
}

// ---------------------------------------------------------------------------------
// Colour management

fn colour_managed(out: &mut Out) -> Result<()> {
    let (w, h) = (300, 200);
    let pixels = rgb_from_fn(w, h, |x, _| if x < w / 2 { PATCH_LEFT } else { PATCH_RIGHT });
    let jpegs = [
        ("images/display-p3.jpg", ColorProfile::new_display_p3()),
        ("images/adobe-rgb.jpg", ColorProfile::new_adobe_rgb()),
        ("images/srgb-tagged.jpg", ColorProfile::new_srgb()),
    ];
    for (name, profile) in jpegs {
        let jpeg = Jpeg {
            quality: 95,
            sampling: SamplingFactor::R_4_4_4,
            ..Jpeg::default()
        }
        .icc(icc_bytes(&profile)?)
        .encode(&pixels, w, h, JpegColor::Rgb)?;
        out.write(name, &jpeg)?;
    }
    let icc = icc_bytes(&ColorProfile::new_pro_photo_rgb())?;
    let png = Png::new(w, h, png::ColorType::Rgb).icc(icc).encode(&pixels)?;
    out.write("images/prophoto.png", &png)
}

/// The sRGB colour of each ink alone on paper in `cmyk_profile`: C, M, Y, K.
/// Inks overprint by multiplying in linear light (a subtractive model), so
/// M+Y is (230, 25, 6) and C+M is (0, 14, 126), where the naive conversion
/// gives (255, 0, 0) and (0, 0, 255).
const INKS: [[u8; 3]; 4] = [[0, 160, 230], [230, 30, 140], [255, 235, 20], [35, 31, 32]];

fn srgb_to_linear(v: u8) -> f64 {
    let c = f64::from(v) / 255.0;
    if c <= 0.04045 {
        c / 12.92
    } else {
        ((c + 0.055) / 1.055).powf(2.4)
    }
}

/// A small CMYK output profile (ICC v4, one lut16 A2B table, PCS XYZ) whose
/// 16 grid corners are every overprint of `INKS` on white paper. It stands
/// in for a press profile such as SWOP or FOGRA, which cannot be bundled.
fn cmyk_profile() -> ColorProfile {
    use moxcms::{DataColorSpace, LutDataType, LutStore, LutType, LutWarehouse, Matrix3d, ProfileClass};
    // Linear sRGB to XYZ (D50, Bradford-adapted), the ICC PCS.
    const TO_XYZ: [[f64; 3]; 3] = [
        [0.436_074_7, 0.385_064_9, 0.143_080_4],
        [0.222_504_5, 0.716_878_6, 0.060_616_9],
        [0.013_932_2, 0.097_104_5, 0.714_173_3],
    ];
    let mut clut = Vec::with_capacity(16 * 3);
    // The first input channel (C) varies slowest.
    for corner in 0..16usize {
        let mut lin = [1.0f64; 3];
        for (ink, colour) in INKS.iter().enumerate() {
            if corner & (8 >> ink) != 0 {
                for (l, &v) in lin.iter_mut().zip(colour) {
                    *l *= srgb_to_linear(v);
                }
            }
        }
        for row in TO_XYZ {
            let xyz = row[0] * lin[0] + row[1] * lin[1] + row[2] * lin[2];
            // lut16 XYZ encoding: 0x8000 is 1.0.
            clut.push((xyz * 32768.0).round().clamp(0.0, 65535.0) as u16);
        }
    }
    let lut = LutWarehouse::Lut(LutDataType {
        num_input_channels: 4,
        num_output_channels: 3,
        num_clut_grid_points: 2,
        matrix: Matrix3d::IDENTITY,
        num_input_table_entries: 2,
        num_output_table_entries: 2,
        input_table: LutStore::Store16([0, 65535].repeat(4)),
        clut_table: LutStore::Store16(clut),
        output_table: LutStore::Store16([0, 65535].repeat(3)),
        lut_type: LutType::Lut16,
    });
    let mut profile = ColorProfile::new_srgb();
    profile.pcs = DataColorSpace::Xyz;
    profile.color_space = DataColorSpace::Cmyk;
    profile.profile_class = ProfileClass::OutputDevice;
    profile.red_trc = None;
    profile.green_trc = None;
    profile.blue_trc = None;
    profile.cicp = None;
    profile.lut_a_to_b_perceptual = Some(lut.clone());
    profile.lut_a_to_b_colorimetric = Some(lut);
    profile
}

/// Serialises an ICC profile with a fixed creation date. moxcms stamps the current
/// time into the header, which would make every regeneration differ.
fn icc_bytes(profile: &ColorProfile) -> Result<Vec<u8>> {
    let encoded = profile
        .encode()
        .map_err(|e| anyhow!("encoding ICC profile: {e:?}"))?;
    let mut icc = normalise_icc(&encoded)?;
    // ICC header bytes 24..36: dateTimeNumber, six big-endian u16 (2024-01-01 00:00:00).
    let date: [u16; 6] = [2024, 1, 1, 0, 0, 0];
    for (i, part) in date.iter().enumerate() {
        icc[24 + 2 * i..26 + 2 * i].copy_from_slice(&part.to_be_bytes());
    }
    Ok(icc)
}

/// Fixes two spec deviations in moxcms 0.8's profile writer that strict readers
/// (libpng's iCCP checks, used by ImageMagick) warn about, so the colour fixtures test
/// colour management rather than profile-parser leniency:
/// * tag data must start on 4-byte boundaries: re-lay out the tag data, padded;
/// * the header's PCS illuminant must be exactly D50 (X=0xF6D6, Y=0x10000, Z=0xD32D
///   in s15Fixed16), not a rounding of it.
fn normalise_icc(icc: &[u8]) -> Result<Vec<u8>> {
    let be32 = |at: usize| -> Result<u32> {
        let b = icc.get(at..at + 4).context("ICC profile truncated")?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let count = usize::try_from(be32(128)?)?;
    let table_end = 132 + 12 * count;
    let mut out = icc.get(..table_end).context("ICC tag table truncated")?.to_vec();
    // (old offset, size, new offset): tags may share data, keep them sharing.
    let mut placed: Vec<(u32, u32, u32)> = Vec::new();
    for k in 0..count {
        let entry = 132 + 12 * k;
        let (old, size) = (be32(entry + 4)?, be32(entry + 8)?);
        let new = match placed.iter().find(|p| p.0 == old && p.1 == size) {
            Some(p) => p.2,
            None => {
                out.resize(out.len().next_multiple_of(4), 0);
                let new = u32::try_from(out.len())?;
                let (start, len) = (usize::try_from(old)?, usize::try_from(size)?);
                out.extend_from_slice(icc.get(start..start + len).context("ICC tag out of bounds")?);
                placed.push((old, size, new));
                new
            }
        };
        out[entry + 4..entry + 8].copy_from_slice(&new.to_be_bytes());
    }
    out.resize(out.len().next_multiple_of(4), 0);
    let total = u32::try_from(out.len())?;
    out[0..4].copy_from_slice(&total.to_be_bytes());
    for (i, v) in [0xF6D6u32, 0x1_0000, 0xD32D].iter().enumerate() {
        out[68 + 4 * i..72 + 4 * i].copy_from_slice(&v.to_be_bytes());
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------
// Pixel formats and odd shapes

fn pixel_formats(out: &mut Out) -> Result<()> {
    // RGBA: transparent (with zeroed colour, which premultiplication bugs reveal),
    // opaque red, half-transparent blue.
    let (w, h) = (200u32, 150u32);
    let alpha = pixels_from_fn(w, h, 4, |x, _| {
        if x * 3 < w {
            vec![0, 0, 0, 0]
        } else if x * 3 < 2 * w {
            vec![255, 0, 0, 255]
        } else {
            vec![0, 0, 255, 128]
        }
    });
    out.write(
        "images/alpha.png",
        &Png::new(w, h, png::ColorType::Rgba).encode(&alpha)?,
    )?;

    let (w, h) = (160u32, 120u32);
    let luma =
        |x: u32, y: u32| to_u8(20.0 + 200.0 * x as f32 / (w - 1) as f32 + 30.0 * (y as f32 / (h - 1) as f32));
    let gray = pixels_from_fn(w, h, 1, |x, y| {
        // A hard-edged dark square so the image is not just a ramp.
        if (40..80).contains(&x) && (30..70).contains(&y) {
            vec![15]
        } else {
            vec![luma(x, y)]
        }
    });
    let jpeg = Jpeg::default().encode(&gray, w, h, JpegColor::Luma)?;
    out.write("images/gray.jpg", &jpeg)?;
    out.write(
        "images/gray8.png",
        &Png::new(w, h, png::ColorType::Grayscale).encode(&gray)?,
    )?;
    let gray_alpha = pixels_from_fn(w, h, 2, |x, y| {
        vec![luma(x, y), to_u8(255.0 * y as f32 / (h - 1) as f32)]
    });
    let png = Png::new(w, h, png::ColorType::GrayscaleAlpha).encode(&gray_alpha)?;
    out.write("images/gray-alpha.png", &png)?;

    // CMYK the way Photoshop and ImageMagick write it: Adobe APP14 marker and inverted
    // samples. jpeg-encoder does both for `ColorType::Cmyk` (it inverts on the way in),
    // so the input here is ordinary ink amounts: red = M+Y, blue = C+M.
    let (w, h) = (120u32, 80u32);
    let cmyk = pixels_from_fn(w, h, 4, |x, _| {
        if x < w / 2 {
            vec![0, 255, 255, 0]
        } else {
            vec![255, 255, 0, 0]
        }
    });
    let jpeg = Jpeg {
        quality: 95,
        sampling: SamplingFactor::R_4_4_4,
        ..Jpeg::default()
    }
    .encode(&cmyk, w, h, JpegColor::Cmyk)?;
    out.write("images/cmyk.jpg", &jpeg)?;
    // The same inks with a CMYK profile embedded: its colours are not the naive ones.
    let jpeg = Jpeg {
        quality: 95,
        sampling: SamplingFactor::R_4_4_4,
        ..Jpeg::default()
    }
    .icc(icc_bytes(&cmyk_profile())?)
    .encode(&cmyk, w, h, JpegColor::Cmyk)?;
    out.write("images/cmyk-profile.jpg", &jpeg)?;

    // 16-bit RGB: PNG stores samples big-endian.
    let (w, h) = (160u32, 120u32);
    let rgb16 = pixels_from_fn(w, h, 6, |x, y| {
        let u = x as f32 / (w - 1) as f32;
        let v = y as f32 / (h - 1) as f32;
        [u, v, 1.0 - 0.5 * (u + v)]
            .iter()
            .flat_map(|c| ((c * 65535.0 + 0.5).clamp(0.0, 65535.0) as u16).to_be_bytes())
            .collect()
    });
    let png = Png::new(w, h, png::ColorType::Rgb)
        .depth(png::BitDepth::Sixteen)
        .encode(&rgb16)?;
    out.write("images/rgb16.png", &png)?;

    // Indexed colour with a tRNS chunk: entry 0 is fully transparent, the rest opaque
    // (a tRNS shorter than the palette means "opaque" for the missing entries).
    let palette: Vec<u8> = [[0, 0, 0], RED, GREEN, BLUE, WHITE, [255, 200, 0]].concat();
    let indexed = pixels_from_fn(w, h, 1, |x, y| vec![((x / 32 + y / 40) % 6) as u8]);
    let png = Png::new(w, h, png::ColorType::Indexed)
        .palette(palette, vec![0])
        .encode(&indexed)?;
    out.write("images/palette.png", &png)?;

    out.write("images/animated.gif", &animated_gif()?)?;

    out.write(
        "images/one-pixel.png",
        &Png::new(1, 1, png::ColorType::Rgb).encode(&[10, 200, 30])?,
    )?;

    let (w, h) = (4000u32, 3u32);
    let wide = rgb_from_fn(w, h, |x, y| {
        let u = x as f32 / (w - 1) as f32;
        [to_u8(255.0 * u), to_u8(80.0 * y as f32), to_u8(255.0 * (1.0 - u))]
    });
    out.write(
        "images/extreme-4000x3.png",
        &Png::new(w, h, png::ColorType::Rgb).encode(&wide)?,
    )?;
    Ok(())
}

/// 64×48, three frames of solid red, green, blue, looping forever.
fn animated_gif() -> Result<Vec<u8>> {
    cycling_gif(3, 20)
}

/// 64×48, `frames` frames cycling solid red, green, blue, each shown for
/// `delay` hundredths of a second, looping forever.
fn cycling_gif(frames: u32, delay: u16) -> Result<Vec<u8>> {
    let (w, h) = (64u16, 48u16);
    let palette: Vec<u8> = [RED, GREEN, BLUE, [0, 0, 0]].concat();
    let mut bytes = Vec::new();
    {
        let mut enc = gif::Encoder::new(&mut bytes, w, h, &palette)?;
        enc.set_repeat(gif::Repeat::Infinite)?;
        for i in 0..frames {
            let mut frame = gif::Frame {
                width: w,
                height: h,
                // i % 3 fits a u8.
                buffer: Cow::Owned(vec![(i % 3) as u8; usize::from(w) * usize::from(h)]),
                ..gif::Frame::default()
            };
            frame.delay = delay;
            enc.write_frame(&frame)?;
        }
    }
    Ok(bytes)
}

// ---------------------------------------------------------------------------------
// Hostile but renderable: malformed or heavy in ways a decoder must survive cheaply.
// Each renders, as it does in browsers; `fixtures/README.md` says how.

fn hostile(out: &mut Out) -> Result<()> {
    // 5000 frames: only the first is decoded.
    let gif_bytes = cycling_gif(5000, 0)?;
    out.write("hostile/gif-5000-frames.gif", &gif_bytes)?;

    // EXIF whose IFD0 lists itself as the next IFD and as its own EXIF sub-IFD.
    // Orientation 6 is readable, so the 120×80 stored photo comes out 80×120.
    let (sw, sh) = (120u32, 80u32);
    let mut tiff_bytes = tiff::header();
    tiff::write_ifd(
        &mut tiff_bytes,
        vec![
            tiff::Entry::short(0x0112, 6), // Orientation
            tiff::Entry::long(0x8769, 8),  // ExifIFDPointer: IFD0 itself
        ],
        8, // next IFD: IFD0 itself
    )?;
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff_bytes);
    let pixels = rgb_from_fn(sw, sh, |x, y| photo_pixel(x, y, sw, sh));
    out.write(
        "hostile/exif-ifd-loop.jpg",
        &Jpeg::default()
            .app_segments(vec![(1, app1)])
            .encode(&pixels, sw, sh, JpegColor::Rgb)?,
    )?;

    // An ICC_PROFILE segment of random bytes: treated as sRGB.
    let mut rng = XorShift64(0x1CC0_BAD0_0000_0001);
    let garbage: Vec<u8> = (0..600).map(|_| rng.next_u8()).collect();
    out.write(
        "hostile/garbage-icc.jpg",
        &Jpeg::default()
            .icc(garbage.clone())
            .encode(&pixels, sw, sh, JpegColor::Rgb)?,
    )?;
    out.write(
        "hostile/garbage-icc.png",
        &Png::new(sw, sh, png::ColorType::Rgb)
            .icc(garbage)
            .encode(&pixels)?,
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------------
// Bad inputs: every one of these must fail to decode.

fn bad(out: &mut Out) -> Result<()> {
    out.write("bad/empty.jpg", &[])?;

    // Truncations are taken from the good fixtures just written, so regenerate those first.
    let photo = fs::read(out.dir.join("images/photo-4x3.jpg")).context("reading photo-4x3.jpg")?;
    out.write("bad/truncated-jpg.jpg", &photo[..photo.len() * 2 / 5])?;
    let alpha = fs::read(out.dir.join("images/alpha.png")).context("reading alpha.png")?;
    out.write("bad/truncated-png.png", &alpha[..alpha.len() * 3 / 5])?;

    let mut rng = XorShift64(0x5EED_F1C7_0000_0001);
    let garbage: Vec<u8> = (0..2048).map(|_| rng.next_u8()).collect();
    out.write("bad/garbage.png", &garbage)?;

    out.write(
        "bad/pdf-named.jpg",
        b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n\
2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n\
trailer << /Root 1 0 R >>\n%%EOF\n",
    )?;
    out.write("bad/text-named.png", b"hello, this is not an image\n")?;

    out.write("bad/huge-header-png.png", &huge_header_png(60_000, 60_000))?;
    out.write("bad/huge-header-jpg.jpg", &huge_header_jpeg(60_000, 60_000)?)?;
    out.write("bad/huge-header-gif.gif", &huge_header_gif(60_000, 60_000))?;
    out.write("bad/huge-header-webp.webp", &huge_header_webp(16_383, 16_383)?)?;
    out.write(
        "bad/huge-header-tiff.tiff",
        &tiff::huge_header_tiff(60_000, 60_000)?,
    )?;

    // Cut inside the image data of one good fixture per format, at several depths.
    for name in [
        "photo-4x3.jpg",
        "alpha.png",
        "still.webp",
        "animated.gif",
        "photo.tiff",
    ] {
        let bytes = fs::read(out.dir.join("images").join(name)).with_context(|| format!("reading {name}"))?;
        let (stem, ext) = name.rsplit_once('.').context("fixture names have extensions")?;
        // An animated GIF whose first frame is whole renders (only that frame
        // is decoded), so its cuts stay inside the first frame.
        let percents: &[usize] = if ext == "gif" {
            &[5, 15, 25, 30]
        } else {
            &[5, 30, 60, 90]
        };
        for &percent in percents {
            let cut = bytes.len() * percent / 100;
            out.write(&format!("bad/truncated/{stem}-{percent}pct.{ext}"), &bytes[..cut])?;
        }
        // The first byte of the signature flipped: no decoder recognises it.
        let mut wrong_magic = bytes.clone();
        wrong_magic[0] ^= 0xFF;
        out.write(&format!("bad/wrong-magic/{stem}.{ext}"), &wrong_magic)?;
    }
    // Flipped bytes where a decoder must notice: in PNG chunks (CRC-checked) and
    // in the JPEG's headers (a Huffman table and the frame header).
    let alpha = fs::read(out.dir.join("images/alpha.png")).context("reading alpha.png")?;
    let mut flipped = alpha.clone();
    for at in [40, alpha.len() / 2] {
        flipped[at] ^= 0x5A;
    }
    out.write("bad/flipped/alpha.png", &flipped)?;
    let sof = find_segment(&photo, 0xC0)?.context("photo-4x3.jpg has a SOF0")?;
    let mut flipped = photo.clone();
    flipped[sof + 9] = 0; // component count 0
    out.write("bad/flipped/photo-4x3-sof.jpg", &flipped)?;
    let dht = find_segment(&photo, 0xC4)?.context("photo-4x3.jpg has a DHT")?;
    let mut flipped = photo.clone();
    for b in &mut flipped[dht + 5..dht + 21] {
        *b = 0xFF; // code counts far over 256 symbols
    }
    out.write("bad/flipped/photo-4x3-dht.jpg", &flipped)?;

    // Bombs: small files that would need far more memory than they take.
    out.write("bad/bomb-png-idat.png", &png_bomb(12_000, 12_000)?)?;
    out.write("bad/bomb-tiff-strips.tiff", &tiff::absurd_strips_tiff(64, 64)?)?;
    Ok(())
}

/// An 8-bit grayscale PNG of `w`×`h` (over the default pixel limit) whose IDAT
/// really holds every row: a ~100 KiB file that inflates to w×h bytes.
fn png_bomb(w: u32, h: u32) -> Result<Vec<u8>> {
    let mut data = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut data, w, h);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_compression(png::Compression::High);
        let err = |e: &dyn std::fmt::Display| anyhow::anyhow!("encoding the PNG bomb: {e}");
        let mut writer = encoder.write_header().map_err(|e| err(&e))?;
        let mut stream = writer.stream_writer().map_err(|e| err(&e))?;
        let row = vec![0u8; w as usize];
        for _ in 0..h {
            std::io::Write::write_all(&mut stream, &row)?;
        }
        stream.finish().map_err(|e| err(&e))?;
    }
    Ok(data)
}

/// PNG signature, an IHDR declaring `w`×`h` 8-bit RGB (with a correct CRC, so the
/// header is trusted), an IDAT holding a single zlib-compressed byte, and IEND.
fn huge_header_png(w: u32, h: u32) -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // depth 8, RGB, deflate, adaptive, no interlace
                                              // zlib stream with one stored block containing a single 0 byte (filter type "None").
    let mut idat = vec![0x78, 0x01, 0x01, 0x01, 0x00, 0xFE, 0xFF, 0x00];
    idat.extend_from_slice(&adler2::adler32_slice(&[0]).to_be_bytes());

    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png_chunk(&mut png, b"IHDR", &ihdr);
    png_chunk(&mut png, b"IDAT", &idat);
    png_chunk(&mut png, b"IEND", &[]);
    png
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    // Chunk data here is at most a few bytes, far below u32::MAX.
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A real (tiny) baseline JPEG from jpeg-encoder whose SOF0 is patched to claim
/// `w`×`h`: the DQT/DHT tables are genuine, so the header parses cleanly.
fn huge_header_jpeg(w: u16, h: u16) -> Result<Vec<u8>> {
    let small = rgb_from_fn(16, 16, |x, y| photo_pixel(x, y, 16, 16));
    let mut jpeg = Jpeg::default().encode(&small, 16, 16, JpegColor::Rgb)?;
    let sof = find_segment(&jpeg, 0xC0)?.context("jpeg-encoder wrote no SOF0 segment")?;
    // SOF0 layout after the marker: length(2) precision(1) height(2) width(2) ...
    jpeg[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    Ok(jpeg)
}

/// GIF89a whose logical screen and only frame are `w`×`h`, with a two-entry local
/// palette and a few bytes of LZW data.
fn huge_header_gif(w: u16, h: u16) -> Vec<u8> {
    let mut gif = b"GIF89a".to_vec();
    gif.extend_from_slice(&w.to_le_bytes());
    gif.extend_from_slice(&h.to_le_bytes());
    gif.extend_from_slice(&[0x00, 0, 0]); // no global colour table, background 0, aspect 0
    gif.push(0x2C); // image descriptor
    gif.extend_from_slice(&[0, 0, 0, 0]); // left, top
    gif.extend_from_slice(&w.to_le_bytes());
    gif.extend_from_slice(&h.to_le_bytes());
    gif.push(0x80); // local colour table of 2 entries, not interlaced
    gif.extend_from_slice(&[0, 0, 0, 255, 255, 255]);
    gif.push(2); // LZW minimum code size
    gif.extend_from_slice(&[3, 0x44, 0x01, 0x00, 0]); // one 3-byte sub-block, terminator
    gif.push(0x3B); // trailer
    gif
}

/// A lossless WebP (VP8L) whose header declares `w`×`h` followed by a few zero bytes.
/// VP8L stores width-1 and height-1 in 14 bits each, so 16383 is the largest possible.
fn huge_header_webp(w: u32, h: u32) -> Result<Vec<u8>> {
    ensure!(
        (1..=16_384).contains(&w) && (1..=16_384).contains(&h),
        "VP8L size out of range"
    );
    let bits: u32 = (w - 1) | ((h - 1) << 14); // alpha hint 0, version 0
    let mut vp8l = vec![0x2F]; // VP8L signature byte
    vp8l.extend_from_slice(&bits.to_le_bytes());
    vp8l.extend_from_slice(&[0u8; 9]); // even length, so no RIFF padding byte
    let mut webp = b"RIFF".to_vec();
    webp.extend_from_slice(&tiff::offset(4 + 8 + vp8l.len())?.to_le_bytes());
    webp.extend_from_slice(b"WEBPVP8L");
    webp.extend_from_slice(&tiff::offset(vp8l.len())?.to_le_bytes());
    webp.extend_from_slice(&vp8l);
    Ok(webp)
}

// ---------------------------------------------------------------------------------
// Encoder helpers

/// JPEG settings; the defaults are the "ordinary photo" choice.
struct Jpeg {
    quality: u8,
    sampling: SamplingFactor,
    app_segments: Vec<(u8, Vec<u8>)>,
    icc: Option<Vec<u8>>,
    progressive: bool,
    /// MCUs between restart markers (0: none).
    restart: u16,
}

impl Default for Jpeg {
    fn default() -> Self {
        Jpeg {
            quality: 85,
            sampling: SamplingFactor::R_4_2_0,
            app_segments: Vec::new(),
            icc: None,
            progressive: false,
            restart: 0,
        }
    }
}

impl Jpeg {
    fn app_segments(mut self, segments: Vec<(u8, Vec<u8>)>) -> Self {
        self.app_segments = segments;
        self
    }

    fn icc(mut self, icc: Vec<u8>) -> Self {
        self.icc = Some(icc);
        self
    }

    fn encode(self, pixels: &[u8], w: u32, h: u32, color: JpegColor) -> Result<Vec<u8>> {
        let w = u16::try_from(w).context("JPEG width over 65535")?;
        let h = u16::try_from(h).context("JPEG height over 65535")?;
        let mut bytes = Vec::new();
        let mut enc = JpegEncoder::new(&mut bytes, self.quality);
        enc.set_sampling_factor(self.sampling);
        // Standard (Annex K) Huffman tables on purpose. With optimised tables,
        // jpeg-encoder 0.6.1 writes files that libjpeg-turbo decodes correctly but that
        // image 0.25.10 / zune-jpeg 0.5.15 decodes to wrong colours (seen on
        // orient-5.jpg and every 4:2:0 photo), which would break tests for the wrong reason.
        enc.set_optimized_huffman_tables(false);
        enc.set_progressive(self.progressive);
        if self.restart > 0 {
            enc.set_restart_interval(self.restart);
        }
        for (nr, data) in &self.app_segments {
            enc.add_app_segment(*nr, data)?;
        }
        if let Some(icc) = &self.icc {
            enc.add_icc_profile(icc)?;
        }
        enc.encode(pixels, w, h, color)?;
        Ok(bytes)
    }
}

// ---------------------------------------------------------------------------------
// libjpeg's warnings: `bad/jpeg/` holds one file per warning that means missing
// or wrong pixels (each must fail), `warnings/` files whose warnings leave the
// pixels whole (each must render). See resize-core's src/pixels/libjpeg.rs.

fn jpeg_warnings(out: &mut Out) -> Result<()> {
    let (w, h) = (320, 240);
    let pixels = rgb_from_fn(w, h, |x, y| photo_pixel(x, y, w, h));
    let baseline = Jpeg::default().encode(&pixels, w, h, JpegColor::Rgb)?;
    let progressive = Jpeg {
        progressive: true,
        ..Jpeg::default()
    }
    .encode(&pixels, w, h, JpegColor::Rgb)?;
    let scans = scan_offsets(&progressive)?;
    ensure!(scans.len() >= 4, "a progressive JPEG has several scans");

    // What a phone writes: an EXIF block holding a whole thumbnail JPEG (its own
    // scan and end marker), the main image cut in its scan. Only the segment
    // chain tells that the end marker seen belongs to the thumbnail.
    let thumb = Jpeg::default().encode(
        &rgb_from_fn(40, 30, |x, y| photo_pixel(x, y, 40, 30)),
        40,
        30,
        JpegColor::Rgb,
    )?;
    let with_thumb = Jpeg::default()
        .app_segments(vec![(1, exif_with_thumbnail(&thumb)?)])
        .encode(&pixels, w, h, JpegColor::Rgb)?;
    out.write(
        "bad/jpeg/cut-after-exif-thumbnail.jpg",
        &with_thumb[..with_thumb.len() * 3 / 5],
    )?;

    // JWRN_HIT_MARKER: the file is cut and the end marker put back, so a marker
    // arrives inside the scan; baseline and progressive.
    let mut cut = baseline[..baseline.len() / 2].to_vec();
    cut.extend_from_slice(&[0xFF, 0xD9]);
    out.write("bad/jpeg/marker-inside-scan.jpg", &cut)?;
    let mut cut = progressive[..(scans[1] + scans[2]) / 2].to_vec();
    cut.extend_from_slice(&[0xFF, 0xD9]);
    out.write("bad/jpeg/marker-inside-scan-progressive.jpg", &cut)?;

    // JWRN_JPEG_EOF: a progressive file cut in a later scan, after a comment
    // between scans whose text holds an end marker's bytes (so no quick check
    // of markers can tell; only the decoder running out of data does).
    let mut eof = progressive[..scans[2]].to_vec();
    let text = b"\xFF\xD9 is an end marker";
    eof.extend_from_slice(&[0xFF, 0xFE]);
    eof.extend_from_slice(&u16::try_from(text.len() + 2)?.to_be_bytes());
    eof.extend_from_slice(text);
    eof.extend_from_slice(&progressive[scans[2]..(scans[2] + scans[3]) / 2]);
    out.write("bad/jpeg/premature-end-progressive.jpg", &eof)?;

    // JWRN_HUFF_BAD_CODE: the middle of the scan overwritten with one bits
    // (each 0xFF stuffed with a 0x00, so no marker appears): no Huffman code
    // of the standard tables is all ones.
    let mut garbled = baseline.clone();
    let mid = garbled.len() / 2;
    for pair in garbled[mid..mid + 64].chunks_exact_mut(2) {
        pair.copy_from_slice(&[0xFF, 0x00]);
    }
    out.write("bad/jpeg/bad-huffman-code.jpg", &garbled)?;

    // JWRN_MUST_RESYNC: restart markers every MCU row, the third renumbered.
    let restart = Jpeg {
        restart: 20,
        ..Jpeg::default()
    }
    .encode(&pixels, w, h, JpegColor::Rgb)?;
    let start = find_segment(&restart, 0xDA)?.context("a scan")?;
    let rst: Vec<usize> = (start..restart.len() - 1)
        .filter(|&i| restart[i] == 0xFF && (0xD0..=0xD7).contains(&restart[i + 1]))
        .collect();
    ensure!(rst.len() >= 4, "restart markers written");
    let mut resync = restart.clone();
    resync[rst[2] + 1] = 0xD0 + ((resync[rst[2] + 1] - 0xD0 + 4) % 8);
    out.write("bad/jpeg/restart-marker-out-of-order.jpg", &resync)?;

    // JWRN_BOGUS_PROGRESSION: the first (DC) scan left out, so AC scans refine
    // coefficients that never arrived.
    let mut no_dc = progressive[..scans[0]].to_vec();
    no_dc.extend_from_slice(&progressive[scans[1]..]);
    out.write("bad/jpeg/progression-without-dc.jpg", &no_dc)?;

    // Warnings that leave the pixels whole: these must render.
    // JWRN_EXTRANEOUS_DATA: padding between the scan and the end marker.
    let mut padded = baseline[..baseline.len() - 2].to_vec();
    padded.extend_from_slice(&[0u8; 16]);
    padded.extend_from_slice(&[0xFF, 0xD9]);
    out.write("warnings/padding-before-end.jpg", &padded)?;
    // A complete image followed by another cut short (a phone's preview or
    // gain map after the main image's end): the main image is whole.
    let mut trailing = progressive.clone();
    trailing.extend_from_slice(&baseline[..baseline.len() / 3]);
    out.write("warnings/cut-after-the-image.jpg", &trailing)?;
    Ok(())
}

/// Where each scan (`FF DA` segment) of a JPEG starts, walking the segments
/// and the entropy-coded data between them.
fn scan_offsets(jpeg: &[u8]) -> Result<Vec<usize>> {
    ensure!(jpeg.starts_with(&[0xFF, 0xD8]), "not a JPEG");
    let mut found = Vec::new();
    let mut pos = 2;
    while pos + 4 <= jpeg.len() {
        ensure!(jpeg[pos] == 0xFF, "broken JPEG segment chain at {pos}");
        let m = jpeg[pos + 1];
        if m == 0xD9 {
            break;
        }
        let len = usize::from(u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]));
        let end = pos + 2 + len;
        if m != 0xDA {
            pos = end;
            continue;
        }
        found.push(pos);
        // Entropy-coded data runs to the next marker that is neither a
        // stuffed byte (FF 00) nor a restart marker.
        pos = end;
        while pos + 1 < jpeg.len() && (jpeg[pos] != 0xFF || matches!(jpeg[pos + 1], 0x00 | 0xD0..=0xD7)) {
            pos += 1;
        }
    }
    Ok(found)
}

/// An EXIF APP1 body whose IFD1 holds `thumbnail` (JPEGInterchangeFormat and
/// its length), as cameras and phones write it.
fn exif_with_thumbnail(thumbnail: &[u8]) -> Result<Vec<u8>> {
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"II*\0");
    tiff.extend_from_slice(&8u32.to_le_bytes());
    // IFD0 at 8: one entry (Orientation 1), then the offset of IFD1.
    let ifd1 = 8 + 2 + 12 + 4;
    tiff.extend_from_slice(&1u16.to_le_bytes());
    tiff.extend_from_slice(&[0x12, 0x01, 3, 0, 1, 0, 0, 0, 1, 0, 0, 0]);
    tiff.extend_from_slice(&u32::try_from(ifd1)?.to_le_bytes());
    // IFD1: JPEGInterchangeFormat (0x0201) and its length (0x0202), LONGs.
    let data = ifd1 + 2 + 2 * 12 + 4;
    tiff.extend_from_slice(&2u16.to_le_bytes());
    for (tag, value) in [(0x0201u16, data), (0x0202, thumbnail.len())] {
        tiff.extend_from_slice(&tag.to_le_bytes());
        tiff.extend_from_slice(&4u16.to_le_bytes());
        tiff.extend_from_slice(&1u32.to_le_bytes());
        tiff.extend_from_slice(&u32::try_from(value)?.to_le_bytes());
    }
    tiff.extend_from_slice(&0u32.to_le_bytes());
    tiff.extend_from_slice(thumbnail);
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    Ok(app1)
}

/// Offset of the first segment with marker `FF <marker>` before the scan data, walking
/// the segment chain (so marker-like bytes inside segments are never mistaken).
fn find_segment(jpeg: &[u8], marker: u8) -> Result<Option<usize>> {
    ensure!(jpeg.starts_with(&[0xFF, 0xD8]), "not a JPEG");
    let mut pos = 2;
    while pos + 4 <= jpeg.len() {
        ensure!(jpeg[pos] == 0xFF, "broken JPEG segment chain at {pos}");
        let m = jpeg[pos + 1];
        if m == marker {
            return Ok(Some(pos));
        }
        if m == 0xDA {
            return Ok(None); // start of scan: no more header segments
        }
        let len = usize::from(u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]));
        pos += 2 + len;
    }
    Ok(None)
}

/// Inserts a COM segment after the APPn segments (jpeg-encoder has no comment API).
fn insert_comment(jpeg: &[u8], text: &[u8]) -> Result<Vec<u8>> {
    ensure!(jpeg.starts_with(&[0xFF, 0xD8]), "not a JPEG");
    let mut pos = 2;
    while pos + 4 <= jpeg.len() && jpeg[pos] == 0xFF && (0xE0..=0xEF).contains(&jpeg[pos + 1]) {
        pos += 2 + usize::from(u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]));
    }
    if pos > jpeg.len() {
        bail!("JPEG APP segment runs past the end of the file");
    }
    let len = u16::try_from(text.len() + 2).context("comment too long")?;
    let mut out = jpeg[..pos].to_vec();
    out.extend_from_slice(&[0xFF, 0xFE]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(text);
    out.extend_from_slice(&jpeg[pos..]);
    Ok(out)
}

/// PNG settings for the png crate, used directly so iCCP, 16-bit, palette and tRNS
/// chunks are written exactly as asked.
struct Png {
    w: u32,
    h: u32,
    color: png::ColorType,
    depth: png::BitDepth,
    icc: Option<Vec<u8>>,
    palette: Option<(Vec<u8>, Vec<u8>)>,
}

impl Png {
    fn new(w: u32, h: u32, color: png::ColorType) -> Self {
        Png {
            w,
            h,
            color,
            depth: png::BitDepth::Eight,
            icc: None,
            palette: None,
        }
    }

    fn depth(mut self, depth: png::BitDepth) -> Self {
        self.depth = depth;
        self
    }

    fn icc(mut self, icc: Vec<u8>) -> Self {
        self.icc = Some(icc);
        self
    }

    fn palette(mut self, plte: Vec<u8>, trns: Vec<u8>) -> Self {
        self.palette = Some((plte, trns));
        self
    }

    fn encode(self, data: &[u8]) -> Result<Vec<u8>> {
        let mut info = png::Info::with_size(self.w, self.h);
        info.color_type = self.color;
        info.bit_depth = self.depth;
        info.icc_profile = self.icc.map(Cow::Owned);
        if let Some((plte, trns)) = self.palette {
            info.palette = Some(Cow::Owned(plte));
            info.trns = Some(Cow::Owned(trns));
        }
        let mut bytes = Vec::new();
        {
            let mut enc = png::Encoder::with_info(&mut bytes, info)?;
            enc.set_compression(png::Compression::High);
            let mut writer = enc.write_header()?;
            writer.write_image_data(data)?;
            writer.finish()?;
        }
        Ok(bytes)
    }
}

fn rgb_from_fn(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
    let mut out = Vec::with_capacity(w as usize * h as usize * 3);
    for y in 0..h {
        for x in 0..w {
            out.extend_from_slice(&f(x, y));
        }
    }
    out
}

fn pixels_from_fn(w: u32, h: u32, bpp: usize, f: impl Fn(u32, u32) -> Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(w as usize * h as usize * bpp);
    for y in 0..h {
        for x in 0..w {
            out.extend_from_slice(&f(x, y));
        }
    }
    out
}

/// Marsaglia xorshift64: tiny, seeded, and identical everywhere.
struct XorShift64(u64);

impl XorShift64 {
    fn next_u8(&mut self) -> u8 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 56) as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orientation_maps_are_bijections() {
        for n in 1..=8u16 {
            let (sw, sh) = if n >= 5 { (80, 120) } else { (120, 80) };
            let mut seen = vec![false; 120 * 80];
            for y in 0..sh {
                for x in 0..sw {
                    let (ux, uy) = stored_to_upright(n, x, y, sw, sh);
                    assert!(ux < 120 && uy < 80, "orientation {n}");
                    seen[(uy * 120 + ux) as usize] = true;
                }
            }
            assert!(seen.iter().all(|s| *s), "orientation {n}");
        }
    }
}
