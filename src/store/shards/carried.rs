//! Writing `images/data` when some images are carried over from another dataset's shards
//! (`refresh`), so that they are read as this shard's images without a byte copied.
//!
//! ```text
//! /images/data          variable-length uint8 [n]: virtual when any row is carried over
//! /images/own           variable-length uint8 [k]: the bytes of the rows stored here
//! /images/carried_from  string [n]: the shard holding a carried row's bytes, relative to the
//!                       output folder (e.g. carried/downloads/.../shard-000003.h5); "" if here
//! /images/carried_row   uint64 [n]: its row there, in `images/data`, or in `images/own` when
//! /images/carried_own   uint8 [n]:  this is 1 (a shard that itself carries rows keeps its own
//!                       bytes there)
//! ```
//! Each run of rows carried from consecutive rows of one shard, and each run of rows stored
//! here, is one mapping of the virtual dataset (rows stored here through the source file ".",
//! the shard itself). Readers see `images/data` as they see any shard's: h5py, `ImageData`,
//! and `index.h5` (a virtual dataset over virtual datasets) read the images through it.
//!
//! Shards lie three folders below the output folder (`downloads/server_name=K/partition_id=N`,
//! `quarantine/...`), so a mapping's source is `../../../` + `carried_from`. The carried shards
//! themselves are hard links the output folder owns (see `refresh`), so neither a later change
//! to the dataset they came from nor its deletion changes these images.
//! Shards without carried rows keep the plain layout (`hdf5_io`), without these datasets.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::path::Path;

use hdf5::types::VarLenArray;

use super::error::ShardError;
use super::h5_put::{put, strings};
use super::image_data::DATA;
use crate::store::atomic;

/// Dataset of `images/` holding the bytes of the rows stored in the shard itself.
pub const OWN: &str = "own";
/// Datasets of `images/`: where a carried row's bytes are.
pub const CARRIED_FROM: &str = "carried_from";
pub const CARRIED_ROW: &str = "carried_row";
pub const CARRIED_OWN: &str = "carried_own";
/// From a shard's folder to the output folder.
const TO_OUTPUT: &str = "../../..";
/// Most bytes of images stored here that are held to be written at once.
const WRITE_RUN: usize = 32 << 20;

/// Where a carried-over image's bytes are: row `row` of `images/data` (of `images/own` when
/// `own`) of the shard `from` (relative to the output folder), `length` bytes with CRC-32
/// `crc32`. Always the bytes themselves, never another reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarriedFrom {
    pub from: String,
    pub row: u64,
    pub own: bool,
    pub length: u64,
    pub crc32: u32,
}

/// Writes `images/data` of `n` rows into group `g`: row `i` carried when `carried[i]` is set
/// (an empty `carried` carries none), else its bytes from `own(i)`, asked for in order and
/// written in runs of up to [`WRITE_RUN`] bytes. Returns each row's length and CRC-32 (a carried
/// row's as recorded where it comes from).
pub(super) fn write_data<'a>(
    g: &hdf5::Group,
    n: usize,
    carried: &[Option<CarriedFrom>],
    mut own: impl FnMut(usize) -> Result<Cow<'a, [u8]>, ShardError>,
    h5err: &dyn Fn(hdf5::Error) -> ShardError,
) -> Result<(Vec<u64>, Vec<u32>), ShardError> {
    let carried_at = |i: usize| carried.get(i).and_then(Option::as_ref);
    let owned = (0..n).filter(|&i| carried_at(i).is_none()).count();
    let virtual_data = owned < n;
    let stored =
        g.new_dataset::<VarLenArray<u8>>().shape(owned).create(if virtual_data { OWN } else { DATA }).map_err(h5err)?;
    let (mut lengths, mut crcs) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut written, mut pending, mut pending_bytes) = (0, Vec::new(), 0);
    let flush = |pending: &mut Vec<VarLenArray<u8>>, written: &mut usize| -> Result<(), ShardError> {
        let k = pending.len();
        if k > 0 {
            stored.write_slice(pending.as_slice(), *written..*written + k).map_err(h5err)?;
            *written += k;
            pending.clear();
        }
        Ok(())
    };
    for i in 0..n {
        match carried_at(i) {
            Some(c) => {
                lengths.push(c.length);
                crcs.push(c.crc32);
            }
            None => {
                let bytes = own(i)?;
                lengths.push(bytes.len() as u64);
                crcs.push(crc32fast::hash(&bytes));
                pending_bytes += bytes.len();
                pending.push(VarLenArray::from_slice(&bytes));
                if pending_bytes >= WRITE_RUN {
                    flush(&mut pending, &mut written)?;
                    pending_bytes = 0;
                }
            }
        }
    }
    flush(&mut pending, &mut written)?;
    if !virtual_data {
        return Ok((lengths, crcs));
    }
    // Runs: consecutive rows from consecutive rows of one source ("." for the shard itself).
    // (file, dataset) -> its extent; runs of (file, dataset, from row, at, count).
    type Source = (String, &'static str);
    let mut runs: Vec<(Source, usize, usize, usize)> = Vec::new();
    let mut extents: std::collections::HashMap<Source, usize> = std::collections::HashMap::new();
    let mut own_row = 0;
    for i in 0..n {
        let (source, row) = match carried_at(i) {
            Some(c) => ((format!("{TO_OUTPUT}/{}", c.from), if c.own { OWN } else { DATA }), c.row as usize),
            None => {
                own_row += 1;
                ((".".to_string(), OWN), own_row - 1)
            }
        };
        let extent = extents.entry(source.clone()).or_default();
        *extent = (*extent).max(row + 1);
        match runs.last_mut() {
            Some((s, r, at, count)) if *s == source && *r + *count == row && *at + *count == i => *count += 1,
            _ => runs.push((source, row, i, 1)),
        }
    }
    let mut data = g.new_dataset::<VarLenArray<u8>>().shape(n);
    for (source, row, at, count) in &runs {
        let (file, dataset) = (source.0.as_str(), format!("images/{}", source.1));
        data = data.virtual_map(file, dataset.as_str(), extents[source], *row..row + count, n, *at..at + count);
    }
    data.create(DATA).map_err(h5err)?;
    let from: Vec<String> = (0..n).map(|i| carried_at(i).map(|c| c.from.clone()).unwrap_or_default()).collect();
    put(g, CARRIED_FROM, &strings(from.into_iter())).map_err(h5err)?;
    let rows: Vec<u64> = (0..n).map(|i| carried_at(i).map_or(0, |c| c.row)).collect();
    put(g, CARRIED_ROW, &rows).map_err(h5err)?;
    let own: Vec<u8> = (0..n).map(|i| u8::from(carried_at(i).is_some_and(|c| c.own))).collect();
    put(g, CARRIED_OWN, &own).map_err(h5err)?;
    Ok((lengths, crcs))
}

