//! `origin::images`: the pictures the test origin serves, made from the URL path alone.
//!
//! Owns the path → image rule and a bounded in-memory cache of encoded bytes. It does not know
//! about hosts or behaviours: `server` asks it for bytes, and tests ask it for the same bytes to
//! compare hashes. Everything is deterministic: the same path gives the same bytes in every
//! process, so a test can compute the expected SHA-256 before the download.
//!
//! The rule, on the last path segment (the query string is ignored):
//! - the extension picks the format: `.jpg`/`.jpeg`, `.png`, `.webp` (lossless), `.gif`,
//!   `.tif`/`.tiff`, `.bmp`; no extension at all is a JPEG (many GBIF URLs have none); any other
//!   extension (`robots.txt`, `.html`) is not an image, and the origin answers 404.
//! - tokens `w<N>` and `h<N>` between `-` or `_` set the size: `/img/w800-h600-17.jpg` is 800×600;
//!   a missing one defaults to [`DEFAULT_WIDTH`] × [`DEFAULT_HEIGHT`].
//! - the pixels are a gradient, a few soft blobs and per-pixel noise, seeded by the whole path, so
//!   `/img/a.jpg` and `/img/b.jpg` differ and JPEG sizes look like photographs, not flat fills.
//!   A token `s<N>` seeds them by `N` instead: `/img/w1200-h900-s7.jpg` and `/a/w600-h450-s7.png`
//!   are one picture at two sizes and in two formats (drawn in coordinates relative to the size;
//!   only the per-pixel noise differs), as a photo published twice is.
//! - a `cam` token (`/img/cam-w1600-h1200-3.jpg`) asks for a camera-like file instead, as the
//!   download benchmark's corpus does: the pixels of [`crate::photo::synthetic_photo_rgb`]
//!   (texture, shapes, sensor-like noise), a JPEG with 4:2:0 chroma as cameras and most web
//!   servers write it, and a lossy WebP (quality 80) as the web serves it. The plain images are
//!   noisier in every channel and stored 4:4:4, so their JPEGs cost about twice the bytes per pixel
//!   of a real photo, and their WebPs are lossless.
//!
//! Cost in a debug build, 640×480: about 0.3 s for JPEG, PNG, WebP, TIFF or BMP, but 3 s for GIF
//! (colour quantisation). Tests should ask for small GIFs; benchmarks should run in release.

use std::collections::{HashMap, VecDeque};
use std::io::Cursor;
use std::sync::{Arc, Mutex, OnceLock};

use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use sha2::{Digest, Sha256};

use crate::photo;
use crate::rng::SplitMix64;

/// Width when the path has no `w<N>` token: a typical web thumbnail-to-medium size.
pub const DEFAULT_WIDTH: u32 = 640;
/// Height when the path has no `h<N>` token.
pub const DEFAULT_HEIGHT: u32 = 480;
/// Largest side served. Bigger requests get 404: encoding them in a debug build would take
/// minutes, and the `Huge` and `Bomb` behaviours exist for size tests.
pub const MAX_SIDE: u32 = 8192;
/// Largest pixel count served (24 MP, a 72 MB RGB buffer while encoding), for the same reason.
pub const MAX_PIXELS: u64 = 24_000_000;
/// Bytes of encoded images kept in memory (an upper bound, only filled by what is requested).
/// Encoding is slow, and the download benchmark must measure our client, not the origin's
/// encoder: 1 GiB holds its whole corpus of multi-megapixel photos, so serving is a copy.
pub const CACHE_BYTES: usize = 1 << 30;
/// JPEG quality: what a museum server typically publishes.
const JPEG_QUALITY: u8 = 90;
/// Number of soft colour blobs drawn over the gradient.
const BLOBS: usize = 5;
/// Amplitude of per-pixel noise (± this many levels per channel).
const NOISE: i32 = 12;

/// What the origin serves for one path: the format and pixel size decoded from the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageSpec {
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
    /// The path has a `cam` token: camera-like pixels and encodings (see the module docs).
    pub camera: bool,
    /// The path's `s<N>` token: the picture's seed, whatever its size and format.
    pub seed: Option<u64>,
}

impl ImageSpec {
    /// The `Content-Type` the origin sends for this image.
    pub fn content_type(&self) -> &'static str {
        self.format.to_mime_type()
    }
}

