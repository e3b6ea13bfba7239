//! `dd-bench store` (`make bench-store`): the output folder at GBIF's shape, checked and resumed.
//!
//! A GBIF snapshot is about 20,000 batches of about 10,000 rows; no bench disk holds that, so
//! two outputs each keep one side of it:
//! - **GBIF's count of batches**: 545 servers, about 20,000 batches of 5 rows (as `scale`),
//!   every row stored as a small JPEG, every batch complete; one batch in [`INTERRUPTED_EVERY`]
//!   is left in two parts and a temporary file, as a run killed in its merges leaves it. What a
//!   check costs per batch and per shard shows here.
//! - **GBIF's size of batch**: [`BIG_BATCHES`] batches of [`BIG_ROWS`] rows, one server. What a
//!   check costs per row shows here.
//!
//! On each it times, with the product binary as a user runs it (one rank, default settings):
//! - on the first, the start of a `download` (the lock, finishing the interrupted merges,
//!   checking every batch's `ledger.json` against its shards, "nothing left to do"), and a
//!   second start with nothing to finish;
//! - `verify` (every shard's records, a sample of 8 images per batch) beside its peer, reading
//!   every shard file whole (what a check at disk speed costs; warm page cache for both);
//! - `verify --full` (every image's CRC-32 and a full decode) beside its peer, decoding the same
//!   images in this process with the same decoder on as many threads as `verify` uses
//!   (`CPU_THREADS=0`: every core).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use distributed_downloader::config::DEFAULT_INITIAL_RATE_LIMIT;
use distributed_downloader::prep::run::{self as prep_run, PrepOptions};
use distributed_downloader::store::batches::read_batch_window;
use distributed_downloader::store::shards::hdf5_io::write_shard;
use distributed_downloader::store::shards::ledger::{batch_dir, scan_batch, RetryFailed};
use distributed_downloader::store::shards::record::{ShardContents, SuccessRecord};
use distributed_downloader::store::shards::summary::write_summary;
use distributed_downloader::store::tables::{read_servers_table, ServerInfo};

use crate::cli::StoreArgs;

/// Rows per batch of the output with GBIF's count of batches.
const ROWS_PER_BATCH: usize = 5;
/// Batches of the output with GBIF's size of batch, and their rows (GBIF's default batch size).
const BIG_BATCHES: usize = 4;
const BIG_ROWS: usize = 10_000;
/// Every this many batches, one is left unmerged (two parts and a killed merge's temporary file).
const INTERRUPTED_EVERY: usize = 100;
/// Distinct stored images, reused over the rows (the checks do not depend on which).
const VARIANTS: u64 = 8;
/// Stored image size: small, so 100,000 of them fit a bench's disk (about 1 GB).
const STORED: (u32, u32) = (256, 192);

