//! Tests for the perceptual hashes, on procedurally generated images (no files).

use super::*;

/// Size of the generated "originals": a typical already-resized download.
const W: usize = 512;
/// See [`W`].
const H: usize = 384;
/// PDQ distance we accept for a noised or brightened copy. PDQ's authors match at ≤ 31; such copies measured
/// 0–8 here, so 16 leaves margin while still being a strict "same picture" bound.
const PDQ_SAME: u32 = 16;
/// PDQ distance we accept for a resized copy: measured 2–20 here (worst at 1/2 size, where the sampling grid of
/// the 64×64 image lands a fraction of a cell away from the original's; Meta's own resized test photos give
/// 8–16 against their original). 24 stays under PDQ's 31 and far from the ~128 of unrelated images.
const PDQ_RESIZED: u32 = 24;
/// pHash distance we accept for copies of one image (measured 0–2; common tools match at ≤ 8–10).
const PHASH_SAME: u32 = 6;

/// Small deterministic generator (Knuth's MMIX LCG), so every run sees the same images.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as u32
    }

    /// Uniform in [lo, hi).
    fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * (self.next() as f32 / (1u64 << 31) as f32)
    }
}

/// A photo-like RGB image: per-channel gradients, soft blobs of several sizes, two hard-edged rectangles,
/// a mid-scale value-noise texture (random levels on a coarse lattice, bilinearly blended) and fine grain.
/// Coordinates are relative, so a seed gives the same layout at any size (the grain differs).
fn photo(seed: u64, w: usize, h: usize) -> Vec<u8> {
    let mut rng = Lcg(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut r = |lo: f32, hi: f32| rng.range(lo, hi);
    let grads: Vec<[f32; 3]> = (0..3).map(|_| [r(60.0, 190.0), r(-90.0, 90.0), r(-90.0, 90.0)]).collect();
    let blobs: Vec<[f32; 6]> = (0..16)
        .map(|_| {
            let (cx, cy, rad) = (r(0.0, 1.0), r(0.0, 1.0), r(0.03, 0.2));
            let amp = 40.0 + 250.0 * rad;
            [cx, cy, rad * rad, r(-amp, amp), r(-amp, amp), r(-amp, amp)]
        })
        .collect();
    let rects: Vec<[f32; 5]> =
        (0..2).map(|_| [r(0.0, 0.7), r(0.0, 0.7), r(0.1, 0.3), r(0.1, 0.3), r(-60.0, 60.0)]).collect();
    const LATTICE: usize = 20;
    let lattice: Vec<f32> = (0..(LATTICE + 1) * (LATTICE + 1)).map(|_| r(-25.0, 25.0)).collect();
    let texture = |u: f32, v: f32| {
        let (fx, fy) = (u * LATTICE as f32, v * LATTICE as f32);
        let (ix, iy) = ((fx as usize).min(LATTICE - 1), (fy as usize).min(LATTICE - 1));
        let (tx, ty) = (fx - ix as f32, fy - iy as f32);
        let at = |x: usize, y: usize| lattice[y * (LATTICE + 1) + x];
        let top = at(ix, iy) * (1.0 - tx) + at(ix + 1, iy) * tx;
        let bottom = at(ix, iy + 1) * (1.0 - tx) + at(ix + 1, iy + 1) * tx;
        top * (1.0 - ty) + bottom * ty
    };
    let mut out = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        let v = (y as f32 + 0.5) / h as f32;
        for x in 0..w {
            let u = (x as f32 + 0.5) / w as f32;
            let mut shared = texture(u, v) + r(-8.0, 8.0);
            for q in &rects {
                if u >= q[0] && u < q[0] + q[2] && v >= q[1] && v < q[1] + q[3] {
                    shared += q[4];
                }
            }
            let mut px: [f32; 3] = std::array::from_fn(|c| {
                let g = grads[c];
                g[0] + g[1] * (u - 0.5) + g[2] * (v - 0.5)
            });
            for b in &blobs {
                let falloff = (-((u - b[0]).powi(2) + (v - b[1]).powi(2)) / b[2]).exp();
                px.iter_mut().zip(&b[3..]).for_each(|(p, amp)| *p += amp * falloff);
            }
            out.extend(px.iter().map(|p| (p + shared).round().clamp(0.0, 255.0) as u8));
        }
    }
    out
}

