//! distributed-downloader: polite, resumable image downloads for research datasets.
//!
//! # Layout
//! - `cli`: clap structs, what the user typed.
//! - `config`: the `.env` file read into validated `Settings`.
//! - `commands`: each subcommand's `run()`, where flags and config are merged (anyhow lives here).
//! - `prep`: input lists to per-server URL batches (the only user of polars).
//! - `progress`: a bar on a terminal, plain lines in logs.
//! - `bench`: generated inputs for the benchmarks.
//! - `shards`: committed HDF5 shard files and the ledger of what is done, read back from them.

pub mod bench;
pub mod cli;
pub mod commands;
pub mod config;
pub mod prep;
pub mod progress;
pub mod shards;
