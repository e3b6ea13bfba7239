//! Reading a shard's stored image bytes, a row at a time or many rows at once, in either layout.
//!
//! Shards store each image as its own element of `images/data` (a variable-length `uint8`
//! dataset: h5py reads row `i` as `bytes(f["images/data"][i])`, and a virtual dataset can span
//! the images of many shards, see `index::h5`). Shards written before that concatenated every
//! image in one `uint8` dataset, image `i` at `images/data_offset[i]`; they are still read
//! here, the same way, and `index` rewrites them in the per-image layout.
//!
//! Nothing here trusts the file: a row past the shard's images, an element count that is not
//! the row count, or a span past the end of the concatenated bytes is [`ShardError::Damaged`].

use std::path::{Path, PathBuf};

use hdf5::types::VarLenArray;

use super::error::ShardError;

/// Datasets of `images/`: each image's stored bytes, and their sizes.
pub const DATA: &str = "data";
pub const DATA_LENGTH: &str = "data_length";
/// Dataset of `images/` in shards of the older, concatenated layout: where each image starts.
pub const DATA_OFFSET: &str = "data_offset";

/// Most bytes [`ImageData::read_many`] reads at once.
pub const READ_RUN: u64 = 32 << 20;

/// Largest gap between two spans of an older shard that [`ImageData::read_many`] still reads
/// in one go.
const RUN_GAP: u64 = 64 << 10;

/// How a shard stores its images.
enum Layout {
    /// One element of `images/data` per row; the rows' lengths.
    PerImage { lengths: Vec<u64> },
    /// Older shards: `images/data` concatenates the bytes; each row's (offset, length) in it,
    /// and its size.
    Concatenated { spans: Vec<(u64, u64)>, len: u64 },
}

/// The stored bytes of one shard (compaction, `verify`, `export`, `resize`).
pub struct ImageData {
    path: PathBuf,
    data: hdf5::Dataset,
    layout: Layout,
}

/// Whether shard `path` keeps its images in the older, concatenated layout.
pub fn is_concatenated(path: &Path) -> Result<bool, ShardError> {
    let h5err = |e| ShardError::Hdf5 { path: path.to_path_buf(), source: e };
    let images = hdf5::File::open(path).and_then(|f| f.group("images")).map_err(h5err)?;
    Ok(images.link_exists(DATA_OFFSET))
}

impl ImageData {
    pub fn open(path: &Path) -> Result<ImageData, ShardError> {
        let file = hdf5::File::open(path).map_err(|e| ShardError::Hdf5 { path: path.to_path_buf(), source: e })?;
        ImageData::of(path, &file, None)
    }

    /// The image bytes of `file`, whose `images/` group has `rows` rows when the caller has
    /// counted them (checked against `images/data`).
    pub(super) fn of(path: &Path, file: &hdf5::File, rows: Option<usize>) -> Result<ImageData, ShardError> {
        let h5err = |e| ShardError::Hdf5 { path: path.to_path_buf(), source: e };
        let damaged = |what: String| ShardError::Damaged { path: path.to_path_buf(), what };
        let images = file.group("images").map_err(h5err)?;
        let data = images.dataset(DATA).map_err(h5err)?;
        let lengths = images.dataset(DATA_LENGTH).and_then(|d| d.read_raw::<u64>()).map_err(h5err)?;
        if rows.is_some_and(|n| n != lengths.len()) {
            let n = rows.unwrap_or_default();
            return Err(damaged(format!(
                "images/{DATA_LENGTH} has {} entries where images/uuid has {n}",
                lengths.len()
            )));
        }
        let layout = if images.link_exists(DATA_OFFSET) {
            let offsets = images.dataset(DATA_OFFSET).and_then(|d| d.read_raw::<u64>()).map_err(h5err)?;
            if offsets.len() != lengths.len() {
                let (o, l) = (offsets.len(), lengths.len());
                return Err(damaged(format!(
                    "images/{DATA_OFFSET} has {o} entries where images/{DATA_LENGTH} has {l}"
                )));
            }
            let len = data.size() as u64;
            let spans: Vec<(u64, u64)> = offsets.into_iter().zip(lengths).collect();
            if let Some((i, (o, l))) =
                spans.iter().enumerate().find(|(_, (o, l))| o.checked_add(*l).is_none_or(|e| e > len))
            {
                return Err(damaged(format!(
                    "image {i} lies at bytes {o}..{o}+{l}, past the end of images/data ({len} bytes)"
                )));
            }
            Layout::Concatenated { spans, len }
        } else {
            if data.size() != lengths.len() {
                let (d, l) = (data.size(), lengths.len());
                return Err(damaged(format!("images/{DATA} has {d} images where images/{DATA_LENGTH} has {l}")));
            }
            Layout::PerImage { lengths }
        };
        Ok(ImageData { path: path.to_path_buf(), data, layout })
    }

