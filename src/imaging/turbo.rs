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
    fn tjCompressFromYUVPlanes(
        handle: *mut c_void,
        src_planes: *mut *const u8,
        width: c_int,
        strides: *const c_int,
        height: c_int,
        subsamp: c_int,
        jpeg_buf: *mut *mut u8,
        jpeg_size: *mut c_ulong,
        jpeg_qual: c_int,
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
        Ok(PlanesInto { width, height, planes: sizes, warning })
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
        self.compress(rgb, width, height, 3, TJPF_RGB, quality, TJSAMP_420)
    }

    /// Encodes packed RGB with the chroma subsampling `subsamp` (a `TJSAMP_*` code), as
    /// cameras and other encoders write them, for tests of every kind of JPEG we may download.
    #[cfg(test)]
    pub fn compress_rgb_sampled(
        &mut self,
        rgb: &[u8],
        width: u32,
        height: u32,
        quality: u8,
        subsamp: c_int,
    ) -> Result<Vec<u8>, TurboError> {
        self.compress(rgb, width, height, 3, TJPF_RGB, quality, subsamp)
    }

    /// Encodes packed CMYK (`width * height * 4` bytes) as a YCCK JPEG with an Adobe marker.
    #[cfg(test)]
    pub fn compress_cmyk(&mut self, cmyk: &[u8], width: u32, height: u32, quality: u8) -> Result<Vec<u8>, TurboError> {
        self.compress(cmyk, width, height, 4, TJPF_CMYK, quality, TJSAMP_420)
    }

    #[allow(clippy::too_many_arguments)]
    fn compress(
        &mut self,
        src: &[u8],
        width: u32,
        height: u32,
        channels: usize,
        format: c_int,
        quality: u8,
        subsamp: c_int,
    ) -> Result<Vec<u8>, TurboError> {
        check_jpeg_size(width, height)?;
        let pitch = width as usize * channels;
        if src.len() != pitch * height as usize {
            return Err(TurboError::new(format!(
                "pixel buffer has {} bytes, {width}x{height}x{channels} needs {}",
                src.len(),
                pitch * height as usize
            )));
        }
        let c_pitch = c_int::try_from(pitch).map_err(|_| TurboError::new("row too wide for libjpeg-turbo"))?;
        let handle = self.handle.as_ptr();
        let quality = c_int::from(quality.clamp(1, 100));
        self.with_output(width, height, subsamp, |out, out_len| {
            // SAFETY: `src` holds pitch * height bytes as checked above and is only read; `out`
            // and `out_len` are as `with_output` describes.
            unsafe {
                tjCompress2(
                    handle,
                    src.as_ptr(),
                    width as c_int,
                    c_pitch,
                    height as c_int,
                    format,
                    out,
                    out_len,
                    subsamp,
                    quality,
                    FLAG_NO_REALLOC,
                )
            }
        })
    }

    /// Encodes Y, Cb and Cr planes as a baseline 4:2:0 JPEG, with no colour conversion or chroma
    /// downsampling: each plane must have the size `planes_420(width, height)` gives, rows
    /// packed without padding.
    pub fn compress_planes_420(
        &mut self,
        planes: [&[u8]; 3],
        width: u32,
        height: u32,
        quality: u8,
    ) -> Result<Vec<u8>, TurboError> {
        check_jpeg_size(width, height)?;
        let sizes = planes_420(width, height)?;
        let mut strides: [c_int; 3] = [0; 3];
        for (component, ((plane, size), stride)) in planes.iter().zip(sizes).zip(strides.iter_mut()).enumerate() {
            if plane.len() != size.len() {
                return Err(TurboError::new(format!(
                    "plane {component} has {} bytes, {}x{} needs {}",
                    plane.len(),
                    size.width,
                    size.height,
                    size.len()
                )));
            }
            *stride = side_to_c(size.width, "plane width")?;
        }
        let mut pointers = planes.map(<[u8]>::as_ptr);
        let handle = self.handle.as_ptr();
        let quality = c_int::from(quality.clamp(1, 100));
        self.with_output(width, height, TJSAMP_420, |out, out_len| {
            // SAFETY: each plane is exactly stride * plane height bytes as checked above, the
            // sizes libjpeg-turbo reads for this width, height and 4:2:0, and is only read. The
            // pointer and stride arrays outlive the call; `out` and `out_len` are as
            // `with_output` describes.
            unsafe {
                tjCompressFromYUVPlanes(
                    handle,
                    pointers.as_mut_ptr(),
                    width as c_int,
                    strides.as_ptr(),
                    height as c_int,
                    TJSAMP_420,
                    out,
                    out_len,
                    quality,
                    FLAG_NO_REALLOC,
                )
            }
        })
    }

    /// Runs one compression call `encode(out, out_len)` into our output buffer, first grown to
    /// `tjBufSize` for this size and subsampling (the most such a JPEG can take), and copies the
    /// JPEG out.
    /// `encode` gets a pointer to the buffer pointer and one to its capacity, and must pass
    /// TJFLAG_NOREALLOC so that libjpeg-turbo writes into that buffer only.
    fn with_output(
        &mut self,
        width: u32,
        height: u32,
        subsamp: c_int,
        encode: impl FnOnce(*mut *mut u8, *mut c_ulong) -> c_int,
    ) -> Result<Vec<u8>, TurboError> {
        // SAFETY: plain arithmetic on its arguments; returns (unsigned long)-1 on bad arguments.
        let needed = unsafe { tjBufSize(width as c_int, height as c_int, subsamp) };
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
        let rc = encode(&mut out, &mut out_len);
        if rc != 0 || out != self.buffer || out_len > self.capacity {
            return Err(last_error(self.handle.as_ptr()));
        }
        // SAFETY: on success libjpeg wrote `out_len` (<= capacity) initialised bytes at `out`.
        Ok(unsafe { std::slice::from_raw_parts(out, out_len as usize) }.to_vec())
    }
}

