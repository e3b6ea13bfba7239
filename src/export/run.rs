//! `export` over a whole dataset: every rank computes the same plan from the manifest, rank 0
//! checks the export folder (new, or an earlier run of the same export to resume), every rank
//! writes every n-th shard, and rank 0 writes what describes them.
//!
//! Each shard is written under a temporary name and renamed (`store::atomic`); then its rows of
//! `attribution.csv` and its summary (`.export/shard-NNNNNN.json`), in that order. A shard whose
//! summary is there is done: a run killed anywhere, run again, writes the shards that are not,
//! each image in exactly one shard. `.export/plan.json` records what the folder is an export of
//! (format, shard size, seed, caption, and a fingerprint of the plan); another export into it is
//! refused. The last files, once every shard is there: `attribution.csv`, `README.md`,
//! `croissant.json`, `export.json`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use polars::prelude::DataFrame;
use serde::{Deserialize, Serialize};

use super::card::{self, attribution_header, attribution_rows, Described};
use super::formats::{write_shard, Format, ShardMade};
use super::plan::{plan, Entry, Plan};
use super::rows::Reader;
use super::size::ShardSize;
use crate::mpi_glue::world::World;
use crate::store::atomic::{self, Mode};
use crate::store::paths;

/// The export's own records, in the export folder.
pub const STATE_DIR: &str = ".export";
/// What the folder is an export of, under [`STATE_DIR`].
const PLAN_FILE: &str = "plan.json";
/// The export's report.
pub const REPORT_FILE: &str = "export.json";
/// Manifest rows a rank reads in one pass over the manifest files (about 1 KB each): a shuffled
/// shard draws from nearly every file, so the shards of a pass share one read of each.
const ROWS_PER_PASS: usize = 100_000;

/// What `export` is asked to do.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// The dataset (its manifest, keep-list and shards).
    pub out: PathBuf,
    /// The export folder.
    pub to: PathBuf,
    pub format: Format,
    pub size: ShardSize,
    pub seed: Option<u64>,
    /// Write a taxonomic caption per image.
    pub caption: bool,
    /// The command line, for the card.
    pub command: String,
}

/// Kept as `.export/plan.json`: a second run into the folder must find the same.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Made {
    from: String,
    format: Format,
    size: ShardSize,
    seed: Option<u64>,
    caption: bool,
    shards: usize,
    images: u64,
    fingerprint: String,
}

/// What `export` did, summed over the ranks (rank 0 writes it as `export.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExportReport {
    pub to: String,
    pub format: String,
    pub images: u64,
    pub image_bytes: u64,
    pub shards: u64,
    /// Shards written by this run; the others were there from an earlier one.
    pub written: u64,
    pub resumed: u64,
    /// Whether `filter`'s keep-list chose the images.
    pub keep_list: bool,
    pub seed: Option<u64>,
    pub by_license: BTreeMap<String, u64>,
    pub by_server: BTreeMap<String, u64>,
    pub empty_captions: u64,
    pub files: Vec<ShardMade>,
    /// Shards that could not be written, with why.
    pub errors: Vec<String>,
}