/// Reads the image format and size from a URL path, or `None` when the path is not an image
/// (unknown extension) or asks for more than [`MAX_SIDE`] / [`MAX_PIXELS`].
pub fn spec_for_path(path: &str) -> Option<ImageSpec> {
    let path = strip_query(path);
    let segment = path.rsplit('/').next().unwrap_or("");
    let (stem, format) = match segment.rsplit_once('.') {
        None => (segment, ImageFormat::Jpeg),
        Some((stem, ext)) => (stem, format_for_extension(ext)?),
    };
    let (mut width, mut height, mut camera, mut seed) = (DEFAULT_WIDTH, DEFAULT_HEIGHT, false, None);
    for token in stem.split(['-', '_']) {
        if token == "cam" {
            camera = true;
        } else if let Some(n) = token.strip_prefix('w').and_then(|n| n.parse().ok()) {
            width = n;
        } else if let Some(n) = token.strip_prefix('h').and_then(|n| n.parse().ok()) {
            height = n;
        } else if let Some(n) = token.strip_prefix('s').and_then(|n| n.parse().ok()) {
            seed = Some(n);
        }
    }
    let fits = (1..=MAX_SIDE).contains(&width)
        && (1..=MAX_SIDE).contains(&height)
        && u64::from(width) * u64::from(height) <= MAX_PIXELS;
    fits.then_some(ImageSpec { format, width, height, camera, seed })
}

/// The exact body an `Ok` host serves for `path`, or `None` when it answers 404.
///
/// Tests call this to get the expected bytes; the origin calls it to serve them, and both share
/// one process-wide cache, so the second caller does not pay for the encode.
pub fn served_bytes(path: &str) -> Option<Arc<Vec<u8>>> {
    let spec = spec_for_path(path)?;
    let key = strip_query(path);
    if let Some(hit) = cache().lock().expect("image cache lock").get(key) {
        return Some(hit);
    }
    // Encode outside the lock: two racing callers both encode, and get identical bytes.
    let img = pixels(&spec, spec.seed.unwrap_or_else(|| seed_for(key)));
    let bytes = Arc::new(match (spec.camera, spec.format) {
        (true, ImageFormat::Jpeg) => photo::camera_jpeg(img.as_raw(), spec.width, spec.height),
        (true, ImageFormat::WebP) => photo::lossy_webp(img.as_raw(), spec.width, spec.height),
        _ => encode(&img, spec.format),
    });
    cache().lock().expect("image cache lock").insert(key, bytes.clone());
    Some(bytes)
}

/// Lower-case hex SHA-256 of [`served_bytes`], for tests that compare against stored hashes.
pub fn served_sha256(path: &str) -> Option<String> {
    let bytes = served_bytes(path)?;
    Some(sha256_hex(&bytes))
}

/// Mixed into the path's seed for the image a host serves at `path` once a test changed it
/// (`Origin::change_image`): another picture of the same format and size.
const CHANGED_SALT: u64 = 0x00C4_A26E;

/// The body a host serves for `path` after `Origin::change_image`: the same format and size as
/// [`served_bytes`], other pixels (so other bytes, another SHA-256 and another `ETag`).
pub fn changed_bytes(path: &str) -> Option<Arc<Vec<u8>>> {
    let spec = spec_for_path(path)?;
    let key = format!("{}#changed", strip_query(path));
    if let Some(hit) = cache().lock().expect("image cache lock").get(&key) {
        return Some(hit);
    }
    let img = pixels(&spec, spec.seed.unwrap_or_else(|| seed_for(strip_query(path))) ^ CHANGED_SALT);
    let bytes = Arc::new(match (spec.camera, spec.format) {
        (true, ImageFormat::Jpeg) => photo::camera_jpeg(img.as_raw(), spec.width, spec.height),
        (true, ImageFormat::WebP) => photo::lossy_webp(img.as_raw(), spec.width, spec.height),
        _ => encode(&img, spec.format),
    });
    cache().lock().expect("image cache lock").insert(&key, bytes.clone());
    Some(bytes)
}