    /// Each row's stored size in bytes.
    pub fn lengths(&self) -> Vec<u64> {
        match &self.layout {
            Layout::PerImage { lengths } => lengths.clone(),
            Layout::Concatenated { spans, .. } => spans.iter().map(|s| s.1).collect(),
        }
    }

    /// Whether the shard is in the older, concatenated layout.
    pub fn concatenated(&self) -> bool {
        matches!(self.layout, Layout::Concatenated { .. })
    }

    fn rows(&self) -> usize {
        match &self.layout {
            Layout::PerImage { lengths } => lengths.len(),
            Layout::Concatenated { spans, .. } => spans.len(),
        }
    }

    fn past_end(&self, row: usize) -> ShardError {
        let n = self.rows();
        ShardError::Damaged { path: self.path.clone(), what: format!("row {row} is past the shard's {n} images") }
    }

    fn h5err(&self, e: hdf5::Error) -> ShardError {
        ShardError::Hdf5 { path: self.path.clone(), source: e }
    }

    /// The stored bytes of row `row`.
    pub fn read(&self, row: usize) -> Result<Vec<u8>, ShardError> {
        match &self.layout {
            Layout::PerImage { lengths } => {
                let want = *lengths.get(row).ok_or_else(|| self.past_end(row))?;
                let one = self.data.read_slice_1d::<VarLenArray<u8>, _>(row..row + 1).map_err(|e| self.h5err(e))?;
                let bytes: Vec<u8> = one.iter().next().map(|v| v.as_slice().to_vec()).unwrap_or_default();
                self.checked_length(row, want, bytes)
            }
            Layout::Concatenated { spans, .. } => {
                let (offset, length) = *spans.get(row).ok_or_else(|| self.past_end(row))?;
                self.read_span(offset, length)
            }
        }
    }

    /// A row's bytes, if as long as `images/data_length` says.
    fn checked_length(&self, row: usize, want: u64, bytes: Vec<u8>) -> Result<Vec<u8>, ShardError> {
        if bytes.len() as u64 == want {
            return Ok(bytes);
        }
        let what = format!("image {row} has {} bytes where images/{DATA_LENGTH} says {want}", bytes.len());
        Err(ShardError::Damaged { path: self.path.clone(), what })
    }

    /// The stored bytes of each of `rows`, in order. Neighbouring rows are read together, up to
    /// [`READ_RUN`] bytes a read: one read per image costs more than the bytes when images are
    /// small. A row that cannot be read is an error of its own; its neighbours are still read.
    pub fn read_many(&self, rows: &[usize]) -> Vec<Result<Vec<u8>, ShardError>> {
        match &self.layout {
            Layout::PerImage { lengths } => self.read_rows(rows, lengths),
            Layout::Concatenated { spans, len } => {
                let picked: Vec<Option<(u64, u64)>> = rows.iter().map(|&r| spans.get(r).copied()).collect();
                let readable: Vec<(u64, u64)> = picked.iter().flatten().copied().collect();
                let mut read = self.read_spans(&readable, *len).into_iter();
                rows.iter()
                    .zip(picked)
                    .map(|(&r, span)| match span {
                        Some(_) => read.next().expect("one result per readable span"),
                        None => Err(self.past_end(r)),
                    })
                    .collect()
            }
        }
    }