pub fn run(args: &StoreArgs) -> anyhow::Result<()> {
    crate::remove_scratch(&args.dir);
    let images: Vec<Vec<u8>> =
        (0..VARIANTS).map(|seed| test_origin::photo::synthetic_photo_jpeg(STORED.0, STORED.1, seed, 85)).collect();
    let product = std::env::current_exe()?.with_file_name("distributed-downloader");
    std::fs::create_dir_all(&args.dir)?;
    let config = args.dir.join("job.env");
    std::fs::write(&config, "CONTACT=bench@example.org\n")?;
    let cfg = config.display().to_string();

    let t = Instant::now();
    let (out, servers) = crate::scale::gbif_shaped(&args.dir.join("many"), ROWS_PER_BATCH)?;
    let (batches, interrupted) = write_dataset(&out, &servers, &images, ROWS_PER_BATCH, INTERRUPTED_EVERY)?;
    eprintln!(
        "bench-store: {batches} complete batches of {ROWS_PER_BATCH} images, {interrupted} of them left unmerged, \
         written in {:.0} s",
        t.elapsed().as_secs_f64()
    );
    let out_arg = out.display().to_string();
    let (start_s, said) = timed(&product, &["--config", &cfg, "download", "-o", &out_arg])?;
    if !said.contains(&format!("{interrupted} complete batch(es) merged")) {
        bail!("the first start did not finish the {interrupted} interrupted merges:\n{said}");
    }
    let (again_s, _) = timed(&product, &["--config", &cfg, "download", "-o", &out_arg])?;
    println!(
        "bench-store: shape=gbif-batch-count batches={batches} unmerged={interrupted} \
         download_start_s={start_s:.2} download_start_again_s={again_s:.2}"
    );
    checks("gbif-batch-count", &product, &out, batches * ROWS_PER_BATCH, &images)?;
    if !args.keep {
        crate::remove_scratch(&args.dir.join("many"));
    }

    let t = Instant::now();
    let (out, servers) = one_server(&args.dir.join("big"))?;
    let (batches, _) = write_dataset(&out, &servers, &images, BIG_ROWS, 0)?;
    eprintln!("bench-store: {batches} batches of {BIG_ROWS} images written in {:.0} s", t.elapsed().as_secs_f64());
    checks("gbif-batch-size", &product, &out, batches * BIG_ROWS, &images)?;
    if !args.keep {
        crate::remove_scratch(&args.dir);
    }
    Ok(())
}

/// Times `verify` and `verify --full` on `out` (holding `stored` images, each one of `images`)
/// beside their peers and prints one line of figures for `shape`.
fn checks(shape: &str, product: &Path, out: &Path, stored: usize, images: &[Vec<u8>]) -> anyhow::Result<()> {
    let out_arg = out.display().to_string();
    let (shard_bytes, shards, read_s) = read_every_shard(&out.join("downloads"))?;
    let (verify_s, _) = timed(product, &["verify", "-o", &out_arg])?;
    let (full_s, _) = timed(product, &["verify", "--full", "-o", &out_arg])?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let decode_s = decode_all(images, stored, threads)?;
    println!(
        "bench-store: shape={shape} shards={shards} images={stored} shard_mib={:.0} \
         verify_s={verify_s:.2} read_all_s={read_s:.2} verify_vs_read={:.2}x \
         verify_full_s={full_s:.2} decode_s={decode_s:.2} threads={threads} full_vs_decode={:.2}x",
        shard_bytes as f64 / (1 << 20) as f64,
        verify_s / read_s,
        full_s / decode_s
    );
    Ok(())
}

/// Decodes `count` images (each one of `images` in turn) on `threads` threads; the wall time.
fn decode_all(images: &[Vec<u8>], count: usize, threads: usize) -> anyhow::Result<f64> {
    let t = Instant::now();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|w| {
                s.spawn(move || -> anyhow::Result<()> {
                    for i in (w..count).step_by(threads) {
                        let img =
                            image::load_from_memory(&images[i % images.len()]).context("a stored image decodes")?;
                        std::hint::black_box(img);
                    }
                    Ok(())
                })
            })
            .collect();
        workers.into_iter().try_for_each(|w| w.join().expect("a decode thread panicked"))
    })?;
    Ok(t.elapsed().as_secs_f64())
}

/// Preps, in `dir/dataset`, one server of [`BIG_BATCHES`] batches of [`BIG_ROWS`] rows.
fn one_server(dir: &Path) -> anyhow::Result<(PathBuf, Vec<ServerInfo>)> {
    std::fs::create_dir_all(dir)?;
    let (input, out) = (dir.join("urls.csv"), dir.join("dataset"));
    let lines: Vec<String> =
        (0..BIG_BATCHES * BIG_ROWS).map(|j| format!("http://big.example.org/img/{j}.jpg")).collect();
    std::fs::write(&input, format!("url\n{}\n", lines.join("\n")))?;
    prep_run::run(&PrepOptions::url_list(input, out.clone(), BIG_ROWS, DEFAULT_INITIAL_RATE_LIMIT))?;
    let servers = read_servers_table(&out)?;
    Ok((out, servers))
}

