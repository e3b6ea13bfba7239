//! Perceptual hashes of an already decoded image: PDQ (256 bits) and the classic DCT pHash (64 bits).
//!
//! What this does: turns interleaved 8-bit pixels (gray, RGB or RGBA) into two fingerprints whose Hamming
//! distance is small when two images look alike (resized, re-encoded, slightly brightened) and large when
//! they do not. Both hashes only look at luminance and at low spatial frequencies. Each costs one pass over
//! the pixels (about 1–2 ms for a 1024×768 RGB image on one core, release build) and no per-pixel allocation.
//!
//! What this does not do: decode or resize files, hash rotated or mirrored variants, index or search
//! hashes, or decide what counts as a duplicate (callers pick their own thresholds).
//!
//! Why these two:
//! - PDQ is Meta's public algorithm (ThreatExchange, 2019) for near-duplicate photo detection: 256 bits,
//!   robust to resizing and re-encoding, and it comes with a quality score telling when a hash is not worth
//!   trusting. This module follows the published algorithm (luma, tent-filter downsample to 64×64, the 16×16
//!   lowest non-DC DCT frequencies, median threshold) and writes hex in PDQ's usual order. On Meta's eight
//!   regression photos it gave the reference hashes bit for bit when fed the same pixels; note that Meta's
//!   command-line tool first squashes images larger than 512 px to 512×512, which this module does not, so
//!   its hashes of large files differ from that tool's by a few bits. General bit-exactness is not claimed.
//! - pHash is the classic 64-bit DCT hash: cheap to store and index, and close to what common tools mean by
//!   "pHash". Those tools differ among themselves (pre-blur, resize filter, DC handling, bit order), so no
//!   bit-exact compatibility with any of them is claimed.

use std::sync::OnceLock;

/// Rec. 601 luma weights, the ones PDQ specifies (and what most tools call "grayscale").
const LUMA_R: f32 = 0.299;
/// See [`LUMA_R`].
const LUMA_G: f32 = 0.587;
/// See [`LUMA_R`].
const LUMA_B: f32 = 0.114;

/// PDQ hashes a 64×64 luminance image: enough to keep the layout of a picture, small enough for a cheap DCT.
const PDQ_GRID: usize = 64;
/// PDQ keeps the 16×16 lowest frequencies after DC: 256 coefficients, one bit each.
const PDQ_FREQS: usize = 16;
/// Box window = ceil(dim / 128): each pass spans half of one 64th, so two passes (a tent) span a whole cell.
const PDQ_WINDOW_DIVISOR: usize = 2 * PDQ_GRID;
/// Two box passes per axis give the tent-shaped "Jarosz" filter PDQ uses before decimating.
const PDQ_BOX_PASSES: usize = 2;
/// PDQ thresholds against the lower median (the 128th smallest of 256), as its Torben median does.
const PDQ_MEDIAN_INDEX: usize = PDQ_FREQS * PDQ_FREQS / 2 - 1;
/// Quality counts neighbour differences in whole percent of full scale (difference × 100 / 255, truncated),
/// so that only significant gradients count, not the sum of many tiny ones.
const QUALITY_PERCENT: f32 = 100.0;
/// Full scale of 8-bit luminance.
const LUMA_FULL_SCALE: f32 = 255.0;
/// PDQ's hand-tuned divisor turning the gradient sum into a 0–100 score.
const QUALITY_DIVISOR: i32 = 90;
/// Scores are capped at 100.
const QUALITY_MAX: i32 = 100;

/// pHash downsamples to 32×32: four samples per kept frequency along each axis.
const PHASH_GRID: usize = 32;
/// pHash keeps an 8×8 block of frequencies (1..=8 on each axis, DC excluded): 64 bits.
const PHASH_FREQS: usize = 8;

/// Bytes in a PDQ hash.
const PDQ_BYTES: usize = 32;
/// Lowercase hex digits for [`Pdq::to_hex`].
const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Borrowed, already decoded 8-bit pixels, interleaved row by row with no padding.
///
/// `channels` is 1 (gray), 3 (RGB) or 4 (RGBA; alpha is ignored), and `data.len()` must be
/// `width * height * channels`. Anything else is invalid input: [`hashes`] then returns an
/// all-zero hash (and quality 0) instead of panicking, so callers should treat an all-zero hash as "none".
#[derive(Debug, Clone, Copy)]
pub struct Pixels<'a> {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Samples per pixel: 1, 3 or 4.
    pub channels: u8,
    /// Interleaved samples, `width * height * channels` bytes.
    pub data: &'a [u8],
}

