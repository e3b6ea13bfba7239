//! `remove` over the output folder: finds the listed rows in prep's batches, commits their
//! tombstones batch by batch, and with `--purge` merges the batches that hold them.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::anyhow;
use polars::prelude::*;
use serde::Serialize;

use crate::host::outcome::ErrorClass;
use crate::index::batch::final_rows;
use crate::store::batches::batch_id;
use crate::store::parquet::{parquet_files, read_parquet};
use crate::store::paths;
use crate::store::shards::carried::blank_rows;
use crate::store::shards::finish::merge_batch;
use crate::store::shards::hdf5_io::{read_records, write_shard};
use crate::store::shards::ledger::{batch_dir, scan_batch, shards, RetryFailed};
use crate::store::shards::record::{FailureRecord, ShardContents};
use crate::store::shards::summary::write_summary;
use crate::store::tables::read_servers_table;

/// What `remove` is asked to do.
#[derive(Debug, Clone, Default)]
pub struct RemoveOptions {
    pub out: PathBuf,
    pub uuids: HashSet<String>,
    pub urls: HashSet<String>,
    /// Why, for the tombstones' `detail` (a provider's request, a licence change, ...).
    pub reason: String,
    /// Merge every batch holding a removed row, so its bytes leave the shards.
    pub purge: bool,
}

/// What `remove` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RemoveReport {
    /// Uuids and URLs listed.
    pub asked: u64,
    /// Rows of the dataset they name.
    pub found: u64,
    /// Of those, tombstoned by this run; the rest were removed before.
    pub removed: u64,
    pub already_removed: u64,
    /// Listed uuids or URLs that no batch holds.
    pub not_in_dataset: Vec<String>,
    /// Batches given tombstones by this run, and batches merged by `--purge`.
    pub batches: u64,
    pub purged_batches: u64,
    /// Images carried over from an older snapshot (`refresh`) whose bytes `--purge` emptied in
    /// the shard under `carried/` that held them.
    pub purged_carried: u64,
}

/// One listed row of a batch.
struct Listed {
    uuid: String,
    url: String,
    source_ids: Vec<String>,
}

/// The rows of `server`'s batch `partition` that `opts` lists.
fn listed_rows(opts: &RemoveOptions, server: &str, partition: u64) -> anyhow::Result<Vec<Listed>> {
    let mut rows = Vec::new();
    for file in parquet_files(&paths::batch_urls(&opts.out, server, partition))? {
        let df = read_parquet(&file)?;
        let read = || -> PolarsResult<Vec<Listed>> {
            let (uuid, url) = (df.column("uuid")?.str()?.clone(), df.column("url")?.str()?.clone());
            let ids = df.column("source_ids")?.list()?.clone();
            let mut found = Vec::new();
            for i in 0..df.height() {
                let (u, l) = (uuid.get(i).unwrap_or_default(), url.get(i).unwrap_or_default());
                if opts.uuids.contains(u) || opts.urls.contains(l) {
                    let source_ids = ids
                        .get_as_series(i)
                        .and_then(|s| s.str().ok().map(|s| s.iter().flatten().map(str::to_string).collect()))
                        .unwrap_or_default();
                    found.push(Listed { uuid: u.to_string(), url: l.to_string(), source_ids });
                }
            }
            Ok(found)
        };
        rows.extend(read().map_err(|e| anyhow!("cannot read the batch file {}: {e}", file.display()))?);
    }
    Ok(rows)
}

pub fn run(opts: &RemoveOptions) -> anyhow::Result<RemoveReport> {
    let servers = read_servers_table(&opts.out)?;
    let mut report = RemoveReport { asked: (opts.uuids.len() + opts.urls.len()) as u64, ..Default::default() };
    let mut seen: HashSet<String> = HashSet::new();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    for server in &servers {
        for partition in 0..server.batch_count {
            let listed = listed_rows(opts, &server.server_name, partition)?;
            if listed.is_empty() {
                continue;
            }
            report.found += listed.len() as u64;
            seen.extend(listed.iter().flat_map(|l| [l.uuid.clone(), l.url.clone()]));
            let listed_uuids: HashSet<String> = listed.iter().map(|l| l.uuid.clone()).collect();
            let finals = final_rows(&opts.out, &server.server_name, partition)?;
            let (done, todo): (Vec<Listed>, Vec<Listed>) =
                listed.into_iter().partition(|l| finals.get(&l.uuid).is_some_and(|r| r.status == "removed"));
            report.already_removed += done.len() as u64;
            let id = match server.batch_ids.as_ref().and_then(|ids| ids.get(partition as usize)) {
                Some(id) => id.clone(),
                None => batch_id(&opts.out, &server.server_name, partition)?,
            };
            let dir = batch_dir(&opts.out, &server.server_name, partition);
            if !todo.is_empty() {
                let failures = todo
                    .into_iter()
                    .map(|l| FailureRecord {
                        uuid: l.uuid,
                        url: l.url,
                        server: server.server_name.clone(),
                        source_ids: l.source_ids,
                        error_class: ErrorClass::Removed.as_str().to_string(),
                        detail: format!("removed: {}", opts.reason),
                        attempts: 0,
                        http_status: 0,
                        retriable: false,
                        failed_at: now,
                    })
                    .collect::<Vec<_>>();
                report.removed += failures.len() as u64;
                let next = if dir.is_dir() { shards(&dir)?.last().map_or(0, |(seq, _)| seq + 1) } else { 0 };
                write_shard(&dir, next, &ShardContents { successes: Vec::new(), failures }, &id)?;
                let after = scan_batch(&opts.out, &server.server_name, partition, RetryFailed::No)?;
                write_summary(&dir, &after.summary())?;
                report.batches += 1;
            }
            if opts.purge {
                // Images a refresh carried over lie in an older snapshot's shard under carried/.
                let carried = carried_sources(&dir, &listed_uuids)?;
                if shards(&dir)?.len() > 1 {
                    merge_batch(&opts.out, &server.server_name, partition, &id)?;
                    report.purged_batches += 1;
                }
                for (from, rows) in carried {
                    blank_rows(&opts.out.join(&from), &rows)?;
                    report.purged_carried += rows.len() as u64;
                }
            }
        }
    }
    let mut missing: Vec<String> =
        opts.uuids.iter().chain(&opts.urls).filter(|k| !seen.contains(*k)).cloned().collect();
    missing.sort();
    report.not_in_dataset = missing;
    Ok(report)
}

/// Where the success records of `uuids` in batch folder `dir` have their bytes, when a refresh
/// carried them over: each carried shard (relative to the output folder) and its rows.
fn carried_sources(dir: &Path, uuids: &HashSet<String>) -> anyhow::Result<BTreeMap<String, BTreeSet<u64>>> {
    let mut sources: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    if !dir.is_dir() {
        return Ok(sources);
    }
    for (_, path) in shards(dir)? {
        let records = read_records(&path, false)?;
        for (s, c) in records.contents.successes.iter().zip(&records.carried) {
            if let Some(c) = c.as_ref().filter(|_| uuids.contains(&s.uuid)) {
                sources.entry(c.from.clone()).or_default().insert(c.row);
            }
        }
    }
    Ok(sources)
}

/// The entries of a `--uuids` or `--urls` file: one per line, blank lines and `#` comments
/// skipped.
pub fn read_list(path: &Path) -> anyhow::Result<HashSet<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?;
    Ok(crate::filter::rules::read_list(&text))
}
