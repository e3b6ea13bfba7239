//! The checks of one batch: its shards open and read whole, each row has one final record (or
//! several only as `--retry-failed` explains), no more rows than the batch holds, its
//! `ledger.json` agrees with the shards, and a sample (or all) of its images are intact.
//!
//! Only reads. The rule for a row's final record is the ledger's (`store::shards::ledger`): its record
//! in the highest-numbered shard, shards below a merged shard's `compacts_below` not counted.
//! Owns: reading a batch for `verify` and `--repair` ([`read_batch`]), and the checks.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use super::image;
use super::pool::ImageJob;
use super::report::{Kind, Problem, Report, Warning};
use crate::store::atomic::is_temp;
use crate::store::shards::hdf5_io::{open_records, ShardError, ShardRecords};
use crate::store::shards::image_data::ImageData;
use crate::store::shards::ledger::{batch_dir, shards};
use crate::store::shards::summary::{read_summary, SUMMARY_FILE};
use crate::store::tables::ServerInfo;

/// Which images are checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// Images checked per batch, spread over its shards; `None`: every image (`--full`).
    pub sample: Option<usize>,
    /// Threads checking images (CRC-32 and decode) while the batches are read.
    pub threads: usize,
}

/// One committed shard as read.
pub(crate) struct ShardScan {
    pub seq: u64,
    pub path: PathBuf,
    /// Its records, or why they cannot be read.
    pub records: Result<ShardRecords, String>,
    /// Its image bytes, from the same open of the file (`None` when the records are unreadable).
    pub data: Option<ImageData>,
}

/// Where a row's final record is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Final {
    /// Index in [`BatchScan::shards`].
    pub shard: usize,
    /// `None` for a success, else whether the failure is retriable.
    pub failure: Option<bool>,
}

/// A batch folder as read: its shards and each row's final record.
pub(crate) struct BatchScan {
    pub dir: PathBuf,
    pub shards: Vec<ShardScan>,
    /// Shards numbered below this are replaced by a merged shard (crash leftovers).
    pub cutoff: u64,
    pub finals: HashMap<String, Final>,
    /// Rows recorded twice without a retriable failure first: (uuid, url, shard, earlier shard).
    pub duplicates: Vec<(String, String, usize, usize)>,
    /// `.tmp` files, and shards that vanished while being read (a writer at work).
    pub leftovers: Vec<PathBuf>,
    pub vanished: Vec<PathBuf>,
    /// One past the highest shard number listed: where a new shard of the batch goes.
    pub next_seq: u64,
}

impl BatchScan {
    /// Whether shard `i` counts (is readable and not replaced by a merged shard).
    pub fn counts(&self, i: usize) -> bool {
        self.shards[i].seq >= self.cutoff && self.shards[i].records.is_ok()
    }
}

/// What is wrong with a shard, without the advice [`ShardError`]'s message adds.
fn short(e: &ShardError) -> String {
    match e {
        ShardError::Damaged { what, .. } => what.clone(),
        ShardError::Hdf5 { source, .. } => format!("HDF5: {source}"),
        other => other.to_string(),
    }
}

/// Reads batch folder `(server, partition)` of `out`; `None` when it has none (nothing
/// downloaded yet). An error is a folder that is there but cannot be listed.
pub(crate) fn read_batch(out: &Path, server: &str, partition: u64) -> Result<Option<BatchScan>, String> {
    let dir = batch_dir(out, server, partition);
    match fs::symlink_metadata(&dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", dir.display())),
        Ok(_) => {}
    }
    let listed = shards(&dir).map_err(|e| e.to_string())?;
    let leftovers = fs::read_dir(&dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_temp(p))
        .collect();
    let next_seq = listed.last().map_or(0, |(seq, _)| seq + 1);
    let mut scan = BatchScan {
        dir,
        shards: Vec::new(),
        cutoff: 0,
        finals: HashMap::new(),
        duplicates: Vec::new(),
        leftovers,
        vanished: Vec::new(),
        next_seq,
    };
    for (seq, path) in listed {
        let (records, data) = match open_records(&path) {
            Ok((records, data)) => (Ok(records), Some(data)),
            Err(e) => (Err(short(&e)), None),
        };
        if records.is_err() && !path.exists() {
            scan.vanished.push(path);
            continue;
        }
        scan.shards.push(ShardScan { seq, path, records, data });
    }
    scan.cutoff = scan.shards.iter().filter_map(|s| s.records.as_ref().ok()?.compacts_below).max().unwrap_or(0);
    for i in 0..scan.shards.len() {
        if !scan.counts(i) {
            continue;
        }
        let Ok(r) = &scan.shards[i].records else { continue };
        let rows = r.contents.successes.iter().map(|s| (&s.uuid, &s.url, None));
        let rows = rows.chain(r.contents.failures.iter().map(|f| (&f.uuid, &f.url, Some(f.retriable))));
        for (uuid, url, failure) in rows {
            if let Some(earlier) = scan.finals.insert(uuid.clone(), Final { shard: i, failure }) {
                // A retried retriable failure, or a stored image revalidated (a success after a
                // success), is expected; anything else is a duplicate.
                let revalidated = earlier.failure.is_none() && failure.is_none();
                if earlier.failure != Some(true) && !revalidated {
                    scan.duplicates.push((uuid.clone(), url.clone(), i, earlier.shard));
                }
            }
        }
    }
    Ok(Some(scan))
}

