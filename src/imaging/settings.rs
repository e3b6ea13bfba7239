//! What the caller chooses about stored images: size, quality, when to re-encode, the layout.
//!
//! Owns: `ImageSettings` and its defaults as named consts. Does not own: reading them from the
//! `.env` file or flags (that is `config`), nor any decoding.

/// Longest stored side in pixels. 1024 keeps a herbarium sheet's labels legible while a shard of
/// 10,000 images stays around 2 GB; it is also img2dataset's common `image_size`.
pub const DEFAULT_MAX_SIDE: u32 = 1024;

/// JPEG quality when we encode. 95 is visually lossless for photos and about twice the size of 85;
/// research users re-crop and re-encode, so generational loss matters more than bytes.
pub const DEFAULT_JPEG_QUALITY: u8 = 95;

/// Largest `width * height` we agree to decode, checked from the header before any pixel buffer
/// exists. Herbarium sheets reach about 100 megapixels (DESIGN.md §4), so 200 MP leaves twice that
/// margin, while a billion-pixel decompression bomb (3 GB of RGB) is refused.
pub const DEFAULT_MAX_PIXELS: u64 = 200_000_000;

/// When to decode and encode an image that is already small enough and in a web format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reencode {
    /// Keep the original bytes when the image is in a web format (JPEG, PNG, WebP, GIF) and its
    /// longest side is at most `max_side`; encode everything else as JPEG.
    #[default]
    Auto,
    /// Always decode and store a fresh JPEG (upright, RGB, `jpeg_quality`).
    Always,
}

/// The layout of the stored bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreAs {
    /// An image file: the original bytes or a JPEG we encoded.
    #[default]
    Encoded,
    /// The old tool's layout: raw RGB pixels, `stored_width * stored_height * 3` bytes, row-major.
    RawRgb,
}

/// How one image is turned into what we store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSettings {
    /// Longest stored side in pixels; larger images are shrunk keeping their aspect ratio, smaller
    /// ones are never enlarged. 0 is treated as 1.
    pub max_side: u32,
    /// Quality (1–100) of the JPEGs we encode.
    pub jpeg_quality: u8,
    /// Whether small web images keep their original bytes.
    pub reencode: Reencode,
    /// Encoded image files or raw RGB pixels.
    pub store: StoreAs,
    /// Decompression-bomb limit on `width * height`, checked from the header before decoding.
    pub max_pixels: u64,
    /// Also compute the MD5 of the original bytes (the old tool's `hashsum_original`). Off by
    /// default: SHA-256 is the content hash, and MD5 cost 8% of the CPU per image.
    pub md5: bool,
}

impl Default for ImageSettings {
    fn default() -> Self {
        ImageSettings {
            max_side: DEFAULT_MAX_SIDE,
            jpeg_quality: DEFAULT_JPEG_QUALITY,
            reencode: Reencode::Auto,
            store: StoreAs::Encoded,
            max_pixels: DEFAULT_MAX_PIXELS,
            md5: false,
        }
    }
}
