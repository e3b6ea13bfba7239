//! The TurboJPEG compressor: packed RGB, or Y, Cb and Cr planes, in; a baseline JPEG out.
//!
//! Owns: the compression half of the TurboJPEG FFI, the `Compressor` handle's lifetime and the
//! output buffer it keeps from image to image (sized by `tjBufSize`, so libjpeg-turbo never
//! grows it). Does not own: decoding, the shared error and size helpers (`turbo`), nor what is
//! encoded (`pipeline`, `planar`).

use std::ffi::{c_int, c_ulong, c_void};
use std::ptr::NonNull;

#[cfg(test)]
use super::turbo::TJPF_CMYK;
use super::turbo::{last_error, planes_420, side_to_c, TurboError, JPEG_MAX_SIDE, TJPF_RGB, TJSAMP_420};

/// `TJFLAG_NOREALLOC`: write into the buffer we pass, sized by `tjBufSize`, never reallocate it.
const FLAG_NO_REALLOC: c_int = 1024;

#[link(name = "turbojpeg")]
extern "C" {
    fn tjDestroy(handle: *mut c_void) -> c_int;
    fn tjInitCompress() -> *mut c_void;
    fn tjFree(buffer: *mut u8);
    fn tjAlloc(bytes: c_int) -> *mut u8;
    fn tjBufSize(width: c_int, height: c_int, jpeg_subsamp: c_int) -> c_ulong;
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