/// Box downscale by an integer factor (each output pixel averages a factor×factor block).
fn shrink(data: &[u8], w: usize, h: usize, ch: usize, factor: usize) -> Vec<u8> {
    let (ow, oh) = (w / factor, h / factor);
    let mut out = Vec::with_capacity(ow * oh * ch);
    for oy in 0..oh {
        for ox in 0..ow {
            for c in 0..ch {
                let mut sum = 0u32;
                for y in oy * factor..(oy + 1) * factor {
                    for x in ox * factor..(ox + 1) * factor {
                        sum += u32::from(data[(y * w + x) * ch + c]);
                    }
                }
                out.push(((sum as f32) / (factor * factor) as f32).round() as u8);
            }
        }
    }
    out
}

/// Adds deterministic noise of at most ±`amp` to every sample, like mild re-encoding damage.
fn perturb(data: &[u8], seed: u64, amp: i32) -> Vec<u8> {
    let mut rng = Lcg(seed);
    let mut noise = || (rng.next() % (2 * amp as u32 + 1)) as i32 - amp;
    data.iter().map(|&v| (i32::from(v) + noise()).clamp(0, 255) as u8).collect()
}

fn rgb(data: &[u8], w: usize, h: usize) -> Pixels<'_> {
    Pixels { width: w as u32, height: h as u32, channels: 3, data }
}

/// Both hashes' distances between two images.
fn distances(a: &Pixels, b: &Pixels) -> (u32, u32) {
    (hamming256(&pdq(a).bits, &pdq(b).bits), hamming64(phash(a), phash(b)))
}

#[test]
fn resized_copies_match_the_original() {
    for seed in 1..=4 {
        let img = photo(seed, W, H);
        for factor in [2, 4] {
            let small = shrink(&img, W, H, 3, factor);
            let (d_pdq, d_phash) = distances(&rgb(&img, W, H), &rgb(&small, W / factor, H / factor));
            println!("seed {seed}, 1/{factor} size: pdq {d_pdq}, phash {d_phash}");
            assert!(d_pdq <= PDQ_RESIZED, "pdq distance {d_pdq} for a 1/{factor} copy");
            assert!(d_phash <= PHASH_SAME, "phash distance {d_phash} for a 1/{factor} copy");
        }
    }
}

#[test]
fn lightly_noised_copy_matches_the_original() {
    for seed in 1..=4 {
        let img = photo(seed, W, H);
        let noisy = perturb(&img, seed + 100, 3);
        let (d_pdq, d_phash) = distances(&rgb(&img, W, H), &rgb(&noisy, W, H));
        println!("seed {seed}, ±3 noise: pdq {d_pdq}, phash {d_phash}");
        assert!(d_pdq <= PDQ_SAME && d_phash <= PHASH_SAME, "pdq {d_pdq}, phash {d_phash}");
    }
}

#[test]
fn brighter_copy_matches_the_original() {
    // Both hashes ignore the DC term, so a uniform brightness shift (short of clipping) changes nothing much.
    let img = photo(7, W, H);
    let brighter: Vec<u8> = img.iter().map(|&v| v.saturating_add(12)).collect();
    let (d_pdq, d_phash) = distances(&rgb(&img, W, H), &rgb(&brighter, W, H));
    println!("+12 brightness: pdq {d_pdq}, phash {d_phash}");
    assert!(d_pdq <= PDQ_SAME && d_phash <= PHASH_SAME, "pdq {d_pdq}, phash {d_phash}");
}

