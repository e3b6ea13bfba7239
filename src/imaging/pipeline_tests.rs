//! Tests of `process` as the engine sees it: what gets stored, at what size, and which error class.

use std::io::Cursor;
use std::sync::OnceLock;

use image::{DynamicImage, ImageFormat, Rgb as RgbPx, RgbImage, Rgba, RgbaImage};
use md5::Md5;
use sha2::{Digest, Sha256};
use test_origin::photo::{synthetic_photo_jpeg, with_orientation};

use super::*;
use crate::imaging::settings::DEFAULT_MAX_PIXELS;
use crate::imaging::turbo::{Decompressor, Scale};
use crate::imaging::turbo_compress::Compressor;

/// 2048x1536 decodes at exactly 1024x768 with DCT scale 1/2, so tests using it stay fast in debug.
fn camera_jpeg() -> &'static [u8] {
    static JPEG: OnceLock<Vec<u8>> = OnceLock::new();
    JPEG.get_or_init(|| synthetic_photo_jpeg(2048, 1536, 42, 90))
}

fn small_jpeg() -> &'static [u8] {
    static JPEG: OnceLock<Vec<u8>> = OnceLock::new();
    JPEG.get_or_init(|| synthetic_photo_jpeg(800, 600, 3, 90))
}

/// Decodes a stored JPEG with libjpeg-turbo (fast even in debug builds), optionally scaled.
fn decode_scaled(jpeg: &[u8], scale: Scale) -> RgbImage {
    let mut d = Decompressor::new().unwrap();
    let header = d.header(jpeg).expect("stored bytes are a JPEG");
    let out = d.decompress(jpeg, &header, scale, false, 0).unwrap();
    assert!(out.warning.is_none(), "{:?}", out.warning);
    RgbImage::from_raw(out.width, out.height, out.pixels).unwrap()
}

fn decode(jpeg: &[u8]) -> RgbImage {
    decode_scaled(jpeg, Scale::ONE)
}

