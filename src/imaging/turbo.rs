//! A small, safe wrapper over the TurboJPEG 2.x C API of the system libjpeg-turbo.
//!
//! Owns: the `extern "C"` declarations, handle lifetimes (destroyed on `Drop`), buffer sizing for
//! `tjDecompress2`, the output buffer each `Compressor` keeps for `tjCompress2` from image to
//! image, and turning every failure into a `TurboError`. Does not own: deciding what to decode, colour conversion, resizing or error
//! classes; that is `pipeline`. The `turbojpeg` crate 1.x needs the 3.0 API and Debian 12 ships 2.1,
//! hence this module.

use std::ffi::{c_char, c_int, c_ulong, c_void, CStr};
use std::ptr::NonNull;
use std::sync::OnceLock;

/// `TJPF_RGB`: packed 8-bit R, G, B.
const TJPF_RGB: c_int = 0;
/// `TJPF_CMYK`: packed 8-bit C, M, Y, K, the only format a CMYK or YCCK JPEG decodes to.
const TJPF_CMYK: c_int = 11;
/// `TJSAMP_420`: chroma halved both ways, what cameras and browsers expect at q95.
const TJSAMP_420: c_int = 2;
/// `TJERR_WARNING`: the call finished but libjpeg complained (corrupt or truncated data).
const TJERR_WARNING: c_int = 0;
/// `TJFLAG_FASTUPSAMPLE`: nearest-neighbour chroma upsampling. We always downscale afterwards,
/// so the smoother default upsampling buys nothing visible and costs time.
pub(crate) const FLAG_FAST_UPSAMPLE: c_int = 256;
/// `TJFLAG_NOREALLOC`: write into the buffer we pass, sized by `tjBufSize`, never reallocate it.
const FLAG_NO_REALLOC: c_int = 1024;
/// JPEG's hard limit on either side, from the 16-bit fields of the SOF marker.
pub(crate) const JPEG_MAX_SIDE: u32 = 65_535;

#[repr(C)]
#[derive(Clone, Copy)]
struct TjScalingFactor {
    num: c_int,
    denom: c_int,
}

#[link(name = "turbojpeg")]
extern "C" {
    fn tjInitDecompress() -> *mut c_void;
    fn tjInitCompress() -> *mut c_void;
    fn tjDestroy(handle: *mut c_void) -> c_int;
    fn tjGetErrorStr2(handle: *mut c_void) -> *mut c_char;
    fn tjGetErrorCode(handle: *mut c_void) -> c_int;
    fn tjFree(buffer: *mut u8);
    fn tjAlloc(bytes: c_int) -> *mut u8;
    fn tjBufSize(width: c_int, height: c_int, jpeg_subsamp: c_int) -> c_ulong;
    fn tjGetScalingFactors(num: *mut c_int) -> *mut TjScalingFactor;
    fn tjDecompressHeader3(
        handle: *mut c_void,
        jpeg_buf: *const u8,
        jpeg_size: c_ulong,
        width: *mut c_int,
        height: *mut c_int,
        jpeg_subsamp: *mut c_int,
        jpeg_colorspace: *mut c_int,
    ) -> c_int;
    fn tjDecompress2(
        handle: *mut c_void,
        jpeg_buf: *const u8,
        jpeg_size: c_ulong,
        dst_buf: *mut u8,
        width: c_int,
        pitch: c_int,
        height: c_int,
        pixel_format: c_int,
        flags: c_int,
    ) -> c_int;
    fn tjCompress2(
        handle: *mut c_void,
        src_buf: *const u8,
        width: c_int,
        pitch: c_int,
        height: c_int,
        pixel_format: c_int,
        jpeg_buf: *mut *mut u8,
        jpeg_size: *mut c_ulong,
        jpeg_subsamp: c_int,
        jpeg_qual: c_int,
        flags: c_int,
    ) -> c_int;
}

