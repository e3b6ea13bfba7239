//! Reading a config file: its raw key/value pairs, then each value checked and defaulted into
//! [`Settings`], with errors naming the key and the file.

use std::path::{Path, PathBuf};

use super::keys::*;
use super::DEFAULT_INITIAL_RATE_LIMIT;
use super::{ConfigError, Settings};
use crate::actors::writer::policy;
use crate::fetch::deadlines;
use crate::host::{rate, retry};
use crate::imaging::{self, Reencode, StoreAs};

/// The configuration as read from a file, before validation: key -> raw value.
#[derive(Debug, Default, Clone)]
pub struct RawConfig {
    /// Where the values came from, for error messages ("config file X" or "defaults").
    pub origin: String,
    pub values: std::collections::BTreeMap<String, String>,
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
            if !KEYS.contains(&key.as_str()) {
                let known = KEYS.join(", ");
                return Err(ConfigError::UnknownKey { key, path: path.to_path_buf(), known });
            }
            raw.values.insert(key, value);
        }
        Ok(raw)
    }

    /// Checks every value and fills in defaults. Empty values count as unset, so a documented
    /// `KEY=` line in a copied example file does no harm.
    pub fn validate(self) -> Result<Settings, ConfigError> {
        let v = Values { raw: &self };
        let secs = |key: &str, default: f64| -> Result<std::time::Duration, ConfigError> {
            let s =
                v.parse(key, default, |x: &f64| x.is_finite() && *x > 0.0, "must be a positive number of seconds")?;
            Ok(std::time::Duration::from_secs_f64(s))
        };
        Ok(Settings {
            output_dir: v.text("OUTPUT_DIR").map(PathBuf::from),
            batch_size: v.parse(
                "BATCH_SIZE",
                DEFAULT_BATCH_SIZE,
                |n| (1..=MAX_BATCH_SIZE).contains(n),
                &format!("must be a whole number from 1 to {MAX_BATCH_SIZE}"),
            )?,
            initial_rate_limit: v.parse(
                "INITIAL_RATE_LIMIT",
                DEFAULT_INITIAL_RATE_LIMIT,
                |r: &f64| r.is_finite() && *r > 0.0,
                "must be a positive number of requests per second, e.g. 1 or 0.5",
            )?,
            ignored_servers_file: v.text("IGNORED_SERVERS_FILE").map(PathBuf::from),
            contact: v.text("CONTACT"),
            crawl_info_url: v.info_url("CRAWL_INFO_URL")?,
            resolve: v.pins("RESOLVE")?,
            max_side: v.parse(
                "MAX_SIDE",
                imaging::DEFAULT_MAX_SIDE,
                |n| (16..=65535).contains(n),
                "must be a whole number of pixels from 16 to 65535",
            )?,
            jpeg_quality: v.parse(
                "JPEG_QUALITY",
                imaging::DEFAULT_JPEG_QUALITY,
                |q| (1..=100).contains(q),
                "must be from 1 to 100",
            )?,
            reencode: match v.text("REENCODE").as_deref() {
                None | Some("auto") => Reencode::Auto,
                Some("always") => Reencode::Always,
                Some(other) => return Err(v.bad("REENCODE", other, "must be `auto` or `always`")),
            },
            store: match v.text("STORE").as_deref() {
                None | Some("encoded") => StoreAs::Encoded,
                Some("raw_rgb") => StoreAs::RawRgb,
                Some(other) => return Err(v.bad("STORE", other, "must be `encoded` or `raw_rgb`")),
            },
            max_pixels: v.parse(
                "MAX_PIXELS",
                imaging::DEFAULT_MAX_PIXELS,
                |n| *n >= 1_000_000,
                "must be at least 1000000",
            )?,
            max_body_bytes: v.parse("MAX_BODY_MB", DEFAULT_MAX_BODY_MB, |n| *n >= 1, "must be at least 1 (MB)")? << 20,
            request_timeout: secs("REQUEST_TIMEOUT_SECS", deadlines::DEFAULT_REQUEST_TIMEOUT_SECS)?,
            head_timeout: secs("HEAD_TIMEOUT_SECS", deadlines::DEFAULT_HEAD_TIMEOUT_SECS)?,
            idle_timeout: secs("IDLE_TIMEOUT_SECS", deadlines::DEFAULT_IDLE_TIMEOUT_SECS)?,
            min_transfer_bytes_per_sec: v.parse(
                "MIN_TRANSFER_KB_PER_SEC",
                deadlines::DEFAULT_MIN_TRANSFER_KB_PER_SEC,
                |r: &f64| r.is_finite() && *r >= 0.0,
                "must be 0 or more (KB/s; 0 turns the check off)",
            )? * 1e3,
            connect_timeout: secs("CONNECT_TIMEOUT_SECS", DEFAULT_CONNECT_TIMEOUT_SECS)?,
            max_retries: v.parse("MAX_RETRIES", retry::DEFAULT_MAX_RETRIES, |n| *n <= 50, "must be from 0 to 50")?,
            max_rate_limit: v.parse(
                "MAX_RATE_LIMIT",
                rate::DEFAULT_MAX_RATE,
                |r: &f64| r.is_finite() && *r > 0.0,
                "must be a positive number of requests per second",
            )?,
            max_in_flight_per_host: v.parse(
                "MAX_IN_FLIGHT_PER_HOST",
                rate::DEFAULT_MAX_IN_FLIGHT,
                |n| (1..=64).contains(n),
                "must be from 1 to 64",
            )?,
            max_requests_in_flight: v.parse(
                "MAX_REQUESTS_IN_FLIGHT",
                DEFAULT_MAX_REQUESTS_IN_FLIGHT,
                |n| (1..=100_000).contains(n),
                "must be from 1 to 100000",
            )?,
            cpu_threads: v.parse(
                "CPU_THREADS",
                0usize,
                |n| *n <= 4096,
                "must be a number of threads, 0 for one per core",
            )?,
            cpu_queue_bytes: v.parse("CPU_QUEUE_MB", DEFAULT_CPU_QUEUE_MB, |n| *n >= 16, "must be at least 16 (MB)")?
                << 20,
            backoff_base: secs("BACKOFF_BASE_SECS", retry::DEFAULT_BACKOFF_BASE.as_secs_f64())?,
            park: secs("PARK_SECS", retry::DEFAULT_FIRST_PARK.as_secs_f64())?,
            round: secs("ROUND_SECS", DEFAULT_ROUND_SECS)?,
            commit_interval: secs("COMMIT_SECS", policy::SHARD_MAX_AGE.as_secs_f64())?,
            commit_rows: v.parse("COMMIT_ROWS", policy::SHARD_MAX_ROWS, |n| *n >= 1, "must be at least 1")?,
            min_round: std::time::Duration::from_secs_f64(v.parse(
                "MIN_ROUND_SECS",
                DEFAULT_MIN_ROUND_SECS,
                |x: &f64| x.is_finite() && *x >= 0.0,
                "must be 0 or more seconds",
            )?),
            rank_images_per_sec: v.parse(
                "RANK_IMAGES_PER_SEC",
                0.0,
                |r: &f64| r.is_finite() && *r >= 0.0,
                "must be a number of images per second, 0 to estimate",
            )?,
            opt_out_tags: match v.text("OPT_OUT_TAGS").as_deref() {
                None => crate::robots::DEFAULT_OPT_OUT_TAGS.iter().map(|t| t.to_string()).collect(),
                // An explicit choice: store whatever the headers say.
                Some("none") => Vec::new(),
                Some(list) => {
                    list.split(',').map(|t| t.trim().to_ascii_lowercase()).filter(|t| !t.is_empty()).collect()
                }
            },
            md5: match v.text("MD5").as_deref() {
                None | Some("off") => false,
                Some("on") => true,
                Some(other) => return Err(v.bad("MD5", other, "must be `on` or `off`")),
            },
            robots: match v.text("ROBOTS").as_deref() {
                None | Some("obey") => crate::robots::RobotsPolicy::Obey,
                Some("ignore") => crate::robots::RobotsPolicy::Ignore,
                Some(other) => return Err(v.bad("ROBOTS", other, "must be `obey` or `ignore`")),
            },
            robots_cache: std::time::Duration::from_secs_f64(
                3600.0
                    * v.parse(
                        "ROBOTS_CACHE_HOURS",
                        DEFAULT_ROBOTS_CACHE_HOURS,
                        |h: &f64| h.is_finite() && (0.0..=24.0 * 365.0).contains(h),
                        "must be a number of hours from 0 (ask again every run) to 8760",
                    )?,
            ),
            server_overrides: v.text("SERVER_OVERRIDES").map(PathBuf::from),
            profile_samples: v.parse(
                "PROFILE_SAMPLES",
                DEFAULT_PROFILE_SAMPLES,
                |n| (1..=20).contains(n),
                "must be a number of requests from 1 to 20",
            )?,
            metrics: crate::telemetry::exporter::ExporterSettings {
                addr: v.parse(
                    "METRICS_ADDR",
                    DEFAULT_METRICS_ADDR,
                    |_| true,
                    "must be an IP address: 127.0.0.1 (this node only) or 0.0.0.0 (every interface)",
                )?,
                port: v.parse(
                    "METRICS_PORT",
                    DEFAULT_METRICS_PORT,
                    |_| true,
                    "must be a port from 0 (off) to 65535",
                )?,
                host_labels: v.parse(
                    "METRICS_HOST_LABELS",
                    crate::telemetry::events::HOST_LABEL_CAP,
                    |n| *n <= 1_000_000,
                    "must be a number of hosts from 0 to 1000000",
                )?,
            },
            slurm: v.slurm()?,
        })
    }
}

