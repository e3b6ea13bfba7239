//! `index`: one manifest of the whole dataset, read from the committed shards.
//!
//! `batch` turns one batch's shards into its manifest rows: each row's final record (the one a
//! `download` counts: the latest, merged shards replacing their parts), with where it lies (shard
//! file and row) and what it is (sizes, format, SHA-256, perceptual hashes, status and error
//! class). `run` writes one parquet file per batch under `<output>/index/manifest/`, in the
//! layout of `urls/` and `downloads/`, so that the folder reads as one table; a batch whose
//! shards have not changed since it was indexed is not read again, and ranks share the batches.
//! Images are never copied: the manifest says where each one is.

pub mod batch;
pub mod run;
