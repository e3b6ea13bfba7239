//! A small, safe wrapper over libwebp's simple decoding API, for still WebP images.
//!
//! Owns: reading a WebP's features (size, alpha, animation) and decoding it to packed RGB or RGBA
//! in a buffer we own. Does not own: the bomb check, orientation, alpha compositing or error
//! classes; that is `pipeline`. libwebp comes from `libwebp-sys`, which builds it from its vendored
//! source with the C compiler, so no system package is needed. Measured with `dd-bench download`:
//! on lossless WebP the `image` crate's pure-Rust decoder is the faster one (20 against 24 ms CPU
//! per image), so `pipeline` hands only lossy WebP, which the pure-Rust decoder handles without
//! SIMD, to libwebp (see `lossy_webp_decodes_as_the_image_crate_did` for the timing).

use std::ffi::c_int;

use libwebp_sys::{VP8StatusCode, WebPBitstreamFeatures, WebPDecodeRGBAInto, WebPDecodeRGBInto, WebPGetFeatures};

/// `WebPBitstreamFeatures::format` of a lossy (VP8) image; 2 is lossless, 0 mixed or unknown.
const LOSSY_FORMAT: c_int = 1;

/// What the bitstream header says, before any pixel is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Features {
    pub width: u32,
    pub height: u32,
    pub has_alpha: bool,
    /// An animation: the simple API refuses it, so the caller decodes its first frame otherwise.
    pub has_animation: bool,
    /// VP8 (lossy) data, as opposed to VP8L (lossless) or a mix.
    pub lossy: bool,
}

/// Why libwebp gave up, with a message for the error record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WebpError {
    /// libwebp says the feature is valid WebP that it does not handle.
    pub unsupported: bool,
    pub message: String,
}

fn status_error(status: VP8StatusCode) -> WebpError {
    let (unsupported, message) = match status {
        VP8StatusCode::VP8_STATUS_OK => (false, "libwebp reported success without pixels"),
        VP8StatusCode::VP8_STATUS_OUT_OF_MEMORY => (false, "libwebp ran out of memory"),
        VP8StatusCode::VP8_STATUS_INVALID_PARAM => (false, "libwebp refused the parameters"),
        VP8StatusCode::VP8_STATUS_BITSTREAM_ERROR => (false, "corrupt WebP bitstream"),
        VP8StatusCode::VP8_STATUS_UNSUPPORTED_FEATURE => (true, "WebP feature libwebp does not decode"),
        VP8StatusCode::VP8_STATUS_SUSPENDED | VP8StatusCode::VP8_STATUS_USER_ABORT => {
            (false, "libwebp stopped before the end")
        }
        VP8StatusCode::VP8_STATUS_NOT_ENOUGH_DATA => (false, "the data ends before the image does"),
    };
    WebpError { unsupported, message: message.to_owned() }
}

/// Reads size, alpha and animation flags from the header.
pub(crate) fn features(webp: &[u8]) -> Result<Features, WebpError> {
    // SAFETY: WebPBitstreamFeatures is plain C data (ints and padding) for which all zeroes is a
    // valid value.
    let mut raw: WebPBitstreamFeatures = unsafe { std::mem::zeroed() };
    // SAFETY: `webp` is a live slice of `webp.len()` bytes that libwebp only reads; `raw` is a
    // live, correctly laid out struct it writes.
    let status = unsafe { WebPGetFeatures(webp.as_ptr(), webp.len(), &mut raw) };
    if status != VP8StatusCode::VP8_STATUS_OK {
        return Err(status_error(status));
    }
    if raw.width <= 0 || raw.height <= 0 {
        return Err(WebpError { unsupported: false, message: format!("empty WebP size {}x{}", raw.width, raw.height) });
    }
    Ok(Features {
        width: raw.width as u32,
        height: raw.height as u32,
        has_alpha: raw.has_alpha != 0,
        has_animation: raw.has_animation != 0,
        lossy: raw.format == LOSSY_FORMAT,
    })
}

/// Decodes a still WebP to packed RGBA when `features.has_alpha`, else packed RGB.
/// `features` must come from `features(webp)`.
pub(crate) fn decode(webp: &[u8], features: &Features) -> Result<Vec<u8>, WebpError> {
    let channels = if features.has_alpha { 4 } else { 3 };
    let too_big = || WebpError { unsupported: false, message: "decoded WebP size overflows memory".into() };
    let stride = (features.width as usize).checked_mul(channels).ok_or_else(too_big)?;
    let len = stride.checked_mul(features.height as usize).ok_or_else(too_big)?;
    let c_stride = c_int::try_from(stride).map_err(|_| too_big())?;
    let mut pixels = vec![0u8; len];
    // SAFETY: `webp` is only read. `pixels` is `len` = stride * height bytes, which is what we
    // tell libwebp; it writes at most that many and returns NULL on any failure.
    let written = unsafe {
        if features.has_alpha {
            WebPDecodeRGBAInto(webp.as_ptr(), webp.len(), pixels.as_mut_ptr(), len, c_stride)
        } else {
            WebPDecodeRGBInto(webp.as_ptr(), webp.len(), pixels.as_mut_ptr(), len, c_stride)
        }
    };
    if written.is_null() {
        // The simple API does not say why; the header read does, when the header is at fault.
        return Err(match features_status(webp) {
            VP8StatusCode::VP8_STATUS_OK => {
                WebpError { unsupported: false, message: "corrupt or truncated WebP data".into() }
            }
            other => status_error(other),
        });
    }
    Ok(pixels)
}

