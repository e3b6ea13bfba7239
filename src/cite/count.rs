//! Images per GBIF dataset, over the images a dataset built from this folder holds: stored, not
//! taken down, and in the keep-list when `filter` wrote one. Each image counts once, for the
//! dataset of its lowest source id (the record whose licence and credits it carries).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::anyhow;
use polars::prelude::*;
use serde::Serialize;

use crate::index::run::manifest_files;
use crate::store::keep::KeepList;
use crate::store::parquet::read_parquet;

/// The counts `cite` writes.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Counts {
    /// Images per GBIF `datasetKey`.
    pub by_dataset: BTreeMap<String, u64>,
    /// Images counted (stored, kept).
    pub images: u64,
    /// Of those, images whose row has no `datasetKey` (prep ran without `--occurrence`, or the
    /// occurrence file had no row for it): not in the CSV.
    pub without_dataset: u64,
    /// Stored images the keep-list leaves out.
    pub left_out: u64,
    /// Whether a keep-list was read.
    pub keep_list: bool,
}

/// Counts the manifest of `out` (run `index` first).
pub fn count(out: &Path) -> anyhow::Result<Counts> {
    let keep = KeepList::of(out)?;
    let mut c = Counts { keep_list: keep.is_some(), ..Default::default() };
    for file in manifest_files(out)? {
        let df = read_parquet(&file)?;
        let mut read = || -> PolarsResult<()> {
            let text = |n: &str| -> PolarsResult<StringChunked> { Ok(df.column(n)?.str()?.clone()) };
            let (status, uuid, dataset) = (text("status")?, text("uuid")?, text("dataset_key")?);
            for i in 0..df.height() {
                if status.get(i) != Some("stored") {
                    continue;
                }
                if keep.as_ref().is_some_and(|k| !k.contains(uuid.get(i).unwrap_or_default())) {
                    c.left_out += 1;
                    continue;
                }
                c.images += 1;
                match dataset.get(i).filter(|d| !d.is_empty()) {
                    Some(d) => *c.by_dataset.entry(d.to_string()).or_default() += 1,
                    None => c.without_dataset += 1,
                }
            }
            Ok(())
        };
        read().map_err(|e| anyhow!("cannot read the manifest file {}: {e}; run `index` again", file.display()))?;
    }
    Ok(c)
}
