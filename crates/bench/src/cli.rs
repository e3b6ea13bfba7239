//! What the user typed: `dd-bench [--config FILE] <prep|download|politeness|scale|store|dedup|index|export|refresh-diff>`. The Makefile's
//! `bench-*` targets call these; see each module for what it measures.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Default longest a run may take. A controller that meets the goals needs about 45 s at
/// `--scale 1` and the slow one it replaces (1 req/s, +0.1 per 20 successes) a few minutes on
/// the rate-limited hosts; past 10 minutes the table says more than waiting would.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, Parser)]
#[command(
    name = "dd-bench",
    version,
    about = "Benchmarks of distributed-downloader: prep, codec and download rate, politeness"
)]
pub struct Cli {
    /// A distributed-downloader config file for `download` (`.env` style); defaults otherwise.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Measure prep on a generated GBIF-like input and print wall time and peak memory.
    Prep(BenchPrepArgs),
    /// Measure the codec limit and end-to-end download rate on a local corpus of photos.
    Download(BenchDownloadArgs),
    /// Measure, on 1 and 4 ranks, how close downloads come to what rate-limited, flaky and
    /// unlimited local hosts and real nginx limiters allow, and print the rate-control goals as
    /// PASS or MISS.
    Politeness(BenchPolitenessArgs),
    /// Measure rank 0's planning (wall time, peak memory) on a dataset of GBIF's shape: 545
    /// servers, about 20,000 batches, with 1 and 3 committed shards per batch.
    Scale(ScaleArgs),
    /// Measure, on a dataset of GBIF's shape with every row stored, the start of a download
    /// (finishing interrupted merges, checking the ledgers), `verify` beside reading every shard,
    /// and `verify --full` beside decoding every image.
    Store(StoreArgs),
    /// Measure `dedup` (wall time, rows/s, peak memory) on a generated 10M-row manifest with
    /// planted same-bytes and near-duplicate groups, and check that it finds exactly those.
    Dedup(DedupBenchArgs),
    /// Measure `index` (wall time, rows/s, peak memory) of a generated 1M-row dataset of
    /// committed shards, and again with nothing changed.
    Index(IndexBenchArgs),
    /// Measure `export --format webdataset` (images/s, MB/s, peak memory) of 100k generated
    /// stored images, against `tar` of the same bytes.
    Export(ExportBenchArgs),
    /// Measure the diff of two generated snapshots of 10M rows (`refresh`'s plan: new, unchanged,
    /// metadata changed, gone, removed), time and peak memory, against DuckDB doing the same
    /// anti-joins, and check that both find exactly the planted classes.
    RefreshDiff(RefreshDiffArgs),
    /// Our diff of two snapshots in this process, for `refresh-diff` (prints its report).
    #[command(hide = true)]
    RefreshDiffChild(RefreshChildArgs),
    /// One plan in this process, for `scale` (prints its figures).
    #[command(hide = true)]
    ScalePlan(ScalePlanArgs),
    /// The codec limit on the image files of a folder, printed as one line of `key=value`; what
    /// `download --baseline-bin` runs in both binaries.
    #[command(hide = true)]
    Codec(CodecArgs),
}

#[derive(Debug, Args)]
pub struct CodecArgs {
    /// A folder of image files (every file in it is processed, in name order).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Runs over the files; the one with the median CPU per image is printed.
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// Also print how close the stored images come to a reference rendition (PSNR, dB).
    #[arg(long)]
    pub quality: bool,
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
    /// DuckDB's version of prep (crates/bench/duckdb/prep.py), run beside ours.
    #[command(flatten)]
    pub duckdb: DuckDbPeer,
    /// Worker threads for both: POLARS_MAX_THREADS for ours and DuckDB's `threads`. Default: the
    /// cores this process may use.
    #[arg(long)]
    pub threads: Option<usize>,
}

/// DuckDB's version of a benchmark's work (a script in crates/bench/duckdb/), run on the same
/// input beside ours.
#[derive(Debug, Args)]
pub struct DuckDbPeer {
    /// Also run DuckDB's version on the same input and print both: `auto` when a Python with
    /// DuckDB is found, `on` to fail without one, `off`.
    #[arg(long = "duckdb", value_enum, default_value_t = DuckDbMode::Auto)]
    pub mode: DuckDbMode,
    /// The Python that has the `duckdb` package (`scripts/duckdb.sh install` prints it).
    /// Default: $DD_DUCKDB_PYTHON, else the venv that script makes.
    #[arg(long = "duckdb-python", value_name = "PATH")]
    pub python: Option<PathBuf>,
    /// DuckDB's memory_limit (e.g. `2GB`); DuckDB's own default (80% of RAM) when not given.
    #[arg(long = "duckdb-memory-limit", value_name = "SIZE")]
    pub memory_limit: Option<String>,
}

/// Whether `dd-bench prep` runs DuckDB beside ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DuckDbMode {
    Auto,
    On,
    Off,
}

/// The files of `dd-bench download`'s corpus (same sizes and formats, different encodings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Corpus {
    /// As cameras and web servers store photos: sensor-like noise, JPEG 4:2:0 at q90, lossy WebP.
    Camera,
    /// The test origin's default images: heavy noise in every channel, JPEG 4:4:4 at q90, lossless
    /// WebP (about twice a real photo's bytes per pixel; the corpus of the first measurements).
    Plain,
}

