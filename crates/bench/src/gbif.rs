//! `dd-bench prep`: a generated GBIF-like multimedia table of any size, and prep's wall time and
//! peak memory on it.
//!
//! The generator is deterministic (a fixed-seed xorshift), streams to disk, and mimics what makes
//! GBIF hard: a few huge servers and a long tail of small ones, repeated URLs, non-image rows,
//! rows without identifiers, and the odd malformed line.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::Context;

use distributed_downloader::config::{DEFAULT_BATCH_SIZE, DEFAULT_INITIAL_RATE_LIMIT};
use distributed_downloader::prep::input::Format;
use distributed_downloader::prep::run::{self as prep_run, PrepOptions, Schema};
use distributed_downloader::prep::server_key::fnv1a;
use distributed_downloader::prep::spill::ROWS_PER_BUCKET;

use crate::cli::BenchPrepArgs;

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
        let u = (fnv1a(&img.to_le_bytes()) % 1_000_000) as f64 / 1_000_000.0;
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

/// `dd-bench prep`: generates the input, runs prep in this process, prints wall time and peak RSS.
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
        batch_size: DEFAULT_BATCH_SIZE,
        initial_rate_limit: DEFAULT_INITIAL_RATE_LIMIT,
        ignored_servers: None,
        force: true,
        rows_per_bucket: ROWS_PER_BUCKET,
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
        // Scratch files: a leftover costs disk only (see `remove_scratch`).
        let _ = std::fs::remove_file(&input);
        crate::remove_scratch(&output);
    }
    Ok(())
}
