//! Carrying the old snapshot's images into the new output folder without a request and without
//! copying them: every `unchanged` and `metadata_changed` image of the plan gets a success
//! record in its new batch whose bytes are a reference (`store::shards::carried`) into the old
//! shard that holds them, and every `removed` one its tombstone again (never fetched).
//!
//! The old shards referred to are hard links under `<new>/carried/<id>/` (the same files, no
//! byte copied; the new folder owns them, so deleting or purging the old folder changes
//! nothing here). A link across filesystems is impossible: then the shard is copied, and the
//! report counts it. An old record that was itself carried refers to the shard holding the
//! bytes, which is linked under the same path it has in the old folder.
//!
//! The record is the old one (sizes, hashes, validators, when it was fetched) with the new
//! snapshot's source ids; licence and attribution come from the new snapshot's batch files, as
//! for any row. Work goes batch by batch, each batch's carried rows one shard committed like any
//! other, so a run killed at any point and run again carries each row once (rows the new folder
//! already has a record for are skipped).
//!
//! Memory: the plan's carried rows are spilled by batch into scratch buckets of about
//! [`ROWS_PER_BUCKET`] rows; one bucket, one batch's rows and one old shard's records at a time.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::error::{scratch, RefreshError};
use crate::store::batches::{batch_id, read_batch_window};
use crate::store::paths;
use crate::store::shards::carried::CarriedFrom;
use crate::store::shards::hdf5_io::{open_records, write_shard_carrying, ShardRecords};
use crate::store::shards::image_data::ImageData;
use crate::store::shards::ledger::{batch_dir, scan_batch, RetryFailed};
use crate::store::shards::record::ShardContents;
use crate::store::shards::summary::write_summary;

/// Carried rows per scratch bucket.
pub const ROWS_PER_BUCKET: u64 = 1_000_000;

/// What carrying did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CarryReport {
    /// New batches that got a shard of carried rows.
    pub batches: u64,
    /// Images carried over by reference.
    pub images: u64,
    /// Their bytes, stored once in the old shards.
    pub bytes_referenced: u64,
    /// Takedowns carried over as tombstones.
    pub tombstones: u64,
    /// Rows the new folder already had a record for (an earlier, interrupted run).
    pub already_there: u64,
    /// Old shards linked under `carried/`, and of those, copied because a hard link was
    /// impossible (another filesystem).
    pub shards_linked: u64,
    pub shards_copied: u64,
    /// Images copied because their old shard is of the older, concatenated layout.
    pub images_copied: u64,
}

/// One carried row of the plan.
struct Row {
    uuid: String,
    removed: bool,
    shard: String,
    row: usize,
}

/// Carries the plan of output folder `new` over from output folder `old`; `id` names the old
/// snapshot under `<new>/carried/`.
pub fn carry(old: &Path, new: &Path, id: &str) -> Result<CarryReport, RefreshError> {
    let scratch_dir = new.join(paths::REFRESH_DIR).join(".carry");
    let buckets = spill(new, &scratch_dir)?;
    let mut report = CarryReport::default();
    for bucket in buckets {
        for ((server, partition), rows) in read_bucket(&bucket)? {
            carry_batch(old, new, id, &server, partition, rows, &mut report)?;
        }
    }
    fs::remove_dir_all(&scratch_dir).map_err(scratch(&scratch_dir))?;
    Ok(report)
}

