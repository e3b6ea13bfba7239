//! Reading the two snapshots into the diff's scratch parts: the old side from its manifest
//! (`index`), the new side from prep's batch files and occurrence files. One input file is in
//! memory at a time (a batch); each row becomes a record (`record`) appended to the part its uuid
//! hashes to. A row without a valid uuid or URL, or with an unknown status, is counted and
//! skipped, with its file and row kept as one of the first few examples.

use std::fs::File;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::error::RefreshError;
use super::fields::{Fingerprinter, Meta, NAMES, OCCURRENCE_FIRST, SOURCE_IDS};
use super::record::{NewRecord, OccRecord, OldRecord, Status};
use crate::dedup::spill::{partition_of, Spill};
use crate::index::run::{manifest_dir, manifest_files};
use crate::store::error::StoreError;
use crate::store::parquet::parquet_files;
use crate::store::paths;
use crate::store::tables::read_servers_table;

/// Examples of malformed rows kept per side: enough to find the fault, few enough to print.
const EXAMPLES: usize = 5;

/// The files the diff reads: the old snapshot's manifest, the new one's batches and occurrence
/// files.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub old_manifest: Vec<PathBuf>,
    pub new_urls: Vec<PathBuf>,
    pub new_occurrence: Vec<PathBuf>,
}

/// The inputs of the diff of output folder `new` (prepped) against output folder `old`
/// (indexed), with errors that say which command to run first.
pub fn inputs(old: &Path, new: &Path) -> Result<Inputs, RefreshError> {
    if !manifest_dir(old).is_dir() {
        return Err(RefreshError::NoManifest { old: old.to_path_buf() });
    }
    let old_manifest =
        manifest_files(old).map_err(|e| RefreshError::Listing { dir: manifest_dir(old), message: format!("{e:#}") })?;
    let mut inputs = Inputs { old_manifest, ..Inputs::default() };
    for server in read_servers_table(new)? {
        for p in 0..server.batch_count {
            let dir = paths::batch_urls(new, &server.server_name, p);
            if dir.is_dir() {
                inputs.new_urls.extend(parquet_files(&dir)?);
            }
            let occurrence = paths::batch_occurrence(new, &server.server_name, p);
            if occurrence.is_file() {
                inputs.new_occurrence.push(occurrence);
            }
        }
    }
    if inputs.new_urls.is_empty() {
        return Err(RefreshError::NoNewBatches { new: new.to_path_buf() });
    }
    Ok(inputs)
}

/// What was read of one kind of input.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    /// Rows read, malformed ones included.
    pub rows: u64,
    /// Rows skipped: no valid uuid, no URL, or (old side) a status other than stored, failed or
    /// removed.
    pub malformed: u64,
    /// The first few, as `file row N: what`.
    pub examples: Vec<String>,
    /// Rows whose uuid was already read on this side; the first one read is kept (in the old
    /// manifest: the one whose status counts most, see `record::Status::rank`).
    pub duplicates: u64,
}

impl Tally {
    fn malformed(&mut self, path: &Path, row: usize, what: &str) {
        self.malformed += 1;
        if self.examples.len() < EXAMPLES {
            self.examples.push(format!("{} row {row}: {what}", path.display()));
        }
    }
}

/// Rows of every file of `files` (parquet footers only): what sizes the parts.
pub fn count_rows(files: &[PathBuf]) -> Result<u64, RefreshError> {
    let mut rows = 0;
    for path in files {
        let file = File::open(path).map_err(|e| StoreError::Io { path: path.clone(), source: e })?;
        let n = ParquetReader::new(file).num_rows();
        rows += n.map_err(|source| RefreshError::Read { path: path.clone(), hint: "move it aside", source })? as u64;
    }
    Ok(rows)
}

/// One kind of input: the columns it must have, what it is called, what to do when it is not.
struct Kind {
    required: &'static [&'static str],
    what: &'static str,
    hint: &'static str,
}

const OLD: Kind = Kind {
    required: &["uuid", "url", "server", "batch", "shard", "row", "status", "source_ids"],
    what: "a manifest file of `index`",
    hint: "run `distributed-downloader index --output OLD` again on the old snapshot",
};
const NEW: Kind = Kind {
    required: &["uuid", "url", "source_ids"],
    what: "a batch file of `prep`",
    hint: "run `distributed-downloader prep` again on the new snapshot",
};
const OCCURRENCE: Kind = Kind {
    required: &["uuid"],
    what: "an occurrence file of `prep --occurrence`",
    hint: "run `distributed-downloader prep --occurrence` again on the new snapshot",
};

/// A file's required columns and those of `optional` it has.
fn read(path: &Path, kind: &Kind, optional: &[&str]) -> Result<DataFrame, RefreshError> {
    let read_err = |source| RefreshError::Read { path: path.to_path_buf(), hint: kind.hint, source };
    let file = File::open(path).map_err(|e| StoreError::Io { path: path.to_path_buf(), source: e })?;
    let mut reader = ParquetReader::new(file);
    let schema = reader.schema().map_err(read_err)?;
    if let Some(missing) = kind.required.iter().find(|c| !schema.contains(c)) {
        return Err(RefreshError::MissingColumn {
            path: path.to_path_buf(),
            column: missing.to_string(),
            what: kind.what,
            hint: kind.hint,
        });
    }
    let extra = optional.iter().filter(|c| schema.contains(c) && !kind.required.contains(c));
    let wanted = kind.required.iter().chain(extra);
    reader.with_columns(Some(wanted.map(|c| c.to_string()).collect())).finish().map_err(read_err)
}