/// Runs on every rank; rank 0 gets the report.
pub fn run(world: &World, opts: &ExportOptions) -> anyhow::Result<Option<ExportReport>> {
    let plan = plan(&opts.out, opts.size, opts.seed)?;
    let ready = if world.is_root() { prepare(opts, &plan).map_err(|e| format!("{e:#}")) } else { Ok(()) };
    let ready: Result<(), String> =
        serde_json::from_slice(&world.broadcast(serde_json::to_vec(&ready).expect("serialises"))).expect("parses");
    ready.map_err(|e| anyhow!(e))?;
    let mut mine = ExportReport::default();
    let mut reader = Reader::new(&opts.out, &plan.files);
    let n = plan.shards.len();
    let mut todo: Vec<usize> = Vec::new();
    for i in (world.rank()..n).step_by(world.size()) {
        if summary_path(&opts.to, i).is_file() && opts.to.join(opts.format.shard_name(i, n)).is_file() {
            mine.resumed += 1;
        } else {
            todo.push(i);
        }
    }
    // Shards whose manifest rows are read in one pass over the manifest files.
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut rows_in_group = 0;
    for i in todo {
        let len = plan.shards[i].len();
        match groups.last_mut() {
            Some(g) if rows_in_group + len <= ROWS_PER_PASS => g.push(i),
            _ => {
                groups.push(vec![i]);
                rows_in_group = 0;
            }
        }
        rows_in_group += len;
    }
    for group in groups {
        let entries: Vec<&[Entry]> = group.iter().map(|&i| plan.shards[i].as_slice()).collect();
        let rows = match reader.rows(&entries) {
            Ok(rows) => rows,
            Err(e) => {
                mine.errors.extend(group.iter().map(|&i| format!("{}: {e:#}", opts.format.shard_name(i, n))));
                continue;
            }
        };
        for (&i, rows) in group.iter().zip(rows) {
            let name = opts.format.shard_name(i, n);
            match write_one(&mut reader, opts, &rows, i, &name) {
                Ok(()) => mine.written += 1,
                Err(e) => mine.errors.push(format!("{name}: {e:#}")),
            }
            crate::store::pause::point("export-shard");
        }
    }
    let gathered = world.gather(serde_json::to_vec(&mine).expect("a report serialises"));
    let Some(all) = gathered else { return Ok(None) };
    let mut report = ExportReport {
        to: opts.to.display().to_string(),
        format: opts.format.name().to_string(),
        shards: n as u64,
        keep_list: plan.keep_list,
        seed: opts.seed,
        ..Default::default()
    };
    for bytes in all {
        let r: ExportReport = serde_json::from_slice(&bytes)?;
        report.written += r.written;
        report.resumed += r.resumed;
        report.errors.extend(r.errors);
    }
    if report.errors.is_empty() {
        finish(opts, &plan, &mut report)?;
    }
    Ok(Some(report))
}

fn summary_path(to: &Path, i: usize) -> PathBuf {
    to.join(STATE_DIR).join(format!("shard-{i:06}.json"))
}

fn attribution_part(to: &Path, i: usize) -> PathBuf {
    to.join(STATE_DIR).join(format!("shard-{i:06}.csv"))
}

/// Writes shard `i` (its manifest `rows`) and then its attribution rows and summary.
fn write_one(reader: &mut Reader, opts: &ExportOptions, rows: &DataFrame, i: usize, name: &str) -> anyhow::Result<()> {
    let mut made = None;
    atomic::write_with(&opts.to.join(name), Mode::Replace, |tmp| -> anyhow::Result<()> {
        made = Some(write_shard(reader, rows, (opts.format, opts.caption), tmp, name)?);
        Ok(())
    })?;
    atomic::replace(&attribution_part(&opts.to, i), &attribution_rows(rows)?)?;
    let made = made.expect("written above");
    atomic::replace(&summary_path(&opts.to, i), &serde_json::to_vec_pretty(&made).expect("serialises"))?;
    Ok(())
}

/// Makes the export folder ready: new (nothing in it but the lock), or an earlier run of this
/// same export, whose temporary leftovers are removed.
fn prepare(opts: &ExportOptions, plan: &Plan) -> anyhow::Result<()> {
    let from = opts.out.canonicalize().with_context(|| format!("cannot read {}", opts.out.display()))?;
    if opts.to.canonicalize().ok().is_some_and(|to| to.starts_with(&from)) {
        bail!("--to {} lies inside the dataset: choose a folder outside it", opts.to.display());
    }
    if plan.images == 0 {
        bail!(
            "{} has no stored image to export{}: check `status`, or the keep-list",
            from.display(),
            if plan.keep_list { " that filter's keep-list keeps" } else { "" }
        );
    }
    let made = Made {
        from: from.display().to_string(),
        format: opts.format,
        size: opts.size,
        seed: opts.seed,
        caption: opts.caption,
        shards: plan.shards.len(),
        images: plan.images,
        fingerprint: plan.fingerprint.clone(),
    };
    let marker = opts.to.join(STATE_DIR).join(PLAN_FILE);
    if let Ok(bytes) = std::fs::read(&marker) {
        let before: Made = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not an export record; choose another --to", marker.display()))?;
        if before != made {
            bail!(
                "{} holds an export of {} ({} images as {}, shards of {}, seed {:?}) that is not this one (same \
                 settings and the same images in the same order): run the same command to resume it, or choose \
                 another --to (or remove that folder to start over)",
                opts.to.display(),
                before.from,
                before.images,
                before.format.name(),
                before.size,
                before.seed
            );
        }
        for dir in [opts.to.clone(), opts.to.join("data"), opts.to.join(STATE_DIR)] {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                if atomic::is_temp(&entry.path()) {
                    let _ = std::fs::remove_file(entry.path()); // a killed run's half file; rewritten anyway
                }
            }
        }
        return Ok(());
    }
    let mut entries = std::fs::read_dir(&opts.to).map(|d| d.flatten().collect::<Vec<_>>()).unwrap_or_default();
    entries.retain(|e| e.file_name() != paths::LOCK_FILE);
    if !entries.is_empty() {
        bail!("{} is not empty and holds no export: choose an empty or new --to", opts.to.display());
    }
    atomic::replace(&marker, &serde_json::to_vec_pretty(&made).expect("serialises"))?;
    Ok(())
}

