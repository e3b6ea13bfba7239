//! Generated photo-like images for benchmarks and tests, deterministic by seed.
//!
//! Owns: `synthetic_photo_jpeg` (smooth gradients, shapes, texture and sensor-like noise, so JPEG
//! sizes land near real photos: about 0.1–0.3 bytes per pixel at q90) and `realistic_corpus` (a
//! mix of sizes like a GBIF crawl). Does not own: measuring anything (see `codec_bench`).

use std::f32::consts::TAU;
use std::io::Cursor;

use super::jpeg_meta;
use super::turbo::Compressor;
use crate::rng::SplitMix64;

/// Shapes per image: enough edges to look like objects on a background, few enough to stay cheap.
const SHAPES: usize = 6;
/// Peak amplitude of the per-pixel noise, in 8-bit levels. Tuned so q90 JPEGs come out near
/// 0.2 bytes per pixel; noise is what makes real photos cost bytes.
const NOISE_LEVELS: i32 = 5;

/// A table of `len` values of a random smooth wave over [-1, 1], with `cycles` periods.
fn wave(len: u32, cycles: f32, rng: &mut SplitMix64) -> Vec<f32> {
    let phase = rng.range(0.0, TAU);
    let step = TAU * cycles / len.max(1) as f32;
    (0..len).map(|i| (i as f32 * step + phase).sin()).collect()
}

/// Photo-like packed RGB pixels, `width * height * 3` bytes.
pub(crate) fn synthetic_photo_rgb(width: u32, height: u32, seed: u64) -> Vec<u8> {
    let mut rng = SplitMix64(seed ^ 0x5EED_CAFE_F00D_D00D);
    let (w, h) = (width.max(1), height.max(1));
    // Lighting: slow gradients, one table per channel and axis, so each pixel costs additions.
    let base: [f32; 3] = [rng.range(70.0, 170.0), rng.range(70.0, 170.0), rng.range(60.0, 160.0)];
    let gx: Vec<Vec<f32>> = (0..3).map(|_| wave(w, rng.range(0.3, 1.2), &mut rng)).collect();
    let gy: Vec<Vec<f32>> = (0..3).map(|_| wave(h, rng.range(0.3, 1.2), &mut rng)).collect();
    // Texture (foliage, paper fibre): a mid-frequency plaid whose strength varies across the frame.
    let tx = wave(w, w as f32 / rng.range(6.0, 24.0), &mut rng);
    let ty = wave(h, h as f32 / rng.range(6.0, 24.0), &mut rng);
    let ax: Vec<f32> = wave(w, rng.range(0.5, 2.0), &mut rng).iter().map(|v| (v + 1.0) * 10.0).collect();
    let ay: Vec<f32> = wave(h, rng.range(0.5, 2.0), &mut rng).iter().map(|v| (v + 1.0) * 0.5).collect();
    // Objects: ellipses with their own colour shift.
    let shapes: Vec<([f32; 4], [f32; 3])> = (0..SHAPES)
        .map(|_| {
            let geometry = [
                rng.unit() * w as f32,
                rng.unit() * h as f32,
                rng.range(0.05, 0.3) * w as f32,
                rng.range(0.05, 0.3) * h as f32,
            ];
            (geometry, [rng.range(-60.0, 60.0), rng.range(-60.0, 60.0), rng.range(-60.0, 60.0)])
        })
        .collect();
    let mut noise = SplitMix64(rng.next_u64());
    let mut out = Vec::with_capacity(w as usize * h as usize * 3);
    let mut shift = vec![[0f32; 3]; w as usize];
    for y in 0..h as usize {
        let fy = y as f32;
        shift.iter_mut().for_each(|s| *s = [0.0; 3]);
        for ([cx, cy, rx, ry], colour) in &shapes {
            let dy = (fy - cy) / ry;
            if dy.abs() >= 1.0 {
                continue;
            }
            let half = rx * (1.0 - dy * dy).sqrt();
            let (x0, x1) = ((cx - half).max(0.0) as usize, ((cx + half).max(0.0) as usize).min(w as usize));
            for s in &mut shift[x0..x1] {
                s.iter_mut().zip(colour).for_each(|(s, c)| *s += c);
            }
        }
        let mut bits = 0u64;
        for x in 0..w as usize {
            if x % 8 == 0 {
                bits = noise.next_u64();
            }
            let n = ((bits >> ((x % 8) * 8)) & 0xFF) as i32 * (2 * NOISE_LEVELS + 1) / 256 - NOISE_LEVELS;
            let texture = tx[x] * ty[y] * ax[x] * ay[y];
            for c in 0..3 {
                let v = base[c] + 45.0 * gx[c][x] + 45.0 * gy[c][y] + shift[x][c] + texture;
                out.push((v as i32 + n).clamp(0, 255) as u8);
            }
        }
    }
    out
}

