//! Disjoint sets over row ids, kept in a scratch file instead of memory: the parent of row `i`
//! is the `u32` at byte `4 i`, read and written in place (`pread`/`pwrite`), so the page cache,
//! not this process, holds it, and memory does not grow with the rows (4 bytes a row on disk).
//!
//! A set's root is always its smallest row (a join hangs the larger root under the smaller), so
//! a parent is never larger than its row. The top bit of an entry marks a row that was ever
//! joined: the rows in a group of two or more, found again by one sequential read.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::spill::{at, ScratchError};

/// The flag of a row in a set of two or more.
const JOINED: u32 = 1 << 31;

/// Most rows the file can hold: ids must leave the flag bit free.
pub const MAX_ROWS: u64 = JOINED as u64 - 1;

/// The parents file of `rows` rows.
pub struct DiskUnion {
    path: PathBuf,
    file: File,
    /// Rows marked [`JOINED`] so far.
    joined: u64,
}

impl DiskUnion {
    /// A file of `rows` singletons (each row its own root).
    pub fn create(path: &Path, rows: u32) -> Result<Self, ScratchError> {
        let file = File::options().read(true).write(true).create(true).truncate(true).open(path).map_err(at(path))?;
        let mut w = BufWriter::with_capacity(1 << 16, &file);
        for i in 0..rows {
            w.write_all(&i.to_le_bytes()).map_err(at(path))?;
        }
        w.flush().map_err(at(path))?;
        drop(w);
        Ok(DiskUnion { path: path.to_path_buf(), file, joined: 0 })
    }

    fn get(&self, i: u32) -> Result<u32, ScratchError> {
        let mut b = [0u8; 4];
        self.file.read_exact_at(&mut b, u64::from(i) * 4).map_err(at(&self.path))?;
        Ok(u32::from_le_bytes(b))
    }

    fn set(&self, i: u32, entry: u32) -> Result<(), ScratchError> {
        self.file.write_all_at(&entry.to_le_bytes(), u64::from(i) * 4).map_err(at(&self.path))
    }

    /// The root of `i`'s set, halving the path on the way.
    pub fn find(&self, mut i: u32) -> Result<u32, ScratchError> {
        loop {
            let entry = self.get(i)?;
            let parent = entry & !JOINED;
            if parent == i {
                return Ok(i);
            }
            let grand = self.get(parent)? & !JOINED;
            if grand != parent {
                self.set(i, grand | (entry & JOINED))?;
            }
            i = grand;
        }
    }

    /// Puts `a` and `b` in one set.
    pub fn join(&mut self, a: u32, b: u32) -> Result<(), ScratchError> {
        let (ra, rb) = (self.find(a)?, self.find(b)?);
        if ra == rb {
            return Ok(());
        }
        let (root, child) = (ra.min(rb), ra.max(rb));
        let entry = self.get(child)?;
        self.set(child, root | (entry & JOINED))?;
        // Every other row of both sets was joined before, roots included: a root not joined
        // before is a singleton, `a` or `b` itself.
        for row in [a, b] {
            let entry = self.get(row)?;
            if entry & JOINED == 0 {
                self.set(row, entry | JOINED)?;
                self.joined += 1;
            }
        }
        Ok(())
    }

    /// Rows in a set of two or more.
    pub fn joined(&self) -> u64 {
        self.joined
    }

    /// Reads whether each row, in order, is in a set of two or more.
    pub fn scan(&self) -> Result<JoinedScan, ScratchError> {
        let file = self.file.try_clone().map_err(at(&self.path))?;
        let mut file = BufReader::with_capacity(1 << 16, file);
        std::io::Seek::rewind(&mut file).map_err(at(&self.path))?;
        Ok(JoinedScan { path: self.path.clone(), file })
    }
}

/// The rows' joined flags, in row order (see [`DiskUnion::scan`]).
pub struct JoinedScan {
    path: PathBuf,
    file: BufReader<File>,
}

impl JoinedScan {
    /// Whether the next row is in a set of two or more.
    pub fn next_joined(&mut self) -> Result<bool, ScratchError> {
        let mut b = [0u8; 4];
        self.file.read_exact(&mut b).map_err(at(&self.path))?;
        Ok(u32::from_le_bytes(b) & JOINED != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joined_rows_share_the_smallest_root_and_singletons_stay_unflagged() {
        let dir = tempfile::tempdir().unwrap();
        let mut u = DiskUnion::create(&dir.path().join("p"), 8).unwrap();
        for (a, b) in [(5, 7), (7, 3), (6, 1), (1, 3), (3, 5)] {
            u.join(a, b).unwrap();
        }
        let roots: Vec<u32> = (0..8).map(|i| u.find(i).unwrap()).collect();
        assert_eq!(roots, vec![0, 1, 2, 1, 4, 1, 1, 1]);
        let mut scan = u.scan().unwrap();
        let joined: Vec<bool> = (0..8).map(|_| scan.next_joined().unwrap()).collect();
        assert_eq!(joined, vec![false, true, false, true, false, true, true, true]);
        assert_eq!(u.joined(), 5);
    }
}