#[test]
fn different_images_are_far_apart() {
    // Unrelated images sit near half the bits (128 for PDQ, 32 for pHash); the bounds leave wide margins.
    let imgs: Vec<Vec<u8>> = (1..=5).map(|s| photo(s, W, H)).collect();
    for i in 0..imgs.len() {
        for j in i + 1..imgs.len() {
            let (d_pdq, d_phash) = distances(&rgb(&imgs[i], W, H), &rgb(&imgs[j], W, H));
            println!("seeds {} vs {}: pdq {d_pdq}, phash {d_phash}", i + 1, j + 1);
            assert!(d_pdq > 64, "pdq distance {d_pdq} between unrelated images");
            assert!(d_phash > 12, "phash distance {d_phash} between unrelated images");
        }
    }
}

#[test]
fn half_the_bits_are_set() {
    // Thresholding at the median splits the coefficients evenly; a lopsided hash would mean a broken median.
    let img = photo(3, W, H);
    let h = pdq(&rgb(&img, W, H));
    assert_eq!(h.bits.iter().map(|b| b.count_ones()).sum::<u32>(), 128);
    assert_eq!(phash(&rgb(&img, W, H)).count_ones(), 32);
}

#[test]
fn quality_separates_flat_from_detailed_images() {
    let flat = vec![128u8; W * H * 3];
    assert_eq!(pdq(&rgb(&flat, W, H)).quality, 0);
    for seed in 1..=4 {
        let q = pdq(&rgb(&photo(seed, W, H), W, H)).quality;
        println!("seed {seed}: quality {q}");
        assert!(q >= 50, "quality {q} for a detailed image");
    }
    // A very gentle gradient is nearly featureless: below PDQ's reliability threshold of 50.
    let gentle: Vec<u8> = (0..W * H).flat_map(|i| [100 + (i % W * 20 / W) as u8; 3]).collect();
    let q = pdq(&rgb(&gentle, W, H)).quality;
    println!("gentle gradient: quality {q}");
    assert!(q < 50, "quality {q} for a gentle gradient");
}

#[test]
fn gray_rgb_and_rgba_versions_agree() {
    let img = photo(5, W, H);
    let luma = |p: &[u8]| 0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]);
    let gray: Vec<u8> = img.chunks_exact(3).map(|p| luma(p).round() as u8).collect();
    let gray_rgb: Vec<u8> = gray.iter().flat_map(|&g| [g, g, g]).collect();
    let as_gray = Pixels { width: W as u32, height: H as u32, channels: 1, data: &gray };
    let (d_pdq, d_phash) = distances(&as_gray, &rgb(&gray_rgb, W, H));
    println!("gray vs rgb: pdq {d_pdq}, phash {d_phash}");
    assert!(d_pdq <= 2 && d_phash <= 2, "pdq {d_pdq}, phash {d_phash}");

    let rgba: Vec<u8> = img.chunks_exact(3).enumerate().flat_map(|(i, p)| [p[0], p[1], p[2], i as u8]).collect();
    let as_rgba = Pixels { width: W as u32, height: H as u32, channels: 4, data: &rgba };
    assert_eq!(pdq(&as_rgba), pdq(&rgb(&img, W, H)), "alpha must be ignored");
    assert_eq!(phash(&as_rgba), phash(&rgb(&img, W, H)), "alpha must be ignored");
}

#[test]
fn tiny_and_thin_images_do_not_panic() {
    for (w, h) in [(1, 1), (2, 2), (3, 200), (200, 3), (1, 1000), (63, 65), (5, 5)] {
        let data = photo(9, w, h);
        let h1 = pdq(&rgb(&data, w, h));
        let _ = phash(&rgb(&data, w, h)); // must not panic; its bits are not checked here
        assert!(h1.quality <= 100);
    }
    let one = [200u8, 10, 10];
    assert_eq!(pdq(&rgb(&one, 1, 1)).quality, 0, "a single pixel has no detail");
}

#[test]
fn invalid_pixels_give_zero_hashes() {
    let data = vec![7u8; 10 * 10 * 3];
    let bad = [
        Pixels { width: 10, height: 10, channels: 3, data: &data[1..] },
        Pixels { width: 10, height: 10, channels: 2, data: &data[..200] },
        Pixels { width: 0, height: 10, channels: 3, data: &[] },
        Pixels { width: u32::MAX, height: u32::MAX, channels: 4, data: &data },
    ];
    for p in &bad {
        assert_eq!(pdq(p), Pdq { bits: [0; 32], quality: 0 });
        assert_eq!(phash(p), 0);
    }
}