/// A photo-like JPEG of `width` x `height` at `quality`, the same bytes for the same arguments.
///
/// # Panics
/// If a side is 0 or above 65,535 (JPEG's limit); this is a generator for tests and benchmarks.
pub fn synthetic_photo_jpeg(width: u32, height: u32, seed: u64, quality: u8) -> Vec<u8> {
    let rgb = synthetic_photo_rgb(width, height, seed);
    Compressor::new()
        .and_then(|mut c| c.compress_rgb(&rgb, width, height, quality))
        .unwrap_or_else(|e| panic!("cannot generate a {width}x{height} JPEG: {}", e.message))
}

/// One image of a generated corpus, before its pixels exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Spec {
    pub width: u32,
    pub height: u32,
    pub png: bool,
    pub quality: u8,
    /// EXIF orientation to insert (1 = none), as phones do for portrait shots.
    pub orientation: u8,
}

/// Camera and scanner sizes, 1.2 to 12 megapixels.
const LARGE: [(u32, u32); 6] = [(1280, 960), (1600, 1200), (2048, 1536), (2592, 1944), (3264, 2448), (4000, 3000)];
/// Web-sized images, already within 1024 px.
const SMALL: [(u32, u32); 4] = [(640, 480), (800, 600), (1024, 768), (500, 375)];

/// The sizes and kinds of `realistic_corpus(n)`: in every 20 images, 5 small JPEGs (25%), 1 PNG
/// (alternately small with no decode needed, or 2 MP), and 14 JPEGs of 1.2–12 MP, some portrait,
/// some with EXIF orientation 6.
pub(crate) fn corpus_plan(n: usize) -> Vec<Spec> {
    let mut rng = SplitMix64(0xC0_4B05);
    (0..n)
        .map(|i| {
            let slot = i % 20;
            let quality = [80, 85, 90, 92, 95][(rng.next_u64() % 5) as usize];
            let portrait = rng.next_u64() % 4 == 0;
            let (mut width, mut height, png) = match slot {
                0..=4 => (SMALL[slot % SMALL.len()].0, SMALL[slot % SMALL.len()].1, false),
                5 if (i / 20) % 2 == 0 => (600, 400, true),
                5 => (1600, 1200, true),
                _ => {
                    // The k-th large image overall, so every size comes round equally often.
                    let (w, h) = LARGE[((i / 20) * 14 + slot - 6) % LARGE.len()];
                    (w, h, false)
                }
            };
            if portrait {
                std::mem::swap(&mut width, &mut height);
            }
            let orientation = if !png && slot % 7 == 6 { 6 } else { 1 };
            Spec { width, height, png, quality, orientation }
        })
        .collect()
}

/// `n` encoded images shaped like a GBIF crawl (see `corpus_plan`), deterministic.
pub fn realistic_corpus(n: usize) -> Vec<Vec<u8>> {
    corpus_plan(n)
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let seed = i as u64 + 1;
            if spec.png {
                let rgb = synthetic_photo_rgb(spec.width, spec.height, seed);
                let img = image::RgbImage::from_raw(spec.width, spec.height, rgb).expect("buffer matches size");
                let mut png = Cursor::new(Vec::new());
                img.write_to(&mut png, image::ImageFormat::Png).expect("PNG encoding to memory cannot fail");
                png.into_inner()
            } else {
                let jpeg = synthetic_photo_jpeg(spec.width, spec.height, seed, spec.quality);
                if spec.orientation == 1 {
                    jpeg
                } else {
                    jpeg_meta::with_orientation(&jpeg, spec.orientation, false)
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let a = synthetic_photo_jpeg(200, 150, 7, 90);
        assert_eq!(a, synthetic_photo_jpeg(200, 150, 7, 90));
        assert_ne!(a, synthetic_photo_jpeg(200, 150, 8, 90));
    }

    #[test]
    fn jpeg_sizes_are_photo_like() {
        for seed in 1..=3 {
            let (w, h) = (640u32, 480u32);
            let jpeg = synthetic_photo_jpeg(w, h, seed, 90);
            let per_pixel = jpeg.len() as f64 / f64::from(w * h);
            assert!((0.1..=0.3).contains(&per_pixel), "seed {seed}: {per_pixel:.3} bytes/pixel");
        }
    }

    #[test]
    fn plan_is_mostly_large_jpegs_with_a_quarter_small() {
        let plan = corpus_plan(40);
        let small = plan.iter().filter(|s| s.width.max(s.height) <= 1024).count();
        let pngs = plan.iter().filter(|s| s.png).count();
        let megapixels: Vec<f64> = plan.iter().map(|s| f64::from(s.width * s.height) / 1e6).collect();
        assert!((9..=13).contains(&small), "{small} small of 40");
        assert!((1..=4).contains(&pngs), "{pngs} PNGs of 40");
        assert!(megapixels.iter().any(|&mp| mp >= 11.0) && megapixels.iter().any(|&mp| mp <= 1.5));
        assert!(plan.iter().any(|s| s.orientation == 6));
    }
}
