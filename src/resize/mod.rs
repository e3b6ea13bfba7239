//! `resize`: a new dataset at a smaller size, made from the stored images without fetching
//! anything again.
//!
//! `image` turns one stored record into its smaller copy (the pipeline's own decode, resize and
//! encode, and fresh perceptual hashes); `batch` copies one batch's final records into the new
//! folder in bounded pieces and merges them, resuming where a killed run stopped; `run` sets the
//! new folder up (the prep output is shared, the shards are new), shares the batches among the
//! ranks and sums up.

pub mod batch;
pub mod image;
pub mod run;