/// A libjpeg-turbo failure, with libjpeg's own message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TurboError {
    pub message: String,
}

impl TurboError {
    fn new(message: impl Into<String>) -> Self {
        TurboError { message: message.into() }
    }
}

/// The colour model a JPEG stores, from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Colorspace {
    Rgb,
    YCbCr,
    Gray,
    Cmyk,
    Ycck,
}

/// What `tjDecompressHeader3` tells before any pixel is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JpegHeader {
    pub width: u32,
    pub height: u32,
    pub colorspace: Colorspace,
}

impl JpegHeader {
    /// True when the pixels can only be decoded as CMYK.
    pub fn is_cmyk(&self) -> bool {
        matches!(self.colorspace, Colorspace::Cmyk | Colorspace::Ycck)
    }
}

/// A DCT-domain scaling factor `num / denom` the decoder supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Scale {
    pub num: u32,
    pub denom: u32,
}

impl Scale {
    pub const ONE: Scale = Scale { num: 1, denom: 1 };

    /// The scaled size of one side, rounded up as libjpeg does (`TJSCALED`).
    pub fn apply(self, side: u32) -> u32 {
        ((u64::from(side) * u64::from(self.num)).div_ceil(u64::from(self.denom))) as u32
    }
}

/// The decoder's scaling factors that shrink or keep the size (at most 1), read once.
pub(crate) fn downscale_factors() -> &'static [Scale] {
    static FACTORS: OnceLock<Vec<Scale>> = OnceLock::new();
    FACTORS.get_or_init(|| {
        let mut count: c_int = 0;
        // SAFETY: the function only writes the count through the pointer we pass, which points to
        // a live c_int. It returns a pointer to a static array inside the library (or NULL).
        let ptr = unsafe { tjGetScalingFactors(&mut count) };
        if ptr.is_null() || count <= 0 {
            return vec![Scale::ONE];
        }
        // SAFETY: non-null and `count` elements long, as documented; the array is static in
        // libturbojpeg and never freed, and we copy it out at once.
        let all = unsafe { std::slice::from_raw_parts(ptr, count as usize) };
        let mut factors: Vec<Scale> = all
            .iter()
            .filter(|f| f.num > 0 && f.denom > 0 && f.num <= f.denom)
            .map(|f| Scale { num: f.num as u32, denom: f.denom as u32 })
            .collect();
        if factors.is_empty() {
            factors.push(Scale::ONE);
        }
        factors
    })
}

/// Reads libjpeg's message for the last failure on `handle`.
fn last_error(handle: *mut c_void) -> TurboError {
    // SAFETY: `handle` is a live TurboJPEG handle; the returned string is owned by the handle
    // (or thread-local in the library) and stays valid until the next call on it, and we copy it
    // before making one.
    let message = unsafe {
        let ptr = tjGetErrorStr2(handle);
        if ptr.is_null() {
            "unknown libjpeg-turbo error".to_owned()
        } else {
            CStr::from_ptr(ptr).to_string_lossy().into_owned()
        }
    };
    TurboError::new(message)
}

fn side_to_c(side: u32, what: &str) -> Result<c_int, TurboError> {
    c_int::try_from(side).map_err(|_| TurboError::new(format!("{what} {side} does not fit a C int")))
}

/// Pixels decoded from a JPEG, packed rows without padding.
#[cfg(test)]
pub(crate) struct Decoded {
    pub width: u32,
    pub height: u32,
    /// 3 bytes per pixel for RGB, 4 for CMYK.
    pub pixels: Vec<u8>,
    /// A libjpeg warning (the data was damaged but pixels were produced), if any.
    pub warning: Option<String>,
}

/// What `decompress_into` wrote: the first `len` bytes of the caller's buffer.
pub(crate) struct DecodedInto {
    pub width: u32,
    pub height: u32,
    pub len: usize,
    /// A libjpeg warning (the data was damaged but pixels were produced), if any.
    pub warning: Option<String>,
}

