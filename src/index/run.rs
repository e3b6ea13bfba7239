//! `index` over the whole output folder: each rank takes every n-th batch, writes the manifest of
//! those whose shards changed since they were indexed (or were never indexed), and rank 0 sums up.
//!
//! Per batch: `<output>/index/manifest/server_name=<key>/partition_id=<n>/manifest.parquet` (its
//! rows; nothing else lives under `manifest/`, so readers can take the folder as one table) and
//! `<output>/index/indexed/server_name=<key>/partition_id=<n>.json` (the shards it was made from,
//! with their sizes, and its counts), each replaced atomically, the manifest first: a run killed
//! between the two leaves a batch that the next run indexes again, never one it skips wrongly.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use serde::{Deserialize, Serialize};

use super::batch::{manifest, signature, IndexError, Signature};
use super::h5::{self, H5Report};
use crate::mpi_glue::world::World;
use crate::store::atomic::{self, Mode};
use crate::store::parquet::write_parquet;
use crate::store::paths;
use crate::store::shards::finish::upgrade_batch;
use crate::store::tables::read_servers_table;

/// The manifest of a batch.
const MANIFEST_FILE: &str = "manifest.parquet";
/// What `index` is asked to do.
#[derive(Debug, Clone)]
pub struct IndexOptions {
    pub out: PathBuf,
    /// Index every batch again, changed or not.
    pub force: bool,
}

/// The manifest's columns, as `index` writes them now: a manifest of an older version is made
/// again (version 2 added `data_offset`; 3 the licence and attribution; 4 the validators; 5
/// dropped `data_offset`, as every indexed shard stores an image per element; 6 the image's
/// `version`).
const MANIFEST_VERSION: u32 = 6;

/// What a batch's manifest was made from, and what it holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct Indexed {
    shards: Signature,
    stored: u64,
    failed: u64,
    #[serde(default)]
    version: u32,
}

/// What `index` did, summed over the ranks.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IndexReport {
    /// The manifest folder: read it as one table.
    pub manifest: String,
    /// Batches of the dataset with committed shards.
    pub batches: u64,
    /// Of those, read and written by this run; the rest were unchanged since they were indexed.
    pub indexed: u64,
    pub unchanged: u64,
    /// Of those indexed, batches whose shards were rewritten in the per-image layout first
    /// (written by a version that concatenated the images).
    #[serde(default)]
    pub upgraded: u64,
    /// Rows in the manifest: stored images and failures (each row's final record).
    pub stored: u64,
    pub failed: u64,
    /// Batches that could not be indexed, with why; their old manifest, if any, is left.
    pub errors: Vec<String>,
    /// `index/index.h5`, as made now or before.
    pub h5: Option<H5Report>,
}

/// The folder of every batch's manifest.
pub fn manifest_dir(out: &Path) -> PathBuf {
    out.join("index").join("manifest")
}

/// The manifest file of one batch.
pub fn manifest_file(out: &Path, server: &str, partition: u64) -> PathBuf {
    manifest_dir(out).join(paths::batch_subdir(server, partition)).join(MANIFEST_FILE)
}

