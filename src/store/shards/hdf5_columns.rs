//! Reading one group of a shard column by column, every dataset checked against the group's
//! `uuid` count.

use std::path::Path;

use hdf5::types::VarLenUnicode;
use hdf5::H5Type;

use super::ShardError;

fn read_strings(g: &hdf5::Group, name: &str) -> hdf5::Result<Vec<String>> {
    Ok(g.dataset(name)?.read_raw::<VarLenUnicode>()?.into_iter().map(|s| s.as_str().to_string()).collect())
}

/// One group of a shard being read, whose every dataset must have as many entries as its
/// `uuid`; one that does not is [`ShardError::Damaged`].
pub(super) struct Columns<'a> {
    path: &'a Path,
    pub(super) g: hdf5::Group,
    group: &'static str,
    pub(super) n: usize,
}

impl<'a> Columns<'a> {
    /// The group and its uuids.
    pub(super) fn open(
        path: &'a Path,
        file: &hdf5::File,
        group: &'static str,
    ) -> Result<(Self, Vec<String>), ShardError> {
        let h5err = |e| ShardError::Hdf5 { path: path.to_path_buf(), source: e };
        let g = file.group(group).map_err(h5err)?;
        let uuid = read_strings(&g, "uuid").map_err(h5err)?;
        Ok((Columns { path, g, group, n: uuid.len() }, uuid))
    }

    fn sized<T>(&self, name: &str, read: hdf5::Result<Vec<T>>) -> Result<Vec<T>, ShardError> {
        let v = read.map_err(|e| ShardError::Hdf5 { path: self.path.to_path_buf(), source: e })?;
        if v.len() == self.n {
            return Ok(v);
        }
        let (group, n) = (self.group, self.n);
        Err(self.damaged(format!("{group}/{name} has {} entries where {group}/uuid has {n}", v.len())))
    }

    pub(super) fn strings(&self, name: &str) -> Result<Vec<String>, ShardError> {
        self.sized(name, read_strings(&self.g, name))
    }

    pub(super) fn raw<T: H5Type>(&self, name: &str) -> Result<Vec<T>, ShardError> {
        self.sized(name, self.g.dataset(name).and_then(|d| d.read_raw::<T>()))
    }

    pub(super) fn damaged(&self, what: String) -> ShardError {
        ShardError::Damaged { path: self.path.to_path_buf(), what }
    }

    /// Row `i`'s `source_ids`: never a silent `[]` for text that is not a JSON list of strings.
    pub(super) fn source_ids(&self, json: &str, uuid: &str) -> Result<Vec<String>, ShardError> {
        serde_json::from_str(json).map_err(|e| {
            self.damaged(format!(
                "{}/source_ids of row {uuid} is not a JSON list of strings ({e}): {json:.80}",
                self.group
            ))
        })
    }

    /// A dataset added after the first format: its strings, or "" for every row in shards
    /// written before it.
    pub(super) fn strings_or_empty(&self, name: &str) -> Result<Vec<String>, ShardError> {
        if self.g.link_exists(name) {
            self.strings(name)
        } else {
            Ok(vec![String::new(); self.n])
        }
    }

    /// A dataset added after the first format: its values, or the default for every row in
    /// shards written before it.
    pub(super) fn raw_or_default<T: H5Type + Default + Clone>(&self, name: &str) -> Result<Vec<T>, ShardError> {
        if self.g.link_exists(name) {
            self.raw(name)
        } else {
            Ok(vec![T::default(); self.n])
        }
    }
}
