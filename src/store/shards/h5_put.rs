//! Writing a dataset of a shard in one call.

use hdf5::types::VarLenUnicode;
use hdf5::H5Type;

pub(super) fn strings(items: impl Iterator<Item = String>) -> Vec<VarLenUnicode> {
    // HDF5 strings end at NUL: replace any so a hostile detail string cannot truncate or fail.
    items.map(|s| s.replace('\0', "\u{FFFD}").parse().expect("NUL removed")).collect()
}

pub(super) fn put<T: H5Type>(group: &hdf5::Group, name: &str, data: &[T]) -> hdf5::Result<()> {
    group.new_dataset_builder().with_data(data).create(name)?;
    Ok(())
}
