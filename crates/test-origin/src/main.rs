//! `test-origin`: the test origin as a process (see `cli`). Exit 1 on any error, 2 on bad usage
//! (clap's own).

use clap::Parser;
use test_origin::cli::{self, OriginArgs};

fn main() -> std::process::ExitCode {
    match cli::run(&OriginArgs::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