/// A TurboJPEG decompressor handle, destroyed on drop. Not shared between threads.
pub(crate) struct Decompressor {
    handle: NonNull<c_void>,
}

impl Decompressor {
    pub fn new() -> Result<Self, TurboError> {
        // SAFETY: no arguments; returns a new handle or NULL on failure.
        let raw = unsafe { tjInitDecompress() };
        NonNull::new(raw)
            .map(|handle| Decompressor { handle })
            .ok_or_else(|| TurboError::new("tjInitDecompress failed (out of memory?)"))
    }

    /// Reads size and colour model from the header; no pixel is decoded or allocated.
    pub fn header(&mut self, jpeg: &[u8]) -> Result<JpegHeader, TurboError> {
        let (mut width, mut height, mut subsamp, mut colorspace): (c_int, c_int, c_int, c_int) = (0, 0, 0, 0);
        // SAFETY: `jpeg` is a live slice of exactly `jpeg.len()` bytes that libjpeg only reads;
        // the four out-pointers point to live c_ints on this stack frame.
        let rc = unsafe {
            tjDecompressHeader3(
                self.handle.as_ptr(),
                jpeg.as_ptr(),
                jpeg.len() as c_ulong,
                &mut width,
                &mut height,
                &mut subsamp,
                &mut colorspace,
            )
        };
        if rc != 0 {
            return Err(last_error(self.handle.as_ptr()));
        }
        let colorspace = match colorspace {
            0 => Colorspace::Rgb,
            1 => Colorspace::YCbCr,
            2 => Colorspace::Gray,
            3 => Colorspace::Cmyk,
            4 => Colorspace::Ycck,
            other => return Err(TurboError::new(format!("unknown JPEG colorspace {other}"))),
        };
        if width <= 0 || height <= 0 {
            return Err(TurboError::new(format!("JPEG header gives an empty size {width}x{height}")));
        }
        Ok(JpegHeader { width: width as u32, height: height as u32, colorspace })
    }

    /// Decodes `jpeg` scaled by `scale` in the DCT domain, to RGB, or to CMYK when `cmyk`.
    /// `header` must come from `self.header(jpeg)`.
    #[cfg(test)]
    pub fn decompress(
        &mut self,
        jpeg: &[u8],
        header: &JpegHeader,
        scale: Scale,
        cmyk: bool,
        flags: c_int,
    ) -> Result<Decoded, TurboError> {
        let mut pixels = Vec::new();
        let into = self.decompress_into(jpeg, header, scale, cmyk, flags, &mut pixels)?;
        pixels.truncate(into.len);
        Ok(Decoded { width: into.width, height: into.height, pixels, warning: into.warning })
    }

    /// As `decompress`, but into the first `len` bytes of `pixels`, which is grown (never shrunk)
    /// as needed: a worker reuses one buffer for every image, with no allocation or zeroing
    /// once it has seen its largest image.
    pub fn decompress_into(
        &mut self,
        jpeg: &[u8],
        header: &JpegHeader,
        scale: Scale,
        cmyk: bool,
        flags: c_int,
        pixels: &mut Vec<u8>,
    ) -> Result<DecodedInto, TurboError> {
        let width = scale.apply(header.width);
        let height = scale.apply(header.height);
        let (format, channels) = if cmyk { (TJPF_CMYK, 4) } else { (TJPF_RGB, 3) };
        let pitch = width as usize * channels;
        let len = pitch.checked_mul(height as usize).ok_or_else(|| TurboError::new("decoded size overflows memory"))?;
        let c_pitch = c_int::try_from(pitch).map_err(|_| TurboError::new("row too wide for libjpeg-turbo"))?;
        let (c_width, c_height) = (side_to_c(width, "width")?, side_to_c(height, "height")?);
        if pixels.len() < len {
            pixels.resize(len, 0);
        }
        // SAFETY: `jpeg` is only read, `jpeg.len()` bytes long. `pixels` holds at least
        // pitch * height bytes, exactly what libjpeg writes for this width, pitch, height and
        // pixel format, and asking for the size `scale` gives makes libjpeg pick that very factor.
        let rc = unsafe {
            tjDecompress2(
                self.handle.as_ptr(),
                jpeg.as_ptr(),
                jpeg.len() as c_ulong,
                pixels.as_mut_ptr(),
                c_width,
                c_pitch,
                c_height,
                format,
                flags,
            )
        };
        let mut warning = None;
        if rc != 0 {
            // SAFETY: the handle is live; this only reads its error state.
            let code = unsafe { tjGetErrorCode(self.handle.as_ptr()) };
            let error = last_error(self.handle.as_ptr());
            if code != TJERR_WARNING {
                return Err(error);
            }
            warning = Some(error.message);
        }
        Ok(DecodedInto { width, height, len, warning })
    }
}

