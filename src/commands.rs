//! Each subcommand's `run()`: merges flags over the config file, calls the library, prints.
//!
//! This is the edge where `anyhow` is used; errors are split into usage errors (exit 2) and
//! run failures (exit 1) for `main.rs`.

use anyhow::{anyhow, Context};

use crate::bench;
use crate::cli::{Cli, Command, PrepArgs};
use crate::config::{RawConfig, Settings};
use crate::prep::run::{self as prep_run, PrepOptions};

/// Why a subcommand stopped.
#[derive(Debug)]
pub enum Failure {
    /// The command line or the config file is wrong: nothing was done.
    Usage(anyhow::Error),
    /// The run itself failed.
    Run(anyhow::Error),
}

pub fn run(cli: Cli) -> Result<(), Failure> {
    let settings = load_settings(&cli).map_err(Failure::Usage)?;
    match cli.command {
        Command::Prep(args) => prep(&settings, args),
        Command::BenchPrep(args) => bench::prep(&args).map_err(Failure::Run),
    }
}

fn load_settings(cli: &Cli) -> anyhow::Result<Settings> {
    let raw = match &cli.config {
        Some(path) => RawConfig::from_file(path)?,
        None => RawConfig { origin: "defaults".into(), ..Default::default() },
    };
    Ok(raw.validate()?)
}

fn prep(settings: &Settings, args: PrepArgs) -> Result<(), Failure> {
    let output = args
        .output
        .clone()
        .or_else(|| settings.output_dir.clone())
        .ok_or_else(|| Failure::Usage(anyhow!("no output folder: pass --output DIR or set OUTPUT_DIR in the config file")))?;
    let batch_size = args.batch_size.unwrap_or(settings.batch_size);
    if batch_size == 0 {
        return Err(Failure::Usage(anyhow!("--batch-size must be greater than zero")));
    }
    let opts = PrepOptions {
        input: args.input,
        output,
        format: args.format,
        schema: args.schema,
        url_col: args.url_col,
        id_col: args.id_col,
        license_col: args.license_col,
        source_col: args.source_col,
        title_col: args.title_col,
        batch_size,
        initial_rate_limit: settings.initial_rate_limit,
        ignored_servers: args.ignored_servers.or_else(|| settings.ignored_servers_file.clone()),
        force: args.force,
        rows_per_bucket: args.rows_per_bucket,
    };
    let report = prep_run::run(&opts)
        .with_context(|| format!("prep of {} failed", opts.input.display()))
        .map_err(Failure::Run)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("report serialises"));
    } else {
        println!("{report}");
        println!("  report: {}", opts.output.join("prep_report.json").display());
    }
    if report.unique_urls == 0 {
        eprintln!("warning: no row passed the filters; see the dropped counts above");
    }
    Ok(())
}
