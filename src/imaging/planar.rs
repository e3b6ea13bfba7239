//! A colour JPEG from its decoded planes to the stored JPEG, never as RGB on the way.
//!
//! Owns: resizing each of the Y, Cb and Cr planes (luma to the stored size, chroma straight to
//! the half size a 4:2:0 JPEG keeps), turning them upright, padding luma to whole chroma
//! samples, and encoding them. Does not own: decoding them (`turbo`, called by `pipeline`),
//! choosing this path (`pipeline`), the pixel helpers (`pixels`).

use image::metadata::Orientation;

use super::error::ImageError;
use super::fingerprint::Fingerprint;
use super::pixels;
use super::stages::{Finished, Finishing};
use super::stored_format::StoredFormat;
use super::turbo::{self, PlaneSize, TurboError};

/// The Y, Cb and Cr planes of a JPEG decoded at `width` x `height`, borrowed from a buffer each.
#[derive(Clone, Copy)]
pub(super) struct SourcePlanes<'a> {
    pub planes: &'a [Vec<u8>; 3],
    pub width: u32,
    pub height: u32,
    pub sizes: [PlaneSize; 3],
}

/// As `pipeline`'s `finish`, for a YCbCr JPEG kept in planes: luma is resized to `target`, each
/// chroma plane straight to the half size a 4:2:0 JPEG stores, and the planes are encoded as
/// they are. No colour conversion and no chroma upsampling or downsampling happen on the way,
/// and the chroma convolution works on a quarter of the pixels.
pub(super) fn finish_planes(source: SourcePlanes<'_>, work: Finishing<'_>) -> Result<Finished, ImageError> {
    let Finishing { target, orientation, settings: s, scratch, buffers, timings, clock } = work;
    let turbo_error = |e: TurboError| ImageError::Unsupported { format: "jpeg", reason: e.message };
    let (width, height) = target;
    let stored = turbo::planes_420(width, height).map_err(turbo_error)?;
    let luma = source.sizes[0];
    let mut sized: [(&[u8], u32, u32); 3] = [(&[], 0, 0); 3];
    for (component, (resized, out)) in buffers.resized_planes.iter_mut().zip(sized.iter_mut()).enumerate() {
        let from = source.sizes[component];
        let plane = &source.planes[component][..from.len()];
        // The luma plane is the image; a chroma plane covers the image's share of its padding.
        let to = if component == 0 { PlaneSize { width, height } } else { stored[component] };
        let content = (
            f64::from(source.width) * f64::from(from.width) / f64::from(luma.width),
            f64::from(source.height) * f64::from(from.height) / f64::from(luma.height),
        );
        if from == to && (source.width, source.height) == target {
            *out = (plane, to.width, to.height);
            continue;
        }
        scratch
            .plane_resizer
            .resize(plane, (from.width, from.height), content, (to.width, to.height), resized)
            .map_err(|reason| ImageError::Decode { format: "jpeg", reason })?;
        *out = (&resized[..], to.width, to.height);
    }
    let (upright_width, upright_height) =
        if pixels::swaps_sides(orientation) { (height, width) } else { (width, height) };
    let upright_sizes = turbo::planes_420(upright_width, upright_height).map_err(turbo_error)?;
    let mut upright: [&[u8]; 3] = [&[]; 3];
    for (component, (((plane, w, h), buffer), out)) in
        sized.into_iter().zip(buffers.upright_planes.iter_mut()).zip(upright.iter_mut()).enumerate()
    {
        let wanted = upright_sizes[component];
        if orientation == Orientation::NoTransforms && (w, h) == (wanted.width, wanted.height) {
            *out = plane;
            continue;
        }
        let (w, h) = if orientation == Orientation::NoTransforms {
            buffer.clear();
            buffer.extend_from_slice(plane);
            (w, h)
        } else {
            pixels::orient_into::<1>(plane, w, h, orientation, buffer)
        };
        // Only the luma plane can fall short, by a column or a row of an odd size.
        pixels::pad_plane(buffer, w, h, wanted.width, wanted.height);
        *out = &buffer[..];
    }
    timings.resize = clock.elapsed().as_secs_f64();
    // The upright luma plane is the luminance the hashes read (padded by at most a row and a
    // column, repeated from the edge).
    let clock = std::time::Instant::now();
    let luma = upright_sizes[0];
    let fingerprint = Fingerprint::of(upright[0], luma.width, luma.height, 1);
    timings.fingerprint = clock.elapsed().as_secs_f64();
    let clock = std::time::Instant::now();
    let data = scratch
        .compressor()
        .and_then(|c| c.compress_planes_420(upright, upright_width, upright_height, s.jpeg_quality))
        .map_err(turbo_error)?;
    timings.encode = clock.elapsed().as_secs_f64();
    Ok(Finished { width: upright_width, height: upright_height, format: StoredFormat::Jpeg, data, fingerprint })
}