impl Pixels<'_> {
    /// Width and height as `usize` when the description is consistent, `None` otherwise.
    fn dims(&self) -> Option<(usize, usize)> {
        let (w, h, c) = (self.width as usize, self.height as usize, self.channels as usize);
        let len = w.checked_mul(h).and_then(|n| n.checked_mul(c));
        (w > 0 && h > 0 && matches!(c, 1 | 3 | 4) && len == Some(self.data.len())).then_some((w, h))
    }

    /// Luminance of row `y` into `out` (whose length is the width).
    fn luma_row(&self, y: usize, out: &mut [f32]) {
        let c = self.channels as usize;
        let row = &self.data[y * out.len() * c..(y + 1) * out.len() * c];
        match c {
            1 => out.iter_mut().zip(row).for_each(|(o, &v)| *o = f32::from(v)),
            3 => luma_of::<3>(row, out),
            _ => luma_of::<4>(row, out),
        }
    }
}

/// Luminance of interleaved RGB(A) samples, from per-channel product tables (the same f32 products and
/// additions as computing R·0.299 + G·0.587 + B·0.114 directly, without the per-sample conversions).
fn luma_of<const C: usize>(row: &[u8], out: &mut [f32]) {
    static TABLES: OnceLock<[[f32; 256]; 3]> = OnceLock::new();
    let [r, g, b] = TABLES.get_or_init(|| {
        let table = |k: f32| std::array::from_fn(|v| k * v as f32);
        [table(LUMA_R), table(LUMA_G), table(LUMA_B)]
    });
    for (o, px) in out.iter_mut().zip(row.chunks_exact(C)) {
        *o = r[usize::from(px[0])] + g[usize::from(px[1])] + b[usize::from(px[2])];
    }
}

/// A PDQ hash and its quality score.
///
/// Bit order: bit `k` (for `k = 16 * i + j`, `i` the vertical and `j` the horizontal frequency, both
/// 0-based from the lowest non-DC one) is set when that DCT coefficient is above the median. The 256 bits
/// form one big-endian number: `bits[0]` holds bits 255..=248 and `bits[31]` bits 7..=0, bit `k` being
/// `bits[31 - k / 8] >> (k % 8) & 1`. This makes [`Pdq::to_hex`] read like PDQ's reference hex output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pdq {
    /// The 256 hash bits, most significant byte first (see the type's documentation for the order).
    pub bits: [u8; 32],
    /// 0 (flat, featureless) to 100 (plenty of detail). PDQ's authors suggest treating hashes with quality
    /// below 50 as unreliable for matching: such images (flat, nearly blank) collide with each other easily.
    pub quality: u8,
}

impl Pdq {
    /// The hash as 64 lowercase hex characters, most significant byte first.
    pub fn to_hex(self) -> String {
        let mut s = String::with_capacity(2 * PDQ_BYTES);
        for b in self.bits {
            s.push(char::from(HEX_DIGITS[usize::from(b >> 4)]));
            s.push(char::from(HEX_DIGITS[usize::from(b & 0x0f)]));
        }
        s
    }
}

/// Computes the PDQ hash and quality of an image of any size ≥ 1×1. Images under 64 px on a side are
/// sampled with repetition (PDQ's reference returns a zero hash below 5 px; this one hashes them anyway, and
/// a 1×1 image gets quality 0). Invalid [`Pixels`] give an all-zero hash with quality 0.
#[cfg(test)]
pub fn pdq(p: &Pixels) -> Pdq {
    let Some((w, h)) = p.dims() else {
        return Pdq { bits: [0; PDQ_BYTES], quality: 0 };
    };
    let [grid] = reduce(p, [&pdq_taps(w, h)]);
    pdq_of(&grid)
}

