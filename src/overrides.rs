//! Per-server overrides: a small TOML file where a user sets a server's starting rate, ceiling
//! and in-flight cap, or excludes it. They win over everything learned or profiled, and they live
//! in their own file, so `prep --force`, `profile --force` and learned state never touch them.
//!
//! ```toml
//! ["images.example.org"]
//! initial_rate = 5      # requests/s to start at (instead of profiled or learned)
//! max_rate = 20         # ceiling (instead of MAX_RATE_LIMIT)
//! max_in_flight = 4     # instead of MAX_IN_FLIGHT_PER_HOST
//!
//! ["fragile.museum.org"]
//! exclude = true        # never downloaded; its rows stay for a later run
//! ```
//!
//! The file is `SERVER_OVERRIDES`, else `<output>/overrides.toml` when it exists. Table names are
//! server names as `status` lists them. A name that is not in the servers table is reported with
//! the key it likely meant (`unknown_report`), not an error unless `--strict-overrides`: the list
//! may be shared between datasets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::Settings;

/// The default file name in the output folder.
pub use crate::store::paths::OVERRIDES_FILE as FILE_NAME;

/// One server's overrides; unset fields keep the usual value.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerOverride {
    /// Requests per second to start at.
    pub initial_rate: Option<f64>,
    /// Highest rate the host is raised to.
    pub max_rate: Option<f64>,
    /// Most requests in flight to the host at once.
    pub max_in_flight: Option<u32>,
    /// Not downloaded at all.
    #[serde(default)]
    pub exclude: bool,
}

/// Every server's overrides, and where they came from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    pub servers: BTreeMap<String, ServerOverride>,
    /// The file read, if any.
    pub path: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum OverridesError {
    #[error("cannot read the server overrides file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error(
        "the server overrides file {path} is not valid: {message}\nEach server is a table: \
         [\"server.name\"] with initial_rate, max_rate, max_in_flight or exclude = true (see config/example.env)"
    )]
    Parse { path: PathBuf, message: String },
    #[error("the server overrides file {path}: server {server}: {problem}")]
    Invalid { path: PathBuf, server: String, problem: String },
}

/// What a host runs with once overrides are applied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Effective {
    pub initial_rate: f64,
    pub max_rate: f64,
    pub max_in_flight: u32,
    pub excluded: bool,
    /// Whether any override applies to the host.
    pub overridden: bool,
}

impl Overrides {
    /// The overrides of the output folder `out`: `SERVER_OVERRIDES`, else `<out>/overrides.toml`
    /// when it exists, else none. A file named by `SERVER_OVERRIDES` must exist.
    pub fn load(out: &Path, settings: &Settings) -> Result<Overrides, OverridesError> {
        let path = match &settings.server_overrides {
            Some(p) => p.clone(),
            None => {
                let p = out.join(FILE_NAME);
                if !p.exists() {
                    return Ok(Overrides::default());
                }
                p
            }
        };
        let text =
            std::fs::read_to_string(&path).map_err(|source| OverridesError::Read { path: path.clone(), source })?;
        Overrides::parse(&text, &path)
    }

    /// Parses and checks `text` (read from `path`, which errors name).
    pub fn parse(text: &str, path: &Path) -> Result<Overrides, OverridesError> {
        let servers: BTreeMap<String, ServerOverride> = toml::from_str(text).map_err(|e| OverridesError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim().to_string(),
        })?;
        for (server, o) in &servers {
            let bad = |problem: &str| OverridesError::Invalid {
                path: path.to_path_buf(),
                server: server.clone(),
                problem: problem.to_string(),
            };
            let rate_ok = |r: Option<f64>| r.is_none_or(|r| r.is_finite() && r > 0.0);
            if !rate_ok(o.initial_rate) {
                return Err(bad("initial_rate must be a positive number of requests per second"));
            }
            if !rate_ok(o.max_rate) {
                return Err(bad("max_rate must be a positive number of requests per second"));
            }
            if o.max_in_flight == Some(0) {
                return Err(bad("max_in_flight must be at least 1"));
            }
            if let (Some(i), Some(m)) = (o.initial_rate, o.max_rate) {
                if i > m {
                    return Err(bad(&format!("initial_rate {i} is above max_rate {m}")));
                }
            }
        }
        Ok(Overrides { servers, path: Some(path.to_path_buf()) })
    }

    pub fn get(&self, server: &str) -> Option<&ServerOverride> {
        self.servers.get(server)
    }

    pub fn excluded(&self, server: &str) -> bool {
        self.get(server).is_some_and(|o| o.exclude)
    }

    /// What `server` runs with: its table's starting rate (`table_rate`, profiled or prep's
    /// default) and the configured ceilings, with its overrides on top.
    pub fn effective(&self, server: &str, table_rate: f64, settings: &Settings) -> Effective {
        let o = self.get(server);
        let max_rate = o.and_then(|o| o.max_rate).unwrap_or(settings.max_rate_limit);
        Effective {
            initial_rate: o.and_then(|o| o.initial_rate).unwrap_or(table_rate).min(max_rate),
            max_rate,
            max_in_flight: o.and_then(|o| o.max_in_flight).unwrap_or(settings.max_in_flight_per_host),
            excluded: o.is_some_and(|o| o.exclude),
            overridden: o.is_some(),
        }
    }

    /// Names in the file that are not among `known` servers, for a warning.
    pub fn unknown<'a>(&'a self, known: &std::collections::HashSet<&str>) -> Vec<&'a str> {
        self.servers.keys().map(String::as_str).filter(|s| !known.contains(s)).collect()
    }

    /// One sentence on the names in the file that are not among `known` server keys, each with
    /// the key it most likely meant (another case, `host:port` for `host_port`, a URL, a typo);
    /// `None` when every name is a server. Such an override applies to nothing: a server the
    /// user meant to exclude would still be crawled.
    pub fn unknown_report(&self, known: &[&str]) -> Option<String> {
        let set: std::collections::HashSet<&str> = known.iter().copied().collect();
        let unknown = self.unknown(&set);
        if unknown.is_empty() {
            return None;
        }
        let named: Vec<String> = unknown
            .iter()
            .map(|name| match closest(name, known) {
                Some(key) => format!("{name:?} (did you mean {key:?}?)"),
                None => format!("{name:?}"),
            })
            .collect();
        let file = self.path.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        Some(format!(
            "{} server name(s) in {file} are not servers of this dataset, so their overrides apply to nothing: {}. \
             Names are server keys as `status` lists them (lowercase, `host_port` for a port)",
            unknown.len(),
            named.join(", ")
        ))
    }
}

