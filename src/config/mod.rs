//! The configuration file: one `.env`-style file of `SCREAMING_SNAKE` keys, read into a typed
//! [`Settings`].
//!
//! The same file is `source`-able by the Slurm scripts, so every value is written once. `keys`
//! lists the keys a file may hold ([`KEYS`]; each is described, with its default, in
//! `docs/configuration.md`, which a test holds to the code) and the defaults this module owns;
//! `read` turns a file into [`RawConfig`] and validates it into [`Settings`] (`settings`), and
//! `slurm` the keys of `submit`. A key that is not in [`KEYS`] or a value that does not parse is
//! an error naming the key and the file. CLI flags override the file (see `cli.rs`); this module
//! does not read the process environment.

use std::path::PathBuf;

mod keys;
mod read;
mod settings;
mod slurm;

pub use crate::host::rate::DEFAULT_INITIAL_RATE_LIMIT;
pub use keys::*;
pub use read::RawConfig;
pub use settings::Settings;
pub use slurm::{parse_slurm_time, SlurmSettings};

/// Errors reading or validating the configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}; check the path given to --config")]
    Read {
        path: PathBuf,
        #[source]
        source: dotenvy::Error,
    },
    #[error("unknown key `{key}` in config file {path}; known keys are: {known} (see config/example.env)")]
    UnknownKey { key: String, path: PathBuf, known: String },
    #[error("bad value for `{key}` in {origin}: {value:?} {problem}")]
    BadValue { key: String, origin: String, value: String, problem: String },
}

#[cfg(test)]
pub(crate) mod tests;
