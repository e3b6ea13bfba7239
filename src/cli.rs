//! What the user typed: clap structs only. Resolution against the config file happens in the
//! subcommands' `run()` (see `commands.rs`), so this file never reads the environment.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use crate::cli_dataset::{
    CiteArgs, DedupArgs, ExportArgs, FilterArgs, IndexArgs, LicensesArgs, RemoveArgs, ResizeArgs,
};
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
    /// Ask each server for robots.txt and a few sample images, and set the rate its download
    /// starts at.
    ///
    /// Requests to a server go one at a time, a second (or its Crawl-delay) apart, with the
    /// download's User-Agent; PROFILE_SAMPLES images each. Each server's result is kept in
    /// <output>/profile/<server>.json and its start rate written to servers.parquet; servers
    /// already profiled are kept unless --force, and servers excluded in the overrides file are
    /// sent nothing. Under mpirun, ranks share the servers.
    Profile(ProfileArgs),
    /// Download the batches of a prep output folder into HDF5 shards, politely; resumes where the
    /// last run stopped.
    Download(DownloadArgs),
    /// Forecast how long the download takes, and on how many nodes, before spending an allocation.
    ///
    /// Runs rank 0's planner and round rule in simulated time over what remains, and prints the
    /// estimated wall time on --nodes nodes (with rounds, and with one static plan), the floors
    /// no node count beats (the slowest host at its allowed rate; the CPUs), the hosts that set
    /// the tail, the wall time against the node count and where more nodes stop helping, and the
    /// chained Slurm jobs it needs. Reads only.
    Plan(PlanArgs),
    /// Queue the whole job on Slurm: prep (when the output has no batches yet), then a chain of
    /// download jobs, each resuming where the last stopped. Reads the SLURM_* keys.
    Submit(SubmitArgs),
    /// How far the download is: totals, the slowest servers, an ETA, the jobs and the plans.
    Status(StatusArgs),
    /// Cancel the queued and running jobs of the chain `submit` started on this output.
    Cancel(CancelArgs),
    /// Check the committed shards: each reads whole, each row has one record, the counts agree,
    /// and a sample of images (every image with --full) matches its stored CRC-32 and decodes
    /// to its recorded size.
    ///
    /// Exits 1 when anything is wrong. --repair moves bad shards to <output>/quarantine/, keeps
    /// their good rows, and leaves exactly the bad rows for the next `download`. Under mpirun,
    /// ranks share the batches.
    Verify(VerifyArgs),
    /// Writes the manifest of the dataset, one parquet table with a row per URL (where its image
    /// is: shard file and row; sizes, format, SHA-256, perceptual hashes; or why it failed), under
    /// <output>/index/manifest/. A second run reads only batches whose shards changed. Under
    /// mpirun, ranks share the batches.
    Index(IndexArgs),
    /// Finds duplicate images in the manifest (`index` first): the same bytes (SHA-256) and near
    /// duplicates (PDQ perceptual hash), and with --against, images that leak a test set. Writes
    /// <output>/dedup/duplicates.parquet (and leaks.parquet); changes nothing else.
    Dedup(DedupArgs),
    /// Reports the licences of the manifest's stored images (`index` first): how many per SPDX
    /// id, publisher, dataset and server, how many can be credited (licence, rights holder or
    /// creator, source), and the licence strings it could not read.
    Licenses(LicensesArgs),
    /// Writes what a dataset built from GBIF must cite (`index` first): <output>/cite/
    /// derived-dataset.csv (datasetKey,count of the images stored and kept, for GBIF's
    /// derived-dataset registration), CITATION.bib and CITATION.cff.
    Cite(CiteArgs),
    /// Writes a keep-list of the manifest's rows (`index` first) by size, aspect ratio, status
    /// and lists of uuids or URLs, under <output>/filter/; fetches and rewrites nothing.
    Filter(FilterArgs),
    /// Takes rows down by uuid or URL: each becomes a `removed` record that no later download
    /// fetches again; --purge also rewrites the batches holding them so their image bytes are
    /// gone. Takes the output folder's writer lock. Run it again with the same list: nothing
    /// changes.
    Remove(RemoveArgs),
    /// Makes a new dataset at a smaller size from the stored images, fetching nothing: each image
    /// larger than --max-side is shrunk and encoded again (JPEG_QUALITY), smaller ones are kept
    /// as they are; failures and removals carry over. Runs on many ranks under mpirun or srun;
    /// run it again to resume.
    Resize(ResizeArgs),
    /// Exports the stored images (`index` first; only the keep-list's after `filter`) as a
    /// dataset others read without this tool: WebDataset tar shards, parquet files with the image
    /// bytes, or a Hugging Face `datasets` folder; with attribution.csv, a dataset card
    /// (README.md), croissant.json and export.json. Streams one shard at a time, shares the shards
    /// among ranks under mpirun, and resumes when run again.
    Export(ExportArgs),
    /// The next snapshot of a dataset, fetching only what changed: preps the new list into a new
    /// output folder, compares it with the old dataset (`index`ed) by URL (new, unchanged,
    /// metadata changed, gone; <output>/refresh/plan/ and report.json), carries the stored
    /// images over by reference (hard links under <output>/carried/, no byte copied), then
    /// downloads what is new. Run it again to resume.
    Refresh(RefreshArgs),
    /// Run by the job scripts when a job ends: records how it ended and stops the chain when the
    /// dataset is complete or nothing changed.
    #[command(hide = true)]
    JobEnd(JobEndArgs),
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The output folder prep wrote (overrides OUTPUT_DIR).
    #[arg(long, short, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Nodes the job runs on (overrides SLURM_NODES).
    #[arg(long, value_name = "N")]
    pub nodes: Option<u32>,
    /// Ranks per node (overrides SLURM_TASKS_PER_NODE).
    #[arg(long, value_name = "R")]
    pub ranks_per_node: Option<u32>,
    /// Longest round while a rank is idle and work could move (overrides ROUND_SECS).
    #[arg(long, value_name = "S", allow_negative_numbers = true)]
    pub round_secs: Option<f64>,
    /// Images per second one rank's CPUs process (overrides RANK_IMAGES_PER_SEC; else 30 per
    /// core × CPU_THREADS, else × SLURM_CPUS_PER_TASK).
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    pub rank_images_per_sec: Option<f64>,
    /// Print the forecast as JSON on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Count the stored images `download --revalidate` would ask about again as remaining.
    #[arg(long)]
    pub revalidate: bool,
    /// With --revalidate: only images not checked within this age (e.g. 90d, 12h, 30m).
    #[arg(long, value_name = "AGE", requires = "revalidate")]
    pub older_than: Option<String>,
    /// Forecast a generated GBIF-shaped job (545 servers, 200M URLs, Zipf sizes, 1–20 req/s)
    /// instead of an output folder: for comparisons and the forecast's own checks.
    #[arg(long, hide = true)]
    pub gbif_like: bool,
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The output folder (overrides OUTPUT_DIR).
    #[arg(long, short, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// The URL list prep reads; needed when the output folder has no batches yet.
    #[arg(long, short, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Download jobs in the chain (overrides SLURM_CHAIN_JOBS).
    #[arg(long, value_name = "K")]
    pub jobs: Option<u32>,
    /// As many download jobs as `plan` forecasts for the SLURM_* allocation (needs prep's
    /// output).
    #[arg(long, conflicts_with = "jobs")]
    pub jobs_from_plan: bool,
    /// Print the sbatch commands and the rendered scripts; queue nothing, write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The output folder (overrides OUTPUT_DIR).
    #[arg(long, short, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Print the report as JSON (every server, not only the slowest).
    #[arg(long)]
    pub json: bool,
    /// List every server, not only the 20 slowest.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The output folder (overrides OUTPUT_DIR).
    #[arg(long, short, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Print the report as JSON (every problem and warning).
    #[arg(long)]
    pub json: bool,
    /// Check every image, not a sample of each batch.
    #[arg(long)]
    pub full: bool,
    /// Images checked per batch, spread over its shards (default 8).
    #[arg(long, value_name = "N", conflicts_with = "full")]
    pub sample: Option<usize>,
    /// Move bad shards to <output>/quarantine/, keep their good rows, and remove stale
    /// summaries, so that the next `download` fetches exactly the bad rows again. Takes the
    /// output folder's writer lock.
    #[arg(long)]
    pub repair: bool,
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The output folder (overrides OUTPUT_DIR).
    #[arg(long, short, value_name = "DIR")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct JobEndArgs {
    #[arg(long, short, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// The Slurm job id that ended.
    #[arg(long)]
    pub job: String,
    /// The exit code of its step.
    #[arg(long, allow_hyphen_values = true)]
    pub exit_code: i32,
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
    /// Column holding the rights holder (GBIF: rightsHolder).
    #[arg(long, value_name = "COLUMN")]
    pub rights_holder_col: Option<String>,
    /// Column holding the creator (the photographer, say).
    #[arg(long, value_name = "COLUMN")]
    pub creator_col: Option<String>,
    /// Column holding the publisher.
    #[arg(long, value_name = "COLUMN")]
    pub publisher_col: Option<String>,
    /// Column holding the references (GBIF: a link to the record or the image's page).
    #[arg(long, value_name = "COLUMN")]
    pub references_col: Option<String>,
    /// GBIF's occurrence.txt from the same download: each URL gets its record's dataset,
    /// publishing organisation, basis of record and taxonomy, joined on gbifID (streamed, in
    /// bounded memory).
    #[arg(long, value_name = "FILE")]
    pub occurrence: Option<PathBuf>,
    /// URLs per batch of one server (overrides BATCH_SIZE).
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,
    /// File of server keys to leave out (overrides IGNORED_SERVERS_FILE).
    #[arg(long, value_name = "FILE")]
    pub ignored_servers: Option<PathBuf>,
    /// Replace prep's outputs in a non-empty output folder (downloaded shards are kept).
    #[arg(long)]
    pub force: bool,
    /// Start even when the output folder's filesystem has less free space than 1.1 times a
    /// CSV/TSV input (prep's intermediate files and output need about that much).
    #[arg(long)]
    pub skip_space_check: bool,
    /// Rows per spill bucket: bounds prep's memory (tests use tiny values to exercise the
    /// out-of-core path on small inputs).
    #[arg(long, hide = true, default_value_t = crate::prep::spill::ROWS_PER_BUCKET)]
    pub rows_per_bucket: u64,
    /// Print the report as JSON on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// The output folder prep wrote (overrides OUTPUT_DIR).
    #[arg(long, short, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// How server operators can reach you, put in the User-Agent (overrides CONTACT). Required.
    #[arg(long, value_name = "EMAIL_OR_URL")]
    pub contact: Option<String>,
    /// Profile every server again, even those profiled before.
    #[arg(long)]
    pub force: bool,
    /// Print the results as JSON on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Refuse to start when the overrides file names a server that is not in this dataset.
    #[arg(long)]
    pub strict_overrides: bool,
}

