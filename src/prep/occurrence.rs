//! `prep --occurrence occurrence.txt`: each URL's dataset, publisher and taxonomy, from the GBIF
//! occurrence file of the same download, joined on the URL's lowest source id (the row whose
//! licence and credits `carried` keeps).
//!
//! The occurrence file is as large as the dataset (200M rows at GBIF scale), so the join never
//! holds it: both sides are cut by a hash of the id into `parts` files, each part is joined in
//! memory (the ids one part needs, and its occurrence rows as they stream by), and the matches
//! are cut again by batch and written as one `occurrence.parquet` per batch under
//! `occurrence/server_name=<key>/partition_id=<n>/` (beside `urls/`, not in it, so `urls/` still
//! reads as one table). Memory holds one part: about `ROWS_PER_PART` ids. GBIF files are
//! tab-separated without quoting, one record a line; a line with fewer fields than the header
//! is counted and skipped.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::server_key::fnv1a;
use super::PrepError;
use crate::store::batches::BATCH_FILE;
use crate::store::parquet::{read_parquet, write_parquet};
use crate::store::paths;
use crate::store::tables::ServerRow;

pub use crate::store::paths::OCCURRENCE_DIR;

/// The occurrence file's columns read (matched without regard to case), and the column each
/// becomes in the batch's file and the manifest.
pub const FIELDS: [(&str, &str); 12] = [
    ("datasetKey", "dataset_key"),
    ("publishingOrgKey", "publishing_org_key"),
    ("basisOfRecord", "basis_of_record"),
    ("kingdom", "kingdom"),
    ("phylum", "phylum"),
    ("class", "class"),
    ("order", "order"),
    ("family", "family"),
    ("genus", "genus"),
    ("species", "species"),
    ("scientificName", "scientific_name"),
    ("taxonKey", "taxon_key"),
];

/// Ids joined in memory at once, per part.
const ROWS_PER_PART: u64 = 2_000_000;

/// What the join did, in prep's report.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct OccurrenceJoin {
    pub file: String,
    /// Occurrence rows read (the header not counted).
    pub rows: u64,
    /// Lines with fewer fields than the header, skipped.
    pub malformed_lines: u64,
    /// URLs whose lowest source id has an occurrence row.
    pub matched_urls: u64,
    /// URLs without one (their dataset and taxonomy stay empty).
    pub unmatched_urls: u64,
    /// Columns of `FIELDS` the file did not have (their values stay empty).
    pub missing_columns: Vec<String>,
}

/// Joins `occurrence` to the batches of `servers` under `out` (prep's staged output), writing
/// `out/occurrence/`; `scratch` is an empty folder it may fill and empties.
pub fn join(out: &Path, servers: &[ServerRow], occurrence: &Path, scratch: &Path) -> Result<OccurrenceJoin, PrepError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PrepError::Io { path, source }
    };
    let batches: Vec<(&str, u64)> =
        servers.iter().flat_map(|s| (0..s.batch_count).map(move |p| (s.server_name.as_str(), p))).collect();
    let urls: u64 = servers.iter().map(|s| s.url_count).sum();
    let parts = (urls / ROWS_PER_PART + 1).min(1024) as usize;
    let (needed_dir, occ_dir, found_dir) = (scratch.join("needed"), scratch.join("occ"), scratch.join("found"));
    for d in [&needed_dir, &occ_dir, &found_dir] {
        fs::create_dir_all(d).map_err(io(d))?;
    }
    let part_of = |id: &str| (fnv1a(id.as_bytes()) % parts as u64) as usize;

    // The ids each part needs: each URL's lowest source id, with its batch and uuid.
    let mut needed = Parts::create(&needed_dir, parts)?;
    for (b, (server, partition)) in batches.iter().enumerate() {
        let file = paths::batch_urls(out, server, *partition).join(BATCH_FILE);
        let df = read_parquet(&file)?;
        let pe = |source| PrepError::Parquet { path: file.clone(), source };
        let uuids = df.column("uuid").and_then(|c| c.str().cloned()).map_err(pe)?;
        let ids = df.column("source_ids").and_then(|c| c.list().cloned()).map_err(pe)?;
        for i in 0..df.height() {
            let lowest = ids.get_as_series(i).and_then(|s| s.str().ok().and_then(|s| s.get(0).map(str::to_string)));
            if let (Some(id), Some(uuid)) = (lowest.filter(|id| !id.is_empty()), uuids.get(i)) {
                needed.line(part_of(&id), &format!("{id}\t{b}\t{uuid}"))?;
            }
        }
    }
    needed.finish()?;

    // The occurrence rows, cut the same way, only the columns of FIELDS.
    let mut report = OccurrenceJoin { file: occurrence.display().to_string(), ..Default::default() };
    let mut reader = BufReader::with_capacity(1 << 20, File::open(occurrence).map_err(io(occurrence))?);
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line).map_err(io(occurrence))?;
    let header: Vec<String> = split(&line).map(|f| f.trim_start_matches('\u{feff}').to_string()).collect();
    let find = |name: &str| header.iter().position(|h| h.eq_ignore_ascii_case(name));
    let id_at = find("gbifID").ok_or_else(|| PrepError::MissingColumn {
        column: "gbifID".into(),
        path: occurrence.to_path_buf(),
        found: header.join(", "),
        hint: " (--occurrence takes GBIF's occurrence.txt from the same download as the multimedia file)".into(),
    })?;
    let at: Vec<Option<usize>> = FIELDS.iter().map(|(name, _)| find(name)).collect();
    report.missing_columns =
        FIELDS.iter().zip(&at).filter(|(_, a)| a.is_none()).map(|((n, _), _)| n.to_string()).collect();
    let mut occ = Parts::create(&occ_dir, parts)?;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).map_err(io(occurrence))? == 0 {
            break;
        }
        let fields: Vec<String> = split(&line).collect();
        if fields.len() == 1 && fields[0].is_empty() {
            continue;
        }
        report.rows += 1;
        if fields.len() < header.len() {
            report.malformed_lines += 1;
            continue;
        }
        let id = fields[id_at].trim();
        if id.is_empty() {
            continue;
        }
        let values: Vec<&str> = at.iter().map(|a| a.map_or("", |a| fields[a].trim())).collect();
        occ.line(part_of(id), &format!("{id}\t{}", values.join("\t")))?;
    }
    occ.finish()?;

    // Each part joined in memory; the matches cut by batch.
    let mut found = Parts::create(&found_dir, parts)?;
    for p in 0..parts {
        let mut wanted: HashMap<String, Vec<(usize, String)>> = HashMap::new();
        for l in lines(&needed.path(p))? {
            let l = l?;
            let mut f = l.splitn(3, '\t');
            let (Some(id), Some(b), Some(uuid)) = (f.next(), f.next(), f.next()) else { continue };
            wanted.entry(id.to_string()).or_default().push((b.parse().unwrap_or(usize::MAX), uuid.to_string()));
        }
        for l in lines(&occ.path(p))? {
            let l = l?;
            let Some((id, values)) = l.split_once('\t') else { continue };
            for (b, uuid) in wanted.remove(id).unwrap_or_default() {
                report.matched_urls += 1;
                found.line(b % parts, &format!("{b}\t{uuid}\t{values}"))?;
            }
        }
        report.unmatched_urls += wanted.values().map(|v| v.len() as u64).sum::<u64>();
    }
    found.finish()?;

    // One file per batch with matches.
    for p in 0..parts {
        let mut by_batch: HashMap<usize, Vec<String>> = HashMap::new();
        for l in lines(&found.path(p))? {
            let l = l?;
            let Some((b, rest)) = l.split_once('\t') else { continue };
            by_batch.entry(b.parse().unwrap_or(usize::MAX)).or_default().push(rest.to_string());
        }
        for (b, rows) in by_batch {
            let Some((server, partition)) = batches.get(b) else { continue };
            let file = paths::batch_occurrence(out, server, *partition);
            let dir = file.parent().expect("a batch's file is in its folder").to_path_buf();
            fs::create_dir_all(&dir).map_err(io(&dir))?;
            let mut df = frame(&rows).map_err(|source| PrepError::Parquet { path: file.clone(), source })?;
            write_parquet(&file, &mut df)?;
        }
    }
    // Scratch lies under prep's temporary folder, which prep removes when it ends: a failure here
    // costs disk space until then, never a row.
    let _ = fs::remove_dir_all(scratch);
    Ok(report)
}

