//! `dedup` over a dataset's manifest: reads its stored rows, finds the groups and the leaks, and
//! writes them beside it.
//!
//! Outputs, each replaced atomically:
//! - `<output>/dedup/duplicates.parquet`: `group, keeper, member, distance, why`, plus each
//!   member's `url` and the keeper's: one row per image that is not its group's keeper.
//! - `<output>/dedup/leaks.parquet` (with `--against`): `uuid, url, test_line, distance`.
//!
//! Memory does not grow with the rows: `bounded` keeps what grows in scratch files under
//! `<output>/dedup/.scratch` (about 100 bytes per stored image, removed at the end) and holds
//! one manifest file, one partition and the largest group at a time.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use polars::prelude::*;
use serde::Serialize;

use super::bounded::{self, Row, Settings, Source};
use super::groups::{Item, LeakIndex};
use super::output;
use crate::imaging::parse_pdq_hex;
use crate::index::run::manifest_files;

/// The scratch folder, under `<output>/dedup/`: left by a killed run, removed by the next.
const SCRATCH_DIR: &str = ".scratch";

/// The manifest columns `dedup` reads.
const COLUMNS: [&str; 10] = [
    "uuid",
    "url",
    "status",
    "sha256",
    "pdq",
    "pdq_quality",
    "phash",
    "original_width",
    "original_height",
    "source_ids",
];

/// What `dedup` is asked to do.
#[derive(Debug, Clone)]
pub struct DedupOptions {
    pub out: PathBuf,
    /// PDQ bits (of 256) within which two images are near duplicates.
    pub threshold: u32,
    /// A test set's PDQ hashes, one per line (64 hex characters; `#` comments and blank lines
    /// ignored; anything after the hash on its line is a label and ignored).
    pub against: Option<PathBuf>,
    /// Bytes of scratch records held in memory at once (`spill::DEFAULT_PARTITION_BYTES`; tests
    /// make it tiny to spread every group over many partitions).
    pub partition_bytes: u64,
}

/// What `dedup` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DedupReport {
    pub images: u64,
    pub groups: u64,
    /// Images that are not their group's keeper: what a deduplicated dataset leaves out.
    pub duplicates: u64,
    pub same_bytes: u64,
    pub near: u64,
    /// Images too flat for their PDQ hash to be trusted: left out of near matching.
    pub low_quality: u64,
    /// Candidate buckets too large to compare, and the images in them.
    pub skipped_buckets: u64,
    pub skipped_images: u64,
    pub leaks: Option<u64>,
    pub duplicates_file: String,
    pub leaks_file: Option<String>,
}

/// The stored images of the manifest, one manifest file in memory at a time.
struct Manifest {
    files: Vec<PathBuf>,
    rows: u64,
}

impl Manifest {
    fn open(out: &Path) -> anyhow::Result<Self> {
        let files = manifest_files(out)?;
        let mut rows = 0;
        for path in &files {
            let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            let n = ParquetReader::new(file).num_rows();
            rows += n.map_err(|e| anyhow!("cannot read the manifest file {}: {e}", path.display()))? as u64;
        }
        Ok(Manifest { files, rows })
    }
}

impl Source for Manifest {
    fn rows_hint(&self) -> u64 {
        self.rows
    }

    fn each(&self, f: &mut dyn FnMut(Row) -> anyhow::Result<()>) -> anyhow::Result<()> {
        for path in &self.files {
            let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            let columns = Some(COLUMNS.iter().map(|c| c.to_string()).collect());
            let df = ParquetReader::new(file).with_columns(columns).finish();
            let df = df.map_err(|e| anyhow!("cannot read the manifest file {}: {e}", path.display()))?;
            each_row(&df, f).with_context(|| format!("cannot read the manifest file {}", path.display()))?;
        }
        Ok(())
    }
}