fn encode(img: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn always() -> ImageSettings {
    ImageSettings { reencode: Reencode::Always, ..ImageSettings::default() }
}

fn mean(img: &RgbImage) -> [f64; 3] {
    let n = f64::from(img.width() * img.height());
    let mut sum = [0f64; 3];
    img.pixels().for_each(|p| (0..3).for_each(|c| sum[c] += f64::from(p[c])));
    sum.map(|s| s / n)
}

#[test]
fn twelve_megapixel_jpeg_is_stored_at_1024_by_768_with_its_colours() {
    let original = synthetic_photo_jpeg(4000, 3000, 11, 90);
    let p = process(&original, &ImageSettings::default()).unwrap();
    assert_eq!((p.original_width, p.original_height), (4000, 3000));
    assert_eq!((p.stored_width, p.stored_height, p.format), (1024, 768, StoredFormat::Jpeg));
    assert!(p.resized && p.reencoded);
    // Another decoder agrees on what was stored.
    assert_eq!(image::load_from_memory(&p.data).unwrap().into_rgb8().dimensions(), (1024, 768));
    let reference = decode_scaled(&original, Scale { num: 1, denom: 8 });
    let (a, b) = (mean(&decode(&p.data)), mean(&reference));
    assert!((0..3).all(|c| (a[c] - b[c]).abs() < 2.0), "mean colour moved: {a:?} vs {b:?}");
}

#[test]
fn decoder_shrinks_by_its_cheap_factors_and_never_below_the_target() {
    let half = Scale { num: 4, denom: 8 };
    let eighth = Scale { num: 1, denom: 8 };
    let pick = |w, h, planes| {
        let (tw, th) = pixels::fit(w, h, 1024);
        let s = dct_scale(w, h, tw, th, planes);
        (s.apply(w), s.apply(h))
    };
    assert_eq!(pick(4000, 3000, false), (half.apply(4000), half.apply(3000)));
    assert_eq!(pick(8192, 6144, false), (eighth.apply(8192), eighth.apply(6144)));
    assert_eq!(pick(1600, 1200, false), (1600, 1200));
    assert_eq!(pick(3000, 4000, false), (1500, 2000));
    // Decoding to planes, 3/8 is cheaper than 1/2 where it still reaches the target...
    assert_eq!(pick(4000, 3000, true), (1500, 1125));
    assert_eq!(pick(2000, 3000, true), (750, 1125));
    // ...and not taken where it would fall short (2592 * 3/8 = 972 < 1024).
    assert_eq!(pick(2592, 1944, true), (1296, 972));
    assert_eq!(pick(1600, 1200, true), (1600, 1200));
}

#[test]
fn small_jpeg_is_stored_byte_identical_and_hashed_once() {
    let original = small_jpeg();
    let p = process(original, &ImageSettings::default()).unwrap();
    assert_eq!(p.data, original);
    assert_eq!((p.stored_width, p.stored_height, p.format), (800, 600, StoredFormat::Jpeg));
    assert!(!p.resized && !p.reencoded);
    assert_eq!(p.sha256.as_slice(), Sha256::digest(original).as_slice());
    assert_eq!(p.md5, None, "MD5 is off by default");
    let with_md5 = process(original, &ImageSettings { md5: true, ..ImageSettings::default() }).unwrap();
    assert_eq!(with_md5.md5.map(Vec::from), Some(Md5::digest(original).to_vec()));
    assert_eq!((with_md5.data, with_md5.sha256), (p.data, p.sha256), "MD5 changes nothing else");
}

#[test]
fn small_jpeg_is_kept_without_decoding_its_pixels() {
    // Scramble the middle of the entropy-coded data without creating markers: a decoder would
    // produce garbage, but the keep path only reads headers, so the bytes are stored as they are.
    let mut scrambled = small_jpeg().to_vec();
    let mut mid = scrambled.len() / 2;
    while scrambled[mid - 1] == 0xFF {
        mid += 1;
    }
    scrambled[mid..mid + 200].iter_mut().for_each(|b| *b = if *b == 0x55 { 0x11 } else { 0x55 });
    let p = process(&scrambled, &ImageSettings::default()).unwrap();
    assert_eq!(p.data, scrambled);
    assert!(!p.reencoded);
}

#[test]
fn reencode_always_stores_a_fresh_jpeg_of_the_same_size() {
    let p = process(small_jpeg(), &always()).unwrap();
    assert!(p.reencoded && !p.resized);
    assert_ne!(p.data, small_jpeg());
    assert_eq!(decode(&p.data).dimensions(), (800, 600));
    assert_eq!(p.sha256.as_slice(), Sha256::digest(small_jpeg()).as_slice(), "hash is of the original");
}

#[test]
fn png_with_alpha_becomes_rgb_on_white() {
    let mut img = RgbaImage::from_pixel(300, 200, Rgba([0, 0, 255, 255]));
    for y in 0..200 {
        for x in 0..150 {
            img.put_pixel(x, y, Rgba([0, 0, 0, 0])); // left half transparent
        }
    }
    let png = encode(DynamicImage::ImageRgba8(img), ImageFormat::Png);
    let s = ImageSettings { max_side: 150, ..ImageSettings::default() };
    let p = process(&png, &s).unwrap();
    assert_eq!((p.stored_width, p.stored_height, p.format), (150, 100, StoredFormat::Jpeg));
    let stored = image::load_from_memory(&p.data).unwrap();
    assert_eq!(stored.color().channel_count(), 3);
    let stored = stored.into_rgb8();
    let (left, right) = (stored.get_pixel(20, 50), stored.get_pixel(130, 50));
    assert!(left.0.iter().all(|&v| v > 240), "transparent became white: {left:?}");
    assert!(right[2] > 200 && right[0] < 40, "opaque blue stays blue: {right:?}");
}

#[test]
fn rgb_png_decoded_into_the_worker_buffer_gives_the_pixels_of_a_fresh_decode() {
    // 8-bit RGB PNGs go straight into the worker's reused buffer; a larger image before it leaves
    // bytes there that must not leak into a smaller one, raw RGB shows every stored pixel.
    let raw = ImageSettings { store: StoreAs::RawRgb, max_side: 4096, ..ImageSettings::default() };
    let big = image::RgbImage::from_fn(640, 480, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 200]));
    process(&encode(DynamicImage::ImageRgb8(big), ImageFormat::Png), &raw).unwrap();
    let small = image::RgbImage::from_fn(50, 30, |x, y| image::Rgb([(x * 5) as u8, (y * 8) as u8, 7]));
    let p = process(&encode(DynamicImage::ImageRgb8(small.clone()), ImageFormat::Png), &raw).unwrap();
    assert_eq!((p.stored_width, p.stored_height, p.format), (50, 30, StoredFormat::RawRgb));
    assert_eq!(p.data, small.into_raw());
}

