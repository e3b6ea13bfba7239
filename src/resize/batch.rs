//! One batch of the new dataset: the old batch's final records, each image made smaller, written
//! in pieces of bounded size and merged into one shard.
//!
//! Rows already in the new batch (a killed run's committed pieces) are not done again; once
//! every row is there, the pieces are merged as a download merges a finished batch, and its
//! `ledger.json` is written. A batch whose new copy is complete and merged is left as it is.

use std::collections::HashMap;
use std::path::Path;

use super::image::{resize, Resized};
use crate::imaging::ImageSettings;
use crate::store::shards::finish::{merge_batch, FinishError};
use crate::store::shards::hdf5_io::{open_records, write_shard, ShardError, ShardRecords};
use crate::store::shards::image_data::ImageData;
use crate::store::shards::ledger::{self, batch_dir, scan_batch, LedgerError, RetryFailed};
use crate::store::shards::record::ShardContents;
use crate::store::shards::summary::read_summary;

/// Stored bytes written per piece: a batch of 10,000 large images is never held whole.
const PIECE_BYTES: usize = 64 << 20;

/// Why a batch could not be resized.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("{0}; run `verify --repair` on the dataset being resized")]
    Shard(#[from] ShardError),
    #[error(transparent)]
    Finish(#[from] FinishError),
}

/// What resizing one batch did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BatchCounts {
    /// Images stored smaller than before.
    pub shrunk: u64,
    /// Images already within the new size, stored as they were.
    pub kept: u64,
    /// Failure records carried over as they were (removed rows included).
    pub failures: u64,
    /// Stored images that did not decode: failures of the new dataset.
    pub undecodable: u64,
    /// Rows already in the new batch from an earlier run.
    pub resumed: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// Where a row's final record is in the old batch: (shard, index) in successes or failures.
#[derive(Debug, Clone, Copy)]
enum Final {
    Success(usize, usize),
    Failure(usize, usize),
}

/// Copies batch `server`/`partition` of `from` into `to` at `settings`, committing a piece every
/// `piece_rows` rows (`COMMIT_ROWS`) or `PIECE_BYTES`; returns `None` when its new copy was
/// already complete.
pub fn resize_batch(
    (from, to): (&Path, &Path),
    server: &str,
    partition: u64,
    settings: &ImageSettings,
    piece_rows: usize,
) -> Result<Option<BatchCounts>, BatchError> {
    let dest_dir = batch_dir(to, server, partition);
    let done = scan_batch(to, server, partition, RetryFailed::No)?;
    let parts = ledger::shards(&batch_dir(from, server, partition))?;
    let mut shards: Vec<(ShardRecords, ImageData)> = Vec::with_capacity(parts.len());
    for (_, path) in &parts {
        shards.push(open_records(path)?);
    }
    // Each row's final record: the latest shard's (a merged shard comes after its parts).
    let (mut finals, mut order) = (HashMap::new(), Vec::new());
    for (p, (records, _)) in shards.iter().enumerate() {
        let successes = records.contents.successes.iter().enumerate().map(|(i, s)| (&s.uuid, Final::Success(p, i)));
        let failures = records.contents.failures.iter().enumerate().map(|(i, f)| (&f.uuid, Final::Failure(p, i)));
        for (uuid, at) in successes.chain(failures) {
            if finals.insert(uuid.as_str(), at).is_none() {
                order.push(uuid.as_str());
            }
        }
    }
    let mut counts = BatchCounts::default();
    let todo: Vec<&str> = order.into_iter().filter(|u| !done.done.contains(*u)).collect();
    counts.resumed = done.done.len() as u64;
    let batch_id = shards.iter().rev().find_map(|(r, _)| r.batch_id.clone()).unwrap_or_default();
    if todo.is_empty() {
        // Every row is there: merged and summed up already, or left by a run killed before that.
        if done.shard_count() > 1 || read_summary(&dest_dir).is_none() {
            merge_batch(to, server, partition, &batch_id)?;
        }
        return Ok(None);
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    std::fs::create_dir_all(&dest_dir).map_err(|e| ShardError::Io { path: dest_dir.clone(), source: e })?;
    let mut seq = done.next_seq;
    let mut piece = ShardContents::default();
    for uuid in todo {
        match finals[uuid] {
            Final::Failure(p, i) => {
                piece.failures.push(shards[p].0.contents.failures[i].clone());
                counts.failures += 1;
            }
            Final::Success(p, i) => {
                let (records, data) = &shards[p];
                let length = records.lengths[i];
                let mut old = records.contents.successes[i].clone();
                old.data = data.read(i)?;
                check_crc(records, i, &old.data, &parts[p].1)?;
                counts.bytes_before += length;
                match resize(old, settings, now) {
                    Resized::Stored { record, shrunk } => {
                        counts.bytes_after += record.data.len() as u64;
                        *(if shrunk { &mut counts.shrunk } else { &mut counts.kept }) += 1;
                        piece.successes.push(*record);
                    }
                    Resized::Failed(failure) => {
                        counts.undecodable += 1;
                        piece.failures.push(failure);
                    }
                }
            }
        }
        if piece.data_bytes() >= PIECE_BYTES || piece.len() >= piece_rows.max(1) {
            write_shard(&dest_dir, seq, &std::mem::take(&mut piece), &batch_id)?;
            seq += 1;
            crate::store::pause::point("resize-piece");
        }
    }
    if !piece.is_empty() {
        write_shard(&dest_dir, seq, &piece, &batch_id)?;
        crate::store::pause::point("resize-piece");
    }
    merge_batch(to, server, partition, &batch_id)?;
    Ok(Some(counts))
}

/// The stored bytes of success `i` against the CRC-32 its shard recorded (shards of older
/// versions have none): a damaged image is not copied into a new dataset.
fn check_crc(records: &ShardRecords, i: usize, bytes: &[u8], path: &Path) -> Result<(), ShardError> {
    let Some(expected) = records.stored_crc32.as_ref().map(|c| c[i]) else { return Ok(()) };
    let actual = crc32fast::hash(bytes);
    if actual == expected {
        return Ok(());
    }
    Err(ShardError::Damaged {
        path: path.to_path_buf(),
        what: format!("image {} ({}) does not match its CRC-32", i, records.contents.successes[i].uuid),
    })
}