/// Reads images `which` (indexes into its successes, ascending) of shard `shard` and hands each
/// to `check` with its index, or returns the index, kind and detail of one that cannot be read.
fn read_images(
    shard: &ShardScan,
    which: &[usize],
    mut check: impl FnMut(usize, Vec<u8>, Option<u32>),
) -> Vec<(usize, Kind, String)> {
    let (Ok(records), Some(data)) = (&shard.records, &shard.data) else { return Vec::new() };
    let mut unreadable = Vec::new();
    for (&i, bytes) in which.iter().zip(data.read_many(which)) {
        match bytes {
            Ok(bytes) => check(i, bytes, records.stored_crc32.as_ref().map(|c| c[i])),
            Err(e) => unreadable.push((i, Kind::Unreadable, short(&e))),
        }
    }
    unreadable
}

/// Checks images `which` of shard `shard` here, one after another (`--repair` uses it): the
/// problems found, as (index, kind, detail).
pub(crate) fn check_images(shard: &ShardScan, which: &[usize]) -> Vec<(usize, Kind, String)> {
    let Ok(records) = &shard.records else { return Vec::new() };
    let mut bad = Vec::new();
    let unreadable = read_images(shard, which, |i, bytes, crc| {
        if let Err((kind, detail)) = image::check(&records.contents.successes[i], &bytes, crc) {
            bad.push((i, kind, detail));
        }
    });
    bad.extend(unreadable);
    bad.sort_by_key(|b| b.0);
    bad
}

