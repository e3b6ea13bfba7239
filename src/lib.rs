//! distributed-downloader: polite, resumable image downloads for research datasets.
//!
//! # Layout
//! - `cli`: clap structs, what the user typed.
//! - `config`: the `.env` file read into validated `Settings`.
//! - `commands`: each subcommand's `run()`, where flags and config are merged (anyhow lives here).
//! - `prep`: input lists to per-server URL batches (the only user of polars).
//! - `progress`: a bar on a terminal, plain lines in logs.
//! - `bench`: generated inputs for the benchmarks.

pub mod bench;
pub mod cli;
pub mod commands;
pub mod config;
pub mod prep;
pub mod progress;
