//! `prep`: from an input URL list to URL batches partitioned by server.
//!
//! With `store`, the only place polars is used. Reading is streamed in chunks (`input`), each
//! row is kept or dropped for one reason (`filter`, `server_key`), identical URLs are merged out
//! of core (`spill`), and each server's URLs are cut into batches of exactly `BATCH_SIZE` but
//! the last (`batches`). `run` drives the passes and `report` says what happened. `space` checks
//! beforehand that the output's filesystem has room. Prep is a client of the store like every
//! other command: the batch files and the servers table are written through `store`.

pub mod batches;
pub mod carried;
pub mod csv_line;
pub mod filter;
pub mod input;
pub mod occurrence;
pub mod report;
pub mod run;
pub mod server_key;
pub mod space;
pub mod spill;

use std::path::PathBuf;

/// Everything that can stop `prep`. Per-row problems are not errors: they are counted in the report.
#[derive(Debug, thiserror::Error)]
pub enum PrepError {
    #[error("{path}: {source}")]
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
    #[error("input {path} is empty: it has no header or no data rows; check that the file was fully downloaded")]
    EmptyInput { path: PathBuf },
    #[error("input {path} has no column `{column}`{hint}; columns found: {found}")]
    MissingColumn { column: String, path: PathBuf, found: String, hint: String },
    #[error(
        "output folder {path} is not empty (it holds {entries}); choose another folder, or pass --force to replace prep's outputs there (downloaded shards are kept)"
    )]
    OutputNotEmpty { path: PathBuf, entries: String },
    #[error(
        "not enough free space for prep in {path}: about {needed} needed while it runs (1.1 times the input, for prep's \
         intermediate files and its output), {available} free; free space there, choose an --output on a larger \
         filesystem, or pass --skip-space-check if most rows will be filtered out"
    )]
    NoSpace { path: PathBuf, needed: String, available: String },
    #[error("the header line of {path} cannot be read ({why}); check that the file is a CSV with a header line")]
    BadHeader { path: PathBuf, why: String },
    #[error(transparent)]
    Commit(#[from] crate::store::atomic::CommitError),
    #[error(transparent)]
    Store(#[from] crate::store::error::StoreError),
}