/// Checks batch `partition` of `server` and adds what it finds to `report`; its images, read
/// here, go to `check_image` (a worker pool, see `pool.rs`, or [`ImageJob::check`] at once).
pub(crate) fn check_batch(
    out: &Path,
    server: &ServerInfo,
    partition: u64,
    opts: &Options,
    report: &mut Report,
    check_image: &mut dyn FnMut(ImageJob),
) {
    let name = &server.server_name;
    let problem = |kind, shard: Option<&Path>, row: Option<(&str, &str)>, detail: String| Problem {
        kind,
        server: name.clone(),
        partition,
        shard: shard.map(Path::to_path_buf),
        uuid: row.map(|r| r.0.to_string()),
        url: row.map(|r| r.1.to_string()),
        detail,
    };
    let warning = |path: &Path, detail: &str| Warning {
        server: name.clone(),
        partition,
        path: Some(path.into()),
        detail: detail.into(),
    };
    report.batches += 1;
    let rows = server.rows_in(out, partition);
    match &rows {
        Ok(n) => report.rows += n,
        Err(e) => report.problems.push(problem(Kind::Unreadable, None, None, format!("cannot count its rows: {e}"))),
    }
    let scan = match read_batch(out, name, partition) {
        Ok(Some(scan)) => scan,
        Ok(None) => return,
        Err(e) => {
            report.problems.push(problem(Kind::Unreadable, None, None, e));
            return;
        }
    };
    for path in &scan.leftovers {
        report
            .warnings
            .push(warning(path, "temporary file of a crashed or running write; the next download removes it"));
    }
    for path in &scan.vanished {
        report.warnings.push(warning(path, "removed while verify read it: is a download running on this folder?"));
    }
    let mut readable = true;
    for (i, shard) in scan.shards.iter().enumerate() {
        report.shards += 1;
        match &shard.records {
            Err(e) => {
                readable = false;
                report.problems.push(problem(Kind::Unreadable, Some(&shard.path), None, e.clone()));
            }
            Ok(_) if !scan.counts(i) => report.warnings.push(warning(
                &shard.path,
                &format!(
                    "replaced by a merged shard (compacts_below = {}), left by a crash; the next download removes it",
                    scan.cutoff
                ),
            )),
            Ok(r) => report.shards_without_checksum += u64::from(r.stored_crc32.is_none()),
        }
    }
    for (uuid, url, at, earlier) in &scan.duplicates {
        let detail =
            format!("also recorded in {}, and not as a retriable failure", scan.shards[*earlier].path.display());
        report.problems.push(problem(Kind::Duplicate, Some(&scan.shards[*at].path), Some((uuid, url)), detail));
    }
    let succeeded = scan.finals.values().filter(|f| f.failure.is_none()).count() as u64;
    let recorded = scan.finals.len() as u64;
    (report.rows_recorded, report.succeeded) = (report.rows_recorded + recorded, report.succeeded + succeeded);
    report.failed += recorded - succeeded;
    if let Some(n) = rows.ok().filter(|n| recorded > *n) {
        let detail = format!("{recorded} rows have a record, but the batch holds {n}: was it prepped again?");
        report.problems.push(problem(Kind::TooManyRows, None, None, detail));
    }
    check_summary(&scan, readable, (succeeded, recorded - succeeded), |p, d| match p {
        Some(kind) => report.problems.push(problem(kind, Some(&scan.dir.join(SUMMARY_FILE)), None, d)),
        None => report.warnings.push(warning(&scan.dir.join(SUMMARY_FILE), &d)),
    });
    for (i, which) in sample(&scan, opts.sample) {
        let shard = &scan.shards[i];
        let Ok(r) = &shard.records else { continue };
        report.images_checked += which.len() as u64;
        let unreadable = read_images(shard, &which, |j, bytes, crc| {
            let record = r.contents.successes[j].clone();
            let (server, shard) = (name.clone(), shard.path.clone());
            check_image(ImageJob { server, partition, shard, record, bytes, crc });
        });
        for (j, kind, detail) in unreadable {
            let s = &r.contents.successes[j];
            report.problems.push(problem(kind, Some(&shard.path), Some((&s.uuid, &s.url)), detail));
        }
    }
}

/// Compares `ledger.json` with the counts scanned (succeeded, failed) when it covers exactly
/// the shards present (else no reader trusts it, and it is rebuilt: a warning).
/// `found(Some(kind), ..)` is a problem, `found(None, ..)` a warning.
fn check_summary(
    scan: &BatchScan,
    readable: bool,
    (succeeded, failed): (u64, u64),
    mut found: impl FnMut(Option<Kind>, String),
) {
    if !scan.dir.join(SUMMARY_FILE).exists() {
        return;
    }
    let Some(summary) = read_summary(&scan.dir) else {
        return found(None, "unreadable, so not trusted: the next download rebuilds it from the shards".into());
    };
    let present: BTreeMap<u64, u64> =
        scan.shards.iter().filter_map(|s| Some((s.seq, fs::metadata(&s.path).ok()?.len()))).collect();
    if let Err(why) = summary.covers(&present) {
        return found(None, format!("not trusted ({why}): the next download rebuilds it from the shards"));
    }
    if readable && (summary.succeeded, summary.failed) != (succeeded, failed) {
        let detail = format!(
            "says {} stored and {} failed, the shards hold {succeeded} and {failed}; `status` and `download` read it",
            summary.succeeded, summary.failed
        );
        found(Some(Kind::Summary), detail);
    }
}

