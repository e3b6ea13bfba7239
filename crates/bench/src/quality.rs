//! How close the stored images come to an ideal rendition, so that a faster codec can show it
//! stores the same picture: for each re-encoded image, the PSNR of what `process` stored
//! against a reference made the slow, careful way (the whole file decoded at full size by the
//! `image` crate, turned upright, Lanczos3 straight to the stored size, no JPEG step).
//!
//! Owns: `measure` and `Quality`. Does not own: timing (see `codec`). Two codec versions run on
//! the same files are compared by their figures: equal within a few hundredths of a dB means no
//! visible change, since PSNR is a mean over every sample of every image.

use std::io::Cursor;
use std::sync::atomic::{AtomicUsize, Ordering};

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, ImageDecoder, ImageReader};

use distributed_downloader::imaging::{process, ImageSettings};

/// PSNR given to two identical images, which have no error to divide by.
const IDENTICAL_DB: f64 = 99.0;

/// PSNR of the stored images against their references, over the images `process` re-encoded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quality {
    pub images: usize,
    pub mean_db: f64,
    pub min_db: f64,
}

impl Quality {
    /// The figures as one `key=value` field, the form every `dd-bench` figure takes.
    pub fn field(&self) -> String {
        format!("psnr_vs_reference_db=[mean={:.2} min={:.2} images={}]", self.mean_db, self.min_db, self.images)
    }
}

/// Processes every image of `corpus` with `s` on `threads` workers and compares each re-encoded
/// result with its reference. Images kept as they came, or refused, are left out.
pub fn measure(corpus: &[Vec<u8>], s: &ImageSettings, threads: usize) -> anyhow::Result<Quality> {
    let next = AtomicUsize::new(0);
    let per_image: Vec<f64> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<Vec<f64>> {
                    let mut resizer = Resizer::new();
                    let mut found = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(bytes) = corpus.get(i) else { break };
                        let Ok(stored) = process(bytes, s) else { continue };
                        if !stored.reencoded {
                            continue;
                        }
                        let size = (stored.stored_width, stored.stored_height);
                        let reference = reference(bytes, size, &mut resizer)
                            .map_err(|e| anyhow::anyhow!("image {i}: no reference: {e}"))?;
                        let ours = image::load_from_memory(&stored.data)
                            .map_err(|e| anyhow::anyhow!("image {i}: stored bytes do not decode: {e}"))?
                            .into_rgb8();
                        anyhow::ensure!(ours.dimensions() == size, "image {i}: stored size differs from its record");
                        found.push(psnr(ours.as_raw(), &reference));
                    }
                    Ok(found)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a quality worker panicked"))
            .collect::<anyhow::Result<Vec<Vec<f64>>>>()
            .map(|all| all.into_iter().flatten().collect())
    })?;
    anyhow::ensure!(!per_image.is_empty(), "no image of the corpus was re-encoded; nothing to compare");
    Ok(Quality {
        images: per_image.len(),
        mean_db: per_image.iter().sum::<f64>() / per_image.len() as f64,
        min_db: per_image.iter().copied().fold(f64::INFINITY, f64::min),
    })
}

/// The reference rendition of `bytes` at `size` (as displayed): packed RGB, alpha on white.
fn reference(bytes: &[u8], (width, height): (u32, u32), resizer: &mut Resizer) -> Result<Vec<u8>, String> {
    let reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| e.to_string())?;
    let mut decoder = reader.into_decoder().map_err(|e| e.to_string())?;
    let orientation = decoder.orientation().map_err(|e| e.to_string())?;
    let mut full = DynamicImage::from_decoder(decoder).map_err(|e| e.to_string())?;
    full.apply_orientation(orientation);
    let rgb = if full.color().has_alpha() {
        let rgba = full.into_rgba8();
        let (w, h) = rgba.dimensions();
        let on_white = rgba
            .pixels()
            .flat_map(|p| {
                let a = u32::from(p.0[3]);
                [0, 1, 2].map(|c| ((u32::from(p.0[c]) * a + 255 * (255 - a) + 127) / 255) as u8)
            })
            .collect();
        image::RgbImage::from_raw(w, h, on_white).expect("three bytes per pixel")
    } else {
        full.into_rgb8()
    };
    let src = ImageRef::new(rgb.width(), rgb.height(), rgb.as_raw(), PixelType::U8x3).map_err(|e| e.to_string())?;
    let mut dst = Image::new(width, height, PixelType::U8x3);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    resizer.resize(&src, &mut dst, &options).map_err(|e| e.to_string())?;
    Ok(dst.into_vec())
}

/// Peak signal-to-noise ratio of two equal-length 8-bit buffers, in dB.
fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len(), "PSNR of buffers of different lengths");
    let squared: u64 = a.iter().zip(b).map(|(&x, &y)| u64::from(x.abs_diff(y)).pow(2)).sum();
    if squared == 0 {
        return IDENTICAL_DB;
    }
    let mse = squared as f64 / a.len() as f64;
    (10.0 * (255.0f64 * 255.0 / mse).log10()).min(IDENTICAL_DB)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psnr_falls_as_the_error_grows() {
        let a = vec![100u8; 300];
        assert_eq!(psnr(&a, &a), IDENTICAL_DB);
        let off_by_one: Vec<u8> = a.iter().map(|v| v + 1).collect();
        let off_by_ten: Vec<u8> = a.iter().map(|v| v + 10).collect();
        // An error of 1 in every sample is 48.13 dB; of 10, 28.13 dB.
        assert!((psnr(&a, &off_by_one) - 48.13).abs() < 0.01);
        assert!((psnr(&a, &off_by_ten) - 28.13).abs() < 0.01);
    }

    #[test]
    fn a_stored_photo_is_close_to_its_reference_and_a_wrong_one_is_not() {
        let photo = test_origin::images::served_bytes("/img/cam-w1600-h1200-7.jpg").expect("a photo").to_vec();
        let s = ImageSettings::default();
        let good = measure(std::slice::from_ref(&photo), &s, 1).unwrap();
        assert_eq!(good.images, 1);
        assert!(good.mean_db > 30.0, "{good:?}");
        // The same measure against another photo's pixels must be far worse.
        let other = test_origin::images::served_bytes("/img/cam-w1600-h1200-8.jpg").expect("a photo").to_vec();
        let stored = process(&photo, &s).unwrap();
        let ours = image::load_from_memory(&stored.data).unwrap().into_rgb8();
        let wrong = reference(&other, (stored.stored_width, stored.stored_height), &mut Resizer::new()).unwrap();
        assert!(psnr(ours.as_raw(), &wrong) < good.mean_db - 10.0);
    }
}
