//! `filter` over a dataset's manifest: every row's verdict, written as the keep-list.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::anyhow;
use polars::prelude::*;
use serde::Serialize;

use super::rules::{Row, Rules};
use crate::index::run::manifest_files;
use crate::store::atomic::{self, Mode};
use crate::store::parquet::{read_parquet, write_parquet};

/// What `filter` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FilterReport {
    pub rows: u64,
    pub kept: u64,
    /// Rows dropped, by the first rule each broke.
    pub dropped: BTreeMap<String, u64>,
    pub keep_file: String,
    pub dropped_file: String,
}

/// A row's uuid and URL.
type Kept = (String, String);
/// A row's uuid, URL and the first rule it broke.
type Dropped = (String, String, &'static str);

pub fn run(out: &Path, rules: &Rules) -> anyhow::Result<FilterReport> {
    let (mut kept, mut dropped): (Vec<Kept>, Vec<Dropped>) = (Vec::new(), Vec::new());
    for file in manifest_files(out)? {
        let df = read_parquet(&file)?;
        let mut read = || -> PolarsResult<()> {
            let s = |n: &str| df.column(n).and_then(|c| c.str().cloned());
            let (uuid, url, status) = (s("uuid")?, s("url")?, s("status")?);
            let (w, h) = (df.column("stored_width")?.u32()?.clone(), df.column("stored_height")?.u32()?.clone());
            let license_id = s("license_id")?;
            let complete = df.column("attribution_complete")?.bool()?.clone();
            for i in 0..df.height() {
                let row = Row {
                    uuid: uuid.get(i).unwrap_or_default(),
                    url: url.get(i).unwrap_or_default(),
                    stored: status.get(i) == Some("stored"),
                    removed: status.get(i) == Some("removed"),
                    width: w.get(i).unwrap_or(0),
                    height: h.get(i).unwrap_or(0),
                    license_id: license_id.get(i).unwrap_or("unknown"),
                    attribution_complete: complete.get(i).unwrap_or(false),
                };
                match rules.verdict(row) {
                    None => kept.push((row.uuid.to_string(), row.url.to_string())),
                    Some(why) => dropped.push((row.uuid.to_string(), row.url.to_string(), why)),
                }
            }
            Ok(())
        };
        read().map_err(|e| anyhow!("cannot read the manifest file {}: {e}; run `index` again", file.display()))?;
    }
    let dir = out.join("filter");
    let (keep_file, dropped_file) = (crate::store::paths::keep_list(out), dir.join("dropped.parquet"));
    let col = |n: &str, v: Vec<&str>| Column::new(n.into(), v);
    let mut keep = DataFrame::new(
        kept.len(),
        vec![
            col("uuid", kept.iter().map(|k| k.0.as_str()).collect()),
            col("url", kept.iter().map(|k| k.1.as_str()).collect()),
        ],
    )?;
    let mut drop = DataFrame::new(
        dropped.len(),
        vec![
            col("uuid", dropped.iter().map(|d| d.0.as_str()).collect()),
            col("url", dropped.iter().map(|d| d.1.as_str()).collect()),
            col("reason", dropped.iter().map(|d| d.2).collect()),
        ],
    )?;
    atomic::write_with(&keep_file, Mode::Replace, |tmp| write_parquet(tmp, &mut keep))?;
    atomic::write_with(&dropped_file, Mode::Replace, |tmp| write_parquet(tmp, &mut drop))?;
    atomic::replace(&dir.join("rules.json"), &serde_json::to_vec_pretty(rules).expect("rules serialise"))?;
    let mut by_reason = BTreeMap::new();
    for d in &dropped {
        *by_reason.entry(d.2.to_string()).or_insert(0) += 1;
    }
    Ok(FilterReport {
        rows: (kept.len() + dropped.len()) as u64,
        kept: kept.len() as u64,
        dropped: by_reason,
        keep_file: keep_file.display().to_string(),
        dropped_file: dropped_file.display().to_string(),
    })
}
