//! When the writer commits a shard: plain logic, no actix, time passed in.

use std::time::{Duration, Instant};

/// Rows in one shard at most. 1,000 images of ~200 KB stored make ~200 MB files: large enough that
/// per-file overhead is small, small enough that a crash costs at most minutes of fetching.
pub const SHARD_MAX_ROWS: usize = 1000;

/// Stored bytes in one shard at most, so 1,000 big herbarium sheets do not make a 20 GB file.
pub const SHARD_MAX_BYTES: usize = 512 << 20;

/// Longest a finished row waits in memory before it is committed (`COMMIT_SECS`): what a crash
/// can cost, a minute of fetching. The file count is not its concern: a complete batch's shards
/// are merged into one (`store::shards::compact`).
pub const SHARD_MAX_AGE: Duration = Duration::from_secs(60);

/// Stored bytes the writer holds over all open batches at most: past it, the batch holding the
/// most is committed early. Without it, hundreds of hosts each holding up to a minute of rows
/// would add up to gigabytes.
pub const WRITER_MAX_BUFFERED_BYTES: usize = 256 << 20;

#[derive(Debug, Clone, Copy)]
pub struct ShardPolicy {
    pub max_rows: usize,
    pub max_bytes: usize,
    pub max_age: Duration,
    /// Over all batches (see [`WRITER_MAX_BUFFERED_BYTES`]).
    pub max_buffered_bytes: usize,
}

impl Default for ShardPolicy {
    fn default() -> Self {
        ShardPolicy {
            max_rows: SHARD_MAX_ROWS,
            max_bytes: SHARD_MAX_BYTES,
            max_age: SHARD_MAX_AGE,
            max_buffered_bytes: WRITER_MAX_BUFFERED_BYTES,
        }
    }
}

impl ShardPolicy {
    /// Whether a batch holding `rows` rows and `bytes` bytes, whose oldest row arrived at
    /// `oldest`, should be committed now.
    pub fn should_commit(&self, rows: usize, bytes: usize, oldest: Option<Instant>, now: Instant) -> bool {
        rows > 0
            && (rows >= self.max_rows
                || bytes >= self.max_bytes
                || oldest.is_some_and(|t| now.saturating_duration_since(t) >= self.max_age))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_on_rows_bytes_or_age_and_never_empty() {
        let p = ShardPolicy { max_rows: 10, max_bytes: 100, max_age: Duration::from_secs(5), max_buffered_bytes: 1000 };
        let t0 = Instant::now();
        assert!(!p.should_commit(0, 0, None, t0));
        assert!(!p.should_commit(9, 99, Some(t0), t0 + Duration::from_secs(4)));
        assert!(p.should_commit(10, 0, Some(t0), t0));
        assert!(p.should_commit(1, 100, Some(t0), t0));
        assert!(p.should_commit(1, 1, Some(t0), t0 + Duration::from_secs(5)));
    }
}
