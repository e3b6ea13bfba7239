//! `index/index.h5`: every stored image of the dataset in one HDF5 file, without copying a byte.
//!
//! ```text
//! /images   variable-length uint8 [n], virtual: image i's stored bytes (h5py: bytes(f["images"][i]))
//! /uuid     36-character ASCII [n]: its uuid, the manifest's key
//! /length   uint64 [n]: its size in bytes
//! ```
//! `images` is a virtual dataset over the `images/data` of the shards the manifest points at
//! (each shard stores one element per image; `index` rewrites shards of the older, concatenated
//! layout first). Each run of consecutive rows of one shard is one mapping, by a path relative
//! to `index/`, so the folder can move; without a keep-list that is one mapping per shard. Rows
//! follow the manifest files, and within one, their shard and row. With a keep-list
//! (`filter/keep.parquet`), only the images it keeps are rows; the manifest keeps every row.
//!
//! The file is made again from the manifest files (two passes, so memory holds one file's rows
//! and one entry per mapping, plus the keep-list as 16 bytes a uuid) and replaced atomically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use hdf5::types::{FixedAscii, VarLenArray};
use polars::prelude::*;

use crate::store::atomic::{self, Mode};
use crate::store::keep::KeepList;
use crate::store::parquet::read_parquet;

/// The file, beside the manifest folder.
pub const INDEX_H5: &str = "index.h5";

/// What the file holds.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct H5Report {
    pub path: String,
    /// Rows: stored images (those the keep-list keeps, with one).
    pub images: u64,
    /// Stored images the keep-list leaves out; 0 without one.
    pub left_out: u64,
    /// Shards it spans.
    pub shards: u64,
    /// The keep-list read, if any.
    pub keep_list: Option<String>,
}

/// One manifest file's stored rows: shard, row, length, uuid.
type Stored = Vec<(String, u64, u64, String)>;

/// One mapping of `images`: `count` rows of `shard` from `row`, at `at`.
struct Mapping {
    shard: String,
    row: u64,
    count: u64,
    at: u64,
}

/// Writes `<out>/index/index.h5` from `manifests` (in order), keeping only the uuids of
/// `keep` when given.
pub fn write(out: &Path, manifests: &[PathBuf], keep: Option<&Path>) -> anyhow::Result<H5Report> {
    let kept = keep.map(KeepList::read).transpose()?;
    let wanted = |uuid: &str| kept.as_ref().is_none_or(|k| k.contains(uuid));
    // Pass 1: the mappings and each shard's extent (its last stored row, plus one).
    let mut extents: BTreeMap<String, u64> = BTreeMap::new();
    let mut mappings: Vec<Mapping> = Vec::new();
    let (mut images, mut left_out) = (0u64, 0u64);
    for file in manifests {
        for (shard, row, _, uuid) in stored(file)? {
            let end = extents.entry(shard.clone()).or_default();
            *end = (*end).max(row + 1);
            if !wanted(&uuid) {
                left_out += 1;
                continue;
            }
            match mappings.last_mut() {
                Some(m) if m.shard == shard && m.row + m.count == row => m.count += 1,
                _ => mappings.push(Mapping { shard, row, count: 1, at: images }),
            }
            images += 1;
        }
    }
    let path = out.join("index").join(INDEX_H5);
    atomic::write_with(&path, Mode::Replace, |tmp| -> anyhow::Result<()> {
        let file = hdf5::File::create(tmp)?;
        let n = images as usize;
        let mut data = file.new_dataset::<VarLenArray<u8>>().shape(n);
        for m in &mappings {
            // Relative to the folder of index.h5, where HDF5 looks for a relative source.
            let source = Path::new("..").join(&m.shard);
            let (row, count, at) = (m.row as usize, m.count as usize, m.at as usize);
            let extent = extents[&m.shard] as usize;
            data =
                data.virtual_map(source.to_string_lossy(), "images/data", extent, row..row + count, n, at..at + count);
        }
        data.create("images")?;
        let lengths = file.new_dataset::<u64>().shape(n).create("length")?;
        let uuids = file.new_dataset::<FixedAscii<36>>().shape(n).create("uuid")?;
        // Pass 2: the rows, a manifest file at a time, in pass 1's order.
        let mut at = 0usize;
        for file in manifests {
            let rows: Stored = stored(file)?.into_iter().filter(|r| wanted(&r.3)).collect();
            let n = rows.len();
            if n == 0 {
                continue;
            }
            let lens: Vec<u64> = rows.iter().map(|r| r.2).collect();
            let ids = rows
                .iter()
                .map(|r| FixedAscii::<36>::from_ascii(r.3.as_bytes()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| anyhow!("a uuid of {} is not 36 ASCII characters: {e}", file.display()))?;
            lengths.write_slice(&lens, at..at + n)?;
            uuids.write_slice(&ids, at..at + n)?;
            at += n;
        }
        file.flush()?;
        Ok(())
    })
    .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(H5Report {
        path: path.display().to_string(),
        images,
        left_out,
        shards: extents.len() as u64,
        keep_list: keep.map(|k| k.display().to_string()),
    })
}

/// The stored rows of one manifest file, by shard and row.
fn stored(file: &Path) -> anyhow::Result<Stored> {
    let df = read_parquet(file)?;
    let read = || -> PolarsResult<Stored> {
        let s = |n: &str| df.column(n).and_then(|c| c.str().cloned());
        let (status, shard, uuid) = (s("status")?, s("shard")?, s("uuid")?);
        let (row, length) = (df.column("row")?.u32()?.clone(), df.column("stored_bytes")?.u64()?.clone());
        let mut rows: Stored = (0..df.height())
            .filter(|&i| status.get(i) == Some("stored"))
            .map(|i| {
                let text = |c: &StringChunked| c.get(i).unwrap_or_default().to_string();
                (text(&shard), u64::from(row.get(i).unwrap_or(0)), length.get(i).unwrap_or(0), text(&uuid))
            })
            .collect();
        rows.sort_unstable();
        Ok(rows)
    };
    read().map_err(|e| anyhow!("cannot read the manifest file {}: {e}; run `index --force`", file.display()))
}
