//! One batch's manifest: the final record of each of its rows, where it lies and what it is.

use std::collections::BTreeMap;
use std::path::Path;

use polars::prelude::*;

use super::attribution::{self, Attribution, ATTRIBUTION_COLUMNS};
use crate::store::error::StoreError;
use crate::store::shards::hdf5_io::{read_records, ShardError};
use crate::store::shards::ledger::{self, LedgerError};

/// What the manifest of a batch was made from: its committed shards by number, with their sizes.
/// A batch whose shards are the same is not read again.
pub type Signature = BTreeMap<u64, u64>;

/// Why a batch could not be indexed.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Shard(#[from] ShardError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Commit(#[from] crate::store::atomic::CommitError),
    #[error("cannot rewrite a batch's shards in the per-image layout: {0}")]
    Upgrade(#[from] crate::store::shards::finish::FinishError),
    #[error("cannot write the manifest of batch {batch}: {source}")]
    Frame {
        batch: String,
        #[source]
        source: PolarsError,
    },
}

/// One row's final record, as the manifest holds it.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub uuid: String,
    pub source_ids: Vec<String>,
    pub url: String,
    pub final_url: String,
    /// The shard file, relative to the output folder, and the record's row in it (in `images/`
    /// for a stored image, in `errors/` for a failure).
    pub shard: String,
    pub row: u32,
    pub status: &'static str,
    pub error_class: String,
    pub original_width: u32,
    pub original_height: u32,
    pub stored_width: u32,
    pub stored_height: u32,
    pub format: String,
    pub stored_bytes: u64,
    pub sha256: String,
    pub pdq: String,
    pub pdq_quality: u8,
    pub phash: u64,
    pub at: f64,
    pub etag: String,
    pub last_modified: String,
    /// The stored image's version (1, then + 1 each time a revalidation found other bytes);
    /// 0 for a row without an image.
    pub version: u32,
    /// The licence and attribution `prep` kept for the row (see `attribution`).
    pub attribution: Attribution,
}

/// The committed shards of a batch, by number, with their sizes: what its manifest is made from.
pub fn signature(out: &Path, server: &str, partition: u64) -> Result<Signature, IndexError> {
    let dir = ledger::batch_dir(out, server, partition);
    if !dir.is_dir() {
        return Ok(Signature::new());
    }
    let mut sig = Signature::new();
    for (seq, path) in ledger::shards(&dir)? {
        let len = std::fs::metadata(&path).map_err(|e| LedgerError::Io { path: path.clone(), source: e })?.len();
        sig.insert(seq, len);
    }
    Ok(sig)
}

/// The final record of each row of one batch that has one, by uuid: a later shard's record
/// replacing an earlier one's (a retried failure, a tombstone), shards a merged shard replaces
/// left out.
pub fn final_rows(out: &Path, server: &str, partition: u64) -> Result<BTreeMap<String, Row>, IndexError> {
    let dir = ledger::batch_dir(out, server, partition);
    let listed = if dir.is_dir() { ledger::shards(&dir)? } else { Vec::new() };
    let mut shards = Vec::with_capacity(listed.len());
    for (seq, path) in listed {
        shards.push((seq, read_records(&path, false)?, path));
    }
    let cutoff = shards.iter().filter_map(|(_, r, _)| r.compacts_below).max().unwrap_or(0);
    let mut latest: BTreeMap<String, Row> = BTreeMap::new();
    for (_, records, path) in shards.into_iter().filter(|(seq, _, _)| *seq >= cutoff) {
        let shard = path.strip_prefix(out).unwrap_or(&path).display().to_string();
        for (i, (s, length)) in records.contents.successes.into_iter().zip(records.lengths).enumerate() {
            let row = Row {
                shard: shard.clone(),
                row: i as u32,
                status: "stored",
                original_width: s.original_width,
                original_height: s.original_height,
                stored_width: s.stored_width,
                stored_height: s.stored_height,
                format: s.format,
                stored_bytes: length,
                sha256: s.sha256,
                pdq: s.pdq,
                pdq_quality: s.pdq_quality,
                phash: s.phash,
                at: s.fetched_at,
                final_url: s.final_url,
                etag: s.etag,
                last_modified: s.last_modified,
                version: s.version,
                url: s.url,
                source_ids: s.source_ids,
                uuid: s.uuid.clone(),
                ..Row::default()
            };
            latest.insert(s.uuid, row);
        }
        for (i, f) in records.contents.failures.into_iter().enumerate() {
            let row = Row {
                shard: shard.clone(),
                row: i as u32,
                status: if f.error_class == "removed" { "removed" } else { "failed" },
                error_class: f.error_class,
                at: f.failed_at,
                url: f.url,
                source_ids: f.source_ids,
                uuid: f.uuid.clone(),
                ..Row::default()
            };
            latest.insert(f.uuid, row);
        }
    }
    Ok(latest)
}