/// `uuid` and the columns of `FIELDS`, from lines `uuid \t v1 \t ... \t v12`.
fn frame(rows: &[String]) -> PolarsResult<DataFrame> {
    let split: Vec<Vec<&str>> = rows.iter().map(|r| r.split('\t').collect()).collect();
    let column =
        |i: usize| -> Vec<Option<&str>> { split.iter().map(|r| r.get(i).copied().filter(|v| !v.is_empty())).collect() };
    let mut columns = vec![Column::new("uuid".into(), column(0))];
    for (i, (_, name)) in FIELDS.iter().enumerate() {
        columns.push(Column::new((*name).into(), column(i + 1)));
    }
    DataFrame::new(rows.len(), columns)
}

/// The fields of one tab-separated line, without its line end, decoded leniently.
fn split(line: &[u8]) -> impl Iterator<Item = String> + '_ {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    line.split(|b| *b == b'\t').map(|f| String::from_utf8_lossy(f).into_owned())
}

/// The lines of a scratch file; a read error is an error, never an early end (rows would be lost).
fn lines(path: &Path) -> Result<impl Iterator<Item = Result<String, PrepError>> + '_, PrepError> {
    let io = move |source| PrepError::Io { path: path.to_path_buf(), source };
    let file = File::open(path).map_err(io)?;
    Ok(BufReader::new(file).lines().map(move |l| l.map_err(io)))
}

/// Scratch files, one per part, written line by line.
struct Parts {
    dir: PathBuf,
    files: Vec<BufWriter<File>>,
}

impl Parts {
    fn create(dir: &Path, parts: usize) -> Result<Parts, PrepError> {
        let mut files = Vec::with_capacity(parts);
        for p in 0..parts {
            let path = dir.join(format!("p{p:04}.tsv"));
            files.push(BufWriter::new(File::create(&path).map_err(|source| PrepError::Io { path, source })?));
        }
        Ok(Parts { dir: dir.to_path_buf(), files })
    }

    fn path(&self, p: usize) -> PathBuf {
        self.dir.join(format!("p{p:04}.tsv"))
    }

    fn line(&mut self, p: usize, text: &str) -> Result<(), PrepError> {
        let f = &mut self.files[p];
        f.write_all(text.as_bytes())
            .and_then(|()| f.write_all(b"\n"))
            .map_err(|source| PrepError::Io { path: self.dir.clone(), source })
    }

    fn finish(&mut self) -> Result<(), PrepError> {
        for f in &mut self.files {
            f.flush().map_err(|source| PrepError::Io { path: self.dir.clone(), source })?;
        }
        Ok(())
    }
}