/// The server key `name` most likely means: the same key once spelled as one (lowercase, no
/// scheme or path, `:` as `_`), else the nearest key within a few typed characters.
fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let lower = name.trim().to_ascii_lowercase();
    let bare = lower.trim_start_matches("https://").trim_start_matches("http://");
    let spelled = bare.split('/').next().unwrap_or_default().replace(':', "_");
    if let Some(k) = known.iter().find(|k| **k == spelled) {
        return Some(k);
    }
    let (best, distance) = known.iter().map(|k| (*k, edit_distance(&spelled, k))).min_by_key(|(_, d)| *d)?;
    (distance <= 2.max(spelled.len() / 8)).then_some(best)
}

/// Levenshtein distance in bytes (server keys are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut diagonal = row[0];
        row[0] = i;
        for j in 1..=b.len() {
            let above = row[j];
            row[j] = (row[j] + 1).min(row[j - 1] + 1).min(diagonal + usize::from(a[i - 1] != b[j - 1]));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        crate::config::RawConfig::default().validate().unwrap()
    }

    #[test]
    fn overrides_win_over_the_table_and_the_configured_ceilings() {
        let text = "[\"cdn.example.org\"]\ninitial_rate = 5\nmax_rate = 40\nmax_in_flight = 8\n\n\
                    [\"museum.org\"]\nexclude = true\n\n[\"slow.org\"]\nmax_rate = 0.5\n";
        let o = Overrides::parse(text, Path::new("o.toml")).unwrap();
        let s = settings();
        let cdn = o.effective("cdn.example.org", 1.0, &s);
        assert_eq!((cdn.initial_rate, cdn.max_rate, cdn.max_in_flight, cdn.excluded), (5.0, 40.0, 8, false));
        assert!(o.excluded("museum.org") && o.effective("museum.org", 1.0, &s).excluded);
        let slow = o.effective("slow.org", 3.0, &s);
        assert_eq!(slow.initial_rate, 0.5, "a profiled start above the ceiling is brought down to it");
        let plain = o.effective("other.org", 3.0, &s);
        assert_eq!((plain.initial_rate, plain.max_rate, plain.overridden), (3.0, s.max_rate_limit, false));
        let known: std::collections::HashSet<&str> = ["cdn.example.org", "museum.org"].into();
        assert_eq!(o.unknown(&known), ["slow.org"]);
    }

    #[test]
    fn names_that_are_not_servers_are_reported_with_the_key_they_likely_meant() {
        let text = "[\"Fragile.Museum.org\"]\nexclude = true\n[\"host:8080\"]\nexclude = true\n\
                    [\"images.exmaple.org\"]\nmax_rate = 1\n[\"elsewhere.net\"]\nmax_rate = 1\n[\"a.org\"]\nmax_rate = 1\n";
        let o = Overrides::parse(text, Path::new("o.toml")).unwrap();
        let known = ["fragile.museum.org", "host_8080", "images.example.org", "a.org"];
        let report = o.unknown_report(&known).unwrap();
        assert!(report.starts_with("4 server name(s) in o.toml"), "{report}");
        assert!(report.contains("\"Fragile.Museum.org\" (did you mean \"fragile.museum.org\"?)"), "{report}");
        assert!(report.contains("\"host:8080\" (did you mean \"host_8080\"?)"), "{report}");
        assert!(report.contains("\"images.exmaple.org\" (did you mean \"images.example.org\"?)"), "{report}");
        assert!(report.contains("\"elsewhere.net\",") || report.contains("\"elsewhere.net\"."), "no guess: {report}");
        let exact = Overrides::parse("[\"a.org\"]\nmax_rate = 1\n", Path::new("o.toml")).unwrap();
        assert_eq!(exact.unknown_report(&known), None);
    }

    #[test]
    fn bad_files_name_the_server_and_the_problem() {
        let err = |t: &str| Overrides::parse(t, Path::new("o.toml")).unwrap_err().to_string();
        assert!(err("[\"a.org\"]\nmax_rate = -1\n").contains("server a.org: max_rate must be a positive"));
        assert!(err("[\"a.org\"]\ninitial_rate = 9\nmax_rate = 2\n").contains("initial_rate 9 is above max_rate 2"));
        assert!(err("[\"a.org\"]\nmax_in_flight = 0\n").contains("at least 1"));
        let typo = err("[\"a.org\"]\nmax_rat = 2\n");
        assert!(typo.contains("max_rat") && typo.contains("o.toml"), "{typo}");
        assert!(err("a.org = 3\n").contains("not valid"));
    }
}