/// The manifest rows of one batch, as a table, and how many of them are stored images.
pub fn manifest(out: &Path, server: &str, partition: u64) -> Result<(DataFrame, u64), IndexError> {
    let frame_err = |source| IndexError::Frame { batch: format!("{server}/{partition}"), source };
    let mut credits = attribution::of_batch(out, server, partition).map_err(frame_err)?;
    let mut rows: Vec<Row> = final_rows(out, server, partition)?.into_values().collect();
    for r in &mut rows {
        r.attribution = credits.remove(&r.uuid).unwrap_or_default();
    }
    let stored = rows.iter().filter(|r| r.status == "stored").count() as u64;
    let df = frame(rows, server, partition)
        .map_err(|source| IndexError::Frame { batch: format!("{server}/{partition}"), source })?;
    Ok((df, stored))
}

/// The manifest's columns (docs/output-format.md lists them), of `rows` of batch `batch` of
/// `server`. Public so that a benchmark can generate a manifest of exactly this schema.
pub fn frame(rows: Vec<Row>, server: &str, batch: u64) -> PolarsResult<DataFrame> {
    let n = rows.len();
    let mut ids = ListStringChunkedBuilder::new("source_ids".into(), n, n);
    for r in &rows {
        ids.append_values_iter(r.source_ids.iter().map(String::as_str));
    }
    let s = |name: &str, f: &dyn Fn(&Row) -> String| Column::new(name.into(), rows.iter().map(f).collect::<Vec<_>>());
    let columns = vec![
        s("uuid", &|r| r.uuid.clone()),
        ids.finish().into_series().into_column(),
        s("url", &|r| r.url.clone()),
        s("final_url", &|r| r.final_url.clone()),
        Column::new("server".into(), vec![server; n]),
        Column::new("batch".into(), vec![batch; n]),
        s("shard", &|r| r.shard.clone()),
        Column::new("row".into(), rows.iter().map(|r| r.row).collect::<Vec<_>>()),
        Column::new("status".into(), rows.iter().map(|r| r.status).collect::<Vec<_>>()),
        s("error_class", &|r| r.error_class.clone()),
        Column::new("original_width".into(), rows.iter().map(|r| r.original_width).collect::<Vec<_>>()),
        Column::new("original_height".into(), rows.iter().map(|r| r.original_height).collect::<Vec<_>>()),
        Column::new("stored_width".into(), rows.iter().map(|r| r.stored_width).collect::<Vec<_>>()),
        Column::new("stored_height".into(), rows.iter().map(|r| r.stored_height).collect::<Vec<_>>()),
        s("format", &|r| r.format.clone()),
        Column::new("stored_bytes".into(), rows.iter().map(|r| r.stored_bytes).collect::<Vec<_>>()),
        s("sha256", &|r| r.sha256.clone()),
        s("pdq", &|r| r.pdq.clone()),
        Column::new("pdq_quality".into(), rows.iter().map(|r| u32::from(r.pdq_quality)).collect::<Vec<_>>()),
        Column::new("phash".into(), rows.iter().map(|r| r.phash).collect::<Vec<_>>()),
        Column::new("at".into(), rows.iter().map(|r| r.at).collect::<Vec<_>>()),
        s("etag", &|r| r.etag.clone()),
        s("last_modified", &|r| r.last_modified.clone()),
        Column::new("version".into(), rows.iter().map(|r| r.version).collect::<Vec<_>>()),
    ];
    let mut columns = columns;
    for (i, name) in ATTRIBUTION_COLUMNS.iter().enumerate() {
        let values: Vec<Option<&str>> =
            rows.iter().map(|r| r.attribution.values.get(i).and_then(|v| v.as_deref())).collect();
        columns.push(Column::new((*name).into(), values));
    }
    let taxon: Vec<Option<&str>> = rows.iter().map(|r| r.attribution.taxon_key.as_deref()).collect();
    columns.push(Column::new("taxon_key".into(), taxon));
    columns.push(s("license_id", &|r| r.attribution.license_id()));
    columns.push(Column::new(
        "attribution_complete".into(),
        rows.iter().map(|r| r.attribution.complete()).collect::<Vec<_>>(),
    ));
    DataFrame::new(n, columns)
}