/// The PDQ hash of the 64×64 grid its filter made.
fn pdq_of(grid: &[f32]) -> Pdq {
    let mut coeffs = [0f32; PDQ_FREQS * PDQ_FREQS];
    low_frequency_dct(grid, PDQ_GRID, dct_matrix(PDQ_GRID, PDQ_FREQS), PDQ_FREQS, &mut coeffs);
    let median = sorted(coeffs)[PDQ_MEDIAN_INDEX];
    let mut bits = [0u8; PDQ_BYTES];
    for (k, &c) in coeffs.iter().enumerate() {
        if c > median {
            bits[PDQ_BYTES - 1 - k / 8] |= 1 << (k % 8);
        }
    }
    Pdq { bits, quality: pdq_quality(grid) }
}

/// Computes the 64-bit DCT pHash: luminance, area-average to 32×32, DCT, the 8×8 frequencies (1..=8, 1..=8),
/// bit `k = 8 * row + col` (value `1 << k`) set when that coefficient is above the median of the 64 (the mean
/// of the two middle ones). Works for any size ≥ 1×1; invalid [`Pixels`] give 0. pHash has no quality score:
/// for flat or nearly flat images its bits are arbitrary, so check [`Pdq::quality`] before trusting a match.
#[cfg(test)]
pub fn phash(p: &Pixels) -> u64 {
    let Some((w, h)) = p.dims() else { return 0 };
    let [grid] = reduce(p, [&phash_taps(w, h)]);
    phash_of(&grid)
}

/// The pHash of the 32×32 grid its area average made.
fn phash_of(grid: &[f32]) -> u64 {
    let mut coeffs = [0f32; PHASH_FREQS * PHASH_FREQS];
    low_frequency_dct(grid, PHASH_GRID, dct_matrix(PHASH_GRID, PHASH_FREQS), PHASH_FREQS, &mut coeffs);
    let s = sorted(coeffs);
    let median = (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0;
    coeffs.iter().enumerate().filter(|(_, &c)| c > median).fold(0, |acc, (k, _)| acc | 1 << k)
}

/// Both hashes of one image, reading its pixels (and turning them into luminance) once: what
/// the download computes for every stored image. The same as `pdq` and `phash` apart (which
/// the tests use).
pub fn hashes(p: &Pixels) -> (Pdq, u64) {
    let Some((w, h)) = p.dims() else {
        return (Pdq { bits: [0; PDQ_BYTES], quality: 0 }, 0);
    };
    let [pdq_grid, phash_grid] = reduce(p, [&pdq_taps(w, h), &phash_taps(w, h)]);
    (pdq_of(&pdq_grid), phash_of(&phash_grid))
}

/// PDQ's taps for a `w`×`h` image: its tent filter, decimated to 64×64.
fn pdq_taps(w: usize, h: usize) -> Grid {
    let (win_x, win_y) = (w.div_ceil(PDQ_WINDOW_DIVISOR), h.div_ceil(PDQ_WINDOW_DIVISOR));
    Grid { xs: Taps::tent(w, win_x), ys: Taps::tent(h, win_y), m: PDQ_GRID }
}

/// pHash's taps for a `w`×`h` image: area averages to 32×32.
fn phash_taps(w: usize, h: usize) -> Grid {
    Grid { xs: Taps::area(w, PHASH_GRID), ys: Taps::area(h, PHASH_GRID), m: PHASH_GRID }
}

/// Number of differing bits between two 64-bit hashes (0..=64).
pub fn hamming64(a: u64, b: u64) -> u32 {
    (a ^ b).count_ones()
}

/// Number of differing bits between two 256-bit hashes (0..=256).
pub fn hamming256(a: &[u8; 32], b: &[u8; 32]) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

/// Parses 64 hex characters (either case, nothing else: no prefix, no whitespace), most significant byte
/// first as written by [`Pdq::to_hex`]. Returns `None` for anything else.
pub fn parse_pdq_hex(s: &str) -> Option<[u8; 32]> {
    let s = s.as_bytes();
    if s.len() != 2 * PDQ_BYTES {
        return None;
    }
    let mut out = [0u8; PDQ_BYTES];
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let hi = char::from(pair[0]).to_digit(16)?;
        let lo = char::from(pair[1]).to_digit(16)?;
        *o = (hi << 4 | lo) as u8;
    }
    Some(out)
}

/// How one grid is made from the pixels: taps along each axis, and its side.
struct Grid {
    xs: Taps,
    ys: Taps,
    m: usize,
}

