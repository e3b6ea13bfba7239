//! What the user typed: clap structs only. Resolution against the config file happens in the
//! subcommands' `run()` (see `commands.rs`), so this file never reads the environment.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::prep::input::Format;
use crate::prep::run::Schema;

#[derive(Debug, Parser)]
#[command(name = "distributed-downloader", version, about = "Polite, resumable image downloads for research datasets")]
pub struct Cli {
    /// The configuration file (`.env` style, see config/example.env). Flags override its values.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Split a URL list into per-server batches: urls/server_name=<key>/partition_id=<n>/.
    Prep(PrepArgs),
    /// Download the batches of a prep output folder into HDF5 shards, politely; resumes where the
    /// last run stopped.
    Download(DownloadArgs),
    /// Serve generated images on loopback hosts with scripted behaviour (the demo's and tests' origin).
    #[command(hide = true)]
    Origin(OriginArgs),
    /// Measure prep on a generated GBIF-like input and print wall time and peak memory.
    #[command(hide = true)]
    BenchPrep(BenchPrepArgs),
    /// Measure the codec limit and end-to-end download rate on a local corpus of photos.
    #[command(hide = true)]
    BenchDownload(BenchDownloadArgs),
    /// Measure, on 1 and 4 ranks, how close downloads come to what rate-limited, flaky and
    /// unlimited local hosts allow, and print the rate-control goals as PASS or MISS.
    #[command(hide = true)]
    BenchPoliteness(BenchPolitenessArgs),
}

#[derive(Debug, Args)]
pub struct PrepArgs {
    /// The input list: GBIF multimedia.txt, GBIF parquet, or any CSV/TSV/parquet list of URLs.
    #[arg(long, short, value_name = "FILE")]
    pub input: PathBuf,
    /// The output folder (overrides OUTPUT_DIR).
    #[arg(long, short, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// The input's container format.
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    pub format: Format,
    /// What the rows mean: a GBIF multimedia table gets the GBIF filters.
    #[arg(long, value_enum, default_value_t = Schema::Auto)]
    pub schema: Schema,
    /// Column holding the URL (generic lists; default `url`).
    #[arg(long, value_name = "COLUMN")]
    pub url_col: Option<String>,
    /// Column holding the source id (rows without one are dropped when given).
    #[arg(long, value_name = "COLUMN")]
    pub id_col: Option<String>,
    /// Column holding the license.
    #[arg(long, value_name = "COLUMN")]
    pub license_col: Option<String>,
    /// Column holding the source (e.g. the record's web page).
    #[arg(long, value_name = "COLUMN")]
    pub source_col: Option<String>,
    /// Column holding the title.
    #[arg(long, value_name = "COLUMN")]
    pub title_col: Option<String>,
    /// URLs per batch of one server (overrides BATCH_SIZE).
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,
    /// File of server keys to leave out (overrides IGNORED_SERVERS_FILE).
    #[arg(long, value_name = "FILE")]
    pub ignored_servers: Option<PathBuf>,
    /// Replace prep's outputs in a non-empty output folder (downloaded shards are kept).
    #[arg(long)]
    pub force: bool,
    /// Rows per spill bucket: bounds prep's memory (tests use tiny values to exercise the
    /// out-of-core path on small inputs).
    #[arg(long, hide = true, default_value_t = crate::prep::spill::ROWS_PER_BUCKET)]
    pub rows_per_bucket: u64,
    /// Print the report as JSON on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchPrepArgs {
    /// Rows of the generated GBIF-like multimedia.txt.
    #[arg(long, default_value_t = 10_000_000)]
    pub rows: u64,
    /// Scratch folder for the input and the output (removed afterwards unless --keep).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Keep the generated files.
    #[arg(long)]
    pub keep: bool,
}

#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// The output folder prep wrote (overrides OUTPUT_DIR).
    #[arg(long, short, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// How server operators can reach you, put in the User-Agent (overrides CONTACT). Required.
    #[arg(long, value_name = "EMAIL_OR_URL")]
    pub contact: Option<String>,
    /// Stop taking new work in time to commit before this moment: Unix seconds, or `+90m`,
    /// `+2h`, `+3600s` from now. Defaults to SLURM_JOB_END_TIME when set.
    #[arg(long, value_name = "WHEN")]
    pub deadline: Option<String>,
    /// Print the summary as JSON on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Log every shard commit.
    #[arg(long, short)]
    pub verbose: bool,
    /// On many ranks, keep the first plan for the whole run (no rounds): for comparisons.
    #[arg(long, hide = true)]
    pub static_plan: bool,
}

#[derive(Debug, Args)]
pub struct OriginArgs {
    /// Hosts to serve, as ADDR=BEHAVIOUR (e.g. 127.0.0.2:8701=ok, 127.0.0.3:8701=ratelimit:2).
    #[arg(required = true, value_name = "ADDR=BEHAVIOUR")]
    pub hosts: Vec<String>,
    /// Stop by itself after this many seconds (every request loop here is bounded).
    #[arg(long, default_value_t = 600)]
    pub max_seconds: u64,
    /// Write each host's request log as JSON lines into this folder when stopping.
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BenchDownloadArgs {
    /// Images in the corpus.
    #[arg(long, default_value_t = 150)]
    pub images: usize,
    /// Loopback hosts serving it.
    #[arg(long, default_value_t = 8)]
    pub hosts: u8,
    /// Scratch folder (removed afterwards).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct BenchPolitenessArgs {
    /// Multiplies every host's URL count: 1 is the full mix (a few hundred URLs, at least 40 s
    /// per run), 0.25 a quick run.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Scratch folder (removed afterwards, unless --keep or a run failed).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Stop a run still going after this many seconds; it is reported from what the servers saw
    /// until then, and the command exits 1.
    #[arg(long, default_value_t = crate::bench_politeness::RUN_TIMEOUT.as_secs())]
    pub timeout_secs: u64,
    /// Keep the scratch folder: per run, the URL list, config, prep output and shards, the
    /// download's logs, and every request the servers saw (`server-log.csv`).
    #[arg(long)]
    pub keep: bool,
}
