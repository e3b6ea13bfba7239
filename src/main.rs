//! Parses the command line, runs the subcommand, and maps the outcome to an exit code.
//!
//! Exit codes: 0 success; 1 the run failed (bad input, I/O, ...); 2 usage or configuration error;
//! 3 a download that committed nothing new while rows remain.

use std::process::ExitCode;

use clap::Parser;
use distributed_downloader::cli::Cli;
use distributed_downloader::commands::{self, Failure};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
        Err(Failure::Run(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
        Err(Failure::NoProgress(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(3)
        }
    }
}
