//! Parquet files of the output folder (the servers table, batch files), read and written whole
//! with polars. Replacing a table goes through `atomic`; these only read or write one path.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use polars::prelude::*;

use super::error::StoreError;

/// Writes `df` to `path` (a fresh file: a temporary name, or a file in a staged folder).
pub fn write_parquet(path: &Path, df: &mut DataFrame) -> Result<(), StoreError> {
    let file = File::create(path).map_err(|e| StoreError::Io { path: path.to_path_buf(), source: e })?;
    ParquetWriter::new(file).finish(df).map_err(|e| StoreError::Parquet { path: path.to_path_buf(), source: e })?;
    Ok(())
}

pub fn read_parquet(path: &Path) -> Result<DataFrame, StoreError> {
    let file = File::open(path).map_err(|e| StoreError::Io { path: path.to_path_buf(), source: e })?;
    ParquetReader::new(file).finish().map_err(|e| StoreError::Parquet { path: path.to_path_buf(), source: e })
}

/// The `.parquet` files of `dir`, in name order. An entry that cannot be read is an error, never
/// skipped: a batch file left out would silently drop its rows.
pub fn parquet_files(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let io = |e| StoreError::Io { path: dir.to_path_buf(), source: e };
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.extension().is_some_and(|x| x == "parquet") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}