/// The plan's carried rows, by a hash of their batch, into scratch files.
fn spill(new: &Path, dir: &Path) -> Result<Vec<PathBuf>, RefreshError> {
    if dir.exists() {
        fs::remove_dir_all(dir).map_err(scratch(dir))?;
    }
    fs::create_dir_all(dir).map_err(scratch(dir))?;
    let parts = plan_parts(new)?;
    let mut rows = 0u64;
    for part in &parts {
        rows += ParquetReader::new(open(part)?).num_rows().map_err(read_err(part))? as u64;
    }
    let n = rows.div_ceil(ROWS_PER_BUCKET).clamp(1, 1024) as usize;
    let paths: Vec<PathBuf> = (0..n).map(|b| dir.join(format!("bucket-{b}.tsv"))).collect();
    let mut files = Vec::with_capacity(n);
    for p in &paths {
        files.push(BufWriter::new(fs::File::create(p).map_err(scratch(p))?));
    }
    for part in &parts {
        let df = ParquetReader::new(open(part)?).finish().map_err(read_err(part))?;
        let text = |name: &str| df.column(name).and_then(|c| c.str().cloned()).map_err(read_err(part));
        let (uuid, server, class, shard) = (text("uuid")?, text("server")?, text("class")?, text("shard")?);
        let batch = df.column("batch").and_then(|c| c.u64().cloned()).map_err(read_err(part))?;
        let row = df.column("row").and_then(|c| c.u32().cloned()).map_err(read_err(part))?;
        for i in 0..df.height() {
            let Some(class) = class.get(i).filter(|c| matches!(*c, "unchanged" | "metadata_changed" | "removed"))
            else {
                continue;
            };
            let (Some(u), Some(s), Some(b), Some(sh), Some(r)) =
                (uuid.get(i), server.get(i), batch.get(i), shard.get(i), row.get(i))
            else {
                continue; // a carried row always has its old record; the diff writes none without
            };
            let bucket = (fxhash(s.as_bytes()) ^ b.wrapping_mul(0x9e37_79b9_7f4a_7c15)) as usize % n;
            let removed = u8::from(class == "removed");
            writeln!(files[bucket], "{s}\t{b}\t{u}\t{removed}\t{sh}\t{r}").map_err(scratch(&paths[bucket]))?;
        }
    }
    for (f, p) in files.into_iter().zip(&paths) {
        f.into_inner().map_err(|e| e.into_error()).and_then(|f| f.sync_all()).map_err(scratch(p))?;
    }
    Ok(paths)
}

/// One bucket's rows, by batch.
fn read_bucket(path: &Path) -> Result<BTreeMap<(String, u64), Vec<Row>>, RefreshError> {
    let mut by_batch: BTreeMap<(String, u64), Vec<Row>> = BTreeMap::new();
    let file = fs::File::open(path).map_err(scratch(path))?;
    for line in std::io::BufReader::new(file).lines() {
        let line = line.map_err(scratch(path))?;
        let f: Vec<&str> = line.split('\t').collect();
        let [server, batch, uuid, removed, shard, row] = f[..] else { continue };
        let (Ok(batch), Ok(row)) = (batch.parse(), row.parse()) else { continue };
        let row = Row { uuid: uuid.to_string(), removed: removed == "1", shard: shard.to_string(), row };
        by_batch.entry((server.to_string(), batch)).or_default().push(row);
    }
    Ok(by_batch)
}

/// Writes one new batch's carried rows as one shard.
fn carry_batch(
    old: &Path,
    new: &Path,
    id: &str,
    server: &str,
    partition: u64,
    rows: Vec<Row>,
    report: &mut CarryReport,
) -> Result<(), RefreshError> {
    let ledger = scan_batch(new, server, partition, RetryFailed::No)?;
    let (todo, there): (Vec<Row>, Vec<Row>) = rows.into_iter().partition(|r| !ledger.done.contains(&r.uuid));
    report.already_there += there.len() as u64;
    if todo.is_empty() {
        return Ok(());
    }
    // The new snapshot's source ids of each row.
    let n = crate::store::batches::batch_rows(new, server, partition)?;
    let ids: HashMap<String, Vec<String>> =
        read_batch_window(new, server, partition, 0, n as usize)?.into_iter().map(|r| (r.uuid, r.source_ids)).collect();
    let mut by_shard: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for r in &todo {
        by_shard.entry(r.shard.as_str()).or_default().push(r);
    }
    let mut contents = ShardContents::default();
    let mut carried: Vec<Option<CarriedFrom>> = Vec::new();
    for (shard, rows) in by_shard {
        let path = old.join(shard);
        // One open per old shard: its records, and its images when they must be read.
        let (records, images) = open_records(&path)?;
        for r in rows {
            let source_ids = ids.get(&r.uuid).cloned();
            if r.removed {
                let mut f = records
                    .contents
                    .failures
                    .get(r.row)
                    .filter(|f| f.uuid == r.uuid)
                    .cloned()
                    .ok_or_else(|| stale(old, shard, r))?;
                f.source_ids = source_ids.unwrap_or(f.source_ids);
                contents.failures.push(f);
                report.tombstones += 1;
                continue;
            }
            let mut s = records
                .contents
                .successes
                .get(r.row)
                .filter(|s| s.uuid == r.uuid)
                .cloned()
                .ok_or_else(|| stale(old, shard, r))?;
            s.source_ids = source_ids.unwrap_or(s.source_ids);
            report.bytes_referenced += records.lengths[r.row];
            if images.concatenated() {
                s.data = images.read(r.row)?;
                report.images_copied += 1;
                carried.push(None);
            } else {
                carried.push(Some(reference((old, new), id, shard, (&records, &images), r.row, report)?));
            }
            contents.successes.push(s);
            report.images += 1;
        }
    }
    let dir = batch_dir(new, server, partition);
    fs::create_dir_all(&dir).map_err(|e| crate::store::error::StoreError::Io { path: dir.clone(), source: e })?;
    let batch = batch_id(new, server, partition)?;
    write_shard_carrying(&dir, ledger.next_seq, &contents, &carried, &batch)?;
    // The batch's counts, so the download that follows trusts them instead of opening every shard.
    let after = scan_batch(new, server, partition, RetryFailed::No)?;
    write_summary(&dir, &after.summary())?;
    report.batches += 1;
    // Test-only: a test killing the process here proves a refresh run again carries each row once.
    crate::store::pause::point("refresh-batch");
    Ok(())
}