/// Typed access to raw values, with errors naming the key and where it came from.
pub(super) struct Values<'a> {
    raw: &'a RawConfig,
}

impl Values<'_> {
    pub(super) fn text(&self, key: &str) -> Option<String> {
        self.raw.values.get(key).map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
    }

    pub(super) fn bad(&self, key: &str, value: &str, problem: &str) -> ConfigError {
        let origin = if self.raw.origin.is_empty() { "defaults".to_string() } else { self.raw.origin.clone() };
        ConfigError::BadValue { key: key.to_string(), origin, value: value.to_string(), problem: problem.to_string() }
    }

    /// `name=address` pairs separated by commas: a host name and the IP address it is pinned to.
    fn pins(&self, key: &str) -> Result<Vec<(String, std::net::IpAddr)>, ConfigError> {
        let Some(text) = self.text(key) else { return Ok(Vec::new()) };
        let problem = "must be `name=address` pairs separated by commas, e.g. museum.example.org=192.0.2.7";
        let mut pins = Vec::new();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, addr) = pair.split_once('=').ok_or_else(|| self.bad(key, &text, problem))?;
            let (name, addr) = (name.trim().to_ascii_lowercase(), addr.trim());
            let ip =
                addr.parse().map_err(|_| self.bad(key, &text, &format!("{problem}; `{addr}` is not an IP address")))?;
            if name.is_empty() || name.parse::<std::net::IpAddr>().is_ok() || name.contains([':', '/', ' ']) {
                return Err(self.bad(key, &text, &format!("{problem}; `{name}` is not a host name")));
            }
            pins.push((name, ip));
        }
        Ok(pins)
    }

    /// An http(s) URL a header may carry (no spaces or control characters), if set.
    fn info_url(&self, key: &str) -> Result<Option<String>, ConfigError> {
        let Some(url) = self.text(key) else { return Ok(None) };
        let web = url.starts_with("https://") || url.starts_with("http://");
        if !web || url.chars().any(|c| c.is_whitespace() || c.is_control() || c == ';' || c == ')') {
            return Err(self.bad(
                key,
                &url,
                "must be an http(s) URL without spaces, `;` or `)`, e.g. https://example.org/crawl",
            ));
        }
        Ok(Some(url))
    }

    pub(super) fn parse<T: std::str::FromStr>(
        &self,
        key: &str,
        default: T,
        ok: impl Fn(&T) -> bool,
        problem: &str,
    ) -> Result<T, ConfigError> {
        match self.text(key) {
            None => Ok(default),
            Some(v) => match v.parse::<T>() {
                Ok(x) if ok(&x) => Ok(x),
                _ => Err(self.bad(key, &v, problem)),
            },
        }
    }
}
