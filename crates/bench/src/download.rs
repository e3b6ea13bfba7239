//! `dd-bench download`: the codec limit (decode+resize+encode+hash of a corpus, no network) and
//! the end-to-end rate (origin -> prep -> download -> shards) on the same corpus and cores.

use std::time::Instant;

use anyhow::Context;
use distributed_downloader::config::Settings;
use distributed_downloader::download::run::{self as download_run, DownloadOptions};
use distributed_downloader::imaging::ImageSettings;
use distributed_downloader::prep::run::{self as prep_run, PrepOptions};
use test_origin::{images, Behaviour, HostSpec, Origin};

use crate::cli::BenchDownloadArgs;
use crate::codec::bench_codec;

/// Sizes of the download benchmark's JPEGs, cycled: a quarter already small enough to keep as
/// they are, the rest 1.2–12 MP photos, as in a GBIF snapshot's mix.
const CORPUS_SIZES: [(u32, u32); 8] =
    [(800, 600), (1280, 960), (2048, 1536), (4000, 3000), (1024, 768), (3000, 2000), (2592, 1944), (1600, 1200)];

/// Images per repeat of the format mix: 3 WebP (6%) and 4 PNG (8%) in every 50, the rest JPEG.
const MIX_PERIOD: usize = 50;
/// Where in each period of 50 the WebP images fall (spread out, so a short corpus has some).
const WEBP_SLOTS: [usize; 3] = [7, 24, 41];
/// Where in each period of 50 the PNG images fall.
const PNG_SLOTS: [usize; 4] = [3, 16, 29, 42];
/// WebP sizes, cycled: web images, one in three already small enough to keep. The test origin
/// serves lossless WebP of its photo-like pixels (the `image` crate encodes no lossy WebP).
const WEBP_SIZES: [(u32, u32); 3] = [(1600, 1200), (800, 600), (1280, 960)];
/// PNG sizes, cycled: scans and screenshots, one in four already small enough to keep.
const PNG_SIZES: [(u32, u32); 4] = [(2048, 1536), (1024, 768), (1600, 1200), (3000, 2000)];

/// The URL paths of the benchmark's corpus, deterministic: the test origin renders each from its
/// path with its photo-like generator (gradient, soft blobs and per-pixel noise). JPEG sizes
/// follow `CORPUS_SIZES` by index, exactly as before PNG and WebP were added to the mix.
fn corpus_paths(n: usize) -> Vec<String> {
    let (mut webps, mut pngs) = (0usize, 0usize);
    (0..n)
        .map(|i| {
            let slot = i % MIX_PERIOD;
            let (w, h, ext) = if WEBP_SLOTS.contains(&slot) {
                webps += 1;
                let (w, h) = WEBP_SIZES[(webps - 1) % WEBP_SIZES.len()];
                (w, h, "webp")
            } else if PNG_SLOTS.contains(&slot) {
                pngs += 1;
                let (w, h) = PNG_SIZES[(pngs - 1) % PNG_SIZES.len()];
                (w, h, "png")
            } else {
                let (w, h) = CORPUS_SIZES[i % CORPUS_SIZES.len()];
                (w, h, "jpg")
            };
            format!("/img/w{w}-h{h}-{i}.{ext}")
        })
        .collect()
}

/// Both measures, printed on one line with their ratio.
pub fn run(args: &BenchDownloadArgs, settings: &Settings) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir).with_context(|| format!("cannot create {}", args.dir.display()))?;
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let paths = corpus_paths(args.images);
    let t = Instant::now();
    let corpus: Vec<Vec<u8>> =
        paths.iter().map(|p| images::served_bytes(p).expect("corpus path is an image").to_vec()).collect();
    let mb: f64 = corpus.iter().map(|c| c.len() as f64).sum::<f64>() / 1e6;
    eprintln!("bench-download: generated {} photos ({mb:.0} MB) in {:.1} s", corpus.len(), t.elapsed().as_secs_f64());

    let codec = bench_codec(&corpus, &ImageSettings::default(), threads);
    drop(corpus);

    let hosts: Vec<HostSpec> = (0..args.hosts).map(|h| HostSpec::loopback(2 + h, Behaviour::Ok)).collect();
    let origin = Origin::start(hosts).context("cannot start the local origin")?;
    let input = args.dir.join("urls.csv");
    let urls: Vec<String> = paths.iter().enumerate().map(|(i, p)| origin.url(i % origin.len(), p)).collect();
    std::fs::write(&input, format!("url\n{}\n", urls.join("\n")))?;
    let out = args.dir.join("dataset");
    crate::remove_scratch(&out);
    // Politeness is not what is measured here: the local hosts take any rate.
    let mut prep = PrepOptions::url_list(input, out.clone(), 50, 1000.0);

    prep_run::run(&prep)?;
    prep.force = false;
    let mut s = settings.clone();
    s.max_rate_limit = 1000.0;
    s.max_in_flight_per_host = 4;
    let summary = download_run::run(DownloadOptions::new(out.clone(), s, "bench@example.org".into()))?.summary;
    let e2e = summary.succeeded as f64 / summary.wall_seconds;
    println!(
        "bench-download: images={} corpus_mb={mb:.0} threads={threads} codec_limit_img_s={:.1} codec_cpu_ms_per_img={:.1} codec_cpu_ms_per_img_by_format=[{}] output_fingerprint={:016x} end_to_end_img_s={e2e:.1} ratio={:.2} stored={} failed={}",
        args.images,
        codec.images_per_sec,
        codec.cpu_ms_per_image,
        codec.per_format_summary(),
        codec.output_fingerprint,
        e2e / codec.images_per_sec,
        summary.succeeded,
        summary.failed,
    );
    crate::remove_scratch(&args.dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_mix_is_six_percent_webp_eight_percent_png_a_quarter_small() {
        let paths = corpus_paths(150);
        let count = |ext: &str| paths.iter().filter(|p| p.ends_with(ext)).count();
        assert_eq!((count(".webp"), count(".png"), count(".jpg")), (9, 12, 129));
        let small = paths
            .iter()
            .filter(|p| {
                let spec = test_origin::images::spec_for_path(p).expect("every path is an image");
                spec.width.max(spec.height) <= 1024
            })
            .count();
        assert!((30..=45).contains(&small), "{small} of 150 small");
        // The JPEGs keep the sizes they had before the mix had other formats.
        assert_eq!(paths[4], "/img/w1024-h768-4.jpg");
    }
}
