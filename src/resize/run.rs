//! `resize` over a whole dataset: rank 0 sets the new folder up, every rank takes every n-th
//! batch, and rank 0 sums up.
//!
//! The new folder is a dataset of its own that every command reads: prep's output (`urls/`,
//! `occurrence/`, `servers.parquet`, `prep_report.json`) is copied from the old folder (a fifth of prep's
//! input; links would let a later `prep --force` of one folder rewrite the other's), and
//! `downloads/` holds the new shards. `resize.json` says what it was made
//! from; a second `resize` into the same folder must ask for the same size (it resumes), and a
//! folder holding anything else is refused.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use serde::{Deserialize, Serialize};

use super::batch::{resize_batch, BatchCounts};
use crate::imaging::ImageSettings;
use crate::mpi_glue::world::World;
use crate::store::atomic;
use crate::store::paths;
use crate::store::tables::read_servers_table;

/// What the new folder was made from, kept in it.
pub const RESIZE_FILE: &str = "resize.json";

/// What `resize` is asked to do.
#[derive(Debug, Clone)]
pub struct ResizeOptions {
    /// The dataset to read.
    pub from: PathBuf,
    /// The new dataset.
    pub to: PathBuf,
    /// The image settings of the new dataset (its `max_side` is the new longest side).
    pub image: ImageSettings,
    /// Rows per committed piece of a batch (`COMMIT_ROWS`): what a killed run can lose.
    pub piece_rows: usize,
}

/// Kept as `resize.json` in the new folder.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Made {
    from: String,
    max_side: u32,
    jpeg_quality: u8,
}

/// What `resize` did, summed over the ranks.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ResizeReport {
    pub to: String,
    pub max_side: u32,
    /// Batches written now; the rest were complete from an earlier run.
    pub batches: u64,
    pub unchanged: u64,
    #[serde(flatten)]
    pub counts: BatchCounts,
    /// Batches that could not be resized, with why.
    pub errors: Vec<String>,
}

/// Rank 0 sets the new folder up; every rank then resizes its share of the batches. Rank 0 gets
/// the report of all of them.
pub fn run(world: &World, opts: &ResizeOptions) -> anyhow::Result<Option<ResizeReport>> {
    let ready = if world.is_root() { prepare(opts).map_err(|e| format!("{e:#}")) } else { Ok(()) };
    let ready: Result<(), String> =
        serde_json::from_slice(&world.broadcast(serde_json::to_vec(&ready).expect("serialises"))).expect("parses");
    ready.map_err(|e| anyhow!(e))?;
    let servers = read_servers_table(&opts.from)?;
    let batches = servers.iter().flat_map(|s| (0..s.batch_count).map(move |p| (s.server_name.as_str(), p)));
    let mut mine = ResizeReport::default();
    for (i, (server, partition)) in batches.enumerate() {
        if i % world.size() != world.rank() || !paths::batch_shards(&opts.from, server, partition).is_dir() {
            continue;
        }
        match resize_batch((&opts.from, &opts.to), server, partition, &opts.image, opts.piece_rows) {
            Ok(Some(c)) => {
                mine.batches += 1;
                add(&mut mine.counts, &c);
            }
            Ok(None) => mine.unchanged += 1,
            Err(e) => mine.errors.push(format!("{server}/{partition}: {e}")),
        }
    }
    let gathered = world.gather(serde_json::to_vec(&mine).expect("a report serialises"));
    let Some(all) = gathered else { return Ok(None) };
    let mut report =
        ResizeReport { to: opts.to.display().to_string(), max_side: opts.image.max_side, ..Default::default() };
    for bytes in all {
        let r: ResizeReport = serde_json::from_slice(&bytes)?;
        report.batches += r.batches;
        report.unchanged += r.unchanged;
        add(&mut report.counts, &r.counts);
        report.errors.extend(r.errors);
    }
    Ok(Some(report))
}

fn add(sum: &mut BatchCounts, c: &BatchCounts) {
    sum.shrunk += c.shrunk;
    sum.kept += c.kept;
    sum.failures += c.failures;
    sum.undecodable += c.undecodable;
    sum.resumed += c.resumed;
    sum.bytes_before += c.bytes_before;
    sum.bytes_after += c.bytes_after;
}

/// Makes the new folder a dataset with the old one's prep output, or checks that it already is
/// one made by `resize` from the same folder at the same size.
fn prepare(opts: &ResizeOptions) -> anyhow::Result<()> {
    let from = opts.from.canonicalize().with_context(|| format!("cannot read {}", opts.from.display()))?;
    if !paths::servers_table(&from).is_file() {
        bail!("{} is not a dataset (no {}): check --output", from.display(), paths::SERVERS_TABLE);
    }
    let made =
        Made { from: from.display().to_string(), max_side: opts.image.max_side, jpeg_quality: opts.image.jpeg_quality };
    let marker = opts.to.join(RESIZE_FILE);
    if let Ok(bytes) = std::fs::read(&marker) {
        let before: Made = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a resize record; choose another --to", marker.display()))?;
        if before != made {
            bail!(
                "{} was made by `resize` from {} at --max-side {} (JPEG quality {}); resume it with the same \
                 settings or choose another --to",
                opts.to.display(),
                before.from,
                before.max_side,
                before.jpeg_quality
            );
        }
        return Ok(());
    }
    let mut entries = match std::fs::read_dir(&opts.to) {
        Ok(d) => d.collect::<Result<Vec<_>, _>>().with_context(|| format!("cannot read {}", opts.to.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", opts.to.display())),
    };
    entries.retain(|e| e.file_name() != paths::LOCK_FILE);
    if !entries.is_empty() {
        bail!("{} is not empty and was not made by `resize`: choose an empty or new --to", opts.to.display());
    }
    if opts.to.canonicalize().ok().is_some_and(|to| to.starts_with(&from)) {
        bail!("--to {} lies inside the dataset being resized: choose a folder outside it", opts.to.display());
    }
    std::fs::create_dir_all(&opts.to).with_context(|| format!("cannot create {}", opts.to.display()))?;
    for name in [paths::SERVERS_TABLE, paths::PREP_REPORT] {
        if from.join(name).is_file() {
            copy(&from.join(name), &opts.to.join(name))?;
        }
    }
    copy_tree(&from.join(paths::URLS_DIR), &opts.to.join(paths::URLS_DIR))?;
    if from.join(paths::OCCURRENCE_DIR).is_dir() {
        copy_tree(&from.join(paths::OCCURRENCE_DIR), &opts.to.join(paths::OCCURRENCE_DIR))?;
    }
    // Last: a folder with its record is set up whole.
    atomic::replace(&marker, &serde_json::to_vec_pretty(&made).expect("serialises"))?;
    Ok(())
}

/// Every file under `from` at the same place under `to`.
fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))? {
        let path = entry?.path();
        let target = to.join(path.file_name().expect("a listed entry has a name"));
        if path.is_dir() {
            copy_tree(&path, &target)?;
        } else {
            copy(&path, &target)?;
        }
    }
    Ok(())
}

fn copy(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::copy(from, to).with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    Ok(())
}