/// Every manifest file of `out`, in name order; an error telling to run `index` when there is no
/// manifest (what `dedup` and `filter` read).
pub fn manifest_files(out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let dir = manifest_dir(out);
    if !dir.is_dir() {
        return Err(anyhow!("{} has no manifest: run `index` on it first", out.display()));
    }
    let (mut files, mut stack) = (Vec::new(), vec![dir]);
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("cannot read {}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "parquet") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Runs on every rank; rank 0 gets the report of all of them.
pub fn run(world: &World, opts: &IndexOptions) -> anyhow::Result<Option<IndexReport>> {
    let servers = read_servers_table(&opts.out)?;
    let batches: Vec<(&str, u64)> =
        servers.iter().flat_map(|s| (0..s.batch_count).map(move |p| (s.server_name.as_str(), p))).collect();
    let mut mine = IndexReport::default();
    for (i, (server, partition)) in batches.into_iter().enumerate() {
        if i % world.size() != world.rank() {
            continue;
        }
        if let Err(e) = index_batch(opts, server, partition, &mut mine) {
            mine.errors.push(format!("{server}/{partition}: {e}"));
        }
    }
    let gathered = world.gather(serde_json::to_vec(&mine).expect("a report serialises"));
    let Some(all) = gathered else { return Ok(None) };
    let mut report = IndexReport { manifest: manifest_dir(&opts.out).display().to_string(), ..Default::default() };
    for bytes in all {
        let r: IndexReport = serde_json::from_slice(&bytes)?;
        report.batches += r.batches;
        report.indexed += r.indexed;
        report.unchanged += r.unchanged;
        report.upgraded += r.upgraded;
        report.stored += r.stored;
        report.failed += r.failed;
        report.errors.extend(r.errors);
    }
    report.h5 = Some(index_h5(&opts.out, report.indexed > 0 || opts.force)?);
    Ok(Some(report))
}

/// What `index.h5` was made from: when the manifest and the keep-list are as they were, it is
/// not made again.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct H5Made {
    keep: Option<(u64, u128)>,
    report: H5Report,
}

/// Makes `index/index.h5` again when a batch's manifest changed (`changed`), the keep-list
/// changed, or the file is missing.
fn index_h5(out: &Path, changed: bool) -> anyhow::Result<H5Report> {
    let keep = paths::keep_list(out);
    let keep = keep.is_file().then_some(keep);
    let stamp = keep.as_deref().and_then(|k| {
        let meta = std::fs::metadata(k).ok()?;
        let modified = meta.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?.as_nanos();
        Some((meta.len(), modified))
    });
    let made_file = out.join("index").join("index-h5.json");
    let before: Option<H5Made> = std::fs::read(&made_file).ok().and_then(|b| serde_json::from_slice(&b).ok());
    let h5 = out.join("index").join(h5::INDEX_H5);
    if let Some(before) = before.filter(|b| !changed && b.keep == stamp && h5.is_file()) {
        return Ok(before.report);
    }
    let report = h5::write(out, &manifest_files(out)?, keep.as_deref())?;
    let made = H5Made { keep: stamp, report: report.clone() };
    atomic::replace(&made_file, &serde_json::to_vec_pretty(&made).expect("serialises"))?;
    Ok(report)
}

/// Indexes one batch unless its shards are those it was indexed from.
fn index_batch(opts: &IndexOptions, server: &str, partition: u64, report: &mut IndexReport) -> Result<(), IndexError> {
    let file = manifest_file(&opts.out, server, partition);
    let dir = file.parent().expect("a manifest file lies in its batch's folder").to_path_buf();
    let indexed_file =
        opts.out.join("index/indexed").join(paths::batch_subdir(server, partition)).with_extension("json");
    let shards = signature(&opts.out, server, partition)?;
    if shards.is_empty() {
        // Nothing committed (yet, or any more): no manifest.
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .map_err(|e| crate::store::atomic::CommitError::Io { path: dir, source: e })?;
        }
        let _ = std::fs::remove_file(&indexed_file); // absent when the batch never was indexed
        return Ok(());
    }
    report.batches += 1;
    let before: Option<Indexed> = std::fs::read(&indexed_file).ok().and_then(|b| serde_json::from_slice(&b).ok());
    let current = |b: &Indexed| b.shards == shards && b.version == MANIFEST_VERSION;
    if let Some(before) = before.filter(|b| !opts.force && current(b) && file.is_file()) {
        report.unchanged += 1;
        report.stored += before.stored;
        report.failed += before.failed;
        return Ok(());
    }
    // index.h5 maps an image per element: shards of the older layout are merged into one first.
    let shards = match upgrade_batch(&opts.out, server, partition)? {
        Some(_) => {
            report.upgraded += 1;
            signature(&opts.out, server, partition)?
        }
        None => shards,
    };
    let (mut df, stored) = manifest(&opts.out, server, partition)?;
    let indexed = Indexed { shards, stored, failed: df.height() as u64 - stored, version: MANIFEST_VERSION };
    atomic::write_with(&file, Mode::Replace, |tmp| write_parquet(tmp, &mut df))?;
    crate::store::pause::point("index-batch");
    let json = serde_json::to_vec_pretty(&indexed).expect("counts serialise");
    atomic::replace(&indexed_file, &json)?;
    report.indexed += 1;
    report.stored += indexed.stored;
    report.failed += indexed.failed;
    Ok(())
}
