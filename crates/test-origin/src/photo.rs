//! `photo`: generated photo-like images, deterministic by seed, for tests and benchmarks.
//!
//! Owns: `synthetic_photo_rgb` (smooth gradients, shapes, texture and sensor-like noise, so JPEG
//! sizes land near real photos: about 0.1–0.3 bytes per pixel at q90), `synthetic_photo_jpeg`,
//! the camera-like encodings `camera_jpeg` (4:2:0) and `lossy_webp`, and `with_orientation` (the
//! EXIF tag phones add to portrait shots). Written apart from the product's JPEG reader on
//! purpose: a test that reads back what this wrote checks two codes.

use std::f32::consts::TAU;

use image::codecs::jpeg::JpegEncoder;
use image::ExtendedColorType;

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
pub fn synthetic_photo_rgb(width: u32, height: u32, seed: u64) -> Vec<u8> {
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
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality)
        .encode(&rgb, width, height, ExtendedColorType::Rgb8)
        .unwrap_or_else(|e| panic!("cannot generate a {width}x{height} JPEG: {e}"));
    out
}

/// JPEG quality of a camera-like file: what cameras and museum servers commonly write.
const CAMERA_JPEG_QUALITY: u8 = 90;
/// Quality factor (0–100) of a camera-like lossy WebP: what web image services commonly serve.
const CAMERA_WEBP_QUALITY: f32 = 80.0;

/// `rgb` (packed, `width * height * 3` bytes) as a camera writes it: JPEG at quality 90 with
/// 4:2:0 chroma. Deterministic: the same pixels give the same bytes.
///
/// # Panics
/// If the buffer does not match the size or a side is 0 or above 65,535; this is a generator for
/// tests and benchmarks.
pub fn camera_jpeg(rgb: &[u8], width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, CAMERA_JPEG_QUALITY);
    encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::R_4_2_0);
    let side = |v: u32| u16::try_from(v).unwrap_or_else(|_| panic!("a JPEG side cannot be {v}"));
    encoder
        .encode(rgb, side(width), side(height), jpeg_encoder::ColorType::Rgb)
        .unwrap_or_else(|e| panic!("cannot generate a {width}x{height} JPEG: {e}"));
    out
}

/// `rgb` as a web server serves it: a lossy WebP at quality 80, through libwebp's simple encoder
/// (the `image` crate writes only lossless WebP).
///
/// # Panics
/// If the buffer does not match the size or libwebp refuses it.
pub fn lossy_webp(rgb: &[u8], width: u32, height: u32) -> Vec<u8> {
    assert_eq!(rgb.len(), width as usize * height as usize * 3, "the buffer matches the size");
    let side = |v: u32| i32::try_from(v).expect("a WebP side fits in i32");
    let mut output: *mut u8 = std::ptr::null_mut();
    // SAFETY: `rgb` holds `height` rows of `width * 3` bytes (asserted above), the stride says so,
    // and libwebp only reads it; on success it allocates `output`, which we copy and then free
    // with WebPFree, its own deallocator, exactly once.
    unsafe {
        let len = libwebp_sys::WebPEncodeRGB(
            rgb.as_ptr(),
            side(width),
            side(height),
            side(width * 3),
            CAMERA_WEBP_QUALITY,
            &mut output,
        );
        assert!(len > 0 && !output.is_null(), "libwebp cannot encode a {width}x{height} WebP");
        let bytes = std::slice::from_raw_parts(output, len).to_vec();
        libwebp_sys::WebPFree(output.cast());
        bytes
    }
}

/// EXIF's Orientation tag and its SHORT type, and the JPEG marker of an APP1 segment.
const TAG_ORIENTATION: u16 = 0x0112;
const TYPE_SHORT: u16 = 3;
const APP1: u8 = 0xE1;

/// `jpeg` with an APP1 Exif segment holding only an Orientation tag inserted right after SOI,
/// in big- or little-endian TIFF order (cameras write both).
///
/// # Panics
/// If `jpeg` is shorter than its 2-byte SOI marker.
pub fn with_orientation(jpeg: &[u8], orientation: u8, big_endian: bool) -> Vec<u8> {
    let put16 = |v: &mut Vec<u8>, x: u16| v.extend(if big_endian { x.to_be_bytes() } else { x.to_le_bytes() });
    let put32 = |v: &mut Vec<u8>, x: u32| v.extend(if big_endian { x.to_be_bytes() } else { x.to_le_bytes() });
    let mut tiff: Vec<u8> = Vec::with_capacity(26);
    tiff.extend(if big_endian { *b"MM" } else { *b"II" });
    put16(&mut tiff, 42);
    put32(&mut tiff, 8); // IFD0 right after the 8-byte header
    put16(&mut tiff, 1); // one entry
    put16(&mut tiff, TAG_ORIENTATION);
    put16(&mut tiff, TYPE_SHORT);
    put32(&mut tiff, 1);
    put16(&mut tiff, u16::from(orientation));
    put16(&mut tiff, 0); // padding of the 4-byte value field
    put32(&mut tiff, 0); // no next IFD
    let payload_len = 2 + 6 + tiff.len();
    let mut out = Vec::with_capacity(jpeg.len() + payload_len + 2);
    out.extend_from_slice(&jpeg[..2]);
    out.extend_from_slice(&[0xFF, APP1]);
    out.extend_from_slice(&(payload_len as u16).to_be_bytes());
    out.extend_from_slice(b"Exif\0\0");
    out.extend_from_slice(&tiff);
    out.extend_from_slice(&jpeg[2..]);
    out
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
    fn orientation_segment_comes_right_after_soi_and_the_image_still_decodes() {
        let jpeg = synthetic_photo_jpeg(64, 48, 1, 90);
        let tagged = with_orientation(&jpeg, 6, true);
        assert_eq!(&tagged[..4], &[0xFF, 0xD8, 0xFF, APP1]);
        assert_eq!(&tagged[6..12], b"Exif\0\0");
        assert_eq!(&tagged[12..14], b"MM");
        let decoded = image::load_from_memory(&tagged).expect("still a JPEG");
        assert_eq!((decoded.width(), decoded.height()), (64, 48));
    }
}