fn features_status(webp: &[u8]) -> VP8StatusCode {
    // SAFETY: as in `features`.
    let mut raw: WebPBitstreamFeatures = unsafe { std::mem::zeroed() };
    // SAFETY: as in `features`.
    unsafe { WebPGetFeatures(webp.as_ptr(), webp.len(), &mut raw) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{DynamicImage, ImageFormat, RgbImage, RgbaImage};
    use std::io::Cursor;

    fn encode(img: DynamicImage) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::WebP).unwrap();
        out.into_inner()
    }

    #[test]
    fn lossless_rgb_and_rgba_decode_to_the_exact_pixels() {
        let rgb = RgbImage::from_fn(37, 23, |x, y| image::Rgb([x as u8 * 7, y as u8 * 11, (x * y) as u8]));
        let bytes = encode(DynamicImage::ImageRgb8(rgb.clone()));
        let f = features(&bytes).unwrap();
        assert_eq!((f.width, f.height, f.has_alpha, f.has_animation, f.lossy), (37, 23, false, false, false));
        assert_eq!(decode(&bytes, &f).unwrap(), rgb.into_raw());
        let rgba = RgbaImage::from_fn(9, 5, |x, y| image::Rgba([x as u8, y as u8, 200, (x * 28) as u8]));
        let bytes = encode(DynamicImage::ImageRgba8(rgba.clone()));
        let f = features(&bytes).unwrap();
        assert!(f.has_alpha);
        assert_eq!(decode(&bytes, &f).unwrap(), rgba.into_raw());
    }

    #[test]
    fn cut_and_junk_webp_are_errors_never_panics() {
        let rgb = RgbImage::from_fn(64, 64, |x, y| image::Rgb([(x * y) as u8, x as u8, y as u8]));
        let bytes = encode(DynamicImage::ImageRgb8(rgb));
        for cut in (0..bytes.len()).step_by(7) {
            if let Ok(f) = features(&bytes[..cut]) {
                assert!(decode(&bytes[..cut], &f).is_err(), "cut at {cut} of {}", bytes.len());
            }
        }
        assert!(features(b"RIFF\x10\0\0\0WEBPVP8 junkjunk").is_err());
    }

    /// Lossy WebP, which the test origin cannot serve: libwebp's own decoder is the reference, and
    /// the `image` crate's decoder, used before, must agree with it to within rounding of the
    /// chroma upsampling, so stored JPEGs look the same whichever decoded them.
    #[test]
    fn lossy_webp_decodes_as_the_image_crate_did() {
        let (w, h) = (1600u32, 1200u32);
        let rgb = test_origin::photo::synthetic_photo_rgb(w, h, 7);
        let mut out: *mut u8 = std::ptr::null_mut();
        // SAFETY: `rgb` holds w * h * 3 bytes with stride w * 3; libwebp allocates the output and
        // writes its address through the live out-pointer, and we free it with WebPFree below.
        let len = unsafe {
            libwebp_sys::WebPEncodeRGB(rgb.as_ptr(), w as c_int, h as c_int, (w * 3) as c_int, 80.0, &mut out)
        };
        assert!(len > 0 && !out.is_null());
        // SAFETY: on success `out` points to `len` bytes, copied before being freed once.
        let lossy = unsafe { std::slice::from_raw_parts(out, len) }.to_vec();
        // SAFETY: as above.
        unsafe { libwebp_sys::WebPFree(out.cast()) };
        let f = features(&lossy).unwrap();
        assert!(f.lossy);
        let t = std::time::Instant::now();
        let ours = decode(&lossy, &f).unwrap();
        let ours_ms = t.elapsed().as_secs_f64() * 1e3;
        let t = std::time::Instant::now();
        let theirs = image::load_from_memory_with_format(&lossy, ImageFormat::WebP).unwrap().into_rgb8().into_raw();
        let theirs_ms = t.elapsed().as_secs_f64() * 1e3;
        eprintln!("lossy WebP {w}x{h} q80: libwebp {ours_ms:.1} ms, image-webp {theirs_ms:.1} ms");
        assert_eq!(ours.len(), theirs.len());
        let sq: f64 = ours.iter().zip(&theirs).map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2)).sum();
        let mse = sq / ours.len() as f64;
        let psnr = if mse == 0.0 { f64::INFINITY } else { 10.0 * (255.0f64 * 255.0 / mse).log10() };
        let worst = ours.iter().zip(&theirs).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
        eprintln!("lossy WebP, libwebp against image-webp: PSNR {psnr:.1} dB, largest difference {worst}");
        assert!(psnr > 45.0, "PSNR {psnr:.1} dB, largest difference {worst}");
    }
}