#[derive(Debug, Args)]
pub struct RefreshArgs {
    /// The old snapshot's output folder, downloaded and indexed.
    #[arg(long, value_name = "OLD")]
    pub from: PathBuf,
    /// The new list and the new output folder, as `prep` takes them (with all its flags).
    #[command(flatten)]
    pub prep: PrepArgs,
    /// How server operators can reach you, put in the User-Agent (overrides CONTACT); needed
    /// unless --no-download.
    #[arg(long, value_name = "EMAIL_OR_URL")]
    pub contact: Option<String>,
    /// Prepare the new folder (prep, plan, carry-over) and download nothing: run `download` on
    /// it next, e.g. on many ranks.
    #[arg(long)]
    pub no_download: bool,
    /// Also ask the servers whether each carried-over image changed, with a conditional GET
    /// (`download --revalidate`): a 304 costs no body, a changed image is stored as its next
    /// version.
    #[arg(long, conflicts_with = "no_download")]
    pub revalidate: bool,
    /// With --revalidate: only images last checked longer ago than this (`90d`, `12h`, `30m`).
    #[arg(long, value_name = "AGE", requires = "revalidate")]
    pub older_than: Option<String>,
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
    /// Log every shard commit and every change of a host's rate (cuts are always logged).
    #[arg(long, short)]
    pub verbose: bool,
    /// Also try again the rows whose committed record is a retriable failure (parked,
    /// timeout, 5xx, ...): once each; the new record replaces the old one in counts and
    /// summaries (the old stays in its shard; a row's last record is its final one).
    #[arg(long)]
    pub retry_failed: bool,
    /// Also ask the servers again about the images already stored, conditionally
    /// (If-None-Match with the stored ETag, If-Modified-Since with the stored Last-Modified):
    /// a 304 confirms the stored bytes without a copy, a changed image is stored as the next
    /// version, and a failure keeps the stored image. Failed rows are left to --retry-failed.
    #[arg(long)]
    pub revalidate: bool,
    /// With --revalidate: only images not checked within this age (e.g. 90d, 12h, 30m), so a
    /// revalidation that stopped early asks only the rows it had not reached when run again.
    #[arg(long, value_name = "AGE", requires = "revalidate")]
    pub older_than: Option<String>,
    /// On many ranks, keep the first plan for the whole run (no rounds): for comparisons.
    #[arg(long, hide = true)]
    pub static_plan: bool,
    /// Refuse to start when the overrides file names a server that is not in this dataset
    /// (by default a warning names it and the server key it likely meant).
    #[arg(long)]
    pub strict_overrides: bool,
}
