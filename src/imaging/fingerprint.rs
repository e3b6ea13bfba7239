//! The perceptual fingerprint of a stored image: its PDQ hash (256 bits, with PDQ's quality
//! score) and its 64-bit pHash, computed from pixels the pipeline already holds, upright (after
//! EXIF orientation), so that the same photo served resized, re-encoded or under another URL gets
//! a nearby hash. The algorithms are `perceptual`; this file picks the pixels.
//!
//! Which pixels: the stored image's, just before it is encoded (RGB, or a colour JPEG's luma
//! plane, which is the luminance PDQ asks for). An original kept as it came was never decoded, so
//! it is decoded small for the hash alone: a JPEG at the smallest DCT scale that keeps 256 pixels
//! on a side (1/2 of a 1024x768 image: a quarter of a full decode), other formats whole
//! (they are at most `MAX_SIDE` on a side). If that decode fails the image is still stored as
//! before, without a fingerprint: keeping originals has never depended on decoding them.

use image::metadata::Orientation;

use super::perceptual::{self, Pixels};
use super::pixels;
use super::scratch::Scratch;
use super::sniff::Format;
use super::turbo::dct_scale;

/// Pixels on the short side a kept JPEG is decoded to for its hash, at least. Four times PDQ's
/// 64x64 grid: measured on a photo-like 800x600 JPEG, its hash at this size is 10 bits of 256 from
/// the full-size one, at 128 pixels 30 (PDQ's match threshold is 31), at 512 identical.
const KEPT_HASH_SIDE: u32 = HASH_SIDE;

/// The hashes read an image of at least this many pixels on its short side, and less than twice
/// as many: a larger one is sampled at one pixel per block of a whole factor first (averaging the
/// blocks cost as much as hashing every pixel). PDQ keeps a 64x64 grid and pHash a 32x32 one,
/// so their filters average the detail above this away anyway; it also puts every path (decoded
/// pixels, a JPEG's luma plane, a kept original decoded small) at about the same scale. In
/// `make bench-download`'s codec run the hashes' share of an image's CPU went from 10.3% to
/// 8.5% (2026-12-02).
const HASH_SIDE: u32 = 256;

/// `data` (`width` x `height` pixels of `channels` bytes) sampled at the centre of each `factor`
/// x `factor` block (the last partial row and column of blocks left out).
fn sample_blocks(data: &[u8], width: u32, height: u32, channels: usize, factor: u32) -> Vec<u8> {
    let (w, f) = (width as usize, factor as usize);
    let (out_w, out_h) = (w / f, height as usize / f);
    let mut out = Vec::with_capacity(out_w * out_h * channels);
    for by in 0..out_h {
        let row = &data[(by * f + f / 2) * w * channels..][..w * channels];
        for bx in 0..out_w {
            let at = (bx * f + f / 2) * channels;
            out.extend_from_slice(&row[at..at + channels]);
        }
    }
    out
}

/// A stored image's perceptual hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    /// PDQ, most significant byte first (`perceptual::Pdq`'s order; hex with [`Fingerprint::pdq_hex`]).
    pub pdq: [u8; 32],
    /// PDQ's quality, 0 (flat) to 100: below 50 its authors call a match unreliable.
    pub pdq_quality: u8,
    /// The 64-bit DCT pHash.
    pub phash: u64,
}

impl Fingerprint {
    /// Both hashes of `width` x `height` pixels of `channels` interleaved 8-bit samples (1: luma or
    /// gray, 3: RGB); `None` when the buffer does not hold that many.
    pub(super) fn of(data: &[u8], width: u32, height: u32, channels: u8) -> Option<Fingerprint> {
        let len = width as usize * height as usize * usize::from(channels);
        let data = data.get(..len)?;
        let factor = (width.min(height) / HASH_SIDE).max(1);
        let small;
        let p = if factor > 1 {
            small = sample_blocks(data, width, height, usize::from(channels), factor);
            Pixels { width: width / factor, height: height / factor, channels, data: &small }
        } else {
            Pixels { width, height, channels, data }
        };
        let (pdq, phash) = perceptual::hashes(&p);
        Some(Fingerprint { pdq: pdq.bits, pdq_quality: pdq.quality, phash })
    }

    /// The PDQ hash as 64 lowercase hex characters.
    pub fn pdq_hex(&self) -> String {
        perceptual::Pdq { bits: self.pdq, quality: self.pdq_quality }.to_hex()
    }
}

/// The fingerprint of an original kept as it came, decoded small for it; `None` when it does not
/// decode.
pub(super) fn of_kept(
    bytes: &[u8],
    format: Format,
    (width, height): (u32, u32),
    orientation: Orientation,
    scratch: &mut Scratch,
) -> Option<Fingerprint> {
    let rgb = match format {
        Format::Jpeg => kept_jpeg(bytes, width, height, scratch)?,
        other => {
            let img = image::load_from_memory_with_format(bytes, other.image_format()).ok()?;
            pixels::to_rgb8(img)
        }
    };
    if orientation == Orientation::NoTransforms {
        return Fingerprint::of(&rgb.pixels, rgb.width, rgb.height, 3);
    }
    let mut upright = Vec::new();
    let (w, h) = pixels::orient_into::<3>(&rgb.pixels, rgb.width, rgb.height, orientation, &mut upright);
    Fingerprint::of(&upright, w, h, 3)
}

/// A kept JPEG decoded to RGB at the smallest power-of-two DCT scale keeping [`KEPT_HASH_SIDE`]
/// pixels on its short side (or its whole size, when smaller).
fn kept_jpeg(bytes: &[u8], width: u32, height: u32, scratch: &mut Scratch) -> Option<pixels::Rgb> {
    let short = width.min(height).max(1);
    let want = |side: u32| (u64::from(side) * u64::from(KEPT_HASH_SIDE.min(short)) / u64::from(short)) as u32;
    let scale = dct_scale(width, height, want(width), want(height), false);
    let decompressor = scratch.decompressor().ok()?;
    let header = decompressor.header(bytes).ok()?;
    let mut buffer = Vec::new();
    let decoded = decompressor.decompress_into(bytes, &header, scale, header.is_cmyk(), 0, &mut buffer).ok()?;
    let (w, h) = (decoded.width, decoded.height);
    let pixels = if header.is_cmyk() {
        pixels::cmyk_to_rgb(&buffer[..decoded.len], super::jpeg_meta::read_meta(bytes).adobe)
    } else {
        buffer.truncate(decoded.len);
        buffer
    };
    Some(pixels::Rgb { width: w, height: h, pixels })
}
