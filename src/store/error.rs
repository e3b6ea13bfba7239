//! What can go wrong reading or writing the output folder's tables and batch files.
//!
//! Shards have their own error (`shards::hdf5_io::ShardError`), for reads and writes alike.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot read or write {path}: {source}; check that the output folder is mounted and writable")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parquet error on {path}: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: polars::prelude::PolarsError,
    },
    #[error(
        "batch file {path} has no `{column}` in row {row}: it is damaged or was not written by prep; \
         re-run prep with --force on the original input (downloaded shards are kept)"
    )]
    NullInBatch { path: PathBuf, column: &'static str, row: usize },
    #[error("{path} holds no prep output (servers.parquet is missing); run `distributed-downloader prep --output {path}` first")]
    NotPrepped { path: PathBuf },
    #[error("{path} cannot be read as {what} ({source}); it is damaged: move it aside and re-run")]
    Json {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Commit(#[from] super::atomic::CommitError),
}
