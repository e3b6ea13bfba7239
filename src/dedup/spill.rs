//! The scratch files of the bounded `dedup` pass: records appended to one of a few partition
//! files, so that every record with the same key lands in one file and each file can be read
//! and sorted on its own, in memory of about [`DEFAULT_PARTITION_BYTES`].
//!
//! Owns the scratch folder's files and their I/O errors; what a record holds is up to `bounded`.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// Bytes of records one partition is sized to hold: what one step of the bounded pass reads and
/// sorts in memory at once. 64 MiB keeps a step's peak near 150 MB (the records, their sorted
/// copy, a bucket's hashes) while a 10M-row manifest needs only a few dozen files.
pub const DEFAULT_PARTITION_BYTES: u64 = 64 << 20;

/// Most partition files of one kind. Each open file holds a [`WRITE_BUFFER`] while it is
/// written, so this bounds that memory (16 MiB) and keeps under a default limit of 1,024 open
/// files. Partitions grow past their target only beyond about 2 billion segment entries (the
/// ten segments of 400M images).
pub const MAX_PARTITIONS: usize = 256;

/// The write buffer of each open partition file.
const WRITE_BUFFER: usize = 64 << 10;

/// The read buffer of a partition file (or a run) being read back.
const READ_BUFFER: usize = 64 << 10;

/// A scratch file could not be written or read.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot use dedup's scratch file {path}: {source}\n\
     dedup spills about 100 bytes per stored image under <output>/dedup/.scratch: free space there and run it again"
)]
pub struct ScratchError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Wraps an I/O error with the file it happened on.
pub fn at(path: &Path) -> impl Fn(std::io::Error) -> ScratchError + '_ {
    move |source| ScratchError { path: path.to_path_buf(), source }
}

/// How many partitions hold `bytes` of records at `target` bytes each: at least one, at most
/// [`MAX_PARTITIONS`].
pub fn partition_count(bytes: u64, target: u64) -> usize {
    bytes.div_ceil(target.max(1)).clamp(1, MAX_PARTITIONS as u64) as usize
}

/// Which of `n` partitions a 64-bit key goes to: a multiplicative hash, so that keys that differ
/// only in their low bits spread too.
pub fn partition_of(key: u64, n: usize) -> usize {
    ((key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % n as u64) as usize
}

/// Partition files being written: `<dir>/<name>-<k>.bin`.
pub struct Spill {
    files: Vec<(PathBuf, BufWriter<File>)>,
}

impl Spill {
    pub fn create(dir: &Path, name: &str, partitions: usize) -> Result<Self, ScratchError> {
        let mut files = Vec::with_capacity(partitions);
        for k in 0..partitions {
            let path = dir.join(format!("{name}-{k}.bin"));
            let file = File::create(&path).map_err(at(&path))?;
            files.push((path, BufWriter::with_capacity(WRITE_BUFFER, file)));
        }
        Ok(Spill { files })
    }

    pub fn partitions(&self) -> usize {
        self.files.len()
    }

    /// Appends `record` to partition `k`.
    pub fn push(&mut self, k: usize, record: &[u8]) -> Result<(), ScratchError> {
        let (path, file) = &mut self.files[k];
        file.write_all(record).map_err(at(path))
    }

    /// Flushes and closes every file; their paths, by partition.
    pub fn finish(self) -> Result<Vec<PathBuf>, ScratchError> {
        let mut paths = Vec::with_capacity(self.files.len());
        for (path, mut file) in self.files {
            file.flush().map_err(at(&path))?;
            paths.push(path);
        }
        Ok(paths)
    }
}

/// A scratch file read back in order, then removed when dropped (a partition is read once).
pub struct Reader {
    path: PathBuf,
    file: BufReader<File>,
}

impl Reader {
    pub fn open(path: &Path) -> Result<Self, ScratchError> {
        let file = File::open(path).map_err(at(path))?;
        Ok(Reader { path: path.to_path_buf(), file: BufReader::with_capacity(READ_BUFFER, file) })
    }

    /// How many records of `size` bytes the file holds: to size a vector once, since growing it
    /// by doubling would hold the old and the new buffer at once, 1.5 times a partition.
    pub fn records(&self, size: usize) -> usize {
        let len = self.file.get_ref().metadata().map_or(0, |m| m.len());
        (len / size as u64) as usize
    }

    /// Fills `buf` with the next record; false at the end of the file.
    pub fn next_into(&mut self, buf: &mut [u8]) -> Result<bool, ScratchError> {
        match self.file.read_exact(buf) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(at(&self.path)(e)),
        }
    }

    /// The next length-prefixed byte string (see [`put_bytes`]); `None` at the end of the file.
    pub fn next_bytes(&mut self) -> Result<Option<Vec<u8>>, ScratchError> {
        let mut len = [0u8; 4];
        if !self.next_into(&mut len)? {
            return Ok(None);
        }
        let mut out = vec![0u8; u32::from_le_bytes(len) as usize];
        self.file.read_exact(&mut out).map_err(at(&self.path))?;
        Ok(Some(out))
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        // Read once: its space is given back at once. A file left would only cost scratch space,
        // and the whole folder is removed at the end.
        let _ = fs::remove_file(&self.path);
    }
}

/// Appends `bytes` to `out` with its length in front (what [`Reader::next_bytes`] reads).
pub fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Splits the next length-prefixed byte string off the front of `rest` (see [`put_bytes`]).
pub fn take_bytes<'a>(rest: &mut &'a [u8]) -> &'a [u8] {
    let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
    let (bytes, tail) = rest[4..].split_at(len);
    *rest = tail;
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_come_back_from_their_partition_in_order_and_the_file_is_gone_after() {
        let dir = tempfile::tempdir().unwrap();
        let mut spill = Spill::create(dir.path(), "t", 3).unwrap();
        for v in 0..30u32 {
            spill.push(partition_of(u64::from(v), 3), &v.to_le_bytes()).unwrap();
        }
        let paths = spill.finish().unwrap();
        let mut all = Vec::new();
        for (k, path) in paths.iter().enumerate() {
            let mut reader = Reader::open(path).unwrap();
            let mut buf = [0u8; 4];
            let mut last = None;
            while reader.next_into(&mut buf).unwrap() {
                let v = u32::from_le_bytes(buf);
                assert_eq!(partition_of(u64::from(v), 3), k);
                assert!(last < Some(v), "records keep their order within a partition");
                last = Some(v);
                all.push(v);
            }
            drop(reader);
            assert!(!path.exists(), "a partition read back is removed");
        }
        all.sort_unstable();
        assert_eq!(all, (0..30).collect::<Vec<_>>());
        assert_eq!(partition_count(0, 64), 1);
        assert_eq!(partition_count(65, 64), 2);
        assert_eq!(partition_count(u64::MAX / 2, 64), MAX_PARTITIONS);
    }
}
