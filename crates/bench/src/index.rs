//! `dd-bench index` (`make bench-index`): `index` of a downloaded dataset of 1M rows (times
//! `--scale`), made without downloading: prep of a URL list over [`SERVERS`] servers in batches
//! of 10,000 (GBIF's default), then one shard per batch written with the product's shard writer
//! and its `ledger.json`, as the writer commits them. 95% of the rows are stored images (a small
//! JPEG: `index` reads records, not image bytes, so their size does not matter to it), 5%
//! failures. It runs the release product's `index --json` in a child process and prints its
//! wall time, rows per second and peak RSS, then a second `index` that finds every batch
//! unchanged.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use distributed_downloader::config::DEFAULT_INITIAL_RATE_LIMIT;
use distributed_downloader::prep::run::{self as prep_run, PrepOptions};
use distributed_downloader::store::batches::read_batch_window;
use distributed_downloader::store::shards::hdf5_io::write_shard;
use distributed_downloader::store::shards::ledger::{batch_dir, scan_batch, RetryFailed};
use distributed_downloader::store::shards::record::{FailureRecord, ShardContents, SuccessRecord};
use distributed_downloader::store::shards::summary::write_summary;
use distributed_downloader::store::tables::read_servers_table;

use crate::cli::IndexBenchArgs;
use crate::dedup::{hash256, hex, mix};

/// Rows at `--scale 1`: what the issue asks to measure.
const ROWS: u64 = 1_000_000;
/// Rows per batch: GBIF's default batch size.
const BATCH_ROWS: usize = 10_000;
const SERVERS: u64 = 20;
/// One row in this many is a failure.
const FAILED_EVERY: usize = 20;

pub fn run(args: &IndexBenchArgs) -> anyhow::Result<()> {
    crate::remove_scratch(&args.dir);
    std::fs::create_dir_all(&args.dir).with_context(|| format!("cannot create {}", args.dir.display()))?;
    let rows = ((ROWS as f64 * args.scale).round() as u64).max(1_000);
    let t = Instant::now();
    let out = write_dataset(&args.dir, rows)?;
    eprintln!(
        "bench-index: prepped and wrote shards of {rows} rows in {:.0} s; index in a fresh process",
        t.elapsed().as_secs_f64()
    );
    let product = std::env::current_exe()?.with_file_name("distributed-downloader");
    let mut figures = Vec::new();
    for (pass, stdout) in [("first", "index.json"), ("again", "index-again.json")] {
        let mut cmd = Command::new(&product);
        cmd.args(["index", "--json", "-o"]).arg(&out);
        let run = crate::child::measure(&mut cmd, &args.dir.join(stdout))?;
        if !run.status.success() {
            bail!("index failed ({}); run `{} index -o {}` to see why", run.status, product.display(), out.display());
        }
        let report: serde_json::Value = serde_json::from_str(&run.stdout).context("index --json printed its report")?;
        let listed = report["stored"].as_u64().unwrap_or(0) + report["failed"].as_u64().unwrap_or(0);
        if listed != rows || report["errors"].as_array().is_some_and(|e| !e.is_empty()) {
            bail!("index listed {listed} rows of {rows}: {report}");
        }
        figures.push(format!(
            "index_{pass}_s={:.1} rows_per_s={:.0} peak_rss_mib={:.0} batches_indexed={}",
            run.seconds,
            rows as f64 / run.seconds,
            run.peak_mib,
            report["indexed"]
        ));
    }
    println!("bench-index: rows={rows} servers={SERVERS} {}", figures.join(" "));
    if !args.keep {
        crate::remove_scratch(&args.dir);
    }
    Ok(())
}

/// Preps `rows` URLs in `dir/dataset` and commits one shard per batch of small JPEGs; returns
/// the folder.
fn write_dataset(dir: &Path, rows: u64) -> anyhow::Result<std::path::PathBuf> {
    let images: Vec<Vec<u8>> = (0..4).map(|seed| test_origin::photo::synthetic_photo_jpeg(32, 24, seed, 85)).collect();
    write_dataset_of(dir, rows, &images, (32, 24))
}

/// [`write_dataset`] with the stored images `images` (cycled, each `size` pixels): one in
/// [`FAILED_EVERY`] rows is a failure, the others store one of them.
pub(crate) fn write_dataset_of(
    dir: &Path,
    rows: u64,
    images: &[Vec<u8>],
    size: (u32, u32),
) -> anyhow::Result<std::path::PathBuf> {
    let (input, out) = (dir.join("urls.csv"), dir.join("dataset"));
    let mut list = String::from("url\n");
    for g in 0..rows {
        list.push_str(&format!("http://s{}.example.org/img/{g}.jpg\n", g % SERVERS));
    }
    std::fs::write(&input, list)?;
    prep_run::run(&PrepOptions::url_list(input, out.clone(), BATCH_ROWS, DEFAULT_INITIAL_RATE_LIMIT))?;
    let mut n = 0u64;
    for s in read_servers_table(&out)? {
        for p in 0..s.batch_count {
            let (mut successes, mut failures) = (Vec::new(), Vec::new());
            for (i, r) in read_batch_window(&out, &s.server_name, p, 0, BATCH_ROWS)?.into_iter().enumerate() {
                n += 1;
                if i % FAILED_EVERY == FAILED_EVERY - 1 {
                    failures.push(FailureRecord {
                        uuid: r.uuid,
                        url: r.url,
                        server: s.server_name.clone(),
                        source_ids: r.source_ids,
                        error_class: "http_4xx".into(),
                        detail: "generated by dd-bench index".into(),
                        attempts: 1,
                        http_status: 404,
                        retriable: false,
                        failed_at: 1.8e9,
                    });
                    continue;
                }
                successes.push(SuccessRecord {
                    uuid: r.uuid,
                    final_url: r.url.clone(),
                    url: r.url,
                    server: s.server_name.clone(),
                    source_ids: r.source_ids,
                    original_width: 2048,
                    original_height: 1536,
                    stored_width: size.0,
                    stored_height: size.1,
                    format: "jpeg".into(),
                    data: images[n as usize % images.len()].clone(),
                    sha256: hex(&hash256(n)),
                    md5: hex(&hash256(!n)[..16]),
                    fetched_at: 1.8e9,
                    redirects: 0,
                    etag: String::new(),
                    last_modified: String::new(),
                    pdq: hex(&hash256(n ^ 1 << 62)),
                    pdq_quality: 90,
                    phash: mix(n),
                    version: 1,
                    checked_at: 1.8e9,
                    check_error: String::new(),
                });
            }
            let id = s.batch_ids.as_ref().and_then(|ids| ids.get(p as usize)).cloned().unwrap_or_default();
            let dir = batch_dir(&out, &s.server_name, p);
            write_shard(&dir, 0, &ShardContents { successes, failures }, &id)?;
            write_summary(&dir, &scan_batch(&out, &s.server_name, p, RetryFailed::No)?.summary())?;
        }
    }
    if n != rows {
        bail!("prep made {n} rows of the {rows} listed");
    }
    Ok(out)
}