/// Empties rows `rows` of the image bytes of carried shard `path` (a shard under `carried/`
/// this output folder refers to), so that no byte of those images is left in it: the file is
/// written anew beside itself, every dataset copied but the bytes, those rewritten without the
/// given rows, then renamed over it. That gives the folder its own file: the hard link to the
/// older snapshot's shard is broken, and that snapshot keeps its copy (purge it there too).
/// Other rows keep their place, so every other reference stays valid.
pub fn blank_rows(path: &Path, rows: &BTreeSet<u64>) -> Result<(), ShardError> {
    let src = hdf5::File::open(path).map_err(|e| ShardError::Hdf5 { path: path.to_path_buf(), source: e })?;
    let images = src.group("images").map_err(|e| ShardError::Hdf5 { path: path.to_path_buf(), source: e })?;
    // A shard that carries rows itself keeps its own bytes in `images/own`.
    let bytes_name = if images.link_exists(OWN) { OWN } else { DATA };
    atomic::write_with(path, atomic::Mode::Replace, |tmp| -> Result<(), ShardError> {
        let h5err = |e| ShardError::Hdf5 { path: tmp.to_path_buf(), source: e };
        let dst = hdf5::File::create(tmp).map_err(h5err)?;
        for attr in src.attr_names().map_err(h5err)? {
            copy_attr(&src, &dst, &attr).map_err(h5err)?;
        }
        src.group("errors").and_then(|g| g.copy_to(&dst, "errors")).map_err(h5err)?;
        let to = dst.create_group("images").map_err(h5err)?;
        for name in images.member_names().map_err(h5err)? {
            if name != bytes_name {
                images.dataset(&name).and_then(|d| d.copy_to(&to, &name)).map_err(h5err)?;
            }
        }
        let from = images.dataset(bytes_name).map_err(h5err)?;
        let n = from.size();
        let out = to.new_dataset::<VarLenArray<u8>>().shape(n).create(bytes_name).map_err(h5err)?;
        for at in (0..n).step_by(256) {
            let end = (at + 256).min(n);
            let mut run = from.read_slice_1d::<VarLenArray<u8>, _>(at..end).map_err(h5err)?.to_vec();
            for (i, image) in run.iter_mut().enumerate() {
                if rows.contains(&((at + i) as u64)) {
                    *image = VarLenArray::from_slice(&[]);
                }
            }
            out.write_slice(&run, at..end).map_err(h5err)?;
        }
        dst.flush().map_err(h5err)
    })
}

