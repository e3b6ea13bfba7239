//! `dedup` over a dataset's manifest: reads its stored rows, finds the groups and the leaks, and
//! writes them beside it.
//!
//! Outputs, each replaced atomically:
//! - `<output>/dedup/duplicates.parquet`: `group, keeper, member, distance, why`, plus each
//!   member's `url` and the keeper's: one row per image that is not its group's keeper.
//! - `<output>/dedup/leaks.parquet` (with `--against`): `uuid, url, test_line, distance`.
//!
//! Memory: one [`Item`] per stored image (about 150 bytes with its strings) and the candidate
//! buckets (ten entries per image): about 2 GB for 10M images, 40 GB for 200M.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use polars::prelude::*;
use serde::Serialize;

use super::groups::{find, leaks, Item, Skipped};
use crate::imaging::parse_pdq_hex;
use crate::index::run::manifest_files;
use crate::store::atomic::{self, Mode};
use crate::store::parquet::{read_parquet, write_parquet};

/// What `dedup` is asked to do.
#[derive(Debug, Clone)]
pub struct DedupOptions {
    pub out: PathBuf,
    /// PDQ bits (of 256) within which two images are near duplicates.
    pub threshold: u32,
    /// A test set's PDQ hashes, one per line (64 hex characters; `#` comments and blank lines
    /// ignored; anything after the hash on its line is a label and ignored).
    pub against: Option<PathBuf>,
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

/// The stored images of the manifest under `out`, with their urls.
fn read_items(out: &Path) -> anyhow::Result<(Vec<Item>, Vec<String>)> {
    let (mut items, mut urls) = (Vec::new(), Vec::new());
    for path in manifest_files(out)? {
        let added = add_rows(&read_parquet(&path)?, &mut items, &mut urls);
        added.map_err(|e| anyhow!("cannot read the manifest file {}: {e}", path.display()))?;
    }
    Ok((items, urls))
}

fn add_rows(df: &DataFrame, items: &mut Vec<Item>, urls: &mut Vec<String>) -> PolarsResult<()> {
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
        items.push(Item {
            uuid: uuid.get(i).unwrap_or_default().to_string(),
            sha256: sha.get(i).unwrap_or_default().to_string(),
            pdq: pdq.get(i).and_then(parse_pdq_hex),
            pdq_quality: quality.get(i).unwrap_or(0).min(255) as u8,
            phash: phash.get(i).unwrap_or(0),
            area: u64::from(w.get(i).unwrap_or(0)) * u64::from(h.get(i).unwrap_or(0)),
            first_source,
        });
        urls.push(url.get(i).unwrap_or_default().to_string());
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
    let (items, urls) = read_items(&opts.out)?;
    let (dups, Skipped { buckets, items: in_buckets }) = find(&items, opts.threshold);
    let dir = opts.out.join("dedup");
    let duplicates_file = dir.join("duplicates.parquet");
    let col_u64 = |n: &str, v: Vec<u64>| Column::new(n.into(), v);
    let col_str = |n: &str, v: Vec<&str>| Column::new(n.into(), v);
    let mut df = DataFrame::new(
        dups.len(),
        vec![
            col_u64("group", dups.iter().map(|d| d.group).collect()),
            col_str("keeper", dups.iter().map(|d| items[d.keeper].uuid.as_str()).collect()),
            col_str("member", dups.iter().map(|d| items[d.member].uuid.as_str()).collect()),
            col_u64("distance", dups.iter().map(|d| u64::from(d.distance)).collect()),
            col_str("why", dups.iter().map(|d| d.why).collect()),
            col_str("keeper_url", dups.iter().map(|d| urls[d.keeper].as_str()).collect()),
            col_str("member_url", dups.iter().map(|d| urls[d.member].as_str()).collect()),
        ],
    )?;
    atomic::write_with(&duplicates_file, Mode::Replace, |tmp| write_parquet(tmp, &mut df))?;
    let mut groups: Vec<u64> = dups.iter().map(|d| d.group).collect();
    groups.dedup();
    let same_bytes = dups.iter().filter(|d| d.why == "sha256").count() as u64;
    let mut report = DedupReport {
        images: items.len() as u64,
        groups: groups.len() as u64,
        duplicates: dups.len() as u64,
        same_bytes,
        near: dups.len() as u64 - same_bytes,
        low_quality: items.iter().filter(|i| i.pdq_quality < super::groups::MIN_QUALITY).count() as u64,
        skipped_buckets: buckets,
        skipped_images: in_buckets,
        duplicates_file: duplicates_file.display().to_string(),
        ..DedupReport::default()
    };
    if let Some(against) = &opts.against {
        let (tests, lines) = read_against(against)?;
        let found = leaks(&items, &tests, opts.threshold);
        let leaks_file = dir.join("leaks.parquet");
        let mut df = DataFrame::new(
            found.len(),
            vec![
                col_str("uuid", found.iter().map(|f| items[f.0].uuid.as_str()).collect()),
                col_str("url", found.iter().map(|f| urls[f.0].as_str()).collect()),
                col_u64("test_line", found.iter().map(|f| lines[f.1]).collect()),
                col_u64("distance", found.iter().map(|f| u64::from(f.2)).collect()),
            ],
        )?;
        atomic::write_with(&leaks_file, Mode::Replace, |tmp| write_parquet(tmp, &mut df))?;
        report.leaks = Some(found.len() as u64);
        report.leaks_file = Some(leaks_file.display().to_string());
    }
    Ok(report)
}