/// Reduces the luminance to each of `grids` (an m×m grid each) with separable taps: each row is
/// first reduced to m columns (`xs`), then each output row is a weighted sum of those reduced
/// rows (`ys`). One pass over the pixels for all grids, one row of luminance in memory at a time.
fn reduce<const N: usize>(p: &Pixels, grids: [&Grid; N]) -> [Vec<f32>; N] {
    let (w, h) = (p.width as usize, p.height as usize);
    let mut row = vec![0f32; w];
    // Every row, reduced to each grid's m columns.
    let mut narrow: [Vec<f32>; N] = std::array::from_fn(|g| vec![0f32; h * grids[g].m]);
    for y in 0..h {
        p.luma_row(y, &mut row);
        for (g, grid) in grids.iter().enumerate() {
            let out = &mut narrow[g][y * grid.m..(y + 1) * grid.m];
            for (o, v) in out.iter_mut().enumerate() {
                let (first, weights) = grid.xs.get(o);
                *v = weights.iter().zip(&row[first..]).map(|(wt, x)| wt * x).sum();
            }
        }
    }
    std::array::from_fn(|g| {
        let (m, ys) = (grids[g].m, &grids[g].ys);
        let mut out_grid = vec![0f32; m * m];
        for (o, out) in out_grid.chunks_exact_mut(m).enumerate() {
            let (first, weights) = ys.get(o);
            for (wt, src) in weights.iter().zip(narrow[g][first * m..].chunks_exact(m)) {
                out.iter_mut().zip(src).for_each(|(v, s)| *v += wt * s);
            }
        }
        out_grid
    })
}

/// How far a box window of `window` samples reaches (left, right) of its centre; for even windows the
/// extra sample is on the right, as in PDQ's reference filter.
fn window_reach(window: usize) -> (usize, usize) {
    let right = window / 2;
    (window - 1 - right, right)
}

/// Per output sample along one axis: the first source index it reads and its weights on the following
/// source samples. Precomputed once per image and axis, so the per-pixel work is one multiply-add.
struct Taps {
    /// Per output: first source index and the range of its weights in `weights`.
    spans: Vec<(usize, usize, usize)>,
    /// All weights, output after output.
    weights: Vec<f32>,
}

impl Taps {
    /// PDQ's downsampling along an axis of `n` samples: [`PDQ_BOX_PASSES`] box passes of `window`
    /// (each output the mean of its window, clipped at the ends), then decimation to 64 samples taken at
    /// the centres of 64 equal bins, index floor((i + 0.5) · n / 64). Only the 64 kept outputs matter, so
    /// their exact weights are found by pushing a unit impulse back through the box passes.
    fn tent(n: usize, window: usize) -> Self {
        let (left, right) = window_reach(window);
        let reach = |j: usize| (j.saturating_sub(left), (j + right).min(n - 1));
        let (mut spans, mut weights) = (Vec::with_capacity(PDQ_GRID), Vec::new());
        let (mut v, mut next) = (Vec::new(), Vec::new());
        for o in 0..PDQ_GRID {
            let centre = (((o as f64 + 0.5) * n as f64 / PDQ_GRID as f64) as usize).min(n - 1);
            let (mut lo, mut hi) = (centre, centre);
            v.clear();
            v.push(1.0f64);
            for _ in 0..PDQ_BOX_PASSES {
                // Output j averages inputs reach(j); send its weight back to them, divided by their count.
                let (new_lo, new_hi) = (reach(lo).0, reach(hi).1);
                next.clear();
                next.resize(new_hi - new_lo + 1, 0.0);
                for (j, &wt) in (lo..=hi).zip(&v) {
                    let (s, e) = reach(j);
                    let share = wt / (e - s + 1) as f64;
                    next[s - new_lo..=e - new_lo].iter_mut().for_each(|x| *x += share);
                }
                std::mem::swap(&mut v, &mut next);
                (lo, hi) = (new_lo, new_hi);
            }
            let begin = weights.len();
            weights.extend(v.iter().map(|&x| x as f32));
            spans.push((lo, begin, weights.len()));
        }
        Taps { spans, weights }
    }

