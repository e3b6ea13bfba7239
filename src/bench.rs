//! Generated inputs for benchmarks and the demo: GBIF-like multimedia tables of any size.
//!
//! The generator is deterministic (a fixed-seed xorshift), streams to disk, and mimics what makes
//! GBIF hard: a few huge servers and a long tail of small ones, repeated URLs, non-image rows,
//! rows without identifiers, and the odd malformed line.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::Context;

use crate::cli::{BenchDownloadArgs, BenchPrepArgs};
use crate::prep::input::Format;
use crate::prep::run::{self as prep_run, PrepOptions, Schema};

/// The 15 columns of GBIF's multimedia extension, in order.
pub const GBIF_COLUMNS: [&str; 15] = [
    "gbifID",
    "type",
    "format",
    "identifier",
    "references",
    "title",
    "description",
    "source",
    "audience",
    "created",
    "creator",
    "contributor",
    "publisher",
    "license",
    "rightsHolder",
];

/// Servers in a generated table. GBIF's monthly snapshot spans 545+ image servers.
const SERVERS: u64 = 600;

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Writes `rows` GBIF-like data rows (plus a header) to `path`.
pub fn write_gbif_like(path: &Path, rows: u64) -> std::io::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    writeln!(out, "{}", GBIF_COLUMNS.join("\t"))?;
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for i in 0..rows {
        let r = rng.next();
        let id = 1_000_000_000 + i;
        // 3% of rows point at an image another row already referenced.
        let img = if r % 100 < 3 { id.saturating_sub(r % 1000 + 1) } else { id };
        // Zipf-like: server s gets weight 1/(s+1), by inverting a uniform draw on a log scale.
        // Drawn from the image id, so a repeated image repeats its whole URL.
        let u = (crate::prep::server_key::fnv1a(&img.to_le_bytes()) % 1_000_000) as f64 / 1_000_000.0;
        let server = ((SERVERS as f64 + 1.0).powf(u) - 1.0) as u64;
        let (kind, format) = match (r >> 20) % 100 {
            0..=3 => ("Sound", "audio/mpeg"),
            4..=6 => ("", "image/jpeg"),
            _ => ("StillImage", "image/jpeg"),
        };
        let url = if (r >> 30) % 500 == 0 {
            String::new()
        } else {
            format!("https://images{server}.museum{}.example.org/media/{img}.jpg", server % 97)
        };
        if (r >> 40) % 100_000 == 0 {
            // A truncated line, as seen in real exports.
            writeln!(out, "{id}\tStillImage\timage/jpeg\t{url}")?;
            continue;
        }
        writeln!(
            out,
            "{id}\t{kind}\t{format}\t{url}\thttps://portal.example.org/occurrence/{id}\tSpecimen \"{id}\"\tHerbarium sheet\t\t\t2019-05-0{}\tA. Collector\t\tMuseum {server}\thttp://creativecommons.org/licenses/by/4.0/\tMuseum {server}",
            1 + r % 9
        )?;
    }
    out.flush()
}

/// `bench-prep`: generates the input, runs prep in this process, prints wall time and peak RSS.
pub fn prep(args: &BenchPrepArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir).with_context(|| format!("cannot create {}", args.dir.display()))?;
    let input = args.dir.join("multimedia.txt");
    let output = args.dir.join("prep-out");
    let t = Instant::now();
    write_gbif_like(&input, args.rows).with_context(|| format!("cannot write {}", input.display()))?;
    let size = std::fs::metadata(&input)?.len();
    eprintln!(
        "bench-prep: generated {} rows ({:.0} MB) in {:.1} s",
        args.rows,
        size as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    let opts = PrepOptions {
        input: input.clone(),
        output: output.clone(),
        format: Format::Auto,
        schema: Schema::Auto,
        url_col: None,
        id_col: None,
        license_col: None,
        source_col: None,
        title_col: None,
        batch_size: crate::config::DEFAULT_BATCH_SIZE,
        initial_rate_limit: crate::config::DEFAULT_INITIAL_RATE_LIMIT,
        ignored_servers: None,
        force: true,
        rows_per_bucket: crate::prep::spill::ROWS_PER_BUCKET,
    };
    let report = prep_run::run(&opts)?;
    println!(
        "bench-prep: rows={} input_mb={:.0} wall_s={:.1} rows_per_s={:.0} peak_rss_mib={:.0} unique_urls={} servers={} batches={}",
        report.rows_read,
        size as f64 / 1e6,
        report.wall_seconds,
        report.rows_read as f64 / report.wall_seconds,
        report.peak_rss_mib.unwrap_or(f64::NAN),
        report.unique_urls,
        report.servers,
        report.batches
    );
    if !args.keep {
        let _ = std::fs::remove_file(&input);
        let _ = std::fs::remove_dir_all(&output);
    }
    Ok(())
}

/// Sizes of the download benchmark's corpus, cycled: a quarter already small enough to keep as
/// they are, the rest 1.2–12 MP photos, as in a GBIF snapshot's mix.
const CORPUS_SIZES: [(u32, u32); 8] =
    [(800, 600), (1280, 960), (2048, 1536), (4000, 3000), (1024, 768), (3000, 2000), (2592, 1944), (1600, 1200)];

/// `bench-download`: the codec limit (decode+resize+encode+hash of the corpus, no network) and
/// the end-to-end rate (origin -> prep -> download -> shards) on the same corpus and cores.
pub fn download(args: &BenchDownloadArgs, settings: &crate::config::Settings) -> anyhow::Result<()> {
    use crate::download::run::{self as download_run, DownloadOptions};
    use crate::imaging::{bench_codec, ImageSettings};
    use crate::origin::{images, Behaviour, HostSpec, Origin};

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
    let _ = std::fs::remove_dir_all(&out);
    // Politeness is not what is measured here: the local hosts take any rate.
    let mut prep = PrepOptions::url_list(input, out.clone(), 50, 1000.0);

    prep_run::run(&prep)?;
    prep.force = false;
    let mut s = settings.clone();
    s.max_rate_limit = 1000.0;
    s.max_in_flight_per_host = 4;
    let summary = download_run::run(DownloadOptions {
        out: out.clone(),
        settings: s,
        contact: "bench@example.org".into(),
        deadline: None,
        owned: None,
        verbose: false,
        static_plan: false,
    })?
    .summary;
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
    let _ = std::fs::remove_dir_all(&args.dir);
    Ok(())
}
