//! The configuration file: one `.env`-style file of `SCREAMING_SNAKE` keys, read into a typed
//! [`Settings`].
//!
//! The same file is `source`-able by the Slurm scripts, so every value is written once. Keys are
//! documented in `config/example.env`; a key that is not in [`KEYS`] or a value that does not parse is
//! an error naming the key and the file. CLI flags override the file (see `cli.rs`); this module
//! does not read the process environment.

use std::path::{Path, PathBuf};

use crate::actors::server::{rate, retry};
use crate::actors::writer::policy;
use crate::fetch::deadlines;
use crate::imaging::{self, Reencode, StoreAs};

mod slurm;
pub use slurm::{parse_slurm_time, SlurmSettings};

/// How many URLs of one server go into one batch. A batch is the unit a rank owns and commits, so
/// it trades commit overhead against work lost on a crash; 10,000 matches GBIF-scale runs.
pub const DEFAULT_BATCH_SIZE: usize = 10_000;

/// Requests per second a server starts at (owned by the rate controller, which uses it).
pub use crate::actors::server::rate::DEFAULT_INITIAL_RATE_LIMIT;

/// Upper bound for `BATCH_SIZE`: above this one batch no longer fits comfortably in a shard.
const MAX_BATCH_SIZE: usize = 10_000_000;

// Image, rate, retry and parking defaults are owned by the modules that use them
// (`imaging::settings`, `actors::server::{rate, retry}`); this file only reads the keys.
/// Largest body read, in MB. Herbarium TIFFs reach ~100 MB; twice that leaves headroom.
pub const DEFAULT_MAX_BODY_MB: u64 = 200;
/// Connect deadline in seconds: a live server accepts within a few seconds even when loaded.
pub const DEFAULT_CONNECT_TIMEOUT_SECS: f64 = 15.0;
/// Requests in flight over all hosts of a rank: each holds at most one body in memory.
pub const DEFAULT_MAX_REQUESTS_IN_FLIGHT: usize = 256;
/// Longest a round goes on while a rank is out of work and work could move, in seconds: 30
/// minutes bounds how long a plan built on wrong estimates keeps a rank idle (see
/// `download::rounds`).
pub const DEFAULT_ROUND_SECS: f64 = 1800.0;
/// Shortest round that a quarter of idle ranks may end, in seconds: 5 minutes keeps the drain
/// and restart of a round end a small part of it.
pub const DEFAULT_MIN_ROUND_SECS: f64 = 300.0;
/// Memory for bodies waiting for a CPU worker, in MB: the backpressure between network and CPU.
pub const DEFAULT_CPU_QUEUE_MB: u64 = 1024;