impl Drop for Decompressor {
    fn drop(&mut self) {
        // SAFETY: the handle came from tjInitDecompress, is owned by self and destroyed once.
        unsafe {
            tjDestroy(self.handle.as_ptr());
        }
    }
}

/// A TurboJPEG compressor handle and its output buffer, both freed on drop. Not shared between
/// threads.
pub(crate) struct Compressor {
    handle: NonNull<c_void>,
    /// Output buffer from `tjAlloc`, `capacity` bytes, or NULL. Kept from image to image and
    /// sized by `tjBufSize` (the worst case), so libjpeg never grows it by doubling and copying.
    buffer: *mut u8,
    capacity: c_ulong,
}

impl Compressor {
    pub fn new() -> Result<Self, TurboError> {
        // SAFETY: no arguments; returns a new handle or NULL on failure.
        let raw = unsafe { tjInitCompress() };
        NonNull::new(raw)
            .map(|handle| Compressor { handle, buffer: std::ptr::null_mut(), capacity: 0 })
            .ok_or_else(|| TurboError::new("tjInitCompress failed (out of memory?)"))
    }

    /// Encodes packed RGB (`width * height * 3` bytes) as a baseline 4:2:0 JPEG.
    pub fn compress_rgb(&mut self, rgb: &[u8], width: u32, height: u32, quality: u8) -> Result<Vec<u8>, TurboError> {
        self.compress(rgb, width, height, 3, TJPF_RGB, quality)
    }

    /// Encodes packed CMYK (`width * height * 4` bytes) as a YCCK JPEG with an Adobe marker.
    #[cfg(test)]
    pub fn compress_cmyk(&mut self, cmyk: &[u8], width: u32, height: u32, quality: u8) -> Result<Vec<u8>, TurboError> {
        self.compress(cmyk, width, height, 4, TJPF_CMYK, quality)
    }

