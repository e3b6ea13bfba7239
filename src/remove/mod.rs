//! `remove`: the takedown path. Rows named by uuid or URL become tombstones: a failure record of
//! class `removed`, committed as a new shard of their batch like any record, so every reader of
//! the ledger counts them as done and final. `download` never fetches them again (not with
//! `--retry-failed`: a tombstone is not retriable; not after re-running prep on the same input:
//! its batches and their shards stay), and `index` lists them as `removed`. With `--purge`,
//! each batch that holds one is merged into one shard of final records, so the image bytes of
//! its removed rows are gone from the dataset; other batches are not rewritten.
//!
//! `run` does it batch by batch, and is idempotent: a row already removed is not removed again,
//! and a run killed midway leaves each batch either untouched or with its tombstones committed.

pub mod run;
