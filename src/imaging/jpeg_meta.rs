//! A bounds-checked walk over JPEG marker segments: EXIF orientation, the Adobe marker, and
//! whether the stream reaches its end-of-image marker.
//!
//! Owns: reading these three facts from the raw bytes without decoding a pixel. Does not own:
//! the image size or colour model (libjpeg-turbo reads those, see `turbo`), nor acting on them.
//! Every read goes through `get`, so a hostile or cut-off file gives "unknown", never a panic.

/// EXIF tag number of Orientation (TIFF tag 274).
const TAG_ORIENTATION: u16 = 0x0112;
/// TIFF field type SHORT, the only type Orientation may have.
const TYPE_SHORT: u16 = 3;
/// IFD entries we read at most. IFD0 of a camera file has 10–30; a bigger count means garbage.
const MAX_IFD_ENTRIES: usize = 512;

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;
const APP1: u8 = 0xE1;
const APP14: u8 = 0xEE;

/// What the marker segments before the first scan say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JpegMeta {
    /// EXIF orientation 1..=8; 1 when absent or unreadable.
    pub orientation: u8,
    /// An Adobe APP14 marker is present. For CMYK JPEGs it means Photoshop's inverted CMYK.
    pub adobe: bool,
}

/// Reads the segments from SOI up to the first SOS.
pub(crate) fn read_meta(jpeg: &[u8]) -> JpegMeta {
    let mut meta = JpegMeta { orientation: 1, adobe: false };
    let mut walker = Walker { data: jpeg, pos: 2 };
    if jpeg.get(..2) != Some(&[0xFF, SOI][..]) {
        return meta;
    }
    while let Some((marker, payload)) = walker.next_segment() {
        match marker {
            SOS | EOI => break,
            APP1 if meta.orientation == 1 => {
                if let Some(o) = payload.strip_prefix(b"Exif\0\0").and_then(exif_orientation) {
                    meta.orientation = o;
                }
            }
            APP14 if payload.starts_with(b"Adobe") => meta.adobe = true,
            _ => {}
        }
    }
    meta
}

/// True when the stream runs from SOI through its scans to an EOI marker. Bytes after the EOI
/// are allowed (some cameras append data). An EXIF thumbnail's own EOI is inside APP1 and skipped.
pub(crate) fn is_complete(jpeg: &[u8]) -> bool {
    if jpeg.get(..2) != Some(&[0xFF, SOI][..]) {
        return false;
    }
    let mut walker = Walker { data: jpeg, pos: 2 };
    while let Some((marker, _)) = walker.next_segment() {
        match marker {
            EOI => return true,
            SOS if !walker.skip_entropy_coded_data() => return false,
            _ => {}
        }
    }
    false
}

struct Walker<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Walker<'a> {
    /// The next marker and its payload (empty for standalone markers), or None at the end of data.
    fn next_segment(&mut self) -> Option<(u8, &'a [u8])> {
        // libjpeg skips stray bytes before a marker; so do we.
        while *self.data.get(self.pos)? != 0xFF {
            self.pos += 1;
        }
        // Any number of 0xFF fill bytes may precede the marker code.
        while *self.data.get(self.pos)? == 0xFF {
            self.pos += 1;
        }
        let marker = *self.data.get(self.pos)?;
        self.pos += 1;
        if marker == EOI || marker == SOI || marker == 0x01 || (0xD0..=0xD7).contains(&marker) {
            return Some((marker, &[]));
        }
        let len_bytes = self.data.get(self.pos..self.pos + 2)?;
        let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
        if len < 2 {
            return None;
        }
        let payload = self.data.get(self.pos + 2..self.pos + len)?;
        self.pos += len;
        Some((marker, payload))
    }

    /// Moves past the entropy-coded data that follows an SOS header, to the next real marker.
    /// Returns false when the data ends first.
    fn skip_entropy_coded_data(&mut self) -> bool {
        loop {
            let Some(offset) = self.data.get(self.pos..).and_then(|rest| rest.iter().position(|&b| b == 0xFF)) else {
                return false;
            };
            self.pos += offset;
            match self.data.get(self.pos + 1) {
                None => return false,
                // Stuffed zero, restart marker, or fill byte: still inside the scan.
                Some(0x00) | Some(0xD0..=0xD7) => self.pos += 2,
                Some(0xFF) => self.pos += 1,
                Some(_) => return true,
            }
        }
    }
}

/// Orientation from a TIFF structure (the APP1 payload after "Exif\0\0"), when valid.
fn exif_orientation(tiff: &[u8]) -> Option<u8> {
    let big_endian = match tiff.get(..4)? {
        [b'I', b'I', 42, 0] => false,
        [b'M', b'M', 0, 42] => true,
        _ => return None,
    };
    let u16_at = |at: usize| -> Option<u16> {
        let b = tiff.get(at..at.checked_add(2)?)?;
        Some(if big_endian { u16::from_be_bytes([b[0], b[1]]) } else { u16::from_le_bytes([b[0], b[1]]) })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b = tiff.get(at..at.checked_add(4)?)?;
        let a = [b[0], b[1], b[2], b[3]];
        Some(if big_endian { u32::from_be_bytes(a) } else { u32::from_le_bytes(a) })
    };
    let ifd = usize::try_from(u32_at(4)?).ok()?;
    let count = usize::from(u16_at(ifd)?).min(MAX_IFD_ENTRIES);
    for i in 0..count {
        let entry = ifd.checked_add(2 + 12 * i)?;
        if u16_at(entry)? == TAG_ORIENTATION {
            if u16_at(entry + 2)? != TYPE_SHORT {
                return None;
            }
            let value = u16_at(entry + 8)?;
            return (1..=8).contains(&value).then_some(value as u8);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imaging::turbo_compress::Compressor;
    use test_origin::photo::with_orientation;

    fn tiny_jpeg() -> Vec<u8> {
        let rgb: Vec<u8> = (0..32 * 16 * 3).map(|i| (i * 7 % 251) as u8).collect();
        Compressor::new().unwrap().compress_rgb(&rgb, 32, 16, 90).unwrap()
    }

    #[test]
    fn reads_orientation_in_both_byte_orders() {
        let plain = tiny_jpeg();
        assert_eq!(read_meta(&plain).orientation, 1);
        for (o, be) in [(6, false), (8, true), (3, false)] {
            assert_eq!(read_meta(&with_orientation(&plain, o, be)).orientation, o);
        }
    }

    #[test]
    fn out_of_range_orientation_is_ignored() {
        assert_eq!(read_meta(&with_orientation(&tiny_jpeg(), 9, false)).orientation, 1);
    }

    #[test]
    fn completeness_sees_a_cut_stream() {
        let jpeg = with_orientation(&tiny_jpeg(), 6, false);
        assert!(is_complete(&jpeg));
        let mut trailing = jpeg.clone();
        trailing.extend_from_slice(b"camera trailer");
        assert!(is_complete(&trailing));
        assert!(!is_complete(&jpeg[..jpeg.len() - 2]));
        assert!(!is_complete(&jpeg[..jpeg.len() / 2]));
    }

    #[test]
    fn every_prefix_of_a_jpeg_is_walked_without_panic() {
        let jpeg = with_orientation(&tiny_jpeg(), 6, true);
        for cut in 0..jpeg.len() {
            let _ = read_meta(&jpeg[..cut]);
            assert!(!is_complete(&jpeg[..cut]), "a stream cut at {cut} of {} bytes is incomplete", jpeg.len());
        }
    }
}