#[test]
fn sixteen_bit_png_is_scaled_to_eight_bits() {
    let img = image::ImageBuffer::<image::Rgb<u16>, _>::from_pixel(240, 160, image::Rgb([65535u16, 32896, 0]));
    let png = encode(DynamicImage::ImageRgb16(img), ImageFormat::Png);
    let p = process(&png, &ImageSettings { max_side: 120, ..ImageSettings::default() }).unwrap();
    assert_eq!((p.stored_width, p.stored_height), (120, 80));
    let px = *decode(&p.data).get_pixel(60, 40);
    assert!(px[0] > 245 && (118..=138).contains(&px[1]) && px[2] < 10, "{px:?}");
}

#[test]
fn greyscale_jpeg_is_stored_as_rgb() {
    let grey = image::GrayImage::from_fn(440, 330, |x, y| image::Luma([((x + y) % 256) as u8]));
    let jpeg = encode(DynamicImage::ImageLuma8(grey), ImageFormat::Jpeg);
    let p = process(&jpeg, &ImageSettings { max_side: 200, ..ImageSettings::default() }).unwrap();
    assert_eq!((p.stored_width, p.stored_height), (200, 150));
    let stored = image::load_from_memory(&p.data).unwrap();
    assert_eq!(stored.color().channel_count(), 3);
    let px = *stored.into_rgb8().get_pixel(100, 50);
    assert!(px[0].abs_diff(px[1]) <= 3 && px[1].abs_diff(px[2]) <= 3, "grey stays grey: {px:?}");
}

#[test]
fn adobe_cmyk_jpeg_keeps_its_colour() {
    // Photoshop's inverted CMYK for pure red: no cyan and full magenta/yellow, stored inverted.
    let (w, h) = (1100u32, 200u32);
    let cmyk: Vec<u8> = (0..w * h).flat_map(|_| [255u8, 0, 0, 255]).collect();
    let jpeg = Compressor::new().unwrap().compress_cmyk(&cmyk, w, h, 90).unwrap();
    let p = process(&jpeg, &ImageSettings::default()).unwrap();
    let px = *decode(&p.data).get_pixel(500, 90);
    assert!(px[0] > 230 && px[1] < 30 && px[2] < 30, "red stays red: {px:?}");
}

#[test]
fn exif_orientation_6_stores_the_image_upright() {
    let upright_reference = process(camera_jpeg(), &ImageSettings::default()).unwrap();
    let rotated = with_orientation(camera_jpeg(), 6, false);
    let p = process(&rotated, &ImageSettings::default()).unwrap();
    assert_eq!((p.original_width, p.original_height), (1536, 2048));
    assert_eq!((p.stored_width, p.stored_height), (768, 1024));
    // Orientation 6 means "turn 90 degrees clockwise to view".
    let expected = image::imageops::rotate90(&decode(&upright_reference.data));
    let got = decode(&p.data);
    assert_eq!(got.dimensions(), expected.dimensions());
    let diff: u64 = got.as_raw().iter().zip(expected.as_raw()).map(|(a, b)| u64::from(a.abs_diff(*b))).sum();
    let mean_diff = diff as f64 / got.as_raw().len() as f64;
    assert!(mean_diff < 3.0, "pixels rotated the wrong way: mean difference {mean_diff:.1}");
}

#[test]
fn small_jpeg_with_orientation_is_kept_and_reported_upright() {
    let rotated = with_orientation(small_jpeg(), 6, true);
    let p = process(&rotated, &ImageSettings::default()).unwrap();
    assert_eq!(p.data, rotated);
    assert_eq!((p.stored_width, p.stored_height), (600, 800));
}