/// Gives each stored row of `df` to `f`.
fn each_row(df: &DataFrame, f: &mut dyn FnMut(Row) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let s = |n: &str| df.column(n).and_then(|c| c.str().cloned());
    let (uuid, url, status, sha, pdq) = (s("uuid")?, s("url")?, s("status")?, s("sha256")?, s("pdq")?);
    let quality = df.column("pdq_quality")?.u32()?.clone();
    let phash = df.column("phash")?.u64()?.clone();
    let (w, h) = (df.column("original_width")?.u32()?.clone(), df.column("original_height")?.u32()?.clone());
    let ids = df.column("source_ids")?.list()?.clone();
    for i in 0..df.height() {
        if status.get(i) != Some("stored") {
            continue;
        }
        let first_source = ids
            .get_as_series(i)
            .and_then(|s| s.str().ok().and_then(|s| s.iter().flatten().min().map(str::to_string)))
            .unwrap_or_default();
        let item = Item {
            uuid: uuid.get(i).unwrap_or_default().to_string(),
            sha256: sha.get(i).unwrap_or_default().to_string(),
            pdq: pdq.get(i).and_then(parse_pdq_hex),
            pdq_quality: quality.get(i).unwrap_or(0).min(255) as u8,
            phash: phash.get(i).unwrap_or(0),
            area: u64::from(w.get(i).unwrap_or(0)) * u64::from(h.get(i).unwrap_or(0)),
            first_source,
        };
        f(Row { item, url: url.get(i).unwrap_or_default().to_string() })?;
    }
    Ok(())
}

/// Reads a test set's hashes (see [`DedupOptions::against`]); a malformed line is an error naming it.
fn read_against(path: &Path) -> anyhow::Result<(Vec<[u8; 32]>, Vec<u64>)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read --against {}", path.display()))?;
    let (mut hashes, mut lines) = (Vec::new(), Vec::new());
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let first = line.split_whitespace().next().unwrap_or_default();
        let hash = parse_pdq_hex(first).ok_or_else(|| {
            anyhow!("{} line {}: {first:?} is not a PDQ hash (64 hex characters)", path.display(), n + 1)
        })?;
        hashes.push(hash);
        lines.push(n as u64 + 1);
    }
    Ok((hashes, lines))
}

pub fn run(opts: &DedupOptions) -> anyhow::Result<DedupReport> {
    let manifest = Manifest::open(&opts.out)?;
    let dir = opts.out.join("dedup");
    let scratch = Scratch::create(&dir.join(SCRATCH_DIR))?;
    let against = opts.against.as_deref().map(read_against).transpose()?;
    let index = against.as_ref().map(|(tests, _)| LeakIndex::new(tests));
    let (duplicates_file, leaks_file) = (dir.join("duplicates.parquet"), dir.join("leaks.parquet"));
    let mut dups = output::duplicates(&duplicates_file, &scratch.0)?;
    let mut leaks = match &against {
        Some(_) => Some(output::leaks(&leaks_file, &scratch.0)?),
        None => None,
    };
    let settings = Settings {
        scratch: &scratch.0,
        threshold: opts.threshold,
        partition_bytes: opts.partition_bytes,
        leaks: index.as_ref(),
    };
    let mut leak_count = 0u64;
    let counts = bounded::find(
        &manifest,
        &settings,
        &mut |leak| {
            leak_count += 1;
            let line = against.as_ref().map_or(0, |(_, lines)| lines[leak.test]);
            leaks.as_mut().expect("leaks are looked for with --against").push((leak, line))
        },
        &mut |d| dups.push(d),
    )?;
    dups.commit()?;
    let mut report = DedupReport {
        images: counts.images,
        groups: counts.groups,
        duplicates: counts.duplicates,
        same_bytes: counts.same_bytes,
        near: counts.duplicates - counts.same_bytes,
        low_quality: counts.low_quality,
        skipped_buckets: counts.skipped.buckets,
        skipped_images: counts.skipped.items,
        duplicates_file: duplicates_file.display().to_string(),
        ..DedupReport::default()
    };
    if let Some(leaks) = leaks {
        leaks.commit()?;
        report.leaks = Some(leak_count);
        report.leaks_file = Some(leaks_file.display().to_string());
    }
    Ok(report)
}

/// The scratch folder, emptied when made and removed when dropped (on success or error).
struct Scratch(PathBuf);

impl Scratch {
    fn create(path: &Path) -> anyhow::Result<Self> {
        let _ = std::fs::remove_dir_all(path); // a killed run's leftovers; absent is the usual case
        std::fs::create_dir_all(path)
            .with_context(|| format!("cannot create dedup's scratch folder {}", path.display()))?;
        Ok(Scratch(path.to_path_buf()))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Scratch left behind costs only space, and the next run removes it.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
