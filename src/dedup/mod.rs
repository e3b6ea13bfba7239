//! `dedup`: exact and near-duplicate images of a dataset, and images that leak a test set, found
//! from the manifest (`index`) without opening a shard or comparing all pairs.
//!
//! `groups` holds the rules as plain logic: the candidates (pairs that share a 32-bit segment of
//! their PDQ hash or their pHash, the only pairs compared), the match, the keeper, and an
//! in-memory `find` over them. `bounded` applies the same rules in memory that does not grow
//! with the rows, through scratch files (`spill`) and a union-find kept on disk (`union`): what
//! `run` uses. `run` reads the manifest, writes `<output>/dedup/duplicates.parquet` and
//! `leaks.parquet`, and reports.

pub mod bounded;
#[cfg(test)]
mod equivalence;
pub mod groups;
mod output;
pub mod run;
pub mod spill;
pub mod union;
