//! `process`: the downloaded bytes of one image in, the bytes we store and their facts out.
//!
//! Owns: the order of the steps (sniff, header, bomb check, keep-or-decode, decode, resize,
//! orient, encode, hash) and the rule for keeping originals. Does not own: any I/O, threads or
//! retries; the engine calls this from its bounded CPU pool and records `ImageError::class()`.
//!
//! Dimensions are reported as displayed, after EXIF orientation, so `original_*` and `stored_*`
//! always share an aspect ratio. A small web-format JPEG with EXIF orientation other than 1 is
//! kept as it came (readers apply EXIF); its reported size is the upright one, not the coded one.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader, Limits};
use md5::Md5;
use sha2::{Digest, Sha256};

use super::error::ImageError;
use super::fingerprint::{self, Fingerprint};
use super::jpeg_meta;
use super::pixels::{self, Rgb};
use super::planar::{finish_planes, SourcePlanes};
use super::scratch::Scratch;
use super::settings::{ImageSettings, Reencode, StoreAs};
use super::sniff::{self, Format};
use super::stages::{Finished, Finishing, StageSeconds};
use super::stored_format::StoredFormat;
use super::turbo::{self, dct_scale, PlaneSize, PlanesInto, TurboError};
use super::webp;

/// Ceiling on decoder memory per pixel for the `image` crate decoders: RGBA at 16 bits. With
/// `max_pixels` this bounds their allocations, which default to 512 MiB and would refuse a
/// 100-megapixel 16-bit herbarium TIFF.
const DECODER_BYTES_PER_PIXEL: u64 = 8;

/// Bytes hashed per step. Both digests read each 64 KiB while it is still in L2 cache.
const HASH_CHUNK: usize = 64 * 1024;

/// libjpeg warnings that mean part of the picture is missing or garbage (grey band, smeared
/// blocks). Other warnings, such as "extraneous bytes before marker", leave the picture intact.
const FATAL_JPEG_WARNINGS: [&str; 3] = ["premature end", "bad huffman code", "instead of rst"];

/// libjpeg errors that name a JPEG feature it does not handle (12-bit samples, lossless or
/// hierarchical processes), as opposed to corrupt data.
const UNSUPPORTED_JPEG_ERRORS: [&str; 4] =
    ["data precision", "unsupported jpeg process", "not implemented", "not supported"];

/// One image ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processed {
    /// Size of the downloaded image as displayed (after EXIF orientation).
    pub original_width: u32,
    pub original_height: u32,
    /// Size of the stored image as displayed.
    pub stored_width: u32,
    pub stored_height: u32,
    pub format: StoredFormat,
    /// The stored bytes: the original file, a JPEG we encoded, or raw RGB.
    pub data: Vec<u8>,
    /// SHA-256 of the original downloaded bytes (not of `data`), for deduplication.
    pub sha256: [u8; 32],
    /// MD5 of the original downloaded bytes, the digest older datasets list; only when
    /// `ImageSettings::md5` asks for it.
    pub md5: Option<[u8; 16]>,
    /// The stored size differs from the original size.
    pub resized: bool,
    /// `data` is not the original file (we encoded a JPEG or stored raw pixels).
    pub reencoded: bool,
    /// The perceptual hashes of the stored image, upright; `None` only for an original kept as it
    /// came that did not decode.
    pub fingerprint: Option<Fingerprint>,
    /// Where the worker's time went.
    pub timings: StageSeconds,
}

/// What the header says, before any pixel is decoded. Sizes are as coded, before orientation.
#[derive(Debug, Clone, Copy)]
struct Probe {
    format: Format,
    width: u32,
    height: u32,
    orientation: Orientation,
}

impl Probe {
    fn displayed(&self) -> (u32, u32) {
        if pixels::swaps_sides(self.orientation) {
            (self.height, self.width)
        } else {
            (self.width, self.height)
        }
    }
}

/// Either the original file is stored as it came, or pixels (at the coded orientation, possibly
/// already shrunk by the decoder) go on to be resized and encoded.
enum Decoded {
    KeepOriginal,
    Pixels(Rgb),
    /// Packed RGB in the first `width * height * 3` bytes of the worker's `Scratch::decoded`.
    InScratch {
        width: u32,
        height: u32,
    },
    /// A YCbCr JPEG's planes as coded (`width` x `height` after DCT scaling), in the worker's
    /// `Scratch::planes`.
    Planes {
        width: u32,
        height: u32,
        sizes: [PlaneSize; 3],
    },
}