/// Copies root attribute `name` (a string or a number, as shards have) from `src` to `dst`.
fn copy_attr(src: &hdf5::File, dst: &hdf5::File, name: &str) -> hdf5::Result<()> {
    let attr = src.attr(name)?;
    if let Ok(text) = attr.read_scalar::<hdf5::types::VarLenUnicode>() {
        return dst.new_attr::<hdf5::types::VarLenUnicode>().create(name)?.write_scalar(&text);
    }
    let number = attr.read_scalar::<u64>()?;
    dst.new_attr::<u64>().create(name)?.write_scalar(&number)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::store::shards::compact::compact;
    use crate::store::shards::hdf5_io::{read_records, read_shard, write_shard, write_shard_carrying};
    use crate::store::shards::ledger::batch_dir;
    use crate::store::shards::record::{test_image, ShardContents};

    const IMAGE: usize = 200_000;

    /// An output folder holding, under `carried/`, a shard of three images of another dataset.
    fn with_old_shard() -> (tempfile::TempDir, String, Vec<Vec<u8>>) {
        let out = tempfile::tempdir().unwrap();
        let old = ShardContents {
            successes: (0..3).map(|i| test_image(&format!("old-{i}"), i as u8 + 1, IMAGE)).collect(),
            failures: vec![],
        };
        let dir = out.path().join("carried").join(batch_dir(Path::new(""), "a.org", 0));
        let path = write_shard(&dir, 0, &old, "old").unwrap();
        let rel = path.strip_prefix(out.path()).unwrap().display().to_string();
        (out, rel, old.successes.into_iter().map(|s| s.data).collect())
    }

    fn from(rel: &str, row: u64, bytes: &[u8]) -> Option<CarriedFrom> {
        Some(CarriedFrom {
            from: rel.into(),
            row,
            own: false,
            length: bytes.len() as u64,
            crc32: crc32fast::hash(bytes),
        })
    }

    #[test]
    fn carried_images_read_as_the_shards_own_and_are_not_copied() {
        let (out, rel, old) = with_old_shard();
        let dir = batch_dir(out.path(), "a.org", 1);
        // Rows 0, 1 and 3 carried (old rows 2, 0, 1); row 2 stored here.
        let mut recs: Vec<_> = (0..4).map(|i| test_image(&format!("new-{i}"), 0, 0)).collect();
        recs[2].data = vec![9; 100];
        let carried = vec![from(&rel, 2, &old[2]), from(&rel, 0, &old[0]), None, from(&rel, 1, &old[1])];
        let contents = ShardContents { successes: recs, failures: vec![] };
        let path = write_shard_carrying(&dir, 0, &contents, &carried, "new").unwrap();
        let back = read_records(&path, true).unwrap();
        let images: Vec<&[u8]> = back.contents.successes.iter().map(|s| s.data.as_slice()).collect();
        assert_eq!(images, [&old[2][..], &old[0][..], &[9u8; 100][..], &old[1][..]], "read through the references");
        assert_eq!(back.carried, carried, "where each came from is kept");
        assert_eq!(back.lengths, [IMAGE as u64, IMAGE as u64, 100, IMAGE as u64]);
        let crcs: Vec<u32> = images.iter().map(|b| crc32fast::hash(b)).collect();
        assert_eq!(back.stored_crc32, Some(crcs));
        let size = fs::metadata(&path).unwrap().len();
        assert!(size < IMAGE as u64, "no carried byte is in the shard ({size} bytes)");

        // Merged with a part stored here: the references stay references.
        let plain = ShardContents { successes: vec![test_image("new-4", 7, 50)], failures: vec![] };
        let part = write_shard(&dir, 1, &plain, "new").unwrap();
        let done = compact(&dir, &[(0, path), (1, part)], 2, "new").unwrap().unwrap();
        let merged = read_shard(&done.path).unwrap();
        let images: Vec<&[u8]> = merged.successes.iter().map(|s| s.data.as_slice()).collect();
        assert_eq!(images, [&old[2][..], &old[0][..], &[9u8; 100][..], &old[1][..], &[7u8; 50][..]]);
        assert_eq!(read_records(&done.path, false).unwrap().carried[..4], carried[..]);
        let size = fs::metadata(&done.path).unwrap().len();
        assert!(size < IMAGE as u64, "the merge copied no carried byte ({size} bytes)");

        // A shard carrying one of the merged shard's own images names it in `images/own`.
        let rel = done.path.strip_prefix(out.path()).unwrap().display().to_string();
        let own = CarriedFrom { from: rel, row: 1, own: true, length: 50, crc32: crc32fast::hash(&[7u8; 50]) };
        let one = ShardContents { successes: vec![test_image("next-0", 0, 0)], failures: vec![] };
        let path = write_shard_carrying(&batch_dir(out.path(), "b.org", 0), 0, &one, &[Some(own)], "b").unwrap();
        assert_eq!(read_shard(&path).unwrap().successes[0].data, [7u8; 50]);
    }
}
