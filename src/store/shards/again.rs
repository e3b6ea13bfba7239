//! What a run does again among the rows that have a record: retriable failures
//! (`--retry-failed`) and stored images to ask about again (`--revalidate`).

use std::path::PathBuf;

use super::hdf5_io::FailedRow;

/// Which failures count as not done: those `download --retry-failed` tries again.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum RetryFailed {
    /// Every row with a committed record is done (a plain `download`).
    #[default]
    No,
    /// Rows whose final record is a retriable failure committed before this moment (Unix
    /// seconds: when the retrying run started) are not done; failures of the retrying run
    /// itself are final, so a row is tried again once per `--retry-failed` run.
    Before(f64),
}

impl RetryFailed {
    pub(super) fn wants(self, f: &FailedRow) -> bool {
        matches!(self, RetryFailed::Before(cutoff) if f.retriable && f.failed_at < cutoff)
    }
}

/// Which committed records count as not done: what a run does again. A plain [`RetryFailed`]
/// converts into one without revalidation.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Again {
    pub failed: RetryFailed,
    /// `download --revalidate`: rows whose final record is a stored image last checked
    /// (`SuccessRecord::checked_at`) before this moment (Unix seconds) are not done; revalidated
    /// rows of the run itself are, so a row is asked once per run.
    pub stored_before: Option<f64>,
}

impl From<RetryFailed> for Again {
    fn from(failed: RetryFailed) -> Again {
        Again { failed, stored_before: None }
    }
}

/// Where a stored image to revalidate lies, and what to ask the server with.
#[derive(Debug, Clone, PartialEq)]
pub struct StaleImage {
    /// The committed shard holding the row's final record, and its index among the shard's
    /// successes.
    pub shard: PathBuf,
    pub row: u64,
    /// Its stored `ETag` and `Last-Modified`, "" when none.
    pub etag: String,
    pub last_modified: String,
    /// SHA-256 of its bytes as served: a 200 with the same bytes confirms it.
    pub sha256: String,
}
