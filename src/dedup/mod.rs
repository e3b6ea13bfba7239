//! `dedup`: exact and near-duplicate images of a dataset, and images that leak a test set, found
//! from the manifest (`index`) without opening a shard or comparing all pairs.
//!
//! `groups` holds the plain logic: the candidate index (pairs that share a 32-bit segment of
//! their PDQ hash or their pHash, the only pairs compared), the union of matches into groups,
//! and the keeper rule. `run` reads the manifest, writes `<output>/dedup/duplicates.parquet` and
//! `leaks.parquet`, and reports.

pub mod groups;
pub mod run;