#[derive(Debug, Args)]
pub struct BenchDownloadArgs {
    /// Images in the corpus.
    #[arg(long, default_value_t = 150)]
    pub images: usize,
    /// Loopback hosts serving it.
    #[arg(long, default_value_t = 8)]
    pub hosts: u8,
    /// Codec runs over the corpus; the one with the median CPU per image is reported, which
    /// steadies the figure on a shared machine.
    #[arg(long, default_value_t = 3)]
    pub codec_runs: usize,
    /// Measure the codec limit only, without the end-to-end download.
    #[arg(long)]
    pub codec_only: bool,
    /// Which files the origin serves.
    #[arg(long, value_enum, default_value_t = Corpus::Camera)]
    pub corpus: Corpus,
    /// A dd-bench built against an earlier version of the product (`scripts/bench-baseline.sh`):
    /// its codec and ours run in turn, `--codec-runs` times each, on the same files, and both
    /// medians are printed with their ratio.
    #[arg(long, value_name = "FILE")]
    pub baseline_bin: Option<PathBuf>,
    /// Also write the corpus to this folder and keep it (`<index>.<extension>`), e.g. to profile
    /// `dd-bench codec --dir` on it.
    #[arg(long, value_name = "DIR")]
    pub save_corpus: Option<PathBuf>,
    /// What to call the baseline in the output (e.g. its commit).
    #[arg(long, default_value = "baseline")]
    pub baseline_label: String,
    /// Scratch folder (removed afterwards).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct BenchPolitenessArgs {
    /// Multiplies every host's URL count: 1 gives each run a floor of 240 s (a few minutes per
    /// run), 0.25 a quick run, 0.17 the 40 s floors of the first measurements.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Scratch folder (removed afterwards, unless --keep or a run failed).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Stop a run still going after this many seconds; it is reported from what the servers saw
    /// until then, and the command exits 1.
    #[arg(long, default_value_t = RUN_TIMEOUT.as_secs())]
    pub timeout_secs: u64,
    /// Keep the scratch folder: per run, the URL list, config, prep output and shards, the
    /// download's logs, and every request the servers saw (`server-log.csv`).
    #[arg(long)]
    pub keep: bool,
    /// Run one section only: the scripted hosts of the test origin, or real nginx `limit_req`
    /// hosts. Both when not given.
    #[arg(long, value_enum)]
    pub only: Option<PolitenessSection>,
}

/// The sections of `dd-bench politeness`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PolitenessSection {
    /// The test origin's scripted limiters, flaky and unlimited hosts (issue 12).
    Scripted,
    /// Real nginx `limit_req` hosts of several rates, bursts and modes (issue 29).
    Nginx,
}

#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// Scratch folder (removed afterwards unless --keep).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Keep the generated dataset.
    #[arg(long)]
    pub keep: bool,
}

#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Scratch folder (removed first, and afterwards unless --keep).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Keep the generated dataset.
    #[arg(long)]
    pub keep: bool,
}

#[derive(Debug, Args)]
pub struct DedupBenchArgs {
    /// Multiplies the manifest's 10M rows (BENCH_SCALE): 0.1 is a quick run.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Scratch folder (removed first, and afterwards unless --keep).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Keep the generated manifest and dedup's output.
    #[arg(long)]
    pub keep: bool,
}

#[derive(Debug, Args)]
pub struct IndexBenchArgs {
    /// Multiplies the dataset's 1M rows (BENCH_SCALE): 0.1 is a quick run.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Scratch folder (removed first, and afterwards unless --keep).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Keep the generated dataset and its manifest.
    #[arg(long)]
    pub keep: bool,
}

#[derive(Debug, Args)]
pub struct ExportBenchArgs {
    /// Multiplies the 100k stored images (BENCH_SCALE): 0.1 is a quick run.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Scratch folder (removed first, and afterwards unless --keep).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Keep the generated dataset, the export and the tar.
    #[arg(long)]
    pub keep: bool,
}

#[derive(Debug, Args)]
pub struct RefreshDiffArgs {
    /// Rows of the old snapshot (the new one has 5% fewer and 10% more).
    #[arg(long, default_value_t = 10_000_000)]
    pub rows: u64,
    /// Scratch folder (removed first, and afterwards unless --keep).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Keep the generated snapshots, the plan and DuckDB's output.
    #[arg(long)]
    pub keep: bool,
    /// DuckDB's anti-joins (crates/bench/duckdb/refresh_diff.py), run beside ours.
    #[command(flatten)]
    pub duckdb: DuckDbPeer,
    /// DuckDB's threads. Default: the cores this process may use.
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(Debug, Args)]
pub struct RefreshChildArgs {
    /// The old snapshot's output folder (with a manifest).
    #[arg(long, value_name = "DIR")]
    pub old: PathBuf,
    /// The new snapshot's output folder (prepped); the plan is written there.
    #[arg(long, value_name = "DIR")]
    pub new: PathBuf,
}

#[derive(Debug, Args)]
pub struct ScalePlanArgs {
    /// The prep output folder to plan.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}
