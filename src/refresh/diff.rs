//! The diff of two snapshots: every image of either classified once (`classify`), written as the
//! refresh plan and its report.
//!
//! Neither snapshot is held whole. Pass 1 reads the old manifest (on one thread), the new batch
//! files and the new occurrence files (on another) one file at a time and appends each row, as a compact record (`record`: the
//! uuid, what the plan needs, and a fingerprint per compared field, `fields`), to one of `parts`
//! scratch files chosen by a hash of its uuid, so an image's rows from all three inputs meet in
//! one part. Pass 2 takes the parts one at a time: it reads the part's three files whole,
//! indexes the old and occurrence records by uuid, walks the new records (each classified against
//! its old record, with its occurrence fields), then the old records no new one matched (`gone`),
//! and writes the part's plan rows sorted by uuid.
//!
//! Memory: `parts = clamp(ceil(max(old rows, new rows) / rows_per_part), 1, MAX_PARTS)`, so a
//! part holds about `R = max(old rows, new rows) / parts` images of each side. Pass 2's peak is
//! about `R × (B_old + B_new + B_occ + 150)` bytes: the three parts' records (`B` bytes per row:
//! about 60 + the URL, server, shard and dataset key + 8 per present compared field; about 350,
//! 150 and 150 for GBIF-like rows), the uuid indexes and the plan rows (about 150 per image
//! together), plus one plan row group. Pass 1 holds two input files (a batch of each side) and a
//! 64 KiB write buffer per part and side. With the defaults (`ROWS_PER_PART` = 500,000) that is
//! about 400 MB whatever the snapshots' size, up to 192M rows (384 parts); past that the parts
//! grow with the rows. Scratch disk: the three inputs' records, about `B × rows`, freed part by
//! part. (Measured: docs/benchmarks.md, `make bench-refresh`.)
//!
//! Output, in the new output folder (`store::paths`): `refresh/plan/part-<k>.parquet` (`plan`)
//! and `refresh/report.json` (`report`). The plan is staged beside its place and replaces the
//! previous plan whole; the report is written last, so a plan without a report is incomplete.
//! The caller holds the output folder's writer lock.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use super::classify::{self, Verdict};
use super::error::{scratch, RefreshError};
use super::fields::Fingerprinter;
use super::plan::{write_part, PlanRow};
use super::read::{count_rows, spill_new, spill_occurrence, spill_old, Tally};
use super::record::{record_at, records, uuid_of, NewRecord, OccRecord, OldRecord};
use super::report::DiffReport;
use crate::store::atomic;
use crate::store::paths;

/// Default images of each side per part: the part's records, indexes and plan rows stay near
/// 400 MB for GBIF-like rows (465 MiB peak measured at 10M rows), a fraction of a node's memory, while a 10M-row snapshot needs only
/// 20 parts (and 192M rows 384).
pub const ROWS_PER_PART: u64 = 500_000;

/// Most parts: pass 1 keeps one 64 KiB buffer and one open file per part and side, the two sides
/// at once (48 MiB, and 768 files: under a default limit of 1,024 open files).
pub const MAX_PARTS: usize = 384;

/// How to run the diff.
#[derive(Debug, Clone)]
pub struct DiffOptions {
    /// Images of each side per scratch part (see the module doc); tests make it small to force
    /// many parts.
    pub rows_per_part: u64,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions { rows_per_part: ROWS_PER_PART }
    }
}

/// How many parts hold `rows` images of the larger side at `rows_per_part` each.
pub fn part_count(rows: u64, rows_per_part: u64) -> usize {
    rows.div_ceil(rows_per_part.max(1)).clamp(1, MAX_PARTS as u64) as usize
}

/// Classifies every image of the old manifest `old_manifest` and the new snapshot's batch files
/// `new_urls` (with its occurrence files `new_occurrence`, possibly none), writing the plan and
/// the report into output folder `out` (the new snapshot's). `scratch` is a folder the diff may
/// fill and removes at the end (`store::paths::refresh_scratch` unless the caller has a faster
/// disk); its old content is removed first.
pub fn diff(
    old_manifest: &[PathBuf],
    new_urls: &[PathBuf],
    new_occurrence: &[PathBuf],
    scratch_dir: &Path,
    out: &Path,
    opts: &DiffOptions,
) -> Result<DiffReport, RefreshError> {
    let rows = count_rows(old_manifest)?.max(count_rows(new_urls)?);
    let parts = part_count(rows, opts.rows_per_part);
    fresh_dir(scratch_dir)?;
    let f = Fingerprinter::default();
    let mut report = DiffReport { parts, ..DiffReport::default() };
    // The old side on a thread of its own beside the new one: pass 1 is reading and hashing,
    // and the two sides share nothing but the (read-only) fingerprinter.
    let (old_spill, new_spill) = std::thread::scope(|s| {
        let old = s.spawn(|| spill_old(old_manifest, parts, scratch_dir, &f, &mut report.old));
        let new = spill_new(new_urls, parts, scratch_dir, &f, &mut report.new).and_then(|new_parts| {
            let occ = spill_occurrence(new_occurrence, parts, scratch_dir, &f, &mut report.occurrence)?;
            Ok((new_parts, occ))
        });
        (old.join().expect("the old side's reader does not panic"), new)
    });
    let (old_parts, old_has_occurrence) = old_spill?;
    let (new_parts, (occ_parts, new_has_occurrence)) = new_spill?;
    report.occurrence_compared = old_has_occurrence && new_has_occurrence;

    let staging = paths::refresh_plan_staging(out);
    fresh_dir(&staging)?;
    for p in 0..parts {
        let files = [&old_parts[p], &new_parts[p], &occ_parts[p]];
        join_part(files, &paths::refresh_plan_part(&staging, p), &mut report)?;
    }

    let (plan, report_file) = (paths::refresh_plan(out), paths::refresh_report(out));
    report.plan = plan.display().to_string();
    remove_if_there(&report_file, |p| fs::remove_file(p))?;
    remove_if_there(&plan, |p| fs::remove_dir_all(p))?;
    atomic::publish(&staging, &plan)?;
    let json = serde_json::to_string_pretty(&report).expect("the report serialises");
    atomic::replace(&report_file, (json + "\n").as_bytes())?;
    let _ = fs::remove_dir_all(scratch_dir); // its parts were read and removed: a leftover costs no data
    Ok(report)
}

