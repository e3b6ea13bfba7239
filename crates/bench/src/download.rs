//! `dd-bench download`: the codec limit (decode+resize+encode+hash of a corpus, no network) and
//! the end-to-end rate (origin -> prep -> download -> shards) on the same corpus and cores, and
//! optionally the CPU per image of an earlier version's codec against ours (`--baseline-bin`).

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use distributed_downloader::config::Settings;
use distributed_downloader::download::run::{self as download_run, DownloadOptions};
use distributed_downloader::imaging::ImageSettings;
use distributed_downloader::prep::run::{self as prep_run, PrepOptions};
use test_origin::{images, Behaviour, HostSpec, Origin};

use crate::cli::{BenchDownloadArgs, Corpus};
use crate::codec::{median_by, median_codec};

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
fn corpus_paths(n: usize, corpus: Corpus) -> Vec<String> {
    let prefix = match corpus {
        Corpus::Camera => "cam-",
        Corpus::Plain => "",
    };
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
            format!("/img/{prefix}w{w}-h{h}-{i}.{ext}")
        })
        .collect()
}

/// Both measures, printed on one line with their ratio; with `--baseline-bin`, a second line
/// compares the baseline's codec with ours on the same files.
pub fn run(args: &BenchDownloadArgs, settings: &Settings) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir).with_context(|| format!("cannot create {}", args.dir.display()))?;
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let paths = corpus_paths(args.images, args.corpus);
    let t = Instant::now();
    let corpus: Vec<Vec<u8>> =
        paths.iter().map(|p| images::served_bytes(p).expect("corpus path is an image").to_vec()).collect();
    let mb: f64 = corpus.iter().map(|c| c.len() as f64).sum::<f64>() / 1e6;
    eprintln!("bench-download: generated {} photos ({mb:.0} MB) in {:.1} s", corpus.len(), t.elapsed().as_secs_f64());

    if let Some(folder) = &args.save_corpus {
        save_corpus(&corpus, &paths, folder)?;
        eprintln!("bench-download: corpus saved to {} (for `dd-bench codec --dir` or a profiler)", folder.display());
    }
    let codec = median_codec(&corpus, &ImageSettings::default(), threads, args.codec_runs);
    let quality = crate::quality::measure(&corpus, &ImageSettings::default(), threads)?;
    let baseline = match &args.baseline_bin {
        Some(bin) => Some(compare_with_baseline(bin, &args.baseline_label, &corpus, &paths, args)?),
        None => None,
    };
    drop(corpus);
    let head = format!(
        "bench-download: images={} corpus_mb={mb:.0} threads={threads} {} {}",
        args.images,
        codec.line(),
        quality.field()
    );
    if args.codec_only {
        println!("{head}");
        if let Some(line) = baseline {
            println!("{line}");
        }
        crate::remove_scratch(&args.dir);
        return Ok(());
    }

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
        "{head} end_to_end_img_s={e2e:.1} ratio={:.2} stored={} failed={}",
        e2e / codec.images_per_sec,
        summary.succeeded,
        summary.failed,
    );
    if let Some(line) = baseline {
        println!("{line}");
    }
    crate::remove_scratch(&args.dir);
    Ok(())
}

/// Writes the corpus to `<dir>/corpus`, then runs `dd-bench codec` there with the baseline binary
/// and with this one in turn, `codec_runs` times each, and returns one line: both medians, the
/// change, whether both stored the same bytes (equal fingerprints), and how close each one's
/// stored images come to the same reference (`dd-bench codec --quality`).
fn compare_with_baseline(
    bin: &Path,
    label: &str,
    corpus: &[Vec<u8>],
    paths: &[String],
    args: &BenchDownloadArgs,
) -> anyhow::Result<String> {
    let folder = args.dir.join("corpus");
    save_corpus(corpus, paths, &folder)?;
    let ours = std::env::current_exe().context("cannot find this dd-bench's own path")?;
    let (mut theirs_runs, mut ours_runs) = (Vec::new(), Vec::new());
    let runs = args.codec_runs.max(1);
    for run in 1..=runs {
        eprintln!("bench-download: codec run {run} of {runs}, {label} then ours");
        // The last run also measures quality; that pass is not timed.
        theirs_runs.push(codec_figures(bin, &folder, run == runs)?);
        ours_runs.push(codec_figures(&ours, &folder, run == runs)?);
    }
    let psnr = |runs: &[CodecFigures]| runs.iter().find_map(|r| r.psnr.clone()).unwrap_or_else(|| "?".into());
    let (theirs_psnr, ours_psnr) = (psnr(&theirs_runs), psnr(&ours_runs));
    let (theirs, ours) = (median_by(theirs_runs, |r| r.cpu_ms), median_by(ours_runs, |r| r.cpu_ms));
    Ok(format!(
        "bench-download: baseline={label} baseline_cpu_ms_per_img={:.1} baseline_by_format=[{}] ours_cpu_ms_per_img={:.1} ours_by_format=[{}] cpu_change={:+.1}% same_output={} baseline_psnr_db=[{theirs_psnr}] ours_psnr_db=[{ours_psnr}]",
        theirs.cpu_ms,
        theirs.by_format,
        ours.cpu_ms,
        ours.by_format,
        (ours.cpu_ms / theirs.cpu_ms - 1.0) * 100.0,
        if theirs.fingerprint == ours.fingerprint { "yes" } else { "no" },
    ))
}

/// Writes the corpus to `folder` as `<index>.<extension>`, the input of `dd-bench codec`.
fn save_corpus(corpus: &[Vec<u8>], paths: &[String], folder: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(folder).with_context(|| format!("cannot create {}", folder.display()))?;
    for (i, (bytes, path)) in corpus.iter().zip(paths).enumerate() {
        let ext = path.rsplit('.').next().unwrap_or("bin");
        let file = folder.join(format!("{i:05}.{ext}"));
        std::fs::write(&file, bytes).with_context(|| format!("cannot write {}", file.display()))?;
    }
    Ok(())
}

/// What the comparison reads from one `dd-bench codec` line.
struct CodecFigures {
    cpu_ms: f64,
    by_format: String,
    fingerprint: String,
    /// `mean=… min=… images=…` when asked for.
    psnr: Option<String>,
}

fn codec_figures(bin: &Path, folder: &Path, quality: bool) -> anyhow::Result<CodecFigures> {
    let mut command = std::process::Command::new(bin);
    command.arg("codec").arg("--dir").arg(folder);
    if quality {
        command.arg("--quality");
    }
    let out = command.output().with_context(|| format!("cannot run {}", bin.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "{} codec failed ({}): {}",
        bin.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let field = |key: &str| -> Option<String> {
        let start = stdout.find(&format!("{key}="))? + key.len() + 1;
        let rest = &stdout[start..];
        let value = if let Some(list) = rest.strip_prefix('[') {
            &list[..list.find(']')?]
        } else {
            rest.split_whitespace().next()?
        };
        Some(value.to_string())
    };
    let missing = || anyhow::anyhow!("{} codec printed no figures: {stdout}", bin.display());
    Ok(CodecFigures {
        cpu_ms: field("codec_cpu_ms_per_img").and_then(|v| v.parse().ok()).ok_or_else(missing)?,
        by_format: field("codec_cpu_ms_per_img_by_format").ok_or_else(missing)?,
        fingerprint: field("output_fingerprint").ok_or_else(missing)?,
        psnr: if quality { Some(field("psnr_vs_reference_db").ok_or_else(missing)?) } else { None },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_mix_is_six_percent_webp_eight_percent_png_a_quarter_small() {
        let paths = corpus_paths(150, Corpus::Plain);
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
