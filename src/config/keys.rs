//! The keys a config file may hold, and the defaults this module owns. Defaults owned by the
//! code that uses them (image, rate, retry, parking, deadlines) stay there; `read.rs` names them.

/// Every key the file may hold. What each means, with its default, is
/// `docs/configuration.md` (a test holds that page to this list and to the defaults below).
pub const KEYS: &[&str] = &[
    "OUTPUT_DIR",
    "BATCH_SIZE",
    "INITIAL_RATE_LIMIT",
    "IGNORED_SERVERS_FILE",
    "CONTACT",
    "CRAWL_INFO_URL",
    "RESOLVE",
    "MAX_SIDE",
    "JPEG_QUALITY",
    "REENCODE",
    "STORE",
    "MAX_PIXELS",
    "MD5",
    "MAX_BODY_MB",
    "REQUEST_TIMEOUT_SECS",
    "HEAD_TIMEOUT_SECS",
    "IDLE_TIMEOUT_SECS",
    "MIN_TRANSFER_KB_PER_SEC",
    "CONNECT_TIMEOUT_SECS",
    "MAX_RETRIES",
    "MAX_RATE_LIMIT",
    "MAX_IN_FLIGHT_PER_HOST",
    "MAX_REQUESTS_IN_FLIGHT",
    "CPU_THREADS",
    "CPU_QUEUE_MB",
    "BACKOFF_BASE_SECS",
    "PARK_SECS",
    "RANK_IMAGES_PER_SEC",
    "ROUND_SECS",
    "MIN_ROUND_SECS",
    "COMMIT_SECS",
    "COMMIT_ROWS",
    "OPT_OUT_TAGS",
    "ROBOTS",
    "ROBOTS_CACHE_HOURS",
    "SERVER_OVERRIDES",
    "PROFILE_SAMPLES",
    "METRICS_ADDR",
    "METRICS_PORT",
    "METRICS_HOST_LABELS",
    "SLURM_ACCOUNT",
    "SLURM_PARTITION",
    "SLURM_QOS",
    "SLURM_NODES",
    "SLURM_TASKS_PER_NODE",
    "SLURM_CPUS_PER_TASK",
    "SLURM_MEM",
    "SLURM_TIME",
    "SLURM_CHAIN_JOBS",
    "SLURM_PREP_TIME",
    "SLURM_PREP_MEM",
    "SLURM_PREP_CPUS",
    "SLURM_EXTRA_ARGS",
];

/// How many URLs of one server go into one batch. A batch is the unit a rank owns and commits, so
/// it trades commit overhead against work lost on a crash; 10,000 matches GBIF-scale runs.
pub const DEFAULT_BATCH_SIZE: usize = 10_000;

/// Upper bound for `BATCH_SIZE`: above this one batch no longer fits comfortably in a shard.
pub(super) const MAX_BATCH_SIZE: usize = 10_000_000;

// Image, rate, retry and parking defaults are owned by the modules that use them
// (`imaging::settings`, `host::{rate, retry}`, `fetch::deadlines`); this file only reads the keys.
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