/// Writes every batch of `rows` rows as the writer would (its shard, then its `ledger.json`);
/// every `interrupted_every`th batch (none for 0) as two parts and a temporary file with no summary. Returns
/// the batch count and how many were left unmerged.
fn write_dataset(
    out: &Path,
    servers: &[ServerInfo],
    images: &[Vec<u8>],
    rows: usize,
    interrupted_every: usize,
) -> anyhow::Result<(usize, usize)> {
    let (mut batches, mut interrupted) = (0, 0);
    for s in servers {
        for p in 0..s.batch_count {
            let rows = read_batch_window(out, &s.server_name, p, 0, rows)?;
            let records: Vec<SuccessRecord> = rows
                .into_iter()
                .enumerate()
                .map(|(i, r)| SuccessRecord {
                    uuid: r.uuid,
                    url: r.url,
                    server: s.server_name.clone(),
                    source_ids: r.source_ids,
                    original_width: STORED.0 * 4,
                    original_height: STORED.1 * 4,
                    stored_width: STORED.0,
                    stored_height: STORED.1,
                    format: "jpeg".into(),
                    data: images[(batches + i) % images.len()].clone(),
                    sha256: String::new(),
                    md5: String::new(),
                    fetched_at: 0.0,
                    final_url: String::new(),
                    etag: String::new(),
                    last_modified: String::new(),
                    redirects: 0,
                    pdq: String::new(),
                    pdq_quality: 0,
                    phash: 0,
                    version: 1,
                    checked_at: 0.0,
                    check_error: String::new(),
                })
                .collect();
            let id = s.batch_ids.as_ref().and_then(|ids| ids.get(p as usize)).cloned().unwrap_or_default();
            let dir = batch_dir(out, &s.server_name, p);
            if interrupted_every > 0 && batches % interrupted_every == 0 && records.len() > 1 {
                let (a, b) = records.split_at(records.len() / 2);
                write_shard(&dir, 0, &ShardContents { successes: a.to_vec(), failures: vec![] }, &id)?;
                write_shard(&dir, 1, &ShardContents { successes: b.to_vec(), failures: vec![] }, &id)?;
                std::fs::write(dir.join("shard-000002.h5.node-1-0.tmp"), b"a merge killed midway")?;
                interrupted += 1;
            } else {
                write_shard(&dir, 0, &ShardContents { successes: records, failures: vec![] }, &id)?;
                write_summary(&dir, &scan_batch(out, &s.server_name, p, RetryFailed::No)?.summary())?;
            }
            batches += 1;
        }
    }
    Ok((batches, interrupted))
}

/// Runs the product with `args` and returns its wall time and its stderr; fails if it fails.
fn timed(product: &Path, args: &[&str]) -> anyhow::Result<(f64, String)> {
    let t = Instant::now();
    let o = Command::new(product).args(args).output().with_context(|| format!("cannot start {}", product.display()))?;
    let seconds = t.elapsed().as_secs_f64();
    let said = String::from_utf8_lossy(&o.stderr).into_owned();
    if !o.status.success() {
        bail!("{args:?} failed ({}):\n{said}{}", o.status, String::from_utf8_lossy(&o.stdout));
    }
    Ok((seconds, said))
}

/// Reads every shard file under `dir` whole; returns the bytes and files read and the wall time.
fn read_every_shard(dir: &Path) -> anyhow::Result<(u64, usize, f64)> {
    let t = Instant::now();
    let (mut bytes, mut files, mut stack) = (0u64, 0, vec![dir.to_path_buf()]);
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "h5") {
                bytes += std::hint::black_box(std::fs::read(&path)?).len() as u64;
                files += 1;
            }
        }
    }
    Ok((bytes, files, t.elapsed().as_secs_f64()))
}
