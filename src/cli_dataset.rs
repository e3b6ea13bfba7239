//! What the user typed for the tools that work on a downloaded dataset (`index`, `dedup`,
//! `licenses`, `cite`, `filter`, `remove`, `resize`, `export`): clap structs only, re-exported
//! by `cli`.

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("list").required(true).multiple(true).args(["uuids", "urls"])))]
pub struct RemoveArgs {
    /// The output folder (overrides OUTPUT_DIR).
    #[arg(long, short, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// A file of uuids to remove, one per line (`#` comments).
    #[arg(long, value_name = "FILE")]
    pub uuids: Option<PathBuf>,
    /// A file of URLs to remove, one per line (`#` comments).
    #[arg(long, value_name = "FILE")]
    pub urls: Option<PathBuf>,
    /// Why, kept in each tombstone's detail.
    #[arg(long, value_name = "TEXT", default_value = "a removal request")]
    pub reason: String,
    /// Also rewrite each batch holding a removed row (merged into one shard of final records),
    /// so its image bytes are gone.
    #[arg(long)]
    pub purge: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CiteArgs {
    /// The output folder (overrides OUTPUT_DIR).
    #[arg(long, short, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// The derived dataset's title.
    #[arg(long, value_name = "TEXT", default_value = "of GBIF-mediated images")]
    pub title: String,
    /// Where the dataset is deposited (GBIF's "source URL").
    #[arg(long, value_name = "URL")]
    pub source_url: Option<String>,
    /// The DOI GBIF gave the registered derived dataset.
    #[arg(long, value_name = "DOI")]
    pub doi: Option<String>,
    /// Print the counts as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LicensesArgs {
    /// The output folder (overrides OUTPUT_DIR).
    #[arg(long, short, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Publishers, datasets, servers and unread strings shown on screen, the largest first.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub top: usize,
    /// Print the whole report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ResizeArgs {
    /// The dataset to read (overrides OUTPUT_DIR).
    #[arg(long, short, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// The new dataset: a new or empty folder, or one an interrupted `resize` left.
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
    /// The longest side of the new dataset's images, in pixels.
    #[arg(long, value_name = "PIXELS", value_parser = clap::value_parser!(u32).range(16..))]
    pub max_side: u32,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The dataset to export (overrides OUTPUT_DIR).
    #[arg(long, short, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// What to write.
    #[arg(long, value_enum)]
    pub format: crate::export::formats::Format,
    /// The export folder: a new or empty folder, or one an interrupted `export` left.
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
    /// Images per shard (`1000`) or bytes of images per shard (`500MB`, `2GB`, `512MiB`).
    #[arg(long, value_name = "N|SIZE", default_value = crate::export::size::DEFAULT_SHARD_SIZE)]
    pub shard_size: crate::export::size::ShardSize,
    /// Shuffle the images, the same way for the same seed (without it: the manifest's order).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// A caption per image: `taxonomic` (scientific name, family, order, class, kingdom).
    #[arg(long, value_name = "KIND", value_parser = ["taxonomic"])]
    pub caption: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct FilterArgs {
    /// The output folder (overrides OUTPUT_DIR).
    #[arg(long, short, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Rows of this status only.
    #[arg(long, value_name = "STATUS", default_value = "stored", value_parser = ["stored", "failed", "any"])]
    pub status: String,
    /// Stored images at least this many pixels on their shorter side.
    #[arg(long, value_name = "PIXELS")]
    pub min_side: Option<u32>,
    /// Stored images of at least this many pixels (width × height).
    #[arg(long, value_name = "PIXELS")]
    pub min_area: Option<u64>,
    /// Stored images whose longer side is at most this many times the shorter one.
    #[arg(long, value_name = "RATIO")]
    pub max_aspect: Option<f64>,
    /// Only rows whose uuid or URL is in this file (one per line, `#` comments).
    #[arg(long, value_name = "FILE")]
    pub keep: Option<PathBuf>,
    /// Never rows whose uuid or URL is in this file (one per line, `#` comments).
    #[arg(long, value_name = "FILE")]
    pub drop: Option<PathBuf>,
    /// Only rows under these licences: SPDX ids, comma-separated (`licenses` lists the ids),
    /// e.g. CC0-1.0,CC-BY-4.0.
    #[arg(long, value_name = "IDS", value_delimiter = ',')]
    pub license: Option<Vec<String>>,
    /// Only rows whose attribution is complete: a licence, a rights holder or creator, a source.
    #[arg(long)]
    pub attribution_complete: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DedupArgs {
    /// The output folder (overrides OUTPUT_DIR).
    #[arg(long, short, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// PDQ bits (of 256) within which two images are near duplicates (31: PDQ's authors' match
    /// threshold).
    #[arg(long, value_name = "BITS", default_value_t = crate::dedup::groups::DEFAULT_THRESHOLD,
          value_parser = clap::value_parser!(u32).range(0..=128))]
    pub threshold: u32,
    /// A test set's PDQ hashes, one per line (64 hex characters, `#` comments): rows of the
    /// dataset within the threshold of one are written to leaks.parquet.
    #[arg(long, value_name = "FILE")]
    pub against: Option<PathBuf>,
    /// Bytes of scratch records held in memory at once (tests make it tiny).
    #[arg(long, hide = true, default_value_t = crate::dedup::spill::DEFAULT_PARTITION_BYTES)]
    pub partition_bytes: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct IndexArgs {
    /// The output folder (overrides OUTPUT_DIR).
    #[arg(long, short, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Index every batch again, changed or not.
    #[arg(long)]
    pub force: bool,
}
