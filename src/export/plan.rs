//! Which stored image goes into which output shard, and in what order: computed from the manifest
//! and the keep-list alone, so every rank (and every later run of the same command) computes the
//! same plan without talking to another.
//!
//! Without a seed the images keep the manifest's order (batch by batch, row by row), so a shard
//! reads few HDF5 shards. With `--seed N` each image's place is the SHA-256 of the seed and its
//! uuid: a shuffle that depends on nothing else (not the rank count, not the order of the files),
//! and that keeps each image's relative place when images are added or filtered out. The plan
//! holds 32 bytes per exported image, never an image or a manifest row.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use polars::prelude::*;
use sha2::{Digest, Sha256};

use super::size::ShardSize;
use crate::index::run::manifest_files;
use crate::store::parquet::read_parquet;
use crate::store::paths;

/// One exported image, as the plan knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    /// Its place: the shuffle key, or its rank in the manifest without a seed.
    pub key: u64,
    /// The first 8 bytes of the SHA-256 of its uuid (a tie-break, and what the fingerprint sums).
    pub id: u64,
    /// Its manifest file (an index into [`Plan::files`]) and row there.
    pub file: u32,
    pub row: u32,
    /// Its stored bytes.
    pub bytes: u64,
}

/// The export's shards, in order, each a list of images in order.
#[derive(Debug, Clone)]
pub struct Plan {
    pub files: Vec<PathBuf>,
    pub shards: Vec<Vec<Entry>>,
    /// Sums up which images are in which shard in which order: a resumed export must find the
    /// same, or its committed shards belong to another selection.
    pub fingerprint: String,
    pub images: u64,
    pub bytes: u64,
    /// Whether a keep-list chose the images.
    pub keep_list: bool,
}

/// The plan of `out`'s manifest (`index` first) at `size`, shuffled by `seed` when given.
pub fn plan(out: &Path, size: ShardSize, seed: Option<u64>) -> anyhow::Result<Plan> {
    let files = manifest_files(out)?;
    let keep = keep_list(out)?;
    let mut entries = Vec::new();
    for (f, file) in files.iter().enumerate() {
        let df = read_parquet(file)?;
        let mut read = || -> PolarsResult<()> {
            let (uuid, status) = (df.column("uuid")?.str()?, df.column("status")?.str()?);
            let bytes = df.column("stored_bytes")?.u64()?;
            for i in 0..df.height() {
                let (Some(u), Some("stored")) = (uuid.get(i), status.get(i)) else { continue };
                if keep.as_ref().is_some_and(|k| !k.contains(u)) {
                    continue;
                }
                let id = first_u64(&Sha256::digest(u.as_bytes()));
                let key = match seed {
                    Some(s) => first_u64(&Sha256::new().chain_update(s.to_le_bytes()).chain_update(u).finalize()),
                    None => entries.len() as u64,
                };
                entries.push(Entry { key, id, file: f as u32, row: i as u32, bytes: bytes.get(i).unwrap_or(0) });
            }
            Ok(())
        };
        read().map_err(|e| anyhow!("cannot read the manifest file {}: {e}; run `index` again", file.display()))?;
    }
    entries.sort_unstable();
    let (images, bytes) = (entries.len() as u64, entries.iter().map(|e| e.bytes).sum());
    let shards = cut(entries, size);
    let mut sum = Sha256::new();
    for shard in &shards {
        sum.update((shard.len() as u64).to_le_bytes());
        for e in shard {
            sum.update(e.id.to_le_bytes());
        }
    }
    let fingerprint = format!("{:x}", sum.finalize());
    Ok(Plan { files, shards, fingerprint, images, bytes, keep_list: keep.is_some() })
}

/// The uuids of `filter`'s keep-list, when there is one.
fn keep_list(out: &Path) -> anyhow::Result<Option<HashSet<String>>> {
    let path = paths::keep_list(out);
    if !path.is_file() {
        return Ok(None);
    }
    let df = read_parquet(&path)?;
    let uuids = df
        .column("uuid")
        .and_then(|c| c.str().cloned())
        .map_err(|e| anyhow!("{} has no uuid column ({e}): run `filter` again", path.display()))?;
    Ok(Some(uuids.iter().flatten().map(String::from).collect()))
}

fn first_u64(digest: &[u8]) -> u64 {
    u64::from_be_bytes(digest[..8].try_into().expect("a SHA-256 has 32 bytes"))
}

/// `entries`, in order, cut into shards of at most `size` (a shard holds one image at least).
pub fn cut(entries: Vec<Entry>, size: ShardSize) -> Vec<Vec<Entry>> {
    let mut shards: Vec<Vec<Entry>> = Vec::new();
    let mut current: Vec<Entry> = Vec::new();
    let mut bytes = 0u64;
    for e in entries {
        let full = match size {
            ShardSize::Images(n) => current.len() as u64 >= n,
            ShardSize::Bytes(b) => !current.is_empty() && bytes + e.bytes > b,
        };
        if full {
            shards.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += e.bytes;
        current.push(e);
    }
    if !current.is_empty() {
        shards.push(current);
    }
    shards
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(sizes: &[u64]) -> Vec<Entry> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &b)| Entry { key: i as u64, id: i as u64, file: 0, row: i as u32, bytes: b })
            .collect()
    }

    #[test]
    fn shards_hold_at_most_the_asked_images_or_bytes_and_every_image_once() {
        let by_count = cut(entries(&[1; 7]), ShardSize::Images(3));
        assert_eq!(by_count.iter().map(Vec::len).collect::<Vec<_>>(), vec![3, 3, 1]);
        let by_bytes = cut(entries(&[40, 50, 20, 100, 10]), ShardSize::Bytes(90));
        let sizes: Vec<Vec<u64>> = by_bytes.iter().map(|s| s.iter().map(|e| e.bytes).collect()).collect();
        // 100 bytes is over the limit alone: its own shard, never dropped.
        assert_eq!(sizes, vec![vec![40, 50], vec![20], vec![100], vec![10]]);
        assert!(cut(Vec::new(), ShardSize::Images(3)).is_empty());
    }
}
