//! `Settings`: the validated configuration, the only form of it the subcommands see, and the
//! parts of it that other modules take as their own settings types.

use std::path::PathBuf;

use super::SlurmSettings;
use crate::fetch::client::{user_agent, HttpSettings};
use crate::fetch::deadlines::Deadlines;
use crate::host::rate::RateConfig;
use crate::host::retry::{BreakerPolicy, RetryPolicy};
use crate::imaging::{ImageSettings, Reencode, StoreAs};

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

impl Settings {
    /// The settings of every request of a run (`download`, `profile`) for the operator `contact`.
    pub fn http(&self, contact: &str) -> HttpSettings {
        HttpSettings {
            user_agent: user_agent(contact, self.crawl_info_url.as_deref()),
            deadlines: Deadlines {
                head: self.head_timeout,
                idle: self.idle_timeout,
                min_bytes_per_sec: self.min_transfer_bytes_per_sec,
                ceiling: self.request_timeout,
            },
            connect_timeout: self.connect_timeout,
            max_body_bytes: self.max_body_bytes,
            resolve: self.resolve.clone(),
        }
    }

    /// What the image pipeline is given.
    pub fn image(&self) -> ImageSettings {
        ImageSettings {
            max_side: self.max_side,
            jpeg_quality: self.jpeg_quality,
            reencode: self.reencode,
            store: self.store,
            max_pixels: self.max_pixels,
            md5: self.md5,
        }
    }

    /// Every host's starting rate settings, before a host's share and overrides apply.
    pub fn rate(&self) -> RateConfig {
        RateConfig {
            initial_rate: self.initial_rate_limit,
            max_rate: self.max_rate_limit,
            max_in_flight: self.max_in_flight_per_host,
        }
    }

    /// When a host that stopped answering is parked, and for how long first.
    pub fn breaker(&self) -> BreakerPolicy {
        BreakerPolicy { first_park: self.park, ..BreakerPolicy::default() }
    }

    /// How often and after how long a URL is tried again.
    pub fn retry(&self) -> RetryPolicy {
        RetryPolicy { max_retries: self.max_retries, backoff_base: self.backoff_base, ..RetryPolicy::default() }
    }
}
