//! Pixel work on packed 8-bit RGB: colour conversion to RGB, the target size, the SIMD resize and
//! EXIF orientation.
//!
//! Owns: `Rgb`, CMYK to RGB, alpha compositing on white, `fit`, `resize` and `orient`. Does not
//! own: decoding or encoding (see `pipeline` and `turbo`), nor choosing when each step runs.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::metadata::Orientation;
use image::DynamicImage;

/// The filter that finishes a resize. After libjpeg-turbo's DCT scaling the remaining factor is
/// below 2, where Catmull-Rom is as sharp as Lanczos3 to the eye, rings less, and with a support
/// of 2 instead of 3 costs about a third less. For non-JPEG sources it is also a good downscaler.
const RESIZE_FILTER: FilterType = FilterType::CatmullRom;

/// Packed 8-bit RGB pixels, row-major, no padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rgb {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

/// The size whose longest side is `max_side`, keeping the aspect ratio (rounded, never 0). An
/// image already within `max_side` keeps its size: we never enlarge.
pub(crate) fn fit(width: u32, height: u32, max_side: u32) -> (u32, u32) {
    let max_side = max_side.max(1);
    let long = width.max(height);
    if long <= max_side {
        return (width, height);
    }
    let scale = |side: u32| -> u32 {
        let scaled = (u64::from(side) * u64::from(max_side) + u64::from(long) / 2) / u64::from(long);
        (scaled as u32).clamp(1, max_side)
    };
    (scale(width), scale(height))
}

/// Whether this orientation turns the image by 90 or 270 degrees, swapping width and height.
pub(crate) fn swaps_sides(orientation: Orientation) -> bool {
    matches!(
        orientation,
        Orientation::Rotate90 | Orientation::Rotate270 | Orientation::Rotate90FlipH | Orientation::Rotate270FlipH
    )
}

/// CMYK to RGB by the naive subtractive formula (no colour management). `inverted` is Adobe's
/// convention, written by Photoshop and marked by the APP14 "Adobe" segment: 255 means no ink.
pub(crate) fn cmyk_to_rgb(cmyk: &[u8], inverted: bool) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(cmyk.len() / 4 * 3);
    for px in cmyk.chunks_exact(4) {
        let [c, m, y, k] = [px[0], px[1], px[2], px[3]].map(u32::from);
        let [c, m, y, k] = if inverted { [c, m, y, k] } else { [255 - c, 255 - m, 255 - y, 255 - k] };
        // Now 255 means no ink: channel = (1 - ink) * (1 - black).
        rgb.extend([c, m, y].map(|v| ((v * k + 127) / 255) as u8));
    }
    rgb
}

/// Any decoded image to 8-bit RGB: 16-bit and float are scaled down, grey is spread to three
/// channels, and alpha is composited on white (what a browser shows on a white page).
pub(crate) fn to_rgb8(img: DynamicImage) -> Rgb {
    let (width, height) = (img.width(), img.height());
    let pixels =
        if img.color().has_alpha() { rgba_on_white(img.into_rgba8().as_raw()) } else { img.into_rgb8().into_raw() };
    Rgb { width, height, pixels }
}

/// Packed RGBA to packed RGB, composited on white.
pub(crate) fn rgba_on_white(rgba: &[u8]) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(rgba.len() / 4 * 3);
    for px in rgba.chunks_exact(4) {
        let a = u32::from(px[3]);
        let white = 255 * (255 - a);
        rgb.extend([px[0], px[1], px[2]].map(|c| ((u32::from(c) * a + white + 127) / 255) as u8));
    }
    rgb
}

/// Resizes to exactly `width` x `height` with a SIMD convolution (fast_image_resize picks AVX2,
/// SSE4.1 or NEON at run time).
#[cfg(test)]
pub(crate) fn resize(src: &Rgb, width: u32, height: u32) -> Result<Rgb, String> {
    let mut pixels = Vec::new();
    resize_into(&mut Resizer::new(), &src.pixels, src.width, src.height, width, height, &mut pixels)?;
    Ok(Rgb { width, height, pixels })
}