    fn compress(
        &mut self,
        src: &[u8],
        width: u32,
        height: u32,
        channels: usize,
        format: c_int,
        quality: u8,
    ) -> Result<Vec<u8>, TurboError> {
        if width == 0 || height == 0 || width > JPEG_MAX_SIDE || height > JPEG_MAX_SIDE {
            return Err(TurboError::new(format!(
                "a JPEG cannot be {width}x{height}: each side must be 1..={JPEG_MAX_SIDE}"
            )));
        }
        let pitch = width as usize * channels;
        if src.len() != pitch * height as usize {
            return Err(TurboError::new(format!(
                "pixel buffer has {} bytes, {width}x{height}x{channels} needs {}",
                src.len(),
                pitch * height as usize
            )));
        }
        let c_pitch = c_int::try_from(pitch).map_err(|_| TurboError::new("row too wide for libjpeg-turbo"))?;
        // SAFETY: plain arithmetic on its arguments; returns (unsigned long)-1 on bad arguments.
        let needed = unsafe { tjBufSize(width as c_int, height as c_int, TJSAMP_420) };
        if needed == c_ulong::MAX || needed > c_int::MAX as c_ulong {
            return Err(TurboError::new(format!("no JPEG buffer size for {width}x{height}")));
        }
        if self.capacity < needed {
            // SAFETY: `buffer` is NULL or our own tjAlloc buffer that nothing else refers to.
            unsafe { tjFree(self.buffer) };
            // SAFETY: allocates `needed` bytes (checked to fit a c_int above) or returns NULL.
            self.buffer = unsafe { tjAlloc(needed as c_int) };
            self.capacity = if self.buffer.is_null() { 0 } else { needed };
            if self.buffer.is_null() {
                return Err(TurboError::new("tjAlloc failed (out of memory?)"));
            }
        }
        let mut out = self.buffer;
        let mut out_len: c_ulong = self.capacity;
        // SAFETY: `src` holds pitch * height bytes as checked above and is only read. `out` is our
        // tjAlloc buffer of `capacity` >= tjBufSize(width, height, 4:2:0) bytes, the most this
        // image can take, and TJFLAG_NOREALLOC keeps libjpeg-turbo writing into it only; it writes
        // the length through the live out-pointer.
        let rc = unsafe {
            tjCompress2(
                self.handle.as_ptr(),
                src.as_ptr(),
                width as c_int,
                c_pitch,
                height as c_int,
                format,
                &mut out,
                &mut out_len,
                TJSAMP_420,
                c_int::from(quality.clamp(1, 100)),
                FLAG_NO_REALLOC,
            )
        };
        if rc != 0 || out != self.buffer || out_len > self.capacity {
            return Err(last_error(self.handle.as_ptr()));
        }
        // SAFETY: on success libjpeg wrote `out_len` (<= capacity) initialised bytes at `out`.
        Ok(unsafe { std::slice::from_raw_parts(out, out_len as usize) }.to_vec())
    }
}

impl Drop for Compressor {
    fn drop(&mut self) {
        // SAFETY: the handle came from tjInitCompress, is owned by self and destroyed once; the
        // buffer is NULL or our own tjAlloc buffer, freed once (tjFree(NULL) is a no-op).
        unsafe {
            tjDestroy(self.handle.as_ptr());
            tjFree(self.buffer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factors_include_identity_and_eighth() {
        let factors = downscale_factors();
        assert!(factors.contains(&Scale::ONE) || factors.contains(&Scale { num: 8, denom: 8 }));
        assert!(factors.iter().any(|f| f.num * 8 == f.denom));
    }

    #[test]
    fn roundtrip_keeps_size_and_colour() {
        let (w, h) = (64u32, 40u32);
        let rgb: Vec<u8> = (0..w * h).flat_map(|_| [200u8, 40, 30]).collect();
        let jpeg = Compressor::new().unwrap().compress_rgb(&rgb, w, h, 90).unwrap();
        let mut d = Decompressor::new().unwrap();
        let header = d.header(&jpeg).unwrap();
        assert_eq!((header.width, header.height, header.colorspace), (w, h, Colorspace::YCbCr));
        let half = d.decompress(&jpeg, &header, Scale { num: 1, denom: 2 }, false, 0).unwrap();
        assert_eq!((half.width, half.height, half.pixels.len()), (32, 20, 32 * 20 * 3));
        let px = &half.pixels[..3];
        assert!(px[0] > 180 && px[1] < 70 && px[2] < 60, "red survives: {px:?}");
    }

    #[test]
    fn garbage_is_an_error_not_a_crash() {
        let mut d = Decompressor::new().unwrap();
        assert!(d.header(b"\xFF\xD8\xFFnot really a jpeg").is_err());
        assert!(d.header(&[]).is_err());
        let bad = Compressor::new().unwrap().compress_rgb(&[0; 5], 2, 2, 90);
        assert!(bad.is_err());
    }
}