/// Lower-case hex SHA-256 of [`changed_bytes`].
pub fn changed_sha256(path: &str) -> Option<String> {
    Some(sha256_hex(&changed_bytes(path)?))
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The pixels for `path` before encoding, e.g. to compare a lossless download pixel by pixel.
pub fn pixels_for_path(path: &str) -> Option<RgbImage> {
    let spec = spec_for_path(path)?;
    Some(pixels(&spec, spec.seed.unwrap_or_else(|| seed_for(strip_query(path)))))
}

/// The pixels of `spec`: camera-like ones for a `cam` path, else the plain picture.
fn pixels(spec: &ImageSpec, seed: u64) -> RgbImage {
    if spec.camera {
        let rgb = photo::synthetic_photo_rgb(spec.width, spec.height, seed);
        RgbImage::from_raw(spec.width, spec.height, rgb).expect("the generator fills width x height x 3")
    } else {
        render(spec.width, spec.height, seed)
    }
}

/// A 64-bit seed from the path, for anything the origin derives from it (images, garbage bodies).
pub(crate) fn seed_for(path: &str) -> u64 {
    let digest = Sha256::digest(strip_query(path).as_bytes());
    u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// The path without `?query` or `#fragment`.
pub(crate) fn strip_query(path: &str) -> &str {
    path.split(['?', '#']).next().unwrap_or(path)
}

fn format_for_extension(ext: &str) -> Option<ImageFormat> {
    match ext.to_ascii_lowercase().as_str() {
        "jpg" | "jpeg" => Some(ImageFormat::Jpeg),
        "png" => Some(ImageFormat::Png),
        "webp" => Some(ImageFormat::WebP),
        "gif" => Some(ImageFormat::Gif),
        "tif" | "tiff" => Some(ImageFormat::Tiff),
        "bmp" => Some(ImageFormat::Bmp),
        _ => None,
    }
}

fn colour(rng: &mut SplitMix64) -> [f32; 3] {
    [rng.unit() * 255.0, rng.unit() * 255.0, rng.unit() * 255.0]
}

struct Blob {
    cx: f32,
    cy: f32,
    inv_r2: f32,
    colour: [f32; 3],
}

/// Draws the photo-like picture: a diagonal two-colour gradient, soft blobs, and noise.
fn render(width: u32, height: u32, seed: u64) -> RgbImage {
    let mut rng = SplitMix64(seed);
    let (c0, c1) = (colour(&mut rng), colour(&mut rng));
    let angle = rng.unit() * std::f32::consts::TAU;
    let (dx, dy) = (angle.cos(), angle.sin());
    let (w, h) = (width as f32, height as f32);
    let blobs: Vec<Blob> = (0..BLOBS)
        .map(|_| {
            let r = (0.1 + 0.25 * rng.unit()) * w.min(h).max(1.0);
            Blob { cx: rng.unit() * w, cy: rng.unit() * h, inv_r2: 1.0 / (r * r), colour: colour(&mut rng) }
        })
        .collect();
    RgbImage::from_fn(width, height, |x, y| {
        let (fx, fy) = (x as f32, y as f32);
        let t = ((fx / w - 0.5) * dx + (fy / h - 0.5) * dy + 0.5).clamp(0.0, 1.0);
        let mut px: [f32; 3] = std::array::from_fn(|c| c0[c] * (1.0 - t) + c1[c] * t);
        for blob in &blobs {
            let d2 = (fx - blob.cx).powi(2) + (fy - blob.cy).powi(2);
            let weight = 0.8 / (1.0 + d2 * blob.inv_r2 * 2.0);
            for (p, colour) in px.iter_mut().zip(blob.colour) {
                *p = *p * (1.0 - weight) + colour * weight;
            }
        }
        let noise = rng.next_u64();
        Rgb(std::array::from_fn(|c| {
            let n = ((noise >> (c * 8)) & 0xFF) as i32 * (2 * NOISE + 1) / 256 - NOISE;
            (px[c] as i32 + n).clamp(0, 255) as u8
        }))
    })
}

fn encode(img: &RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    let result = match format {
        ImageFormat::Jpeg => JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY).encode_image(img),
        other => DynamicImage::ImageRgb8(img.clone()).write_to(&mut out, other),
    };
    // Only formats from `format_for_extension` reach here, all enabled in Cargo.toml, and the
    // size is bounded: a failure is a build misconfiguration, not a runtime condition.
    result.unwrap_or_else(|e| panic!("test origin cannot encode {format:?}: {e}; is the image feature enabled?"));
    out.into_inner()
}

/// Insertion-ordered cache, evicting the oldest entries beyond [`CACHE_BYTES`].
#[derive(Default)]
struct ImageCache {
    map: HashMap<String, Arc<Vec<u8>>>,
    order: VecDeque<String>,
    bytes: usize,
}

impl ImageCache {
    fn get(&self, key: &str) -> Option<Arc<Vec<u8>>> {
        self.map.get(key).cloned()
    }

    fn insert(&mut self, key: &str, value: Arc<Vec<u8>>) {
        if self.map.contains_key(key) {
            return;
        }
        self.bytes += value.len();
        self.map.insert(key.to_owned(), value);
        self.order.push_back(key.to_owned());
        while self.bytes > CACHE_BYTES && self.order.len() > 1 {
            let oldest = self.order.pop_front().expect("non-empty");
            if let Some(evicted) = self.map.remove(&oldest) {
                self.bytes -= evicted.len();
            }
        }
    }
}

fn cache() -> &'static Mutex<ImageCache> {
    static CACHE: OnceLock<Mutex<ImageCache>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}