/// Column `name` of `df` as text in one chunk (`None` when the file does not have it).
fn text(df: &DataFrame, name: &str, path: &Path, hint: &'static str) -> Result<Option<StringChunked>, RefreshError> {
    let Ok(c) = df.column(name) else { return Ok(None) };
    let read_err = |source| RefreshError::Read { path: path.to_path_buf(), hint, source };
    let mut ca = c.cast(&DataType::String).map_err(read_err)?.str().map_err(read_err)?.clone();
    ca.rechunk_mut();
    Ok(Some(ca))
}

/// Column `name` as unsigned numbers in one chunk.
fn number(df: &DataFrame, name: &str, path: &Path, hint: &'static str) -> Result<UInt64Chunked, RefreshError> {
    let read_err = |source| RefreshError::Read { path: path.to_path_buf(), hint, source };
    let c = df.column(name).map_err(read_err)?;
    let mut ca = c.cast(&DataType::UInt64).map_err(read_err)?.u64().map_err(read_err)?.clone();
    ca.rechunk_mut();
    Ok(ca)
}

/// The compared fields of `df` other than `source_ids`, by `fields::NAMES` index; `None` for a
/// column the file does not have.
fn field_columns(df: &DataFrame, path: &Path, hint: &'static str) -> Result<Vec<Option<StringChunked>>, RefreshError> {
    NAMES.iter().enumerate().map(|(i, n)| if i == SOURCE_IDS { Ok(None) } else { text(df, n, path, hint) }).collect()
}

/// A uuid as prep writes it, as a number; `None` when it is not one.
fn parse_uuid(s: Option<&str>) -> Option<u128> {
    uuid::Uuid::try_parse(s?.trim()).ok().map(|u| u.as_u128())
}

/// Which part of `parts` a uuid goes to.
pub fn part_of(uuid: u128, parts: usize) -> usize {
    partition_of(uuid as u64, parts)
}

/// Sets `meta`'s fields from row `i` of `columns` (by `fields::NAMES` index).
fn fill(meta: &mut Meta, f: &Fingerprinter, columns: &[Option<StringChunked>], i: usize) {
    for (k, c) in columns.iter().enumerate() {
        if let Some(c) = c {
            meta.set(f, k, c.get(i));
        }
    }
}

/// Spills every row of the old manifest `files` to parts `old-<k>.bin` of `dir`. Returns the
/// parts' paths and whether any row has an occurrence field.
pub fn spill_old(
    files: &[PathBuf],
    parts: usize,
    dir: &Path,
    f: &Fingerprinter,
    tally: &mut Tally,
) -> Result<(Vec<PathBuf>, bool), RefreshError> {
    let mut spill = Spill::create(dir, "old", parts)?;
    let (mut scratch, mut record, mut occurrence) = (Vec::new(), Vec::new(), false);
    for path in files {
        let df = read(path, &OLD, &NAMES)?;
        let t = |name| text(&df, name, path, OLD.hint).map(Option::unwrap_or_default);
        let (uuids, urls, servers, shards, statuses) = (t("uuid")?, t("url")?, t("server")?, t("shard")?, t("status")?);
        let (batches, rows) = (number(&df, "batch", path, OLD.hint)?, number(&df, "row", path, OLD.hint)?);
        let columns = field_columns(&df, path, OLD.hint)?;
        let dataset = &columns[OCCURRENCE_FIRST];
        let ids = df.column("source_ids").and_then(|c| c.list().cloned());
        let ids = ids.map_err(|source| RefreshError::Read { path: path.clone(), hint: OLD.hint, source })?;
        for (i, row_ids) in ids.amortized_iter().enumerate() {
            tally.rows += 1;
            let Some(uuid) = parse_uuid(uuids.get(i)) else {
                tally.malformed(path, i, "no valid uuid");
                continue;
            };
            let Some(status) = statuses.get(i).and_then(Status::parse) else {
                tally.malformed(path, i, "status is not stored, failed or removed");
                continue;
            };
            let Some(url) = urls.get(i).filter(|u| !u.is_empty()) else {
                tally.malformed(path, i, "no url");
                continue;
            };
            let mut meta = Meta::default();
            fill(&mut meta, f, &columns, i);
            let row_ids = row_ids.as_ref().and_then(|s| s.as_ref().str().ok());
            meta.set_ids(f, row_ids.into_iter().flat_map(|ids| ids.iter().flatten()));
            occurrence |= meta.has_occurrence();
            let rec = OldRecord {
                uuid,
                status,
                batch: batches.get(i).unwrap_or(0),
                row: rows.get(i).unwrap_or(0) as u32,
                meta,
                server: servers.get(i).unwrap_or_default(),
                shard: shards.get(i).unwrap_or_default(),
                url,
                dataset: dataset.as_ref().and_then(|c| c.get(i)).map(str::trim).unwrap_or_default(),
            };
            record.clear();
            rec.encode(&mut scratch, &mut record);
            spill.push(part_of(uuid, parts), &record)?;
        }
    }
    Ok((spill.finish()?, occurrence))
}

