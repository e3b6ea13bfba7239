//! A small, safe wrapper over the TurboJPEG 2.x C API of the system libjpeg-turbo: decoding.
//!
//! Owns: the decoding half of the `extern "C"` declarations, the `Decompressor` handle's
//! lifetime (destroyed on `Drop`), buffer sizing for `tjDecompress2` and
//! `tjDecompressToYUVPlanes`, plane sizes, and turning every failure into a `TurboError`.
//! Encoding is `turbo_compress`. Does not own: deciding what to decode, colour conversion,
//! resizing or error classes; that is `pipeline`. The `turbojpeg` crate 1.x needs the 3.0 API
//! and Debian 12 ships 2.1, hence this module.

use std::ffi::{c_char, c_int, c_ulong, c_void, CStr};
use std::ptr::NonNull;
use std::sync::OnceLock;

/// `TJPF_RGB`: packed 8-bit R, G, B.
pub(super) const TJPF_RGB: c_int = 0;
/// `TJPF_CMYK`: packed 8-bit C, M, Y, K, the only format a CMYK or YCCK JPEG decodes to.
pub(super) const TJPF_CMYK: c_int = 11;
/// `TJSAMP_420`: chroma halved both ways, what cameras and browsers expect at q95.
pub(super) const TJSAMP_420: c_int = 2;
/// `TJERR_WARNING`: the call finished but libjpeg complained (corrupt or truncated data).
const TJERR_WARNING: c_int = 0;
/// `TJFLAG_FASTUPSAMPLE`: nearest-neighbour chroma upsampling. We always downscale afterwards,
/// so the smoother default upsampling buys nothing visible and costs time.
pub(crate) const FLAG_FAST_UPSAMPLE: c_int = 256;
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
    fn tjDestroy(handle: *mut c_void) -> c_int;
    fn tjGetErrorStr2(handle: *mut c_void) -> *mut c_char;
    fn tjGetErrorCode(handle: *mut c_void) -> c_int;
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
    fn tjPlaneWidth(component_id: c_int, width: c_int, subsamp: c_int) -> c_int;
    fn tjPlaneHeight(component_id: c_int, height: c_int, subsamp: c_int) -> c_int;
    fn tjDecompressToYUVPlanes(
        handle: *mut c_void,
        jpeg_buf: *const u8,
        jpeg_size: c_ulong,
        dst_planes: *mut *mut u8,
        width: c_int,
        strides: *mut c_int,
        height: c_int,
        flags: c_int,
    ) -> c_int;
}

/// A libjpeg-turbo failure, with libjpeg's own message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TurboError {
    pub message: String,
}

impl TurboError {
    pub(super) fn new(message: impl Into<String>) -> Self {
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
    /// TurboJPEG's chroma subsampling code (`TJSAMP_*`), or -1 when it has none for this JPEG.
    subsamp: c_int,
}

impl JpegHeader {
    /// True when the pixels can only be decoded as CMYK.
    pub fn is_cmyk(&self) -> bool {
        matches!(self.colorspace, Colorspace::Cmyk | Colorspace::Ycck)
    }

    /// True when the JPEG holds Y, Cb and Cr planes that `decompress_planes` can return as
    /// they are coded: YCbCr with 4:4:4, 4:2:2, 4:2:0, 4:4:0 or 4:1:1 sampling.
    pub fn has_ycbcr_planes(&self) -> bool {
        self.colorspace == Colorspace::YCbCr && YCBCR_SUBSAMPLINGS.contains(&self.subsamp)
    }
}

/// The `TJSAMP_*` codes with three planes: 4:4:4, 4:2:2, 4:2:0, 4:4:0 and 4:1:1 (3 is grey).
const YCBCR_SUBSAMPLINGS: [c_int; 5] = [0, 1, 2, 4, 5];

/// The size of one plane of a planar YCbCr image, in samples (the stride of our buffers too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PlaneSize {
    pub width: u32,
    pub height: u32,
}

impl PlaneSize {
    pub fn len(self) -> usize {
        self.width as usize * self.height as usize
    }
}

/// The sizes of the Y, Cb and Cr planes libjpeg-turbo reads or writes for an image of
/// `width` x `height` with chroma subsampling `subsamp`: luma padded to whole chroma samples,
/// chroma divided by its sampling factors.
fn plane_sizes(width: u32, height: u32, subsamp: c_int) -> Result<[PlaneSize; 3], TurboError> {
    let (c_width, c_height) = (side_to_c(width, "width")?, side_to_c(height, "height")?);
    let mut sizes = [PlaneSize { width: 0, height: 0 }; 3];
    for (component, size) in sizes.iter_mut().enumerate() {
        // SAFETY: plain arithmetic on its arguments; returns -1 on bad arguments.
        let (w, h) = unsafe {
            (tjPlaneWidth(component as c_int, c_width, subsamp), tjPlaneHeight(component as c_int, c_height, subsamp))
        };
        if w <= 0 || h <= 0 {
            return Err(TurboError::new(format!(
                "no plane {component} for {width}x{height} with subsampling {subsamp}"
            )));
        }
        *size = PlaneSize { width: w as u32, height: h as u32 };
    }
    Ok(sizes)
}

/// The plane sizes `Compressor::compress_planes_420` expects for a `width` x `height` image.
pub(crate) fn planes_420(width: u32, height: u32) -> Result<[PlaneSize; 3], TurboError> {
    plane_sizes(width, height, TJSAMP_420)
}

/// A DCT-domain scaling factor `num / denom` the decoder supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Scale {
    pub num: u32,
    pub denom: u32,
}

