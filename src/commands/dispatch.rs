//! The one entry of the subcommands: the settings from the config file, then the subcommand.

use super::download::download;
use super::prep::prep;
use super::{plan, profile, slurm, verify, Failure};
use crate::cli::{Cli, Command};
use crate::config::{RawConfig, Settings};

pub fn run(cli: Cli) -> Result<(), Failure> {
    let settings = load_settings(&cli).map_err(Failure::Usage)?;
    match cli.command {
        Command::Prep(args) => prep(&settings, args),
        Command::Profile(args) => profile::profile(&settings, args),
        Command::Download(args) => download(&settings, args),
        Command::Plan(args) => plan::plan(&settings, args),
        Command::Submit(args) => slurm::submit(cli.config.as_deref(), &settings, args),
        Command::Status(args) => slurm::status(&settings, args),
        Command::Cancel(args) => slurm::cancel(&settings, args),
        Command::Verify(args) => verify::verify(&settings, args),
        Command::JobEnd(args) => slurm::job_end(&settings, args),
    }
}

fn load_settings(cli: &Cli) -> anyhow::Result<Settings> {
    let raw = match &cli.config {
        Some(path) => RawConfig::from_file(path)?,
        None => RawConfig { origin: "defaults".into(), ..Default::default() },
    };
    Ok(raw.validate()?)
}