#[test]
fn hex_round_trips_and_rejects_bad_input() {
    let mut bits = [0u8; 32];
    bits[0] = 0xab;
    bits[31] = 0x01;
    let h = Pdq { bits, quality: 90 };
    let hex = h.to_hex();
    assert_eq!(hex.len(), 64);
    assert!(hex.starts_with("ab00") && hex.ends_with("0001"), "{hex}");
    assert_eq!(parse_pdq_hex(&hex), Some(bits));
    assert_eq!(parse_pdq_hex(&hex.to_uppercase()), Some(bits));
    let real = pdq(&rgb(&photo(2, W, H), W, H));
    assert_eq!(parse_pdq_hex(&real.to_hex()), Some(real.bits));
    for bad in [&hex[..63], &format!("{hex}0"), &format!("g{}", &hex[1..]), &format!(" {}", &hex[1..]), ""] {
        assert_eq!(parse_pdq_hex(bad), None, "{bad:?}");
    }
    assert_eq!(parse_pdq_hex(&format!("é{}", &hex[2..])), None, "non-ASCII");
}

#[test]
fn hamming_counts_differing_bits() {
    assert_eq!(hamming64(0, 0), 0);
    assert_eq!(hamming64(0, u64::MAX), 64);
    assert_eq!(hamming64(0b1011, 0b0110), 3);
    let (a, mut b) = ([0u8; 32], [0u8; 32]);
    assert_eq!(hamming256(&a, &b), 0);
    b[0] = 0xff;
    b[31] = 0x81;
    assert_eq!(hamming256(&a, &b), 10);
    assert_eq!(hamming256(&a, &[0xff; 32]), 256);
    assert_eq!(hamming256(&a, &b), 10);
}

#[test]
#[ignore = "timing only; run with --release -- --ignored --nocapture"]
fn timing_of_a_1024x768_image() {
    let (w, h) = (1024, 768);
    let img = photo(11, w, h);
    let p = rgb(&img, w, h);
    let runs = 50;
    let t = std::time::Instant::now();
    for _ in 0..runs {
        std::hint::black_box(pdq(std::hint::black_box(&p)));
    }
    let pdq_ms = t.elapsed().as_secs_f64() * 1000.0 / runs as f64;
    let t = std::time::Instant::now();
    for _ in 0..runs {
        std::hint::black_box(phash(std::hint::black_box(&p)));
    }
    let phash_ms = t.elapsed().as_secs_f64() * 1000.0 / runs as f64;
    let time = |p: &Pixels| {
        let t = std::time::Instant::now();
        for _ in 0..runs {
            std::hint::black_box(hashes(std::hint::black_box(p)));
        }
        t.elapsed().as_secs_f64() * 1000.0 / runs as f64
    };
    let luma: Vec<u8> =
        img.chunks_exact(3).map(|c| ((u32::from(c[0]) + u32::from(c[1]) + u32::from(c[2])) / 3) as u8).collect();
    let (both_rgb, both_luma) =
        (time(&p), time(&Pixels { width: w as u32, height: h as u32, channels: 1, data: &luma }));
    println!(
        "1024x768: pdq {pdq_ms:.2} ms/call, phash {phash_ms:.2} ms/call (RGB); both in one pass: RGB {both_rgb:.2} ms, \
         one luma plane {both_luma:.2} ms"
    );
}

#[test]
fn both_hashes_in_one_pass_are_the_two_hashes_apart() {
    for (w, h) in [(512usize, 384usize), (63, 65), (1, 1), (3, 200)] {
        let rgb: Vec<u8> = (0..w * h * 3).map(|i| ((i * 7919) % 251) as u8).collect();
        let p = Pixels { width: w as u32, height: h as u32, channels: 3, data: &rgb };
        assert_eq!(hashes(&p), (pdq(&p), phash(&p)), "{w}x{h}");
    }
}