/// As `resize`, from `src_width * src_height * 3` bytes of packed RGB borrowed from elsewhere,
/// into `dst` (its length set to `width * height * 3`; a buffer kept from image to image needs no
/// new pages), with a `resizer` the caller keeps (it caches the SIMD level and work buffers).
pub(crate) fn resize_into(
    resizer: &mut Resizer,
    src: &[u8],
    src_width: u32,
    src_height: u32,
    width: u32,
    height: u32,
    dst: &mut Vec<u8>,
) -> Result<(), String> {
    // Every byte is written by the resize; only growth is zeroed.
    dst.resize(width as usize * height as usize * 3, 0);
    let whole = (f64::from(src_width), f64::from(src_height));
    convolve(resizer, src, (src_width, src_height), whole, (width, height), PixelType::U8x3, dst)
}

/// One `RESIZE_FILTER` convolution of the `crop` part (from the top left; it may be fractional)
/// of `src`, packed `pixel`s of `src_width` x `src_height`, to all of `dst`, `width` x `height`.
pub(super) fn convolve(
    resizer: &mut Resizer,
    src: &[u8],
    (src_width, src_height): (u32, u32),
    (crop_width, crop_height): (f64, f64),
    (width, height): (u32, u32),
    pixel: PixelType,
    dst: &mut [u8],
) -> Result<(), String> {
    let src_view = ImageRef::new(src_width, src_height, src, pixel).map_err(|e| e.to_string())?;
    let mut dst_view = Image::from_slice_u8(width, height, dst, pixel).map_err(|e| e.to_string())?;
    let options =
        ResizeOptions::new().resize_alg(ResizeAlg::Convolution(RESIZE_FILTER)).crop(0.0, 0.0, crop_width, crop_height);
    resizer.resize(&src_view, &mut dst_view, &options).map_err(|e| e.to_string())
}

/// Grows a `width` x `height` plane of 8-bit samples (rows packed) in place to `padded_width` x
/// `padded_height`, repeating its last column and last row, as an encoder reading whole chroma
/// samples' worth of luma expects.
pub(crate) fn pad_plane(plane: &mut Vec<u8>, width: u32, height: u32, padded_width: u32, padded_height: u32) {
    let (w, h, pw, ph) = (width as usize, height as usize, padded_width as usize, padded_height as usize);
    debug_assert!(pw >= w && ph >= h && w > 0 && h > 0);
    plane.resize(pw * ph, 0);
    if pw > w {
        // From the last row up, so that no row is overwritten before it has moved.
        for y in (0..h).rev() {
            plane.copy_within(y * w..y * w + w, y * pw);
            let last = plane[y * pw + w - 1];
            plane[y * pw + w..y * pw + pw].fill(last);
        }
    }
    for y in h..ph {
        plane.copy_within((h - 1) * pw..h * pw, y * pw);
    }
}

/// Turns the pixels upright as EXIF orientation says, so the stored image needs no EXIF.
#[cfg(test)]
pub(crate) fn orient(src: Rgb, orientation: Orientation) -> Rgb {
    if orientation == Orientation::NoTransforms || src.pixels.is_empty() {
        return src;
    }
    let mut pixels = Vec::new();
    let (width, height) = orient_into::<3>(&src.pixels, src.width, src.height, orientation, &mut pixels);
    Rgb { width, height, pixels }
}

