//! distributed-downloader: polite, resumable image downloads for research datasets.
//!
//! # Layout
//! The product only: the test origin is the `test-origin` crate (`crates/test-origin`), the
//! benchmarks the `dd-bench` crate (`crates/bench`).
//! - `cli`: clap structs, what the user typed (`cli_dataset`: the dataset tools' flags).
//! - `config`: the `.env` file read into validated `Settings`.
//! - `commands`: each subcommand's `run()`, where flags and config are merged (anyhow lives here).
//! - `host`: the politeness rules as plain numbers, a leaf importing nothing of the crate: what an
//!   attempt ended as (`Outcome`, `ErrorClass`), token bucket, adaptive rate, retry and parking,
//!   one host's state.
//! - `fetch`: one HTTP attempt (client, resolver, redirect rule, deadlines) and `Retry-After` parsing.
//! - `imaging`: one image's bytes to what we store (decode, bomb check, resize, JPEG, hashes).
//! - `actors`: the ServerActor per host (applying `host`'s rules) and the WriterActor.
//! - `download`: the coordinator of one rank: actors, progress, deadline, summary.
//! - `mpi_glue`: the only caller of `mpi::` (a world of ranks, single-rank without a launcher) and the rank-0 planner.
//! - `exit`: the exit codes, one type.
//! - `environment`: the one place the launcher's environment (Slurm) is read.
//! - `prep`: input lists to per-server URL batches (with `store`, the only user of polars).
//! - `progress`: a bar on a terminal, plain lines in logs.
//! - `robots`: robots.txt (RFC 9309) and opt-out headers: the rules, a host's robots.txt state
//!   during a download, and the answers kept in the output folder.
//! - `overrides`: per-server overrides (starting rate, ceiling, in-flight cap, exclusion).
//! - `forecast`: `plan`, the whole download simulated with rank 0's planner and round rule.
//! - `profile`: robots.txt and spaced sample requests per server, the starting-rate rule.
//! - `telemetry`: typed events writing log lines, counters and metrics together; metric names.
//! - `store`: the output folder's owner: its paths, the one durable write, the writer lock,
//!   the servers table, batch files and shards (the ledger of what is done, merges).
//! - `slurm`: the job scripts `submit` renders, the chain of jobs and its record, Slurm's commands.
//! - `status`: how far a download is, from the ledger, the servers table and the job record.
//! - `dedup`: exact and near-duplicate images and test-set leaks, from the manifest.
//! - `export`: the stored images as WebDataset, parquet or a Hugging Face folder, with a card.
//! - `filter`: a keep-list of the manifest's rows by size, aspect, status and lists.
//! - `index`: the manifest of the dataset (one parquet table), from the committed shards.
//! - `refresh`: the diff of a new snapshot against an older dataset (new, unchanged, changed, gone).
//! - `remove`: takedowns: rows tombstoned so they are never fetched again, bytes purged.
//! - `verify`: checks the committed shards (and a sample or all of their images); `--repair`.

pub mod actors;
pub mod cite;
pub mod cli;
pub mod cli_dataset;
pub mod commands;
pub mod config;
pub mod dedup;
pub mod download;
pub mod environment;
pub mod exit;
pub mod export;
pub mod fetch;
pub mod filter;
pub mod forecast;
pub mod host;
pub mod imaging;
pub mod index;
pub mod licenses;
pub mod mpi_glue;
pub mod overrides;
pub mod prep;
pub mod profile;
pub mod progress;
pub mod refresh;
pub mod remove;
pub mod resize;
pub mod robots;
pub mod slurm;
pub mod status;
pub mod store;
pub mod telemetry;
pub mod verify;
