//! The one entry of the subcommands: the job (config file and environment) resolved once, then
//! the subcommand.

use super::download::download;
use super::invocation::Invocation;
use super::prep::prep;
use super::{
    cite, dedup, export, filter, index, licenses, plan, profile, refresh, remove, resize, slurm, verify, Failure,
};
use crate::cli::{Cli, Command};

pub fn run(cli: Cli) -> Result<(), Failure> {
    let inv = Invocation::resolve(&cli)?;
    match cli.command {
        Command::Prep(args) => prep(&inv, args),
        Command::Profile(args) => profile::profile(&inv, args),
        Command::Download(args) => download(&inv, args),
        Command::Plan(args) => plan::plan(&inv, args),
        Command::Submit(args) => slurm::submit(&inv, args),
        Command::Status(args) => slurm::status(&inv, args),
        Command::Cancel(args) => slurm::cancel(&inv, args),
        Command::Verify(args) => verify::verify(&inv, args),
        Command::Index(args) => index::index(&inv, args),
        Command::Dedup(args) => dedup::dedup(&inv, args),
        Command::Licenses(args) => licenses::licenses(&inv, args),
        Command::Cite(args) => cite::cite(&inv, args),
        Command::Filter(args) => filter::filter(&inv, args),
        Command::Remove(args) => remove::remove(&inv, args),
        Command::Resize(args) => resize::resize(&inv, args),
        Command::Export(args) => export::export(&inv, args),
        Command::Refresh(args) => refresh::refresh(&inv, args),
        Command::JobEnd(args) => slurm::job_end(&inv, args),
    }
}