impl Scale {
    pub const ONE: Scale = Scale { num: 1, denom: 1 };
    /// The one factor besides powers of two that pays when decoding to planes (see `pipeline`).
    pub const THREE_EIGHTHS: Scale = Scale { num: 3, denom: 8 };

    /// The scaled size of one side, rounded up as libjpeg does (`TJSCALED`).
    pub fn apply(self, side: u32) -> u32 {
        ((u64::from(side) * u64::from(self.num)).div_ceil(u64::from(self.denom))) as u32
    }
}

/// The smallest DCT scaling factor of 1/8, 1/4, 1/2 or 1 (and 3/8 when decoding to planes) that
/// still yields at least `target` pixels on both sides, so the decoder does most of the
/// shrinking (1/8 decodes 1/64 of the pixels) and the convolution only finishes the last factor
/// of at most 2.
///
/// libjpeg-turbo 2.x also offers 5/8, 6/8, 7/8 (and more), but only the power-of-two sizes have
/// SIMD inverse DCTs. Measured on this machine's camera-like corpus: decoding to RGB, 3/8 took
/// 20% longer than 4/8; decoding to planes (no colour conversion, no upsampling) it takes 2%
/// less, and the resize after it starts from 44% fewer pixels. 5/8, 6/8 and 7/8 take longer than
/// a full-size decode to planes (7/8: 1.5 times as long).
pub(crate) fn dct_scale(width: u32, height: u32, target_width: u32, target_height: u32, planes: bool) -> Scale {
    let cheap = |f: &Scale| {
        (f.denom % f.num == 0 && (f.denom / f.num).is_power_of_two()) || (planes && *f == Scale::THREE_EIGHTHS)
    };
    downscale_factors()
        .iter()
        .copied()
        .filter(cheap)
        .filter(|f| f.apply(width) >= target_width && f.apply(height) >= target_height)
        .min_by_key(|f| u64::from(f.num) * 64 / u64::from(f.denom))
        .unwrap_or(Scale::ONE)
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
pub(super) fn last_error(handle: *mut c_void) -> TurboError {
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

pub(super) fn side_to_c(side: u32, what: &str) -> Result<c_int, TurboError> {
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

/// What `decompress_planes` wrote: the image's size after scaling, and the size of each plane
/// (the first `len()` bytes of each buffer, rows without padding between them).
pub(crate) struct PlanesInto {
    pub width: u32,
    pub height: u32,
    pub planes: [PlaneSize; 3],
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
        Ok(JpegHeader { width: width as u32, height: height as u32, colorspace, subsamp })
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
        let warning = self.warning_unless_failed(rc)?;
        Ok(DecodedInto { width, height, len, warning })
    }

    /// Decodes `jpeg` scaled by `scale` to its Y, Cb and Cr planes at their coded sampling, with
    /// no chroma upsampling and no colour conversion, into `planes` (each grown, never shrunk,
    /// as needed). `header` must come from `self.header(jpeg)` and have `has_ycbcr_planes()`.
    pub fn decompress_planes(
        &mut self,
        jpeg: &[u8],
        header: &JpegHeader,
        scale: Scale,
        planes: &mut [Vec<u8>; 3],
    ) -> Result<PlanesInto, TurboError> {
        if !header.has_ycbcr_planes() {
            return Err(TurboError::new("this JPEG has no Y, Cb and Cr planes to decode"));
        }
        let width = scale.apply(header.width);
        let height = scale.apply(header.height);
        let sizes = plane_sizes(width, height, header.subsamp)?;
        let mut pointers = [std::ptr::null_mut::<u8>(); 3];
        let mut strides: [c_int; 3] = [0; 3];
        for ((buffer, size), (pointer, stride)) in
            planes.iter_mut().zip(sizes).zip(pointers.iter_mut().zip(strides.iter_mut()))
        {
            if buffer.len() < size.len() {
                buffer.resize(size.len(), 0);
            }
            *pointer = buffer.as_mut_ptr();
            *stride = side_to_c(size.width, "plane width")?;
        }
        let (c_width, c_height) = (side_to_c(width, "width")?, side_to_c(height, "height")?);
        // SAFETY: `jpeg` is only read, `jpeg.len()` bytes long. Each plane pointer addresses a
        // buffer of at least stride * plane height bytes, the sizes tjPlaneWidth/Height give for
        // this width, height and subsampling, which is what libjpeg-turbo writes; asking for the
        // size `scale` gives makes it pick that very factor. The pointer and stride arrays live
        // on this stack frame for the call.
        let rc = unsafe {
            tjDecompressToYUVPlanes(
                self.handle.as_ptr(),
                jpeg.as_ptr(),
                jpeg.len() as c_ulong,
                pointers.as_mut_ptr(),
                c_width,
                strides.as_mut_ptr(),
                c_height,
                0,
            )
        };
        let warning = self.warning_unless_failed(rc)?;
        Ok(PlanesInto { width, height, planes: sizes, warning })
    }
}

impl Decompressor {
    /// After a decoding call that returned `rc`: nothing when it succeeded, libjpeg's warning
    /// when it finished on damaged data, its error when it failed.
    fn warning_unless_failed(&self, rc: c_int) -> Result<Option<String>, TurboError> {
        if rc == 0 {
            return Ok(None);
        }
        // SAFETY: the handle is live; this only reads its error state.
        let code = unsafe { tjGetErrorCode(self.handle.as_ptr()) };
        let error = last_error(self.handle.as_ptr());
        if code != TJERR_WARNING {
            return Err(error);
        }
        Ok(Some(error.message))
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

#[cfg(test)]
#[path = "turbo_tests.rs"]
mod tests;
