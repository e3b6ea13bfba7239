//! This invocation of the tool, resolved once by `dispatch` before any subcommand starts: the
//! config file (or the defaults) validated, and the launcher's environment read. Subcommands take
//! it whole and add their own flags through [`Invocation::output`] and [`Invocation::contact`],
//! so a setting that both a flag and the config file give is merged in one place.

use std::path::PathBuf;

use anyhow::anyhow;

use super::Failure;
use crate::cli::Cli;
use crate::config::{RawConfig, Settings};
use crate::environment::Launch;

pub struct Invocation {
    /// The validated settings, with what the launcher decides filled in: `CPU_THREADS=0` under
    /// Slurm is the cores Slurm gave each rank (`SLURM_CPUS_PER_TASK`), not every core of the node.
    pub settings: Settings,
    /// The config file given with `--config`, if any (`submit` names it in the job scripts).
    pub config: Option<PathBuf>,
    /// Facts from the launcher (Slurm, MPI), read once.
    pub launch: Launch,
}

impl Invocation {
    /// The job of `cli`: its config file read and validated (a usage error naming the key and the
    /// file when it is wrong), then the environment.
    pub fn resolve(cli: &Cli) -> Result<Invocation, Failure> {
        let raw = match &cli.config {
            Some(path) => RawConfig::from_file(path).map_err(|e| Failure::Usage(e.into()))?,
            None => RawConfig { origin: "defaults".into(), ..Default::default() },
        };
        let mut settings = raw.validate().map_err(|e| Failure::Usage(e.into()))?;
        let launch = Launch::from_env();
        if settings.cpu_threads == 0 {
            if let Some(n) = launch.slurm_cpus_per_task {
                settings.cpu_threads = n;
            }
        }
        Ok(Invocation { settings, config: cli.config.clone(), launch })
    }

    /// The output folder: the subcommand's `--output` flag, else `OUTPUT_DIR` from the config
    /// file; a usage error naming both when neither is given.
    pub fn output(&self, flag: &Option<PathBuf>) -> Result<PathBuf, Failure> {
        flag.clone().or_else(|| self.settings.output_dir.clone()).ok_or_else(|| {
            Failure::Usage(anyhow!("no output folder: pass --output DIR or set OUTPUT_DIR in the config file"))
        })
    }

    /// The operator's contact of a command that sends requests (`download`, `profile`): the
    /// `--contact` flag, else `CONTACT`; required, since server operators must be able to reach
    /// whoever runs the crawl.
    pub fn contact(&self, flag: &Option<String>) -> Result<String, Failure> {
        let usage = |m: String| Failure::Usage(anyhow!(m));
        let contact = flag.clone().or_else(|| self.settings.contact.clone()).ok_or_else(|| {
            usage("no contact: server operators must be able to reach you. Pass --contact you@example.org or set CONTACT in the config file".into())
        })?;
        if contact.chars().any(|c| c.is_control()) {
            return Err(usage(format!("--contact {contact:?} contains control characters")));
        }
        Ok(contact)
    }
}