/// A kept original is never decoded to be stored, but its perceptual hash is of the picture as
/// displayed: the same as that of its re-encoded, upright copy, and far from the sideways one.
#[test]
fn a_kept_original_is_fingerprinted_upright_like_its_reencoded_copy() {
    let rotated = with_orientation(small_jpeg(), 6, true);
    let kept = process(&rotated, &ImageSettings::default()).unwrap();
    assert_eq!(kept.data, rotated, "kept as it came");
    let always = ImageSettings { reencode: Reencode::Always, ..ImageSettings::default() };
    let upright = process(&rotated, &always).unwrap().fingerprint.expect("a decoded image has one");
    let sideways = process(small_jpeg(), &ImageSettings::default()).unwrap().fingerprint.unwrap();
    let kept = kept.fingerprint.expect("the kept JPEG decodes");
    let (same, turned) =
        (crate::imaging::hamming256(&kept.pdq, &upright.pdq), crate::imaging::hamming256(&kept.pdq, &sideways.pdq));
    assert!(same <= 16, "kept and re-encoded copies of one picture are {same} PDQ bits apart");
    assert!(turned > 48, "the picture and its sideways twin are only {turned} PDQ bits apart");
    assert!(kept.pdq_quality >= 50, "a photo-like image: PDQ quality {}", kept.pdq_quality);
}

/// CRC-32 (IEEE) as PNG chunks need, bit by bit: fine for a few bytes in a test.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend((data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend(kind);
    out.extend(data);
    let crc = crc32(&out[start..]);
    out.extend(crc.to_be_bytes());
}

#[test]
fn png_claiming_ten_gigapixels_is_refused_from_its_header() {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend(100_000u32.to_be_bytes());
    ihdr.extend(100_000u32.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]); // 8-bit RGB
    png_chunk(&mut png, b"IHDR", &ihdr);
    png_chunk(&mut png, b"IDAT", &[0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    png_chunk(&mut png, b"IEND", &[]);
    let err = process(&png, &ImageSettings::default()).unwrap_err();
    assert_eq!(err, ImageError::TooManyPixels { width: 100_000, height: 100_000, limit: DEFAULT_MAX_PIXELS });
    assert_eq!(err.class().as_str(), "too_many_pixels");
}

#[test]
fn jpeg_claiming_billions_of_pixels_is_refused_from_its_header() {
    let mut jpeg = small_jpeg().to_vec();
    let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).expect("baseline SOF0");
    jpeg[sof + 5..sof + 9].copy_from_slice(&[0xEA, 0x60, 0xEA, 0x60]); // 60000 x 60000
    let err = process(&jpeg, &ImageSettings::default()).unwrap_err();
    assert_eq!(err.class().as_str(), "too_many_pixels", "{err}");
}

#[test]
fn truncated_jpegs_are_decode_errors_kept_or_decoded() {
    let large = camera_jpeg();
    let err = process(&large[..large.len() * 6 / 10], &ImageSettings::default()).unwrap_err();
    assert_eq!(err.class().as_str(), "decode", "{err}");
    let small = small_jpeg();
    let err = process(&small[..small.len() * 9 / 10], &ImageSettings::default()).unwrap_err();
    assert_eq!(err.class().as_str(), "decode", "{err}");
}

#[test]
fn junk_html_and_cut_files_are_errors_never_panics() {
    let html = b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head></html>";
    assert_eq!(process(html, &ImageSettings::default()).unwrap_err().class().as_str(), "not_image");
    let garbage: Vec<u8> = (0..5000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    assert_eq!(process(&garbage, &ImageSettings::default()).unwrap_err().class().as_str(), "not_image");
    let mut fake_jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0];
    fake_jpeg.extend(&garbage);
    assert_eq!(process(&fake_jpeg, &ImageSettings::default()).unwrap_err().class().as_str(), "decode");
    let png = encode(DynamicImage::ImageRgb8(RgbImage::from_pixel(64, 48, RgbPx([9, 99, 199]))), ImageFormat::Png);
    for bytes in [small_jpeg(), &png[..]] {
        for cut in (0..bytes.len()).step_by(bytes.len() / 37 + 1) {
            for s in [ImageSettings::default(), always()] {
                if let Err(e) = process(&bytes[..cut], &s) {
                    assert!(["decode", "not_image"].contains(&e.class().as_str()), "cut {cut}: {e}");
                }
            }
        }
    }
}

#[test]
fn tiff_and_bmp_are_always_reencoded_to_jpeg() {
    let img = DynamicImage::ImageRgb8(RgbImage::from_fn(320, 240, |x, y| RgbPx([x as u8, y as u8, 128])));
    for format in [ImageFormat::Tiff, ImageFormat::Bmp] {
        let bytes = encode(img.clone(), format);
        let p = process(&bytes, &ImageSettings::default()).unwrap();
        assert_eq!((p.format, p.stored_width, p.stored_height), (StoredFormat::Jpeg, 320, 240), "{format:?}");
        assert!(p.reencoded && !p.resized);
        let px = *decode(&p.data).get_pixel(200, 100);
        assert!(px[0].abs_diff(200) < 8 && px[1].abs_diff(100) < 8, "{format:?}: {px:?}");
    }
}