/// Turns the downloaded bytes of one image into what we store. Pure CPU work, no I/O.
///
/// The format comes from magic bytes. Sizes are checked against `max_pixels` from the header
/// before any pixel buffer exists. Small web images keep their bytes (see `Reencode::Auto`);
/// everything else is decoded (JPEG with libjpeg-turbo's DCT scaling), converted to 8-bit RGB
/// (alpha on white), shrunk to `max_side`, turned upright, and stored as JPEG or raw RGB.
pub fn process(bytes: &[u8], s: &ImageSettings) -> Result<Processed, ImageError> {
    Scratch::with(|scratch| process_with(bytes, s, scratch))
}

fn process_with(bytes: &[u8], s: &ImageSettings, scratch: &mut Scratch) -> Result<Processed, ImageError> {
    let mut timings = StageSeconds::default();
    let clock = std::time::Instant::now();
    let format = sniff::sniff(bytes)?;
    let (probe, decoded) = match format {
        Format::Jpeg => decode_jpeg(bytes, s, scratch)?,
        other => decode_with_image_crate(bytes, other, s, scratch)?,
    };
    timings.decode = clock.elapsed().as_secs_f64();
    let (original_width, original_height) = probe.displayed();
    let clock = std::time::Instant::now();
    let (sha256, md5) = digests(bytes, s.md5);
    timings.hash = clock.elapsed().as_secs_f64();
    let rgb = match decoded {
        Decoded::KeepOriginal => {
            let clock = std::time::Instant::now();
            let fingerprint =
                fingerprint::of_kept(bytes, format, (probe.width, probe.height), probe.orientation, scratch);
            timings.fingerprint = clock.elapsed().as_secs_f64();
            return Ok(Processed {
                original_width,
                original_height,
                stored_width: original_width,
                stored_height: original_height,
                format: kept_format(format),
                data: bytes.to_vec(),
                sha256,
                md5,
                resized: false,
                reencoded: false,
                fingerprint,
                timings,
            });
        }
        other => other,
    };
    let clock = std::time::Instant::now();
    let target = pixels::fit(probe.width, probe.height, s.max_side);
    // The decoded pixels and the buffers leave `scratch` while they are read, so that its
    // encoder can be borrowed meanwhile; they go back whatever the outcome.
    let mut buffers = std::mem::take(&mut scratch.buffers);
    let planes = std::mem::take(&mut scratch.planes);
    let decoded_buffer = std::mem::take(&mut scratch.decoded);
    let work = Finishing {
        target,
        orientation: probe.orientation,
        settings: s,
        scratch: &mut *scratch,
        buffers: &mut buffers,
        timings: &mut timings,
        clock,
    };
    let finished = match &rgb {
        &Decoded::Planes { width, height, sizes } => {
            finish_planes(SourcePlanes { planes: &planes, width, height, sizes }, work)
        }
        Decoded::Pixels(p) => finish(Pixels { data: &p.pixels, width: p.width, height: p.height }, format, work),
        &Decoded::InScratch { width, height } => {
            let data = &decoded_buffer[..width as usize * height as usize * 3];
            finish(Pixels { data, width, height }, format, work)
        }
        Decoded::KeepOriginal => unreachable!("handled above"),
    };
    scratch.planes = planes;
    scratch.decoded = decoded_buffer;
    scratch.buffers = buffers;
    let Finished { width: stored_width, height: stored_height, format, data, fingerprint } = finished?;
    Ok(Processed {
        original_width,
        original_height,
        stored_width,
        stored_height,
        format,
        data,
        sha256,
        md5,
        resized: (stored_width, stored_height) != (original_width, original_height),
        reencoded: true,
        fingerprint,
        timings,
    })
}

/// Packed RGB pixels borrowed from a buffer.
#[derive(Clone, Copy)]
struct Pixels<'a> {
    data: &'a [u8],
    width: u32,
    height: u32,
}

/// Resizes `source` to `target` (as coded), turns it upright and encodes it (or keeps raw RGB),
/// through the worker's reusable `buffers`. Returns the stored size, format and bytes.
fn finish(source: Pixels<'_>, source_format: Format, work: Finishing<'_>) -> Result<Finished, ImageError> {
    let Finishing { target, orientation, settings: s, scratch, buffers, timings, clock } = work;
    let (width, height) = target;
    let sized: &[u8] = if (source.width, source.height) == target {
        source.data
    } else {
        pixels::resize_into(
            &mut scratch.resizer,
            source.data,
            source.width,
            source.height,
            width,
            height,
            &mut buffers.resized,
        )
        .map_err(|reason| ImageError::Decode { format: source_format.name(), reason })?;
        &buffers.resized
    };
    let (width, height, upright) = if orientation == Orientation::NoTransforms {
        (width, height, sized)
    } else {
        let (w, h) = pixels::orient_into::<3>(sized, width, height, orientation, &mut buffers.upright);
        (w, h, &buffers.upright[..])
    };
    timings.resize = clock.elapsed().as_secs_f64();
    let clock = std::time::Instant::now();
    let fingerprint = Fingerprint::of(upright, width, height, 3);
    timings.fingerprint = clock.elapsed().as_secs_f64();
    let clock = std::time::Instant::now();
    let (format, data) = match s.store {
        StoreAs::RawRgb => (StoredFormat::RawRgb, upright.to_vec()),
        StoreAs::Encoded => (StoredFormat::Jpeg, encode_jpeg(upright, width, height, s.jpeg_quality, scratch)?),
    };
    timings.encode = clock.elapsed().as_secs_f64();
    Ok(Finished { width, height, format, data, fingerprint })
}