/// Every key the file may hold, with a one-line description (the long form is `config/example.env`).
pub const KEYS: &[(&str, &str)] = &[
    ("OUTPUT_DIR", "the output folder shared by every subcommand"),
    ("BATCH_SIZE", "URLs per batch of one server"),
    ("INITIAL_RATE_LIMIT", "requests/s a server starts at"),
    ("IGNORED_SERVERS_FILE", "file of server keys to leave out"),
    ("CONTACT", "operator contact put in the User-Agent"),
    ("CRAWL_INFO_URL", "a page about your crawl, put in the User-Agent"),
    ("RESOLVE", "host names pinned to addresses, `name=address` pairs separated by commas"),
    ("MAX_SIDE", "longest side of a stored image"),
    ("JPEG_QUALITY", "quality of re-encoded JPEGs"),
    ("REENCODE", "auto or always"),
    ("STORE", "encoded or raw_rgb"),
    ("MAX_PIXELS", "decompression-bomb limit"),
    ("MD5", "`on` also stores each original's MD5 (the old tool's hashsum_original); `off` by default"),
    ("MAX_BODY_MB", "largest body read"),
    ("REQUEST_TIMEOUT_SECS", "ceiling of one request, however it progresses"),
    ("HEAD_TIMEOUT_SECS", "limit to the response head, connect included"),
    ("IDLE_TIMEOUT_SECS", "limit with no body data"),
    ("MIN_TRANSFER_KB_PER_SEC", "slowest average body transfer kept, judged after IDLE_TIMEOUT_SECS"),
    ("CONNECT_TIMEOUT_SECS", "connect deadline"),
    ("MAX_RETRIES", "retries of retriable failures"),
    ("MAX_RATE_LIMIT", "ceiling of a host's rate"),
    ("MAX_IN_FLIGHT_PER_HOST", "concurrent requests per host"),
    ("MAX_REQUESTS_IN_FLIGHT", "concurrent requests per rank"),
    ("CPU_THREADS", "image workers (0 = all cores)"),
    ("CPU_QUEUE_MB", "memory for bodies waiting for a worker"),
    ("BACKOFF_BASE_SECS", "first backoff after a 5xx or transport failure"),
    ("PARK_SECS", "first parking of an unreachable host"),
    ("RANK_IMAGES_PER_SEC", "images/s one rank can process, for the planner"),
    ("ROUND_SECS", "longest round while a rank is idle and work could move, on many ranks"),
    ("MIN_ROUND_SECS", "shortest round that a quarter of idle ranks may end, on many ranks"),
    ("COMMIT_SECS", "longest a finished row waits before its shard is committed"),
    ("COMMIT_ROWS", "most rows in one committed shard"),
    ("OPT_OUT_TAGS", "X-Robots-Tag directives that stop an image from being stored"),
    ("ROBOTS", "`obey` robots.txt (ask each host once per run), or `ignore` it (with a warning)"),
    ("ROBOTS_CACHE_HOURS", "how long a host's robots.txt answer is reused by later runs"),
    ("SERVER_OVERRIDES", "TOML file of per-server starting rate, ceiling, in-flight cap or exclusion"),
    ("PROFILE_SAMPLES", "sample requests `profile` sends to each server"),
    ("METRICS_ADDR", "address each rank's Prometheus exporter listens on (0.0.0.0 on a cluster)"),
    ("METRICS_PORT", "base port of the exporters: rank port = base + local rank; 0 turns them off"),
    ("METRICS_HOST_LABELS", "hosts with their own `host` label per rank; the rest are `other`"),
    ("SLURM_ACCOUNT", "Slurm account charged for the jobs `submit` queues"),
    ("SLURM_PARTITION", "Slurm partition of the jobs"),
    ("SLURM_QOS", "Slurm QoS of the jobs"),
    ("SLURM_NODES", "nodes per download job"),
    ("SLURM_TASKS_PER_NODE", "ranks per node of a download job"),
    ("SLURM_CPUS_PER_TASK", "cores of each rank"),
    ("SLURM_MEM", "memory per node of a download job, in Slurm's form (e.g. 64G)"),
    ("SLURM_TIME", "time limit of one download job (e.g. 24:00:00)"),
    ("SLURM_CHAIN_JOBS", "download jobs `submit` chains one after the other"),
    ("SLURM_PREP_TIME", "time limit of the prep job"),
    ("SLURM_PREP_MEM", "memory of the prep job"),
    ("SLURM_PREP_CPUS", "cores of the prep job"),
    ("SLURM_EXTRA_ARGS", "more sbatch options for every job, e.g. --constraint=cpu"),
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
    #[error("unknown key `{key}` in config file {path}; known keys are: {known} (see config/example.env)")]
    UnknownKey { key: String, path: PathBuf, known: String },
    #[error("bad value for `{key}` in {origin}: {value:?} {problem}")]
    BadValue { key: String, origin: String, value: String, problem: String },
}

/// The configuration as read from a file, before validation: key -> raw value.
#[derive(Debug, Default, Clone)]
pub struct RawConfig {
    /// Where the values came from, for error messages ("config file X" or "defaults").
    pub origin: String,
    pub values: std::collections::BTreeMap<String, String>,
}