/// The images to check, by shard: every image of the counted shards with `None`, else up to `n`
/// spread evenly over them (the same ones on every run).
fn sample(scan: &BatchScan, n: Option<usize>) -> Vec<(usize, Vec<usize>)> {
    let mut all: Vec<(usize, usize)> = Vec::new();
    for i in (0..scan.shards.len()).filter(|i| scan.counts(*i)) {
        let Ok(r) = &scan.shards[i].records else { continue };
        all.extend((0..r.contents.successes.len()).map(|j| (i, j)));
    }
    let picked: Vec<(usize, usize)> = match n {
        // The middle of each of k equal stretches: the first and last shards get their share.
        Some(k) if k < all.len() => (0..k).map(|j| all[(2 * j + 1) * all.len() / (2 * k)]).collect(),
        _ => all,
    };
    let mut by_shard: Vec<(usize, Vec<usize>)> = Vec::new();
    for (i, j) in picked {
        match by_shard.last_mut() {
            Some((last, v)) if *last == i => v.push(j),
            _ => by_shard.push((i, vec![j])),
        }
    }
    by_shard
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::shards::hdf5_io::{write_shard, STORED_CRC32};
    use crate::store::shards::record::test_plain_image;
    use crate::store::shards::record::{FailureRecord, ShardContents, SuccessRecord};
    use crate::store::shards::summary::{write_summary, BatchSummary};

    fn image(uuid: &str) -> SuccessRecord {
        test_plain_image(uuid, 2, 1, "rgb", vec![1; 6])
    }

    fn failure(uuid: &str, retriable: bool) -> FailureRecord {
        FailureRecord {
            uuid: uuid.into(),
            url: format!("http://a.org/{uuid}"),
            server: "a.org".into(),
            source_ids: vec![],
            error_class: "timeout".into(),
            detail: String::new(),
            attempts: 1,
            http_status: 0,
            retriable,
            failed_at: 0.0,
        }
    }

    fn server(rows: u64) -> ServerInfo {
        ServerInfo {
            server_name: "a.org".into(),
            url_count: rows,
            batch_count: 1,
            initial_rate_limit: 1.0,
            batch_rows: Some(vec![rows]),
            ..ServerInfo::default()
        }
    }

    #[test]
    fn a_batch_reports_duplicates_a_wrong_summary_and_too_many_rows_but_not_a_retried_row() {
        let out = tempfile::tempdir().unwrap();
        let dir = batch_dir(out.path(), "a.org", 0);
        let first = ShardContents { successes: vec![image("a"), image("b")], failures: vec![failure("r", true)] };
        // r retried with success: explained. a recorded again as a failure: a duplicate.
        let second = ShardContents { successes: vec![image("r")], failures: vec![failure("a", false)] };
        write_shard(&dir, 0, &first, "x").unwrap();
        let older = write_shard(&dir, 1, &second, "x").unwrap();
        hdf5::File::open_rw(&older).unwrap().group("images").unwrap().unlink(STORED_CRC32).unwrap();
        fs::write(dir.join("shard-000002.h5.host-1-0.tmp"), b"half").unwrap();
        let sizes = [0, 1].map(|s| (s, fs::metadata(dir.join(format!("shard-00000{s}.h5"))).unwrap().len()));
        let summary = BatchSummary { next_seq: 2, shards: Some(sizes.into()), succeeded: 99, ..Default::default() };
        write_summary(&dir, &summary).unwrap();

        let mut report = Report::default();
        let mut found = Vec::new();
        check_batch(out.path(), &server(2), 0, &Options { sample: Some(8), threads: 1 }, &mut report, &mut |j| {
            found.extend(j.check())
        });
        assert!(found.is_empty(), "the images are intact: {found:?}");
        report.count_clean([]);
        report.finish();
        let kinds: Vec<&str> = report.problems.iter().map(|p| p.kind.as_str()).collect();
        // By batch, then file (none, ledger.json, the shard), then kind.
        assert_eq!(kinds, ["too_many_rows", "summary", "duplicate"], "{:#?}", report.problems);
        assert_eq!(report.problems[2].uuid.as_deref(), Some("a"));
        assert_eq!((report.rows, report.rows_recorded, report.succeeded, report.failed), (2, 3, 2, 1));
        assert_eq!((report.shards, report.shards_without_checksum, report.images_checked), (2, 1, 3));
        assert_eq!(report.warnings.len(), 1, "the .tmp leftover: {:?}", report.warnings);
        assert_eq!(report.batches_clean, 0);

        let mut sampled = Report::default();
        let mut checked = 0;
        check_batch(out.path(), &server(3), 0, &Options { sample: Some(2), threads: 1 }, &mut sampled, &mut |_| {
            checked += 1
        });
        assert_eq!(checked, 2, "each sampled image is handed over to be checked");
        assert_eq!(sampled.images_checked, 2, "a sample of 2 of the 3 images");
        let picks = |n| sample(&read_batch(out.path(), "a.org", 0).unwrap().unwrap(), Some(n));
        assert_eq!(picks(2), [(0, vec![0]), (1, vec![0])], "spread over the shards");
        assert_eq!(picks(2), picks(2), "the same images on every run");
    }
}
