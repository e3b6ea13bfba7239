//! `dd-bench`: the benchmarks behind the Makefile's `bench-*` targets. They print figures; they
//! judge nothing by wall time alone.
//!
//! - `cli`: the command line.
//! - `gbif`: a generated GBIF-like multimedia table, and prep measured on it.
//! - `codec`: the codec limit (images per second through `process`, no network), also on a
//!   folder of files (`dd-bench codec`, what the baseline comparison runs in both binaries).
//! - `corpus`: a corpus shaped like a GBIF crawl for the codec limit.
//! - `download`: the codec limit against the end-to-end download rate on one corpus, and an
//!   earlier version's codec against ours.
//! - `politeness`: downloads on 1 and 4 ranks against scripted hosts, judged on what they saw.
//! - `scale`: rank 0's planning on a dataset of GBIF's shape (servers, batches, shards).
//! - `store`: the start of a download and `verify` on an output folder of GBIF's shape.
//! - `dedup`: `dedup` on a generated 10M-row manifest with planted duplicate groups.
//! - `index`: `index` of a generated 1M-row dataset of committed shards.
//! - `refresh`: the diff of two generated 10M-row snapshots, against DuckDB's anti-joins.
//! - `child`: a product command run as a child, with its wall time and peak memory.
//!
//! Exit codes: 0 done; 1 a benchmark could not run or a run failed; 2 usage (clap's).

mod child;
mod cli;
mod codec;
/// Only the release-build codec report (an ignored test in `codec`) uses the corpus.
#[cfg(test)]
mod corpus;
mod dedup;
mod download;
mod export;
mod gbif;
mod index;
mod politeness;
mod quality;
mod refresh;
mod scale;
mod store;

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use distributed_downloader::config::{RawConfig, Settings};

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Prep(args) => gbif::prep(args),
        Command::Download(args) => settings(&cli).and_then(|s| download::run(args, &s)),
        Command::Politeness(args) => politeness::run(args),
        Command::Scale(args) => scale::run(args),
        Command::ScalePlan(args) => scale::plan(args),
        Command::Store(args) => store::run(args),
        Command::Codec(args) => codec::run_on_folder(args),
        Command::Dedup(args) => dedup::run(args),
        Command::Index(args) => index::run(args),
        Command::Export(args) => export::run(args),
        Command::RefreshDiff(args) => refresh::run(args),
        Command::RefreshDiffChild(args) => refresh::child(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Removes a benchmark's scratch folder. Absent is fine; any other failure is only reported:
/// scratch left behind costs disk, not correctness, and must not hide the figures printed.
pub(crate) fn remove_scratch(dir: &std::path::Path) {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            eprintln!("warning: cannot remove scratch folder {}: {e}", dir.display());
        }
        _ => {}
    }
}

/// The download settings: the `--config` file's, or the defaults.
fn settings(cli: &Cli) -> anyhow::Result<Settings> {
    let raw = match &cli.config {
        Some(path) => RawConfig::from_file(path).with_context(|| format!("cannot read {}", path.display()))?,
        None => RawConfig { origin: "defaults".into(), ..Default::default() },
    };
    Ok(raw.validate()?)
}
