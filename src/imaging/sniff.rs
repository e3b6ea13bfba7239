//! Which format a body is, from its first bytes, and whether a file we keep untouched is whole.
//!
//! Owns: magic-byte detection (never the URL or Content-Type, which servers get wrong), telling
//! "not an image" (HTML, JSON, text) from "an image we do not decode" (AVIF, HEIC, SVG, ...), and
//! cheap structural end checks for PNG, GIF and WebP. Does not own: decoding, or the JPEG walk
//! (see `jpeg_meta`).

use super::error::ImageError;

/// Bytes of a text body we inspect to tell HTML from JSON or plain text. Error pages put their
/// doctype or `<html>` within the first few hundred bytes; SVG puts `<svg` after an XML prolog
/// and perhaps a comment, hence a full kilobyte.
const TEXT_SNIFF_BYTES: usize = 1024;

/// An image format we decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Jpeg,
    Png,
    Gif,
    Webp,
    Tiff,
    Bmp,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Jpeg => "jpeg",
            Format::Png => "png",
            Format::Gif => "gif",
            Format::Webp => "webp",
            Format::Tiff => "tiff",
            Format::Bmp => "bmp",
        }
    }

    /// Browsers and dataset loaders read it, so small ones may be stored as they came.
    pub fn is_web(self) -> bool {
        matches!(self, Format::Jpeg | Format::Png | Format::Gif | Format::Webp)
    }

    pub fn image_format(self) -> image::ImageFormat {
        match self {
            Format::Jpeg => image::ImageFormat::Jpeg,
            Format::Png => image::ImageFormat::Png,
            Format::Gif => image::ImageFormat::Gif,
            Format::Webp => image::ImageFormat::WebP,
            Format::Tiff => image::ImageFormat::Tiff,
            Format::Bmp => image::ImageFormat::Bmp,
        }
    }
}

/// The format of `bytes`, or why it is not one we decode.
pub(crate) fn sniff(bytes: &[u8]) -> Result<Format, ImageError> {
    let starts = |magic: &[u8]| bytes.starts_with(magic);
    if starts(&[0xFF, 0xD8, 0xFF]) {
        return Ok(Format::Jpeg);
    }
    if starts(b"\x89PNG\r\n\x1a\n") {
        return Ok(Format::Png);
    }
    if starts(b"GIF87a") || starts(b"GIF89a") {
        return Ok(Format::Gif);
    }
    if starts(b"RIFF") && bytes.get(8..12) == Some(b"WEBP") {
        return Ok(Format::Webp);
    }
    if starts(b"II*\0") || starts(b"MM\0*") || starts(b"II+\0") || starts(b"MM\0+") {
        return Ok(Format::Tiff);
    }
    // "BM", then a little-endian file size and two reserved u16 fields that are zero in practice.
    if starts(b"BM") && bytes.len() >= 14 && bytes[6..10] == [0, 0, 0, 0] {
        return Ok(Format::Bmp);
    }
    if let Some(format) = unsupported_image(bytes) {
        return Err(ImageError::Unsupported {
            format,
            reason: "this format is not decoded here; ask for JPEG, PNG, WebP, GIF, TIFF or BMP".into(),
        });
    }
    Err(ImageError::NotImage { what: describe_non_image(bytes), len: bytes.len() })
}

/// Image formats we recognise but do not decode.
fn unsupported_image(bytes: &[u8]) -> Option<&'static str> {
    if bytes.get(4..8) == Some(b"ftyp") {
        return match bytes.get(8..12)? {
            b"avif" | b"avis" => Some("avif"),
            b"heic" | b"heix" | b"hevc" | b"heim" | b"heis" | b"mif1" | b"msf1" => Some("heif"),
            _ => None,
        };
    }
    if bytes.starts_with(b"\0\0\0\x0CjP  \r\n\x87\n") || bytes.starts_with(&[0xFF, 0x4F, 0xFF, 0x51]) {
        return Some("jpeg2000");
    }
    if bytes.starts_with(b"\0\0\0\x0CJXL \r\n\x87\n") || bytes.starts_with(&[0xFF, 0x0A]) {
        return Some("jpegxl");
    }
    if bytes.starts_with(b"8BPS") {
        return Some("psd");
    }
    if bytes.starts_with(&[0, 0, 1, 0]) && bytes.len() > 6 {
        return Some("ico");
    }
    let head = text_head(bytes);
    if head.starts_with(b"<") && contains_ignore_case(head, b"<svg") {
        return Some("svg");
    }
    None
}

/// A short description of a body that is not an image, for the error message.
fn describe_non_image(bytes: &[u8]) -> &'static str {
    if bytes.is_empty() {
        return "empty";
    }
    let head = text_head(bytes);
    if bytes.starts_with(b"%PDF") {
        "pdf"
    } else if head.starts_with(b"<?xml") && !contains_ignore_case(head, b"<html") {
        "xml"
    } else if head.starts_with(b"<") {
        "html"
    } else if head.starts_with(b"{") || head.starts_with(b"[") {
        "json"
    } else if !head.is_empty() && head.iter().all(|&b| b >= 0x20 || b"\t\r\n".contains(&b)) {
        "text"
    } else {
        "unknown binary"
    }
}