/// Refuses a decompression bomb from its header size.
fn check_pixels(width: u32, height: u32, s: &ImageSettings) -> Result<(), ImageError> {
    if u64::from(width) * u64::from(height) > s.max_pixels {
        return Err(ImageError::TooManyPixels { width, height, limit: s.max_pixels });
    }
    Ok(())
}

/// The original bytes are stored untouched when nothing needs changing: encoded storage, a web
/// format, no re-encode asked for, and already within `max_side`.
fn keeps_original(probe: &Probe, s: &ImageSettings) -> bool {
    s.store == StoreAs::Encoded
        && s.reencode == Reencode::Auto
        && probe.format.is_web()
        && probe.width.max(probe.height) <= s.max_side.max(1)
}

fn kept_format(format: Format) -> StoredFormat {
    match format {
        Format::Png => StoredFormat::Png,
        Format::Webp => StoredFormat::Webp,
        Format::Gif => StoredFormat::Gif,
        Format::Jpeg | Format::Tiff | Format::Bmp => StoredFormat::Jpeg,
    }
}

fn cut_short(format: Format) -> ImageError {
    ImageError::Decode { format: format.name(), reason: "the data ends before the image does".into() }
}

fn decode_jpeg(bytes: &[u8], s: &ImageSettings, scratch: &mut Scratch) -> Result<(Probe, Decoded), ImageError> {
    let turbo_error = |e: TurboError| {
        let lower = e.message.to_ascii_lowercase();
        if UNSUPPORTED_JPEG_ERRORS.iter().any(|u| lower.contains(u)) {
            ImageError::Unsupported { format: "jpeg", reason: e.message }
        } else {
            ImageError::Decode { format: "jpeg", reason: e.message }
        }
    };
    let header = scratch.decompressor().map_err(turbo_error)?.header(bytes).map_err(turbo_error)?;
    let meta = jpeg_meta::read_meta(bytes);
    let orientation = Orientation::from_exif(meta.orientation).unwrap_or(Orientation::NoTransforms);
    let probe = Probe { format: Format::Jpeg, width: header.width, height: header.height, orientation };
    check_pixels(header.width, header.height, s)?;
    if keeps_original(&probe, s) {
        if !jpeg_meta::is_complete(bytes) {
            return Err(cut_short(Format::Jpeg));
        }
        return Ok((probe, Decoded::KeepOriginal));
    }
    let (width, height) = pixels::fit(header.width, header.height, s.max_side);
    let in_planes = s.store == StoreAs::Encoded && header.has_ycbcr_planes();
    let scale = dct_scale(header.width, header.height, width, height, in_planes);
    if in_planes {
        let mut planes = std::mem::take(&mut scratch.planes);
        let decoded = scratch.decompressor().and_then(|d| d.decompress_planes(bytes, &header, scale, &mut planes));
        scratch.planes = planes;
        let PlanesInto { width, height, planes: sizes, warning } = decoded.map_err(turbo_error)?;
        refuse_damaged(warning)?;
        return Ok((probe, Decoded::Planes { width, height, sizes }));
    }
    // Fast chroma upsampling only when a resize follows and smooths it anyway.
    let exact = (scale.apply(header.width), scale.apply(header.height)) == (width, height);
    let flags = if exact { 0 } else { turbo::FLAG_FAST_UPSAMPLE };
    let mut buffer = std::mem::take(&mut scratch.decoded);
    let decoded = scratch
        .decompressor()
        .and_then(|d| d.decompress_into(bytes, &header, scale, header.is_cmyk(), flags, &mut buffer));
    scratch.decoded = buffer;
    let decoded = decoded.map_err(turbo_error)?;
    refuse_damaged(decoded.warning)?;
    let (width, height) = (decoded.width, decoded.height);
    if header.is_cmyk() {
        let pixels = pixels::cmyk_to_rgb(&scratch.decoded[..decoded.len], meta.adobe);
        return Ok((probe, Decoded::Pixels(Rgb { width, height, pixels })));
    }
    Ok((probe, Decoded::InScratch { width, height }))
}

