//! What the stages of one image share: where its time went ([`StageSeconds`], part of what
//! `process` returns), and what the two ways of finishing it (`pipeline`'s `finish` for pixels,
//! `planar::finish_planes` for a JPEG kept in planes) are handed ([`Finishing`]) and give back
//! ([`Finished`]). A file of its
//! own so that `pipeline` and `planar` both import it and not each other.

use image::metadata::Orientation;

use super::fingerprint::Fingerprint;
use super::scratch::{PixelBuffers, Scratch};
use super::settings::ImageSettings;
use super::stored_format::StoredFormat;

/// Seconds one image spent in each stage of [`process`](super::process) (0 for a stage it
/// skipped). Timings take no part in equality: two runs on the same image give the same result,
/// however long each took.
#[derive(Debug, Clone, Copy, Default)]
pub struct StageSeconds {
    /// Sniffing, header checks and decoding to pixels (or deciding to keep the original).
    pub decode: f64,
    /// SHA-256 and MD5 of the original bytes.
    pub hash: f64,
    /// Resizing and turning upright.
    pub resize: f64,
    /// Encoding the stored JPEG.
    pub encode: f64,
    /// The perceptual hashes (PDQ and pHash), and for a kept original its small decode for them.
    pub fingerprint: f64,
}

impl PartialEq for StageSeconds {
    fn eq(&self, _: &StageSeconds) -> bool {
        true
    }
}

impl Eq for StageSeconds {}

/// What `pipeline`'s `finish` and `planar::finish_planes` share: the stored size (as coded) and
/// the turn to apply, the settings, and the worker's reusable state with the clock the resize
/// stage started.
pub(super) struct Finishing<'a> {
    pub target: (u32, u32),
    pub orientation: Orientation,
    pub settings: &'a ImageSettings,
    pub scratch: &'a mut Scratch,
    pub buffers: &'a mut PixelBuffers,
    pub timings: &'a mut StageSeconds,
    pub clock: std::time::Instant,
}

/// What a finishing path ends with: the stored image (upright size, format, bytes) and its
/// perceptual fingerprint, taken from the upright pixels before they were encoded.
pub(super) struct Finished {
    pub width: u32,
    pub height: u32,
    pub format: StoredFormat,
    pub data: Vec<u8>,
    pub fingerprint: Option<Fingerprint>,
}
