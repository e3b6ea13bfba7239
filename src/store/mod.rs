//! The output folder's one owner: its paths and file names, and how files in it are written.
//!
//! Commands and actors are clients of this module: they ask it for a path or hand it bytes, and
//! never spell a file name of the output folder themselves.
//!
//! - `paths`: every file and folder name of the output folder, and the folder of one batch.
//! - `atomic`: the one way a file there is written: a temporary name carrying host and pid,
//!   fsync of the file, a rename (or a link that never replaces), fsync of the folder.
//! - `lock`: the writer lock `writer.lock`: one writing process per output folder, stale locks taken over.
//! - `pause`: pause points for tests only, so a test can kill a process provably mid-write.
//! - `error`: `StoreError`, what can go wrong with the tables and batch files.
//! - `parquet`: parquet files read and written whole (polars).
//! - `tables`: `servers.parquet` written and read; `table_updates`: the columns later runs fill.
//! - `plans`: rank 0's plans, one file per round.
//! - `batches`: the batch files under `urls/`: written by prep, read in windows by downloads.
//! - `shards`: the committed HDF5 shards, the ledger read back from them, merges, and what an
//!   interrupted run left behind.
//!
//! Polars is used here and in `prep` only.

pub mod atomic;
pub mod batches;
pub mod error;
pub mod keep;
pub mod lock;
pub mod parquet;
pub mod paths;
pub mod pause;
pub mod plans;
pub mod shards;
pub mod table_updates;
pub mod tables;
