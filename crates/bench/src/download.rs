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

/// Sizes of the download benchmark's corpus, cycled: a quarter already small enough to keep as
/// they are, the rest 1.2–12 MP photos, as in a GBIF snapshot's mix.
const CORPUS_SIZES: [(u32, u32); 8] =
    [(800, 600), (1280, 960), (2048, 1536), (4000, 3000), (1024, 768), (3000, 2000), (2592, 1944), (1600, 1200)];

/// Both measures, printed on one line with their ratio.
pub fn run(args: &BenchDownloadArgs, settings: &Settings) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir).with_context(|| format!("cannot create {}", args.dir.display()))?;
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let paths: Vec<String> = (0..args.images)
        .map(|i| {
            let (w, h) = CORPUS_SIZES[i % CORPUS_SIZES.len()];
            format!("/img/w{w}-h{h}-{i}.jpg")
        })
        .collect();
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
        "bench-download: images={} corpus_mb={mb:.0} threads={threads} codec_limit_img_s={:.1} codec_cpu_ms_per_img={:.1} end_to_end_img_s={e2e:.1} ratio={:.2} stored={} failed={}",
        args.images,
        codec.images_per_sec,
        codec.cpu_ms_per_image,
        e2e / codec.images_per_sec,
        summary.succeeded,
        summary.failed,
    );
    crate::remove_scratch(&args.dir);
    Ok(())
}