/// The files `cite` wrote for the dataset (`<out>/cite/`), copied beside the export, and the
/// card's "Citation" section: its BibTeX, or how to make it. `cite` counts the images the
/// dataset holds (stored, kept), which are the images exported.
fn citation(out: &std::path::Path, to: &std::path::Path) -> anyhow::Result<String> {
    let dir = out.join("cite");
    let Ok(bib) = std::fs::read_to_string(dir.join("CITATION.bib")) else {
        return Ok(format!(
            "\n## Citation\n\nCite the GBIF derived dataset these images come from: run \
             `distributed-downloader cite -o {}`, register `cite/derived-dataset.csv` with GBIF, and export again \
             to have its `CITATION.bib`, `CITATION.cff` and `derived-dataset.csv` here.\n",
            out.display()
        ));
    };
    for name in ["CITATION.bib", "CITATION.cff", "derived-dataset.csv"] {
        if let Ok(bytes) = std::fs::read(dir.join(name)) {
            atomic::replace(&to.join(name), &bytes)?;
        }
    }
    Ok(format!(
        "\n## Citation\n\nThese images come from GBIF; `derived-dataset.csv` lists each source dataset with its \
         count (made by `distributed-downloader cite`). Cite:\n\n```bibtex\n{}```\n",
        bib
    ))
}

/// Rank 0, once every shard is written: the summaries summed up, `attribution.csv`, the card,
/// the Croissant file and `export.json`.
fn finish(opts: &ExportOptions, plan: &Plan, report: &mut ExportReport) -> anyhow::Result<()> {
    let n = plan.shards.len();
    let attribution = opts.to.join("attribution.csv");
    atomic::write_with(&attribution, Mode::Replace, |tmp| -> anyhow::Result<()> {
        let mut file = std::io::BufWriter::new(std::fs::File::create(tmp)?);
        file.write_all(&attribution_header())?;
        for i in 0..n {
            let part = attribution_part(&opts.to, i);
            let mut from = std::fs::File::open(&part).with_context(|| format!("cannot read {}", part.display()))?;
            std::io::copy(&mut from, &mut file)?;
        }
        file.flush()?;
        Ok(())
    })?;
    for i in 0..n {
        let path = summary_path(&opts.to, i);
        let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let made: ShardMade = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is damaged: remove it and run export again", path.display()))?;
        report.images += made.images;
        report.image_bytes += made.image_bytes;
        report.empty_captions += made.empty_captions;
        for (k, v) in &made.by_license {
            *report.by_license.entry(k.clone()).or_insert(0) += v;
        }
        for (k, v) in &made.by_server {
            *report.by_server.entry(k.clone()).or_insert(0) += v;
        }
        report.files.push(made);
    }
    let fields = match plan.files.first() {
        Some(f) => {
            crate::store::parquet::read_parquet(f)?.schema().iter().map(|(n, t)| (n.to_string(), t.clone())).collect()
        }
        None => Vec::new(),
    };
    let selection = if plan.keep_list {
        "The manifest's stored images that `filter`'s keep-list keeps"
    } else {
        "Every stored image of the manifest"
    };
    let described = Described {
        name: opts.to.file_name().map_or_else(|| "export".to_string(), |n| n.to_string_lossy().into_owned()),
        format: opts.format,
        shards: &report.files,
        fields,
        caption: opts.caption,
        selection: selection.to_string(),
        order: match opts.seed {
            Some(s) => format!("Shuffled with seed {s} (each image's place from the SHA-256 of the seed and its uuid)"),
            None => "In the manifest's order".to_string(),
        },
        command: opts.command.clone(),
        date: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
    };
    let card = card::readme(&described) + &citation(&opts.out, &opts.to)?;
    atomic::replace(&opts.to.join("README.md"), card.as_bytes())?;
    let croissant = serde_json::to_vec_pretty(&card::croissant(&described)).expect("serialises");
    atomic::replace(&opts.to.join("croissant.json"), &croissant)?;
    atomic::replace(&opts.to.join(REPORT_FILE), &serde_json::to_vec_pretty(&report).expect("serialises"))?;
    Ok(())
}
