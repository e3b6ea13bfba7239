//! One stored image made smaller: the record of the new dataset for a record of the old one.
//!
//! The stored bytes go through the download's own pipeline (`imaging::process`) with the new
//! longest side: an image already that small keeps its bytes (as a download keeps a small web
//! image), a larger one is decoded, shrunk and encoded again at the configured JPEG quality, and
//! either way its perceptual hashes are of what the new dataset stores. What the record says of
//! the original (its size as served, SHA-256, MD5, URLs, when it was fetched) is kept: the
//! original did not change. Raw RGB stays raw RGB.

use std::io::Cursor;

use crate::imaging::{process, ImageError, ImageSettings, StoreAs};
use crate::store::shards::record::{FailureRecord, SuccessRecord};

/// What became of one stored image.
#[derive(Debug)]
pub enum Resized {
    /// Its record in the new dataset; `shrunk` when it was larger than the new longest side.
    Stored { record: Box<SuccessRecord>, shrunk: bool },
    /// Its stored bytes did not decode: recorded as a failure of the new dataset, never dropped.
    Failed(FailureRecord),
}

/// `old` (whose `data` holds its stored bytes) at `settings.max_side`; `now` is the time a
/// failure is recorded at, seconds since the Unix epoch.
pub fn resize(old: SuccessRecord, settings: &ImageSettings, now: f64) -> Resized {
    let raw = old.format == "rgb";
    let settings = ImageSettings { store: if raw { StoreAs::RawRgb } else { StoreAs::Encoded }, ..settings.clone() };
    let processed = if raw {
        rgb_as_png(&old.data, old.stored_width, old.stored_height).and_then(|png| process(&png, &settings))
    } else {
        process(&old.data, &settings)
    };
    match processed {
        Ok(p) => {
            let shrunk = (p.stored_width, p.stored_height) != (old.stored_width, old.stored_height);
            let fingerprint = p.fingerprint;
            let record = SuccessRecord {
                stored_width: p.stored_width,
                stored_height: p.stored_height,
                format: p.format.name().to_string(),
                data: p.data,
                pdq: fingerprint.map(|f| f.pdq_hex()).unwrap_or_default(),
                pdq_quality: fingerprint.map_or(0, |f| f.pdq_quality),
                phash: fingerprint.map_or(0, |f| f.phash),
                ..old
            };
            Resized::Stored { record: Box::new(record), shrunk }
        }
        Err(e) => Resized::Failed(FailureRecord {
            error_class: e.class().as_str().to_string(),
            detail: format!("resize: the stored image does not decode: {e}"),
            attempts: 0,
            http_status: 0,
            retriable: false,
            failed_at: now,
            uuid: old.uuid,
            url: old.url,
            server: old.server,
            source_ids: old.source_ids,
        }),
    }
}

/// Raw RGB pixels as a PNG the pipeline can read (lossless, so nothing changes but the size).
fn rgb_as_png(data: &[u8], width: u32, height: u32) -> Result<Vec<u8>, ImageError> {
    let bad = |why: String| ImageError::Decode { format: "rgb", reason: why };
    let pixels = image::RgbImage::from_raw(width, height, data.to_vec())
        .ok_or_else(|| bad(format!("{} bytes are not {width}x{height} RGB pixels", data.len())))?;
    let mut png = Vec::new();
    pixels.write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png).map_err(|e| bad(e.to_string()))?;
    Ok(png)
}
