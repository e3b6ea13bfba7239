//! `index/index.h5`: every stored image of the dataset in one HDF5 file, without copying a byte.
//!
//! `images/data` is a virtual dataset: the `images/data` of every shard the manifest points at,
//! one after the other (each shard one mapping, by a path relative to `index/`, so the folder
//! can move). Row `i` of `images/offset`, `images/length` and `images/uuid` is one stored image:
//! its bytes are `images/data[offset[i] : offset[i] + length[i]]`. With a keep-list
//! (`filter/keep.parquet`), only the images it keeps are rows; the manifest keeps every row.
//!
//! The file is made again from the manifest files (two passes, so memory holds one file's rows
//! and one entry per shard, plus the keep-list as 16 bytes a uuid) and replaced atomically.
//! `images[i]` as one variable-length element per image would need the shards to store each
//! image as its own element; they concatenate them (see `store::shards::hdf5_io`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use hdf5::types::FixedAscii;
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

/// One manifest file's stored rows: shard, offset, length, uuid.
type Stored = Vec<(String, u64, u64, String)>;

/// Writes `<out>/index/index.h5` from `manifests` (in order), keeping only the uuids of
/// `keep` when given.
pub fn write(out: &Path, manifests: &[PathBuf], keep: Option<&Path>) -> anyhow::Result<H5Report> {
    let kept = keep.map(KeepList::read).transpose()?;
    let wanted = |uuid: &str| kept.as_ref().is_none_or(|k| k.contains(uuid));
    // Pass 1: each shard's extent (its furthest stored byte) and the rows.
    let mut extents: BTreeMap<String, u64> = BTreeMap::new();
    let (mut images, mut left_out) = (0u64, 0u64);
    for file in manifests {
        for (shard, offset, length, uuid) in stored(file)? {
            let end = extents.entry(shard).or_default();
            *end = (*end).max(offset + length);
            if wanted(&uuid) {
                images += 1;
            } else {
                left_out += 1;
            }
        }
    }
    let mut bases: BTreeMap<&str, u64> = BTreeMap::new();
    let mut total = 0u64;
    for (shard, extent) in &extents {
        bases.insert(shard, total);
        total += extent;
    }
    let path = out.join("index").join(INDEX_H5);
    atomic::write_with(&path, Mode::Replace, |tmp| -> anyhow::Result<()> {
        let file = hdf5::File::create(tmp)?;
        let group = file.create_group("images")?;
        let mut data = group.new_dataset::<u8>().shape(total as usize);
        for (shard, extent) in &extents {
            // Relative to the folder of index.h5, where HDF5 looks for a relative source.
            let source = Path::new("..").join(shard);
            let (base, n) = (bases[shard.as_str()] as usize, *extent as usize);
            data = data.virtual_map(source.to_string_lossy(), "images/data", n, 0..n, total as usize, base..base + n);
        }
        data.create("data")?;
        let n = images as usize;
        let offsets = group.new_dataset::<u64>().shape(n).create("offset")?;
        let lengths = group.new_dataset::<u64>().shape(n).create("length")?;
        let uuids = group.new_dataset::<FixedAscii<36>>().shape(n).create("uuid")?;
        // Pass 2: the rows, a manifest file at a time.
        let mut at = 0usize;
        for file in manifests {
            let rows: Stored = stored(file)?.into_iter().filter(|r| wanted(&r.3)).collect();
            let n = rows.len();
            if n == 0 {
                continue;
            }
            let offs: Vec<u64> = rows.iter().map(|r| bases[r.0.as_str()] + r.1).collect();
            let lens: Vec<u64> = rows.iter().map(|r| r.2).collect();
            let ids = rows
                .iter()
                .map(|r| FixedAscii::<36>::from_ascii(r.3.as_bytes()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| anyhow!("a uuid of {} is not 36 ASCII characters: {e}", file.display()))?;
            offsets.write_slice(&offs, at..at + n)?;
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

/// The stored rows of one manifest file.
fn stored(file: &Path) -> anyhow::Result<Stored> {
    let df = read_parquet(file)?;
    let read = || -> PolarsResult<Stored> {
        let s = |n: &str| df.column(n).and_then(|c| c.str().cloned());
        let (status, shard, uuid) = (s("status")?, s("shard")?, s("uuid")?);
        let (offset, length) = (df.column("data_offset")?.u64()?.clone(), df.column("stored_bytes")?.u64()?.clone());
        Ok((0..df.height())
            .filter(|&i| status.get(i) == Some("stored"))
            .map(|i| {
                let text = |c: &StringChunked| c.get(i).unwrap_or_default().to_string();
                (text(&shard), offset.get(i).unwrap_or(0), length.get(i).unwrap_or(0), text(&uuid))
            })
            .collect())
    };
    read().map_err(|e| anyhow!("cannot read the manifest file {}: {e}; run `index --force`", file.display()))
}