/// As `orient`, from `width * height` pixels of `N` bytes each, packed (3 for RGB, 1 for one
/// plane), into `dst` (its length set to the same); returns the upright size.
pub(crate) fn orient_into<const N: usize>(
    src: &[u8],
    width: u32,
    height: u32,
    orientation: Orientation,
    dst: &mut Vec<u8>,
) -> (u32, u32) {
    let (w, h) = (width as usize, height as usize);
    let (dw, dh) = if swaps_sides(orientation) { (h, w) } else { (w, h) };
    let (wl, hl) = (w as isize - 1, h as isize - 1);
    // Where source pixel (x, y) lands, as dx = x0 + x*xx + y*xy and dy = y0 + x*yx + y*yy; see the
    // EXIF 2.3 Orientation table. Being linear, the destination index is too.
    let (x0, xx, xy, y0, yx, yy): (isize, isize, isize, isize, isize, isize) = match orientation {
        Orientation::NoTransforms => (0, 1, 0, 0, 0, 1),
        Orientation::FlipHorizontal => (wl, -1, 0, 0, 0, 1),
        Orientation::Rotate180 => (wl, -1, 0, hl, 0, -1),
        Orientation::FlipVertical => (0, 1, 0, hl, 0, -1),
        Orientation::Rotate90FlipH => (0, 0, 1, 0, 1, 0),
        Orientation::Rotate90 => (hl, 0, -1, 0, 1, 0),
        Orientation::Rotate270FlipH => (hl, 0, -1, wl, -1, 0),
        Orientation::Rotate270 => (0, 0, 1, wl, -1, 0),
    };
    let dw_i = dw as isize;
    let (step_x, step_y) = (yx * dw_i + xx, yy * dw_i + xy);
    // Every pixel is written below (the mapping is a bijection); only growth is zeroed.
    dst.resize(src.len(), 0);
    for (y, row) in src.chunks_exact(w.max(1) * N).enumerate() {
        let mut at = y0 * dw_i + x0 + y as isize * step_y;
        for px in row.chunks_exact(N) {
            let i = at as usize * N;
            dst[i..i + N].copy_from_slice(px);
            at += step_x;
        }
    }
    (dw as u32, dh as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgba, RgbaImage};

    #[test]
    fn fit_keeps_aspect_never_enlarges_never_zero() {
        assert_eq!(fit(4000, 3000, 1024), (1024, 768));
        assert_eq!(fit(3000, 4000, 1024), (768, 1024));
        assert_eq!(fit(800, 600, 1024), (800, 600));
        assert_eq!(fit(100_000, 10, 1024), (1024, 1));
        assert_eq!(fit(1025, 1025, 1024), (1024, 1024));
        assert_eq!(fit(5, 3, 0), (1, 1));
    }

    #[test]
    fn cmyk_conversion_in_both_conventions() {
        // Pure red is no cyan, full magenta and yellow, no black.
        assert_eq!(cmyk_to_rgb(&[0, 255, 255, 0], false), vec![255, 0, 0]);
        assert_eq!(cmyk_to_rgb(&[255, 0, 0, 255], true), vec![255, 0, 0]);
        // Full black ink gives black whatever the other inks.
        assert_eq!(cmyk_to_rgb(&[10, 20, 30, 255], false), vec![0, 0, 0]);
    }

    #[test]
    fn transparent_pixels_become_white_and_half_alpha_blends() {
        let mut img = RgbaImage::new(3, 1);
        img.put_pixel(0, 0, Rgba([0, 0, 0, 0]));
        img.put_pixel(1, 0, Rgba([0, 0, 0, 255]));
        img.put_pixel(2, 0, Rgba([0, 0, 0, 128]));
        let rgb = to_rgb8(DynamicImage::ImageRgba8(img));
        assert_eq!(rgb.pixels, vec![255, 255, 255, 0, 0, 0, 127, 127, 127]);
    }

    #[test]
    fn orientation_matches_the_image_crate_for_all_eight() {
        let (w, h) = (5u32, 3u32);
        let pixels: Vec<u8> = (0..w * h * 3).map(|i| i as u8).collect();
        for exif in 1..=8u8 {
            let o = Orientation::from_exif(exif).unwrap();
            let mine = orient(Rgb { width: w, height: h, pixels: pixels.clone() }, o);
            let mut theirs = DynamicImage::ImageRgb8(image::RgbImage::from_raw(w, h, pixels.clone()).unwrap());
            theirs.apply_orientation(o);
            let theirs = theirs.into_rgb8();
            assert_eq!((mine.width, mine.height), theirs.dimensions(), "orientation {exif}");
            assert_eq!(mine.pixels, theirs.into_raw(), "orientation {exif}");
        }
    }

    #[test]
    fn padding_a_plane_repeats_its_last_column_and_row() {
        let mut plane = vec![1, 2, 3, 4, 5, 6];
        pad_plane(&mut plane, 3, 2, 4, 3);
        assert_eq!(plane, vec![1, 2, 3, 3, 4, 5, 6, 6, 4, 5, 6, 6]);
        let mut even = vec![1, 2, 3, 4];
        pad_plane(&mut even, 2, 2, 2, 2);
        assert_eq!(even, vec![1, 2, 3, 4]);
    }

    #[test]
    fn resize_averages_rather_than_samples() {
        // A fine black/white checkerboard shrunk 4x must come out mid-grey, not black or white.
        let (w, h) = (64u32, 64u32);
        let pixels: Vec<u8> = (0..w * h).flat_map(|i| [if (i % w + i / w) % 2 == 0 { 0 } else { 255 }; 3]).collect();
        let small = resize(&Rgb { width: w, height: h, pixels }, 16, 16).unwrap();
        assert_eq!(small.pixels.len(), 16 * 16 * 3);
        let centre = small.pixels[(8 * 16 + 8) * 3];
        assert!((100..=155).contains(&centre), "centre {centre}");
    }
}