/// Where row `row` of old shard `shard` has its bytes, linked into the new folder.
fn reference(
    (old, new): (&Path, &Path),
    id: &str,
    shard: &str,
    (records, images): (&ShardRecords, &ImageData),
    row: usize,
    report: &mut CarryReport,
) -> Result<CarriedFrom, RefreshError> {
    if let Some(c) = &records.carried[row] {
        if c.from.starts_with(&format!("{}/", paths::CARRIED_DIR)) {
            // Carried into the old folder already: the same file, under the same name.
            link(&old.join(&c.from), &new.join(&c.from), report)?;
            return Ok(c.clone());
        }
        // A record referring to another of the old folder's own shards (a revalidated image
        // before its batch was merged): that shard, linked as any other.
        let from = format!("{}/{id}/{}", paths::CARRIED_DIR, c.from);
        link(&old.join(&c.from), &new.join(&from), report)?;
        return Ok(CarriedFrom { from, ..c.clone() });
    }
    let from = format!("{}/{id}/{shard}", paths::CARRIED_DIR);
    link(&old.join(shard), &new.join(&from), report)?;
    let crc32 = || Ok(crc32fast::hash(&images.read(row)?));
    Ok(records.bytes_at(from, row, crc32)?)
}

/// Links old shard `from` at `to` (copies it across filesystems), unless `to` is there already.
fn link(from: &Path, to: &Path, report: &mut CarryReport) -> Result<(), RefreshError> {
    if to.exists() {
        return Ok(());
    }
    report.shards_copied += u64::from(crate::store::atomic::link_or_copy(from, to)?);
    report.shards_linked += 1;
    Ok(())
}

fn stale(old: &Path, shard: &str, r: &Row) -> RefreshError {
    RefreshError::StaleManifest { old: old.to_path_buf(), shard: shard.to_string(), uuid: r.uuid.clone(), row: r.row }
}

fn plan_parts(new: &Path) -> Result<Vec<PathBuf>, RefreshError> {
    let dir = paths::refresh_plan(new);
    Ok(crate::store::parquet::parquet_files(&dir)?)
}

fn open(path: &Path) -> Result<fs::File, RefreshError> {
    let path = path.to_path_buf();
    fs::File::open(&path).map_err(|source| RefreshError::Store(crate::store::error::StoreError::Io { path, source }))
}

fn read_err(path: &Path) -> impl Fn(PolarsError) -> RefreshError + '_ {
    move |source| RefreshError::Read {
        path: path.to_path_buf(),
        hint: "run `refresh` again to make the plan anew",
        source,
    }
}

/// FNV-1a: a stable hash of a server key for the buckets.
fn fxhash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}