/// The first `TEXT_SNIFF_BYTES` after a UTF-8 byte-order mark and leading whitespace.
fn text_head(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(bytes.len());
    let rest = &bytes[start..];
    &rest[..rest.len().min(TEXT_SNIFF_BYTES)]
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
}

/// True when a PNG, GIF or WebP file is structurally whole (its end marker or declared length is
/// there). Cheap: PNG and WebP look at a few bytes, GIF skips from block to block. JPEG has its own
/// walk in `jpeg_meta`; other formats are always decoded, so they are not asked.
pub(crate) fn is_complete(format: Format, bytes: &[u8]) -> bool {
    match format {
        // The IEND chunk is the last 12 bytes: length 0, "IEND", CRC. Allow a little trailing junk.
        Format::Png => {
            let tail = &bytes[bytes.len().saturating_sub(64)..];
            tail.windows(4).any(|w| w == b"IEND")
        }
        // The RIFF header's size covers everything after its first 8 bytes.
        Format::Webp => bytes
            .get(4..8)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .is_some_and(|riff| riff.saturating_add(8) <= bytes.len()),
        Format::Gif => gif_reaches_trailer(bytes),
        Format::Jpeg | Format::Tiff | Format::Bmp => true,
    }
}

/// Walks GIF blocks (skipping sub-block chains by their lengths) up to the 0x3B trailer.
fn gif_reaches_trailer(gif: &[u8]) -> bool {
    fn skip_sub_blocks(gif: &[u8], mut pos: usize) -> Option<usize> {
        loop {
            let len = usize::from(*gif.get(pos)?);
            pos += 1;
            if len == 0 {
                return Some(pos);
            }
            pos += len;
        }
    }
    fn walk(gif: &[u8]) -> Option<()> {
        let flags = *gif.get(10)?;
        let global_table = if flags & 0x80 != 0 { 3 << ((flags & 7) + 1) } else { 0 };
        let mut pos = 13 + global_table;
        loop {
            match *gif.get(pos)? {
                0x3B => return Some(()),
                0x21 => pos = skip_sub_blocks(gif, pos + 2)?,
                0x2C => {
                    let flags = *gif.get(pos + 9)?;
                    let local_table = if flags & 0x80 != 0 { 3 << ((flags & 7) + 1) } else { 0 };
                    // Descriptor (10 bytes), local table, LZW minimum code size, then the data.
                    pos = skip_sub_blocks(gif, pos + 10 + local_table + 1)?;
                }
                _ => return None,
            }
        }
    }
    walk(gif).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_bytes_decide_the_format() {
        assert_eq!(sniff(b"\xFF\xD8\xFF\xE0rest"), Ok(Format::Jpeg));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\nrest"), Ok(Format::Png));
        assert_eq!(sniff(b"GIF89a......"), Ok(Format::Gif));
        assert_eq!(sniff(b"RIFF\x10\0\0\0WEBPVP8 "), Ok(Format::Webp));
        assert_eq!(sniff(b"MM\0*\0\0\0\x08"), Ok(Format::Tiff));
        assert_eq!(sniff(b"BM\x46\0\0\0\0\0\0\0\x36\0\0\0"), Ok(Format::Bmp));
    }

    #[test]
    fn error_pages_and_junk_are_not_images() {
        let what = |b: &[u8]| match sniff(b) {
            Err(ImageError::NotImage { what, .. }) => what,
            other => panic!("{other:?}"),
        };
        assert_eq!(what(b"\xEF\xBB\xBF\n  <!DOCTYPE html><html><body>404</body></html>"), "html");
        assert_eq!(what(b"{\"error\": \"rate limited\"}"), "json");
        assert_eq!(what(b"Service Unavailable"), "text");
        assert_eq!(what(b""), "empty");
        assert_eq!(what(&[0x00, 0x13, 0x37, 0xFE, 0x01]), "unknown binary");
    }

    #[test]
    fn images_we_do_not_decode_are_unsupported_not_junk() {
        let format = |b: &[u8]| match sniff(b) {
            Err(ImageError::Unsupported { format, .. }) => format,
            other => panic!("{other:?}"),
        };
        assert_eq!(format(b"\0\0\0\x1cftypavif\0\0\0\0"), "avif");
        assert_eq!(format(b"\0\0\0\x18ftypheic\0\0\0\0"), "heif");
        assert_eq!(format(b"<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"/>"), "svg");
    }

    #[test]
    fn cut_webp_and_gif_are_incomplete() {
        let webp = b"RIFF\x0c\0\0\0WEBPVP8 \0\0\0\0";
        assert!(is_complete(Format::Webp, webp));
        assert!(!is_complete(Format::Webp, &webp[..14]));
        // 1x1 GIF: header, screen descriptor without a table, one image with 2 data bytes, trailer.
        let gif = b"GIF89a\x01\0\x01\0\0\0\0\x2c\0\0\0\0\x01\0\x01\0\0\x02\x02\x44\x01\0\x3b";
        assert!(is_complete(Format::Gif, gif));
        assert!(!is_complete(Format::Gif, &gif[..gif.len() - 1]));
        assert!(!is_complete(Format::Gif, &gif[..20]));
    }
}
