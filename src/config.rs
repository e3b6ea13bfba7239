//! The configuration file: one `.env`-style file of `SCREAMING_SNAKE` keys, read into a typed
//! [`Settings`].
//!
//! The same file is `source`-able by the Slurm scripts, so every value is written once. Keys are
//! documented in `config/example.env`; a key that is not in [`KEYS`] or a value that does not parse is
//! an error naming the key and the file. CLI flags override the file (see `cli.rs`); this module
//! does not read the process environment.

use std::path::{Path, PathBuf};

/// How many URLs of one server go into one batch. A batch is the unit a rank owns and commits, so
/// it trades commit overhead against work lost on a crash; 10,000 matches GBIF-scale runs.
pub const DEFAULT_BATCH_SIZE: usize = 10_000;

/// Requests per second a server starts at before anything is learned about it. Small museum
/// servers are common in GBIF, so the start is gentle; the engine raises it on success.
pub const DEFAULT_INITIAL_RATE_LIMIT: f64 = 1.0;

/// Upper bound for `BATCH_SIZE`: above this one batch no longer fits comfortably in a shard.
const MAX_BATCH_SIZE: usize = 10_000_000;

/// Every key the file may hold, with a one-line description (the long form is `config/example.env`).
pub const KEYS: &[(&str, &str)] = &[
    ("OUTPUT_DIR", "the output folder shared by every subcommand"),
    ("BATCH_SIZE", "URLs per batch of one server"),
    ("INITIAL_RATE_LIMIT", "requests/s a server starts at"),
    ("IGNORED_SERVERS_FILE", "file of server keys to leave out"),
    ("CONTACT", "operator contact put in the User-Agent"),
];

/// Errors reading or validating the configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}; check the path given to --config")]
    Read {
        path: PathBuf,
        #[source]
        source: dotenvy::Error,
    },
    #[error(
        "unknown key `{key}` in config file {path}; known keys are: {known} (see config/example.env)"
    )]
    UnknownKey { key: String, path: PathBuf, known: String },
    #[error("bad value for `{key}` in {origin}: {value:?} {problem}")]
    BadValue { key: String, origin: String, value: String, problem: String },
}

/// The configuration as read from a file, before validation. Every field is optional: missing
/// ones take their default in [`Settings`].
#[derive(Debug, Default, Clone)]
pub struct RawConfig {
    /// Where the values came from, for error messages ("file X" or "defaults").
    pub origin: String,
    pub output_dir: Option<String>,
    pub batch_size: Option<String>,
    pub initial_rate_limit: Option<String>,
    pub ignored_servers_file: Option<String>,
    pub contact: Option<String>,
}

/// Validated settings: only this type reaches the subcommands.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub output_dir: Option<PathBuf>,
    pub batch_size: usize,
    pub initial_rate_limit: f64,
    pub ignored_servers_file: Option<PathBuf>,
    pub contact: Option<String>,
}

impl RawConfig {
    /// Reads `path` as a dotenv file. Unknown keys are an error; values are checked by
    /// [`RawConfig::validate`].
    pub fn from_file(path: &Path) -> Result<RawConfig, ConfigError> {
        let read_err = |source| ConfigError::Read { path: path.to_path_buf(), source };
        let iter = dotenvy::from_path_iter(path).map_err(read_err)?;
        let mut raw = RawConfig { origin: format!("config file {}", path.display()), ..Default::default() };
        for item in iter {
            let (key, value) = item.map_err(read_err)?;
            let slot = match key.as_str() {
                "OUTPUT_DIR" => &mut raw.output_dir,
                "BATCH_SIZE" => &mut raw.batch_size,
                "INITIAL_RATE_LIMIT" => &mut raw.initial_rate_limit,
                "IGNORED_SERVERS_FILE" => &mut raw.ignored_servers_file,
                "CONTACT" => &mut raw.contact,
                _ => {
                    let known = KEYS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ");
                    return Err(ConfigError::UnknownKey { key, path: path.to_path_buf(), known });
                }
            };
            *slot = Some(value);
        }
        Ok(raw)
    }

    /// Checks every value and fills in defaults. Empty values count as unset, so a documented
    /// `KEY=` line in a copied example file does no harm.
    pub fn validate(self) -> Result<Settings, ConfigError> {
        let origin = self.origin.clone();
        let bad = |key: &str, value: &str, problem: &str| ConfigError::BadValue {
            key: key.to_string(),
            origin: if origin.is_empty() { "defaults".to_string() } else { origin.clone() },
            value: value.to_string(),
            problem: problem.to_string(),
        };
        let nonempty = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());

        let batch_size = match nonempty(self.batch_size) {
            None => DEFAULT_BATCH_SIZE,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_BATCH_SIZE).contains(&n) => n,
                _ => {
                    return Err(bad(
                        "BATCH_SIZE",
                        &v,
                        &format!("must be a whole number from 1 to {MAX_BATCH_SIZE}"),
                    ))
                }
            },
        };
        let initial_rate_limit = match nonempty(self.initial_rate_limit) {
            None => DEFAULT_INITIAL_RATE_LIMIT,
            Some(v) => match v.parse::<f64>() {
                Ok(r) if r.is_finite() && r > 0.0 => r,
                _ => {
                    return Err(bad(
                        "INITIAL_RATE_LIMIT",
                        &v,
                        "must be a positive number of requests per second, e.g. 1 or 0.5",
                    ))
                }
            },
        };
        Ok(Settings {
            output_dir: nonempty(self.output_dir).map(PathBuf::from),
            batch_size,
            initial_rate_limit,
            ignored_servers_file: nonempty(self.ignored_servers_file).map(PathBuf::from),
            contact: nonempty(self.contact),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write_env(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn defaults_apply_when_keys_are_missing_or_empty() {
        let f = write_env("BATCH_SIZE=\n# a comment\nCONTACT=me@example.org\n");
        let s = RawConfig::from_file(f.path()).unwrap().validate().unwrap();
        assert_eq!(s.batch_size, DEFAULT_BATCH_SIZE);
        assert_eq!(s.initial_rate_limit, DEFAULT_INITIAL_RATE_LIMIT);
        assert_eq!(s.contact.as_deref(), Some("me@example.org"));
    }

    #[test]
    fn unknown_key_names_the_key_and_the_file() {
        let f = write_env("BATCH_SIZ=5\n");
        let err = RawConfig::from_file(f.path()).unwrap_err().to_string();
        assert!(err.contains("BATCH_SIZ"), "{err}");
        assert!(err.contains(&f.path().display().to_string()), "{err}");
    }

    #[test]
    fn malformed_value_names_the_key_and_the_file() {
        let f = write_env("BATCH_SIZE=ten\n");
        let err = RawConfig::from_file(f.path()).unwrap().validate().unwrap_err().to_string();
        assert!(err.contains("BATCH_SIZE") && err.contains("ten"), "{err}");
        assert!(err.contains(&f.path().display().to_string()), "{err}");
        let f = write_env("INITIAL_RATE_LIMIT=-2\n");
        let err = RawConfig::from_file(f.path()).unwrap().validate().unwrap_err().to_string();
        assert!(err.contains("INITIAL_RATE_LIMIT"), "{err}");
    }

    #[test]
    fn example_env_documents_every_key() {
        let text = include_str!("../config/example.env");
        for (key, _) in KEYS {
            assert!(text.contains(&format!("{key}=")), "config/example.env lacks {key}");
        }
        // And the example itself must be a valid config.
        let f = write_env(text);
        RawConfig::from_file(f.path()).unwrap().validate().unwrap();
    }
}