/// The server and batch of a batch file, from its hive path `server_name=<key>/partition_id=<n>`.
pub fn batch_of(path: &Path) -> Option<(String, u64)> {
    let mut server = None;
    let mut batch = None;
    for part in path.iter().filter_map(|p| p.to_str()) {
        if let Some(s) = part.strip_prefix("server_name=") {
            server = Some(s.to_string());
        } else if let Some(n) = part.strip_prefix("partition_id=") {
            batch = n.parse().ok(); // not a number: no batch, and the caller says the file is not one
        }
    }
    Some((server?, batch?))
}

/// Spills every URL of the new snapshot's batch files `files` to parts `new-<k>.bin` of `dir`.
pub fn spill_new(
    files: &[PathBuf],
    parts: usize,
    dir: &Path,
    f: &Fingerprinter,
    tally: &mut Tally,
) -> Result<Vec<PathBuf>, RefreshError> {
    let mut spill = Spill::create(dir, "new", parts)?;
    let (mut scratch, mut record) = (Vec::new(), Vec::new());
    for path in files {
        let (server, batch) = batch_of(path).ok_or_else(|| RefreshError::NotABatchFile { path: path.clone() })?;
        let df = read(path, &NEW, &NAMES[..OCCURRENCE_FIRST])?;
        let (uuids, urls) = (text(&df, "uuid", path, NEW.hint)?, text(&df, "url", path, NEW.hint)?);
        let (uuids, urls) = (uuids.unwrap_or_default(), urls.unwrap_or_default());
        let columns = field_columns(&df, path, NEW.hint)?;
        let ids = df.column("source_ids").and_then(|c| c.list().cloned());
        let ids = ids.map_err(|source| RefreshError::Read { path: path.clone(), hint: NEW.hint, source })?;
        for (i, row_ids) in ids.amortized_iter().enumerate() {
            tally.rows += 1;
            let Some(uuid) = parse_uuid(uuids.get(i)) else {
                tally.malformed(path, i, "no valid uuid");
                continue;
            };
            let Some(url) = urls.get(i).filter(|u| !u.is_empty()) else {
                tally.malformed(path, i, "no url");
                continue;
            };
            let mut meta = Meta::default();
            fill(&mut meta, f, &columns[..OCCURRENCE_FIRST], i);
            let row_ids = row_ids.as_ref().and_then(|s| s.as_ref().str().ok());
            meta.set_ids(f, row_ids.into_iter().flat_map(|ids| ids.iter().flatten()));
            record.clear();
            NewRecord { uuid, batch, meta, server: &server, url }.encode(&mut scratch, &mut record);
            spill.push(part_of(uuid, parts), &record)?;
        }
    }
    Ok(spill.finish()?)
}

/// Spills every row of the new snapshot's occurrence files `files` to parts `occ-<k>.bin` of
/// `dir`. Returns the parts' paths and whether any row has an occurrence field.
pub fn spill_occurrence(
    files: &[PathBuf],
    parts: usize,
    dir: &Path,
    f: &Fingerprinter,
    tally: &mut Tally,
) -> Result<(Vec<PathBuf>, bool), RefreshError> {
    let mut spill = Spill::create(dir, "occ", parts)?;
    let (mut scratch, mut record, mut occurrence) = (Vec::new(), Vec::new(), false);
    for path in files {
        let df = read(path, &OCCURRENCE, &NAMES[OCCURRENCE_FIRST..])?;
        let uuids = text(&df, "uuid", path, OCCURRENCE.hint)?.unwrap_or_default();
        let columns = field_columns(&df, path, OCCURRENCE.hint)?;
        for i in 0..df.height() {
            tally.rows += 1;
            let Some(uuid) = parse_uuid(uuids.get(i)) else {
                tally.malformed(path, i, "no valid uuid");
                continue;
            };
            let mut meta = Meta::default();
            fill(&mut meta, f, &columns, i);
            occurrence |= meta.has_occurrence();
            let dataset = columns[OCCURRENCE_FIRST].as_ref().and_then(|c| c.get(i)).map(str::trim);
            record.clear();
            OccRecord { uuid, meta, dataset: dataset.unwrap_or_default() }.encode(&mut scratch, &mut record);
            spill.push(part_of(uuid, parts), &record)?;
        }
    }
    Ok((spill.finish()?, occurrence))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_file_s_server_and_batch_come_from_its_hive_path() {
        let p = Path::new("/n/urls/server_name=a.org_8080/partition_id=12/part-0.parquet");
        assert_eq!(batch_of(p), Some(("a.org_8080".to_string(), 12)));
        assert_eq!(batch_of(Path::new("/n/urls/part-0.parquet")), None);
    }
}
