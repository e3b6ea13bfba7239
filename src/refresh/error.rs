//! What can go wrong in the diff of two snapshots, each error naming what is at fault and what to
//! do next. A malformed row is not an error: it is counted in the report (`plan::Malformed`).

use std::path::PathBuf;

use polars::prelude::PolarsError;

use crate::store::atomic::CommitError;
use crate::store::error::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error(
        "{old} has no manifest ({old}/index/manifest is missing): the diff reads what the old \
         snapshot stored from it; run `distributed-downloader index --output {old}` first"
    )]
    NoManifest { old: PathBuf },
    #[error(
        "the new snapshot {new} has no batch files under {new}/urls: run `distributed-downloader prep \
         --output {new} --input <new multimedia.txt>` first"
    )]
    NoNewBatches { new: PathBuf },
    #[error("cannot list {dir}: {message}")]
    Listing { dir: PathBuf, message: String },
    #[error(
        "{path} is not a batch file of prep: it does not lie under urls/server_name=<key>/partition_id=<n>/; \
         pass the files of the new snapshot's urls/ folder"
    )]
    NotABatchFile { path: PathBuf },
    #[error("{path} has no column `{column}`, so it is not {what}; {hint}")]
    MissingColumn { path: PathBuf, column: String, what: &'static str, hint: &'static str },
    #[error("cannot read {path}: {source}; it is damaged or not a parquet file: {hint}")]
    Read {
        path: PathBuf,
        hint: &'static str,
        #[source]
        source: PolarsError,
    },
    #[error(
        "cannot use the diff's scratch file {path}: {source}; the diff spills about 300 bytes per row \
         of both snapshots there: free space (or choose another scratch folder) and run it again"
    )]
    Scratch {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the refresh plan file {path}: {source}; check free space on the output folder")]
    Write {
        path: PathBuf,
        #[source]
        source: PolarsError,
    },
    #[error(
        "{old}'s manifest says image {uuid} is row {row} of {shard}, and it is not: the old folder changed \
         since it was indexed; run `distributed-downloader index --output {old}`, then `refresh` again"
    )]
    StaleManifest { old: PathBuf, shard: String, uuid: String, row: usize },
    #[error(transparent)]
    Shard(#[from] crate::store::shards::hdf5_io::ShardError),
    #[error(transparent)]
    Ledger(#[from] crate::store::shards::ledger::LedgerError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Commit(#[from] CommitError),
}

/// The scratch files are `dedup`'s spill files; their errors are reworded for the diff.
impl From<crate::dedup::spill::ScratchError> for RefreshError {
    fn from(e: crate::dedup::spill::ScratchError) -> Self {
        RefreshError::Scratch { path: e.path, source: e.source }
    }
}

/// An I/O error on a scratch path.
pub fn scratch(path: &std::path::Path) -> impl Fn(std::io::Error) -> RefreshError + '_ {
    move |source| RefreshError::Scratch { path: path.to_path_buf(), source }
}
