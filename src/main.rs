//! Parses the command line, runs the subcommand, and maps the outcome to an exit code.
//!
//! Exit codes: `distributed_downloader::exit::Exit` (0 success, 1 the run failed, 2 usage or
//! configuration error, 3 a download that committed nothing new while rows remain).

use std::process::ExitCode;

use clap::Parser;
use distributed_downloader::cli::Cli;
use distributed_downloader::commands::{dispatch, Failure};
use distributed_downloader::exit::Exit;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch::run(cli) {
        Ok(()) => Exit::Success.into(),
        Err(failure) => {
            let (exit, e) = match failure {
                Failure::Usage(e) => (Exit::Usage, e),
                Failure::Run(e) => (Exit::Failed, e),
                Failure::NoProgress(e) => (Exit::NoProgress, e),
            };
            eprintln!("error: {}", causes(&e));
            exit.into()
        }
    }
}

/// The error and its causes, each said once: many messages already end with their cause (an
/// I/O error, a path), and `{:#}` would print it a second time.
fn causes(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}
