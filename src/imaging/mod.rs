//! The image pipeline: the downloaded bytes of one image in, the bytes we store out.
//!
//! Plain CPU code with no actix, tokio or network, called by the download engine from its bounded
//! CPU pool. `process` detects the format from magic bytes, refuses decompression bombs from the
//! header, keeps small web images untouched, and otherwise decodes (JPEG through libjpeg-turbo
//! with DCT-domain downscaling, still lossy WebP through libwebp), converts to 8-bit RGB (a
//! colour JPEG stays in its Y, Cb and Cr planes instead), resizes with SIMD, applies EXIF
//! orientation and encodes JPEG (or stores raw RGB). It hashes the original bytes once, and the
//! stored pixels perceptually (PDQ and pHash) for finding near-duplicates.
//! Named `imaging` so that `image` keeps meaning the image crate.
//!
//! - `settings`: `ImageSettings` and its defaults.
//! - `error`: `ImageError` and the error class the engine records.
//! - `pipeline`: `process` and `Processed`.
//! - `stored_format`: `StoredFormat`, what the stored bytes are.
//! - `sniff`: format from magic bytes; "not an image" versus "image we do not decode".
//! - `jpeg_meta`: EXIF orientation, Adobe marker and completeness from JPEG markers.
//! - `turbo`: the private FFI wrapper over libjpeg-turbo's TurboJPEG 2.x API: errors, headers,
//!   plane sizes and decoding; `turbo_compress`: its encoder.
//! - `planar`: resizing, turning and encoding a colour JPEG's Y, Cb and Cr planes as they are;
//!   `plane_resize`: the two-pass resize of one such plane.
//! - `webp`: the private wrapper over libwebp's decoder (built from source by `libwebp-sys`), for
//!   lossy WebP.
//! - `scratch`: what a worker thread reuses from image to image (handles, buffers, resizer).
//! - `stages`: where an image's time went, and what the two finishing paths are handed.
//! - `pixels`: CMYK and alpha to RGB, target size, resize, orientation.
//! - `perceptual`: the PDQ and pHash algorithms on pixels; `fingerprint`: which pixels of an
//!   image they read (the stored ones, upright; a kept original decoded small).

mod error;
mod fingerprint;
mod jpeg_meta;
mod perceptual;
mod pipeline;
mod pixels;
mod planar;
mod plane_resize;
mod scratch;
mod settings;
mod sniff;
mod stages;
mod stored_format;
mod turbo;
mod turbo_compress;
mod webp;

pub use error::ImageError;
pub use fingerprint::Fingerprint;
pub use perceptual::{hamming256, hamming64, parse_pdq_hex};
pub use pipeline::{process, Processed};
pub use settings::{ImageSettings, Reencode, StoreAs, DEFAULT_JPEG_QUALITY, DEFAULT_MAX_PIXELS, DEFAULT_MAX_SIDE};
pub use stages::StageSeconds;
pub use stored_format::StoredFormat;
