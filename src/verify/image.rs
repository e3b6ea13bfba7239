//! One stored image against its record: the CRC-32 of its bytes, then a full decode to the
//! recorded format and size.
//!
//! The decode reads every pixel, not only the header: a flipped byte in the compressed data
//! leaves the header intact. Dimensions are compared as displayed (after EXIF orientation),
//! as the engine records them. Owns nothing else: which images are checked is `scan`'s.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};

use super::report::Kind;
use crate::store::shards::record::SuccessRecord;

/// Checks `bytes`, the stored bytes of `rec`, against `crc` (when the shard has one) and against
/// the recorded format and size. The error says which check failed and how.
pub fn check(rec: &SuccessRecord, bytes: &[u8], crc: Option<u32>) -> Result<(), (Kind, String)> {
    if let Some(want) = crc {
        let got = crc32fast::hash(bytes);
        if got != want {
            return Err((
                Kind::Checksum,
                format!("the {} stored bytes have CRC-32 {got:08x}, not the recorded {want:08x}", bytes.len()),
            ));
        }
    }
    // A decoder that panics on hostile bytes is one more damaged image, not a dead rank.
    std::panic::catch_unwind(|| decodes(rec, bytes))
        .unwrap_or_else(|_| Err("the decoder crashed on these bytes".to_string()))
        .map_err(|detail| (Kind::Decode, detail))
}

fn decodes(rec: &SuccessRecord, bytes: &[u8]) -> Result<(), String> {
    let (w, h) = (rec.stored_width, rec.stored_height);
    let expected = match rec.format.as_str() {
        "rgb" => {
            let want = u64::from(w) * u64::from(h) * 3;
            return match bytes.len() as u64 == want {
                true => Ok(()),
                false => Err(format!("raw RGB of {} bytes, not {w}×{h}×3 = {want}", bytes.len())),
            };
        }
        "jpeg" => ImageFormat::Jpeg,
        "png" => ImageFormat::Png,
        "webp" => ImageFormat::WebP,
        "gif" => ImageFormat::Gif,
        other => return Err(format!("unknown stored format {other:?}")),
    };
    let reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| e.to_string())?;
    match reader.format() {
        Some(f) if f == expected => {}
        Some(f) => return Err(format!("the bytes are {f:?}, the record says {}", rec.format)),
        None => return Err(format!("the bytes are not a known image format (the record says {})", rec.format)),
    }
    let mut reader = reader;
    // The header's size is checked against the record before any pixel buffer is allocated, so
    // the decode's memory is bounded by what the engine itself stored.
    reader.no_limits();
    let mut decoder = reader.into_decoder().map_err(|e| format!("does not decode: {e}"))?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let shown = |(cw, ch): (u32, u32)| if swaps_sides(orientation) { (ch, cw) } else { (cw, ch) };
    let (hw, hh) = shown(decoder.dimensions());
    if (hw, hh) != (w, h) {
        return Err(format!("its header says {hw}×{hh}, the record {w}×{h}"));
    }
    let img = DynamicImage::from_decoder(decoder).map_err(|e| format!("does not decode: {e}"))?;
    let (dw, dh) = shown((img.width(), img.height()));
    match (dw, dh) == (w, h) {
        true => Ok(()),
        false => Err(format!("decodes to {dw}×{dh}, the record says {w}×{h}")),
    }
}

fn swaps_sides(o: Orientation) -> bool {
    matches!(
        o,
        Orientation::Rotate90 | Orientation::Rotate270 | Orientation::Rotate90FlipH | Orientation::Rotate270FlipH
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::shards::record::test_plain_image;

    fn record(format: &str, w: u32, h: u32) -> SuccessRecord {
        test_plain_image("u", w, h, format, vec![])
    }

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn a_good_image_passes_and_each_kind_of_damage_is_named() {
        let bytes = png(16, 8);
        let crc = crc32fast::hash(&bytes);
        assert_eq!(check(&record("png", 16, 8), &bytes, Some(crc)), Ok(()));
        assert_eq!(check(&record("png", 16, 8), &bytes, None), Ok(()), "no stored checksum: decode only");
        let (kind, detail) = check(&record("png", 16, 8), &bytes, Some(crc ^ 1)).unwrap_err();
        assert_eq!(kind, Kind::Checksum, "{detail}");
        let (kind, detail) = check(&record("png", 8, 16), &bytes, None).unwrap_err();
        assert!(kind == Kind::Decode && detail.contains("16×8"), "{detail}");
        let (_, detail) = check(&record("jpeg", 16, 8), &bytes, None).unwrap_err();
        assert!(detail.contains("record says jpeg"), "{detail}");
        let truncated = &bytes[..bytes.len() * 2 / 3];
        let (kind, detail) = check(&record("png", 16, 8), truncated, None).unwrap_err();
        assert!(kind == Kind::Decode && detail.contains("does not decode"), "{detail}");
        assert_eq!(check(&record("rgb", 4, 2), &[0u8; 24], None), Ok(()));
        let (_, detail) = check(&record("rgb", 4, 2), &[0u8; 23], None).unwrap_err();
        assert!(detail.contains("4×2×3 = 24"), "{detail}");
    }
}