/// Refuses a size no JPEG can have.
fn check_jpeg_size(width: u32, height: u32) -> Result<(), TurboError> {
    if width == 0 || height == 0 || width > JPEG_MAX_SIDE || height > JPEG_MAX_SIDE {
        return Err(TurboError::new(format!(
            "a JPEG cannot be {width}x{height}: each side must be 1..={JPEG_MAX_SIDE}"
        )));
    }
    Ok(())
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
    fn planes_of_an_odd_size_are_padded_to_whole_chroma_samples_and_keep_colour() {
        let (w, h) = (33u32, 17u32);
        let rgb: Vec<u8> = (0..w * h).flat_map(|_| [200u8, 40, 30]).collect();
        let jpeg = Compressor::new().unwrap().compress_rgb(&rgb, w, h, 90).unwrap();
        let mut d = Decompressor::new().unwrap();
        let header = d.header(&jpeg).unwrap();
        assert!(header.has_ycbcr_planes());
        let mut planes = [Vec::new(), Vec::new(), Vec::new()];
        let out = d.decompress_planes(&jpeg, &header, Scale::ONE, &mut planes).unwrap();
        assert_eq!((out.width, out.height), (w, h));
        let sizes = out.planes.map(|p| (p.width, p.height));
        assert_eq!(sizes, [(34, 18), (17, 9), (17, 9)]);
        // (200, 40, 30) is Y 87, Cb 96, Cr 209 in JFIF's YCbCr; the planes hold them as coded.
        let middle = |plane: &[u8], size: PlaneSize| plane[(size.height / 2 * size.width + size.width / 2) as usize];
        let [y, cb, cr] = [0, 1, 2].map(|i| middle(&planes[i], out.planes[i]));
        assert!(y.abs_diff(87) <= 2 && cb.abs_diff(96) <= 2 && cr.abs_diff(209) <= 2, "{y} {cb} {cr}");
        // And they encode back to the same red.
        let planes_ref = [0, 1, 2].map(|i| &planes[i][..out.planes[i].len()]);
        let again = Compressor::new().unwrap().compress_planes_420(planes_ref, w, h, 90).unwrap();
        let header = d.header(&again).unwrap();
        let px = d.decompress(&again, &header, Scale::ONE, false, 0).unwrap().pixels;
        assert!(px[0] > 180 && px[1] < 70 && px[2] < 60, "red survives: {:?}", &px[..3]);
    }

    #[test]
    fn greyscale_has_no_chroma_planes_and_wrong_sized_planes_are_refused() {
        let grey = Compressor::new().unwrap().compress_rgb_sampled(&[128; 8 * 8 * 3], 8, 8, 90, 3).unwrap();
        let mut d = Decompressor::new().unwrap();
        let header = d.header(&grey).unwrap();
        assert_eq!(header.colorspace, Colorspace::Gray);
        assert!(!header.has_ycbcr_planes());
        assert!(d.decompress_planes(&grey, &header, Scale::ONE, &mut Default::default()).is_err());
        let short = Compressor::new().unwrap().compress_planes_420([&[0; 16], &[0; 4], &[0; 3]], 4, 4, 90);
        assert!(short.unwrap_err().message.contains("plane 2"));
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
