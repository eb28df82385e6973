// One decode, a clone per output: how sharp's docs make several sizes.
// Run by `cargo xtask bench` from target/bench/node (where sharp is installed):
//   node sharp-job.mjs INPUT OUT_DIR FORMATS WIDTHS JPEG_QUALITY WEBP_QUALITY [mozjpeg]
// `mozjpeg` sets sharp's `mozjpeg: true` (trellis quantisation, progressive, mozjpeg's
// tables): what a user tuning sharp for bytes would pick.
import sharp from 'sharp';
const [input, outDir, formats, widths, jq, wq, tuning] = process.argv.slice(2);
const mozjpeg = tuning === 'mozjpeg';
const meta = await sharp(input).metadata();
const upright = (meta.orientation ?? 1) >= 5 ? meta.height : meta.width;
const base = sharp(input).rotate();
const jobs = [];
for (const w of widths.split(',').map(Number).filter((w) => w <= upright)) {
  const r = base.clone().resize({ width: w, withoutEnlargement: true });
  jobs.push(r.clone().jpeg({ quality: Number(jq), mozjpeg }).toFile(`${outDir}/${w}.jpg`));
  if (formats.includes('webp')) jobs.push(r.clone().webp({ quality: Number(wq) }).toFile(`${outDir}/${w}.webp`));
}
await Promise.all(jobs);