/// Pass 2 for one part: `files` are its old, new and occurrence records; its plan rows go to
/// `target`.
fn join_part(files: [&PathBuf; 3], target: &Path, report: &mut DiffReport) -> Result<(), RefreshError> {
    let [old_file, new_file, occ_file] = files;
    let occ_part = read_part(occ_file)?;
    let occ = index(&occ_part, &mut report.occurrence, |_, _| false);
    let old_part = read_part(old_file)?;
    // Two records of one uuid in the old manifest: the one whose status counts most is kept.
    let rank = |r: &[u8]| OldRecord::decode(r).status.rank();
    let mut old = index(&old_part, &mut report.old, |kept, new| rank(new) > rank(kept));
    let new_part = read_part(new_file)?;
    let mut rows: Vec<PlanRow> = Vec::with_capacity(old.len().max(occ.len()));
    let mut seen: HashSet<u128, foldhash::fast::RandomState> = HashSet::default();
    for (_, r) in records(&new_part) {
        let mut new = NewRecord::decode(r);
        if !seen.insert(new.uuid) {
            report.new.duplicates += 1;
            continue;
        }
        let occurrence = occ.get(&new.uuid).map(|(at, _)| OccRecord::decode(record_at(&occ_part, *at)));
        if let Some(o) = &occurrence {
            new.meta.take_occurrence(&o.meta);
        }
        let old_record = old.get_mut(&new.uuid).map(|(at, matched)| {
            *matched = true;
            OldRecord::decode(record_at(&old_part, *at))
        });
        let verdict =
            classify::of_new(old_record.as_ref().map(|o| (o.status, &o.meta)), &new.meta, report.occurrence_compared);
        let dataset = occurrence.as_ref().map(|o| o.dataset).filter(|d| !d.is_empty());
        let dataset = dataset.or(old_record.as_ref().map(|o| o.dataset)).unwrap_or_default();
        report.count(&verdict, new.server, dataset);
        let old_place = old_record.map(|o| (o.status, o.shard, o.row));
        rows.push(PlanRow {
            uuid: new.uuid,
            url: new.url,
            server: new.server,
            batch: new.batch,
            verdict,
            old: old_place,
        });
    }
    drop(seen);
    for (at, matched) in old.values() {
        if *matched {
            continue;
        }
        let o = OldRecord::decode(record_at(&old_part, *at));
        let verdict: Verdict = classify::of_gone();
        report.count(&verdict, o.server, o.dataset);
        let old_place = Some((o.status, o.shard, o.row));
        rows.push(PlanRow { uuid: o.uuid, url: o.url, server: o.server, batch: o.batch, verdict, old: old_place });
    }
    if rows.is_empty() {
        return Ok(());
    }
    rows.sort_unstable_by_key(|r| r.uuid);
    write_part(target, &rows)
}

/// A part's records by uuid: each one's offset in the part, and whether a new record matched it.
type Index = HashMap<u128, (usize, bool), foldhash::fast::RandomState>;

/// Each uuid's record in `part`; a repeated uuid is counted in `tally` and replaces the kept
/// one when `replace(kept, repeated)` says so.
fn index(part: &[u8], tally: &mut Tally, replace: impl Fn(&[u8], &[u8]) -> bool) -> Index {
    let mut by_uuid = Index::default();
    for (at, r) in records(part) {
        match by_uuid.entry(uuid_of(r)) {
            Entry::Vacant(e) => {
                e.insert((at, false));
            }
            Entry::Occupied(mut e) => {
                tally.duplicates += 1;
                if replace(record_at(part, e.get().0), r) {
                    e.insert((at, false));
                }
            }
        }
    }
    by_uuid
}

/// A part file read whole, then removed (it is read once).
fn read_part(path: &Path) -> Result<Vec<u8>, RefreshError> {
    let bytes = fs::read(path).map_err(scratch(path))?;
    let _ = fs::remove_file(path); // read: a leftover would only cost scratch space
    Ok(bytes)
}

/// Empties (or creates) folder `dir`.
fn fresh_dir(dir: &Path) -> Result<(), RefreshError> {
    remove_if_there(dir, |p| fs::remove_dir_all(p))?;
    fs::create_dir_all(dir).map_err(scratch(dir))
}

fn remove_if_there(path: &Path, remove: fn(&Path) -> std::io::Result<()>) -> Result<(), RefreshError> {
    match remove(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(scratch(path)(e)),
        _ => Ok(()),
    }
}