    fn read_rows(&self, rows: &[usize], lengths: &[u64]) -> Vec<Result<Vec<u8>, ShardError>> {
        let mut out = Vec::with_capacity(rows.len());
        let mut i = 0;
        while i < rows.len() {
            // A run: consecutive rows, within READ_RUN bytes.
            let start = rows[i];
            let Some(&first) = lengths.get(start) else {
                out.push(Err(self.past_end(start)));
                i += 1;
                continue;
            };
            let (mut j, mut bytes) = (i + 1, first);
            while j < rows.len() && rows[j] == rows[j - 1] + 1 && rows[j] < lengths.len() {
                bytes += lengths[rows[j]];
                if bytes > READ_RUN {
                    break;
                }
                j += 1;
            }
            if j == i + 1 {
                out.push(self.read(start));
            } else {
                match self.data.read_slice_1d::<VarLenArray<u8>, _>(start..start + (j - i)) {
                    Ok(run) => out.extend(
                        run.iter()
                            .zip(start..)
                            .map(|(v, row)| self.checked_length(row, lengths[row], v.as_slice().to_vec())),
                    ),
                    Err(_) => out.extend(rows[i..j].iter().map(|&r| self.read(r))),
                }
            }
            i = j;
        }
        out
    }

    /// Older shards: the bytes of each of `spans`, reading neighbouring spans (gaps up to
    /// [`RUN_GAP`]) together.
    fn read_spans(&self, spans: &[(u64, u64)], len: u64) -> Vec<Result<Vec<u8>, ShardError>> {
        let mut out: Vec<Result<Vec<u8>, ShardError>> = Vec::with_capacity(spans.len());
        let mut i = 0;
        while i < spans.len() {
            let (start, first_len) = spans[i];
            let mut end = start.saturating_add(first_len);
            let mut j = i + 1;
            while j < spans.len() {
                let (o, l) = spans[j];
                let e = o.saturating_add(l);
                if o < end || o - end > RUN_GAP || e.saturating_sub(start) > READ_RUN || e > len {
                    break;
                }
                end = e;
                j += 1;
            }
            if j == i + 1 || end > len {
                out.push(self.read_span(start, first_len));
                i += 1;
                continue;
            }
            match self.read_span(start, end - start) {
                Ok(run) => out.extend(spans[i..j].iter().map(|&(o, l)| {
                    let from = (o - start) as usize;
                    Ok(run[from..from + l as usize].to_vec())
                })),
                Err(_) => out.extend(spans[i..j].iter().map(|&(o, l)| self.read_span(o, l))),
            }
            i = j;
        }
        out
    }

    /// Older shards: bytes `offset..offset + length` of `images/data`.
    fn read_span(&self, offset: u64, length: u64) -> Result<Vec<u8>, ShardError> {
        let len = self.data.size() as u64;
        let end = offset.checked_add(length).filter(|end| *end <= len).ok_or_else(|| ShardError::Damaged {
            path: self.path.clone(),
            what: format!("bytes {offset}..{offset}+{length} lie past the end of images/data ({len} bytes)"),
        })?;
        if length == 0 {
            return Ok(Vec::new());
        }
        let bytes = self.data.read_slice_1d::<u8, _>(offset as usize..end as usize).map_err(|e| self.h5err(e))?;
        Ok(bytes.to_vec())
    }
}

/// Test-only: flips every bit of byte `at` of row `row`'s stored bytes in shard `path`, without
/// touching its recorded CRC-32 (so the image no longer matches it).
#[cfg(test)]
pub(crate) fn flip_stored_byte(path: &Path, row: usize, at: usize) {
    let file = hdf5::File::open_rw(path).unwrap();
    let data = file.dataset("images/data").unwrap();
    let mut bytes = ImageData::open(path).unwrap().read(row).unwrap();
    bytes[at] = !bytes[at];
    data.write_slice(&[VarLenArray::from_slice(&bytes)], row..row + 1).unwrap();
}

/// Test-only: rewrites shard `path`'s images in the older, concatenated layout, as versions
/// before the per-image one wrote them.
#[cfg(test)]
pub(crate) fn to_concatenated(path: &Path) {
    let images = ImageData::open(path).unwrap();
    let rows: Vec<usize> = (0..images.rows()).collect();
    let bytes: Vec<Vec<u8>> = images.read_many(&rows).into_iter().map(Result::unwrap).collect();
    drop(images);
    let g = hdf5::File::open_rw(path).unwrap().group("images").unwrap();
    g.unlink(DATA).unwrap();
    let offsets: Vec<u64> =
        bytes.iter().scan(0u64, |at, b| Some(std::mem::replace(at, *at + b.len() as u64))).collect();
    g.new_dataset_builder().with_data(&offsets).create(DATA_OFFSET).unwrap();
    g.new_dataset_builder().with_data(&bytes.concat()).create(DATA).unwrap();
}
