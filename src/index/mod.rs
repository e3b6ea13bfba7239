//! `index`: one manifest of the whole dataset, read from the committed shards.
//!
//! `batch` turns one batch's shards into its manifest rows: each row's final record (the one a
//! `download` counts: the latest, merged shards replacing their parts), with where it lies (shard
//! file and row) and what it is (sizes, format, SHA-256, perceptual hashes, status and error
//! class). `run` writes one parquet file per batch under `<output>/index/manifest/`, in the
//! layout of `urls/` and `downloads/`, so that the folder reads as one table; a batch whose
//! shards have not changed since it was indexed is not read again, and ranks share the batches.
//! `attribution` joins what prep kept of each row's licence and credits, by uuid, with the
//! licence read as an SPDX id. `h5` writes `index/index.h5`, whose virtual dataset spans every shard's images, with an
//! offset and length per stored image (only those the keep-list keeps, when `filter` wrote one).
//! Images are never copied: the manifest and `index.h5` say where each one is.

pub mod attribution;
pub mod batch;
pub mod h5;
pub mod run;
