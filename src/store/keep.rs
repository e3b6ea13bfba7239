//! The keep-list `filter` writes (`filter/keep.parquet`), as the commands that respect it read
//! it: its uuids as sorted 128-bit keys, 16 bytes each (3.2 GB for 200M rows).

use std::path::Path;

use super::error::StoreError;
use super::parquet::read_parquet;
use super::paths;

/// The uuids a keep-list keeps.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeepList {
    keys: Vec<u128>,
}

impl KeepList {
    /// The keep-list of output folder `out`, or `None` when `filter` has not written one.
    pub fn of(out: &Path) -> Result<Option<KeepList>, StoreError> {
        let path = paths::keep_list(out);
        if !path.is_file() {
            return Ok(None);
        }
        KeepList::read(&path).map(Some)
    }

    /// Reads a keep-list file.
    pub fn read(path: &Path) -> Result<KeepList, StoreError> {
        let df = read_parquet(path)?;
        let uuids = df
            .column("uuid")
            .and_then(|c| c.str().cloned())
            .map_err(|source| StoreError::Parquet { path: path.to_path_buf(), source })?;
        let mut keys: Vec<u128> = uuids.iter().flatten().filter_map(uuid_key).collect();
        keys.sort_unstable();
        Ok(KeepList { keys })
    }

    pub fn contains(&self, uuid: &str) -> bool {
        uuid_key(uuid).is_some_and(|k| self.keys.binary_search(&k).is_ok())
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// A uuid's 128 bits, from its 36-character text.
fn uuid_key(text: &str) -> Option<u128> {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    (hex.len() == 32).then(|| u128::from_str_radix(&hex, 16).ok()).flatten()
}
