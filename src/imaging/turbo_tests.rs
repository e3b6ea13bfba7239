//! Tests of the TurboJPEG wrappers: decoding, planes and encoding together.

use super::*;
use crate::imaging::turbo_compress::Compressor;

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
