//! A corpus shaped like a GBIF crawl, for the codec benchmark: the mix of sizes and kinds
//! (`corpus_plan`) and its encoded images (`realistic_corpus`), deterministic.
//!
//! Does not own: the pixels (`test_origin::photo`) nor measuring anything (see `codec`).

use std::io::Cursor;

use test_origin::photo::{synthetic_photo_jpeg, synthetic_photo_rgb, with_orientation};
use test_origin::rng::SplitMix64;

/// One image of a generated corpus, before its pixels exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Spec {
    pub width: u32,
    pub height: u32,
    pub png: bool,
    pub quality: u8,
    /// EXIF orientation to insert (1 = none), as phones do for portrait shots.
    pub orientation: u8,
}

/// Camera and scanner sizes, 1.2 to 12 megapixels.
const LARGE: [(u32, u32); 6] = [(1280, 960), (1600, 1200), (2048, 1536), (2592, 1944), (3264, 2448), (4000, 3000)];
/// Web-sized images, already within 1024 px.
const SMALL: [(u32, u32); 4] = [(640, 480), (800, 600), (1024, 768), (500, 375)];

/// The sizes and kinds of `realistic_corpus(n)`: in every 20 images, 5 small JPEGs (25%), 1 PNG
/// (alternately small with no decode needed, or 2 MP), and 14 JPEGs of 1.2–12 MP, some portrait,
/// some with EXIF orientation 6.
pub(crate) fn corpus_plan(n: usize) -> Vec<Spec> {
    let mut rng = SplitMix64(0xC0_4B05);
    (0..n)
        .map(|i| {
            let slot = i % 20;
            let quality = [80, 85, 90, 92, 95][(rng.next_u64() % 5) as usize];
            let portrait = rng.next_u64() % 4 == 0;
            let (mut width, mut height, png) = match slot {
                0..=4 => (SMALL[slot % SMALL.len()].0, SMALL[slot % SMALL.len()].1, false),
                5 if (i / 20) % 2 == 0 => (600, 400, true),
                5 => (1600, 1200, true),
                _ => {
                    // The k-th large image overall, so every size comes round equally often.
                    let (w, h) = LARGE[((i / 20) * 14 + slot - 6) % LARGE.len()];
                    (w, h, false)
                }
            };
            if portrait {
                std::mem::swap(&mut width, &mut height);
            }
            let orientation = if !png && slot % 7 == 6 { 6 } else { 1 };
            Spec { width, height, png, quality, orientation }
        })
        .collect()
}

/// `n` encoded images shaped like a GBIF crawl (see `corpus_plan`), deterministic.
pub fn realistic_corpus(n: usize) -> Vec<Vec<u8>> {
    corpus_plan(n)
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let seed = i as u64 + 1;
            if spec.png {
                let rgb = synthetic_photo_rgb(spec.width, spec.height, seed);
                let img = image::RgbImage::from_raw(spec.width, spec.height, rgb).expect("buffer matches size");
                let mut png = Cursor::new(Vec::new());
                img.write_to(&mut png, image::ImageFormat::Png).expect("PNG encoding to memory cannot fail");
                png.into_inner()
            } else {
                let jpeg = synthetic_photo_jpeg(spec.width, spec.height, seed, spec.quality);
                if spec.orientation == 1 {
                    jpeg
                } else {
                    with_orientation(&jpeg, spec.orientation, false)
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_is_mostly_large_jpegs_with_a_quarter_small() {
        let plan = corpus_plan(40);
        let small = plan.iter().filter(|s| s.width.max(s.height) <= 1024).count();
        let pngs = plan.iter().filter(|s| s.png).count();
        let megapixels: Vec<f64> = plan.iter().map(|s| f64::from(s.width * s.height) / 1e6).collect();
        assert!((9..=13).contains(&small), "{small} small of 40");
        assert!((1..=4).contains(&pngs), "{pngs} PNGs of 40");
        assert!(megapixels.iter().any(|&mp| mp >= 11.0) && megapixels.iter().any(|&mp| mp <= 1.5));
        assert!(plan.iter().any(|s| s.orientation == 6));
    }
}