#[test]
fn small_png_gif_and_webp_are_kept_unless_reencode_always() {
    let img = DynamicImage::ImageRgb8(RgbImage::from_fn(90, 60, |x, y| RgbPx([x as u8 * 2, y as u8 * 3, 50])));
    for (format, stored) in [
        (ImageFormat::Png, StoredFormat::Png),
        (ImageFormat::Gif, StoredFormat::Gif),
        (ImageFormat::WebP, StoredFormat::Webp),
    ] {
        let bytes = encode(img.clone(), format);
        let kept = process(&bytes, &ImageSettings::default()).unwrap();
        assert_eq!((kept.format, &kept.data[..], kept.stored_width), (stored, &bytes[..], 90), "{format:?}");
        let fresh = process(&bytes, &always()).unwrap();
        assert_eq!((fresh.format, fresh.stored_width, fresh.stored_height), (StoredFormat::Jpeg, 90, 60));
        assert!(fresh.reencoded);
    }
}

#[test]
fn raw_rgb_is_width_times_height_times_three() {
    let raw = ImageSettings { store: StoreAs::RawRgb, ..ImageSettings::default() };
    let p = process(camera_jpeg(), &raw).unwrap();
    assert_eq!((p.format, p.stored_width, p.stored_height), (StoredFormat::RawRgb, 1024, 768));
    assert_eq!(p.data.len(), 1024 * 768 * 3);
    let small = process(small_jpeg(), &raw).unwrap();
    assert_eq!(small.data.len(), 800 * 600 * 3, "small images are decoded too, never kept");
    assert!(small.reencoded && !small.resized);
}

/// PSNR of two equal-sized RGB images, in dB.
fn psnr(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let squared: f64 = a.as_raw().iter().zip(b.as_raw()).map(|(&x, &y)| f64::from(x.abs_diff(y)).powi(2)).sum();
    10.0 * (255.0f64 * 255.0 / (squared / a.as_raw().len() as f64).max(1e-9)).log10()
}

#[test]
fn ycbcr_planes_store_the_picture_the_rgb_path_stores_for_every_sampling_size_and_orientation() {
    // Odd sizes on purpose: 1201x803 shrinks to 1024x685, and 1001x667 is re-encoded as it is;
    // both have luma planes padded to whole chroma samples.
    let cases = [(1201u32, 803u32, Reencode::Auto), (1001, 667, Reencode::Always)];
    // TJSAMP_444, _422, _420, _440: what cameras, scanners and web encoders write.
    for (subsamp, name) in [(0, "4:4:4"), (1, "4:2:2"), (2, "4:2:0"), (4, "4:4:0")] {
        for &(w, h, reencode) in &cases {
            let rgb = test_origin::photo::synthetic_photo_rgb(w, h, 5);
            let coded = Compressor::new().unwrap().compress_rgb_sampled(&rgb, w, h, 92, subsamp).unwrap();
            for exif in [1u8, 6, 7] {
                let jpeg = if exif == 1 { coded.clone() } else { with_orientation(&coded, exif, false) };
                let planar = ImageSettings { reencode, ..ImageSettings::default() };
                let raw = ImageSettings { store: StoreAs::RawRgb, ..planar.clone() };
                let (p, r) = (process(&jpeg, &planar).unwrap(), process(&jpeg, &raw).unwrap());
                let case = format!("{name} {w}x{h} orientation {exif}");
                assert_eq!(
                    (p.format, p.stored_width, p.stored_height),
                    (StoredFormat::Jpeg, r.stored_width, r.stored_height),
                    "{case}"
                );
                let stored = decode(&p.data);
                assert_eq!(stored.dimensions(), (p.stored_width, p.stored_height), "{case}");
                let reference = RgbImage::from_raw(r.stored_width, r.stored_height, r.data).unwrap();
                // Chroma misplaced by a pixel, swapped planes or a wrong turn fall below 30 dB.
                let db = psnr(&stored, &reference);
                assert!(db > 36.0, "{case}: {db:.1} dB from the RGB path's pixels");
            }
        }
    }
}