/// Fails on a libjpeg warning that means part of the picture is missing or garbage.
fn refuse_damaged(warning: Option<String>) -> Result<(), ImageError> {
    match warning {
        Some(warning) if FATAL_JPEG_WARNINGS.iter().any(|w| warning.to_ascii_lowercase().contains(w)) => {
            Err(ImageError::Decode { format: "jpeg", reason: warning })
        }
        _ => Ok(()),
    }
}

fn decode_with_image_crate(
    bytes: &[u8],
    format: Format,
    s: &ImageSettings,
    scratch: &mut Scratch,
) -> Result<(Probe, Decoded), ImageError> {
    let name = format.name();
    let image_error = |e: image::ImageError| match e {
        image::ImageError::Unsupported(u) => ImageError::Unsupported { format: name, reason: u.to_string() },
        other => ImageError::Decode { format: name, reason: other.to_string() },
    };
    // PNG states its size at a fixed place: refuse a bomb before a decoder even starts.
    if let (Format::Png, Some(ihdr)) = (format, bytes.get(16..24)) {
        let side = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        check_pixels(side(&ihdr[..4]), side(&ihdr[4..]), s)?;
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format.image_format());
    let mut limits = Limits::default();
    limits.max_alloc = Some(s.max_pixels.saturating_mul(DECODER_BYTES_PER_PIXEL));
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(image_error)?;
    let (width, height) = decoder.dimensions();
    check_pixels(width, height, s)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let probe = Probe { format, width, height, orientation };
    if keeps_original(&probe, s) {
        if !sniff::is_complete(format, bytes) {
            return Err(cut_short(format));
        }
        return Ok((probe, Decoded::KeepOriginal));
    }
    if format == Format::Webp {
        if let Some(rgb) = decode_still_webp(bytes)? {
            return Ok((probe, Decoded::Pixels(rgb)));
        }
    }
    if decoder.color_type() == image::ColorType::Rgb8 {
        // Already what we need: straight into the worker's buffer, no new pages per image. The
        // size was checked against `max_pixels` above.
        let len = width as usize * height as usize * 3;
        let mut buffer = std::mem::take(&mut scratch.decoded);
        buffer.resize(len, 0);
        let read = decoder.read_image(&mut buffer[..len]);
        scratch.decoded = buffer;
        read.map_err(image_error)?;
        return Ok((probe, Decoded::InScratch { width, height }));
    }
    let img = DynamicImage::from_decoder(decoder).map_err(image_error)?;
    Ok((probe, Decoded::Pixels(pixels::to_rgb8(img))))
}

/// A still lossy WebP decoded by libwebp, or None for what the `image` crate decodes as fast
/// or faster (lossless, measured) or alone (the first frame of an animation).
fn decode_still_webp(bytes: &[u8]) -> Result<Option<Rgb>, ImageError> {
    let webp_error = |e: webp::WebpError| {
        if e.unsupported {
            ImageError::Unsupported { format: "webp", reason: e.message }
        } else {
            ImageError::Decode { format: "webp", reason: e.message }
        }
    };
    let features = webp::features(bytes).map_err(webp_error)?;
    if features.has_animation || !features.lossy {
        return Ok(None);
    }
    let decoded = webp::decode(bytes, &features).map_err(webp_error)?;
    let pixels = if features.has_alpha { pixels::rgba_on_white(&decoded) } else { decoded };
    Ok(Some(Rgb { width: features.width, height: features.height, pixels }))
}

fn encode_jpeg(rgb: &[u8], width: u32, height: u32, quality: u8, scratch: &mut Scratch) -> Result<Vec<u8>, ImageError> {
    let unsupported = |e: TurboError| ImageError::Unsupported { format: "jpeg", reason: e.message };
    scratch.compressor().and_then(|c| c.compress_rgb(rgb, width, height, quality)).map_err(unsupported)
}

/// SHA-256 of the original bytes, and their MD5 when `with_md5`, in one pass.
fn digests(bytes: &[u8], with_md5: bool) -> ([u8; 32], Option<[u8; 16]>) {
    let (mut sha, mut md5) = (Sha256::new(), with_md5.then(Md5::new));
    for chunk in bytes.chunks(HASH_CHUNK) {
        sha.update(chunk);
        if let Some(md5) = &mut md5 {
            md5.update(chunk);
        }
    }
    (sha.finalize().into(), md5.map(|m| m.finalize().into()))
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;
