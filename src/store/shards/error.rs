//! What went wrong reading or writing one shard.

use std::path::PathBuf;

use crate::store::atomic;

/// What went wrong reading or writing one shard; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error("cannot read or write shard {path}: {source}; check free space and permissions on the output folder")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "shard {path} already exists, and a committed shard is never replaced: is another download \
         running on this output folder? Stop it, then re-run (every committed shard is kept)"
    )]
    Exists { path: PathBuf },
    #[error("HDF5 error on shard {path}: {source}")]
    Hdf5 {
        path: PathBuf,
        #[source]
        source: hdf5::Error,
    },
    #[error(
        "shard {path} is damaged: {what}. Run `verify --full --repair` (it moves the shard to the quarantine \
         folder and keeps its good rows), then `download`: its bad rows will be fetched again"
    )]
    Damaged { path: PathBuf, what: String },
}

impl From<atomic::CommitError> for ShardError {
    fn from(e: atomic::CommitError) -> ShardError {
        match e {
            atomic::CommitError::Io { path, source } => ShardError::Io { path, source },
            atomic::CommitError::Exists { path } => ShardError::Exists { path },
        }
    }
}