/// Validated settings: only this type reaches the subcommands.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub output_dir: Option<PathBuf>,
    pub batch_size: usize,
    pub initial_rate_limit: f64,
    pub ignored_servers_file: Option<PathBuf>,
    pub contact: Option<String>,
    /// A page about the operator's crawl, put in the User-Agent (`CRAWL_INFO_URL`).
    pub crawl_info_url: Option<String>,
    /// Host names answered with these addresses instead of the DNS (`RESOLVE`), like curl's
    /// `--resolve`: a mirror, a staging server, a test.
    pub resolve: Vec<(String, std::net::IpAddr)>,
    pub max_side: u32,
    pub jpeg_quality: u8,
    pub reencode: Reencode,
    /// Encoded images, or raw RGB pixels (the old tool's layout).
    pub store: StoreAs,
    pub max_pixels: u64,
    pub max_body_bytes: u64,
    /// Ceiling of one request; also how long requests in flight may need after the run stops
    /// issuing before a deadline.
    pub request_timeout: std::time::Duration,
    pub head_timeout: std::time::Duration,
    pub idle_timeout: std::time::Duration,
    pub min_transfer_bytes_per_sec: f64,
    pub connect_timeout: std::time::Duration,
    pub max_retries: u32,
    pub max_rate_limit: f64,
    pub max_in_flight_per_host: u32,
    pub max_requests_in_flight: usize,
    /// 0 means one per core.
    pub cpu_threads: usize,
    pub cpu_queue_bytes: u64,
    pub backoff_base: std::time::Duration,
    pub park: std::time::Duration,
    /// Images per second one rank's CPUs can process (0 = estimate from the cores).
    pub rank_images_per_sec: f64,
    /// Longest round while a rank is idle and work could move, on many ranks.
    pub round: std::time::Duration,
    /// Shortest round that a quarter of idle ranks may end.
    pub min_round: std::time::Duration,
    /// Longest a finished row waits in memory before it is committed: what a crash can cost.
    pub commit_interval: std::time::Duration,
    /// Most rows in one shard.
    pub commit_rows: usize,
    /// `X-Robots-Tag` directives that stop an image from being stored (empty: none).
    pub opt_out_tags: Vec<String>,
    /// Whether each original's MD5 is computed and stored beside its SHA-256.
    pub md5: bool,
    /// Whether robots.txt is asked for and obeyed.
    pub robots: crate::robots::RobotsPolicy,
    /// How long a robots.txt answer is reused by later runs (within a run it always is).
    pub robots_cache: std::time::Duration,
    /// The per-server overrides file; `None`: `<output>/overrides.toml`, if it exists.
    pub server_overrides: Option<PathBuf>,
    /// Sample requests `profile` sends to each server.
    pub profile_samples: u32,
    /// Where each rank serves its metrics.
    pub metrics: crate::telemetry::exporter::ExporterSettings,
    /// What `submit` asks Slurm for.
    pub slurm: SlurmSettings,
}

/// Sample requests per server in `profile`: enough for a median latency, few enough that a
/// museum server does not notice.
pub const DEFAULT_PROFILE_SAMPLES: u32 = 3;

/// A day: RFC 9309 asks crawlers not to keep a robots.txt for more than 24 hours.
pub const DEFAULT_ROBOTS_CACHE_HOURS: f64 = 24.0;

/// Loopback: a rank's metrics are not served beyond its node unless a user says so.
pub const DEFAULT_METRICS_ADDR: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
/// The base port of the exporters (9464 is the port commonly used for Prometheus exporters of
/// this kind); rank ports follow it, one per local rank.
pub const DEFAULT_METRICS_PORT: u16 = 9464;

impl RawConfig {
    /// Reads `path` as a dotenv file. Unknown keys are an error; values are checked by
    /// [`RawConfig::validate`].
    pub fn from_file(path: &Path) -> Result<RawConfig, ConfigError> {
        let read_err = |source| ConfigError::Read { path: path.to_path_buf(), source };
        let iter = dotenvy::from_path_iter(path).map_err(read_err)?;
        let mut raw = RawConfig { origin: format!("config file {}", path.display()), ..Default::default() };
        for item in iter {
            let (key, value) = item.map_err(read_err)?;
            if !KEYS.iter().any(|(k, _)| *k == key) {
                let known = KEYS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ");
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
struct Values<'a> {
    raw: &'a RawConfig,
}

impl Values<'_> {
    fn text(&self, key: &str) -> Option<String> {
        self.raw.values.get(key).map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
    }

    fn bad(&self, key: &str, value: &str, problem: &str) -> ConfigError {
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

    fn parse<T: std::str::FromStr>(
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

#[cfg(test)]
pub(crate) mod tests;
