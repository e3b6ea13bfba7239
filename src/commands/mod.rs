//! The subcommands: each merges flags over the config file, calls the library, prints.
//!
//! This is the edge where `anyhow` is used; errors are split into usage errors (exit 2), run
//! failures (exit 1) and a download that changed nothing (exit 3) for `main.rs`. `dispatch::run`
//! is the entry: it resolves the `invocation` once (config file, environment; the output folder
//! and contact from flags over config); `edges` is what several subcommands do around their work
//! (lock, overrides check, metrics exporter); `prep`, `download`, `profile`, `plan`, `verify`, `index`, `dedup`, `licenses`, `cite`, `filter`, `remove`, `resize`, `export`, `refresh` and
//! `slurm` (submit, status, cancel, job-end) are one file each.

mod cite;
mod dedup;
pub mod dispatch;
mod download;
mod edges;
mod export;
mod filter;
mod index;
mod invocation;
mod licenses;
mod plan;
mod prep;
mod profile;
mod refresh;
mod remove;
mod resize;
mod slurm;
mod verify;

/// Why a subcommand stopped.
#[derive(Debug)]
pub enum Failure {
    /// The command line or the config file is wrong: nothing was done.
    Usage(anyhow::Error),
    /// The run itself failed.
    Run(anyhow::Error),
    /// The download stopped with rows remaining and committed not one new record: running it
    /// again as it is would do the same (a Slurm chain stops on this).
    NoProgress(anyhow::Error),
}