    /// Area averaging from `n` source samples to `m` outputs: output `o` covers the source interval
    /// [o·n/m, (o+1)·n/m) and each source sample weighs its overlap with it (weights sum to 1). Works for
    /// shrinking and enlarging alike.
    fn area(n: usize, m: usize) -> Self {
        let (mut spans, mut weights) = (Vec::with_capacity(m), Vec::new());
        let scale = n as f64 / m as f64;
        for o in 0..m {
            let (start, end) = (o as f64 * scale, (o + 1) as f64 * scale);
            let first = (start.floor() as usize).min(n - 1);
            let last = ((end.ceil() as usize).max(first + 1) - 1).min(n - 1);
            let begin = weights.len();
            for i in first..=last {
                let overlap = (end.min(i as f64 + 1.0) - start.max(i as f64)).max(0.0);
                weights.push((overlap / (end - start)) as f32);
            }
            spans.push((first, begin, weights.len()));
        }
        Taps { spans, weights }
    }

    /// First source index and weights of output `o`.
    fn get(&self, o: usize) -> (usize, &[f32]) {
        let (first, begin, end) = self.spans[o];
        (first, &self.weights[begin..end])
    }
}

/// PDQ's quality score: significant neighbour differences over the 64×64 image, scaled to 0..=100.
fn pdq_quality(grid: &[f32]) -> u8 {
    let step = |u: f32, v: f32| (((u - v) * QUALITY_PERCENT / LUMA_FULL_SCALE) as i32).abs();
    let mut gradient_sum = 0i32;
    for i in 0..PDQ_GRID {
        for j in 0..PDQ_GRID - 1 {
            gradient_sum += step(grid[j * PDQ_GRID + i], grid[(j + 1) * PDQ_GRID + i]); // vertical
            gradient_sum += step(grid[i * PDQ_GRID + j], grid[i * PDQ_GRID + j + 1]);
            // horizontal
        }
    }
    (gradient_sum / QUALITY_DIVISOR).min(QUALITY_MAX) as u8
}

/// Rows 1..=k (DC skipped) of the orthonormal n-point DCT-II matrix, row-major k×n:
/// `D[u-1][x] = sqrt(2/n) · cos(π/(2n) · u · (2x + 1))`. Built once per size and cached.
fn dct_matrix(n: usize, k: usize) -> &'static [f32] {
    static PDQ: OnceLock<Vec<f32>> = OnceLock::new();
    static PHASH: OnceLock<Vec<f32>> = OnceLock::new();
    let cell = if n == PDQ_GRID { &PDQ } else { &PHASH };
    let matrix = cell.get_or_init(|| {
        let scale = (2.0 / n as f64).sqrt();
        let angle = std::f64::consts::PI / (2 * n) as f64;
        let entry = |u: usize, x: usize| (scale * (angle * u as f64 * (2 * x + 1) as f64).cos()) as f32;
        (1..=k).flat_map(|u| (0..n).map(move |x| entry(u, x))).collect()
    });
    debug_assert_eq!(matrix.len(), n * k, "one cache per (n, k): only PDQ's and pHash's sizes are used");
    matrix
}

/// `out` (k×k) = D · A · Dᵀ for the n×n matrix `a` and the k×n matrix `d`: the 2-D DCT restricted to the
/// wanted frequencies. `out[i * k + j]` has vertical frequency i and horizontal frequency j.
fn low_frequency_dct(a: &[f32], n: usize, d: &[f32], k: usize, out: &mut [f32]) {
    let mut t = [0f32; PDQ_FREQS * PDQ_GRID]; // T = D · A, k×n; sized for the largest use
    for (t_row, d_row) in t.chunks_exact_mut(n).zip(d.chunks_exact(n)) {
        for (&dv, a_row) in d_row.iter().zip(a.chunks_exact(n)) {
            t_row.iter_mut().zip(a_row).for_each(|(tv, &av)| *tv += dv * av);
        }
    }
    for (out_row, t_row) in out.chunks_exact_mut(k).zip(t.chunks_exact(n)) {
        for (o, d_row) in out_row.iter_mut().zip(d.chunks_exact(n)) {
            *o = t_row.iter().zip(d_row).map(|(x, y)| x * y).sum();
        }
    }
}

/// A sorted copy, for medians.
fn sorted<const N: usize>(mut v: [f32; N]) -> [f32; N] {
    v.sort_unstable_by(f32::total_cmp);
    v
}

#[cfg(test)]
#[path = "perceptual_tests.rs"]
mod tests;
