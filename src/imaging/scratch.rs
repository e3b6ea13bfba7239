//! What one worker thread keeps from image to image: the TurboJPEG handles, the buffers JPEGs
//! decode, resize and turn upright into, and the resizer, so an image costs no handle setup and, once the worker has seen
//! its largest image, no allocation or zeroing of a multi-megabyte pixel buffer.
//!
//! Owns: `Scratch` and the thread-local that holds one per thread. Does not own: what is done
//! with them (`pipeline`). Nothing in it outlives a call of `process` in a way a caller can see:
//! the decode buffer's contents are overwritten before they are read, and a failed image leaves
//! the handles as libjpeg-turbo's API allows them to be reused.

use std::cell::RefCell;

use fast_image_resize::Resizer;

use super::plane_resize::PlaneResizer;
use super::turbo::{Decompressor, TurboError};
use super::turbo_compress::Compressor;

/// One worker thread's reusable state. Handles are made on first use, so a thread that never
/// sees a JPEG never creates them.
#[derive(Default)]
pub(crate) struct Scratch {
    decompressor: Option<Decompressor>,
    compressor: Option<Compressor>,
    /// JPEG pixels land here; only its first `width * height * channels` bytes are meaningful.
    pub decoded: Vec<u8>,
    /// The Y, Cb and Cr planes of a YCbCr JPEG decoded without colour conversion.
    pub planes: [Vec<u8>; 3],
    /// Where resized and upright pixels go.
    pub buffers: PixelBuffers,
    pub resizer: Resizer,
    /// The same for the planes of a colour JPEG.
    pub plane_resizer: PlaneResizer,
}

/// The pixel buffers after decoding, taken out of `Scratch` while the decoded pixels are read.
#[derive(Default)]
pub(crate) struct PixelBuffers {
    pub resized: Vec<u8>,
    pub upright: Vec<u8>,
    /// The same for each of the Y, Cb and Cr planes.
    pub resized_planes: [Vec<u8>; 3],
    pub upright_planes: [Vec<u8>; 3],
}

impl Scratch {
    pub fn decompressor(&mut self) -> Result<&mut Decompressor, TurboError> {
        if self.decompressor.is_none() {
            self.decompressor = Some(Decompressor::new()?);
        }
        Ok(self.decompressor.as_mut().expect("set just above"))
    }

    pub fn compressor(&mut self) -> Result<&mut Compressor, TurboError> {
        if self.compressor.is_none() {
            self.compressor = Some(Compressor::new()?);
        }
        Ok(self.compressor.as_mut().expect("set just above"))
    }

    /// Runs `f` with this thread's scratch. `process` is not re-entrant, so the borrow never
    /// clashes; if it ever did, `f` gets a fresh scratch rather than a panic.
    pub fn with<T>(f: impl FnOnce(&mut Scratch) -> T) -> T {
        thread_local! {
            static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
        }
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => f(&mut scratch),
            Err(_) => f(&mut Scratch::default()),
        })
    }
}
