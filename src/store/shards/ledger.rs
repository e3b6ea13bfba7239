//! What is done, derived from the committed shards and nothing else.
//!
//! Resume, `status` and the summary call [`scan`]: it lists every committed shard under
//! `<output>/downloads/`, removes `.tmp` leftovers of a crash, and collects which rows each batch
//! has accounted for. A row is done when a committed shard holds its success or failure record.
//!
//! A row's **final** record is its record in the highest-numbered shard. A row has more than one
//! record when `download --retry-failed` tried a retriable failure again, or when `download
//! --revalidate` asked the server about a stored image again (a success after a success); any
//! other repeat is counted as a duplicate. With a retry cutoff ([`RetryFailed`]), a row whose
//! final record is a retriable failure committed before the cutoff is not done: it is to be tried
//! again. With a revalidation cutoff ([`Again::stored_before`]), a row whose final record is a
//! stored image last checked before it is not done either: it is to be asked again,
//! conditionally, with the validators [`BatchLedger::to_revalidate`] holds.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

pub use super::again::{Again, RetryFailed, StaleImage};
use super::hdf5_io::{read_index, read_validators, remove_leftovers, FailedRow, ShardError, SHARD_EXT};
use super::summary::{read_summary, BatchSummary};

pub use crate::store::paths::DOWNLOADS_DIR;

/// The folder of one batch's shards (`store::paths::batch_shards`).
pub fn batch_dir(out: &Path, server: &str, partition: u64) -> PathBuf {
    crate::store::paths::batch_shards(out, server, partition)
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(
        "cannot read {path} ({source}): the run stops rather than miss a committed shard; fix the \
         permissions or the file system, then re-run"
    )]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "committed shard {path} is unreadable ({source}); run `distributed-downloader verify --repair` on the \
         output folder to move it to quarantine/ (or move it out of the output folder yourself) and re-run: \
         its rows will be fetched again"
    )]
    Unreadable {
        path: PathBuf,
        #[source]
        source: ShardError,
    },
    #[error(
        "cannot remove the shards a merged shard replaces in {path} ({source}); nothing is counted twice, but \
         check the permissions of that folder, then re-run"
    )]
    Cleanup {
        path: PathBuf,
        #[source]
        source: ShardError,
    },
}

impl LedgerError {
    /// Whether the file it names is gone (as opposed to there and unreadable).
    fn vanished(&self) -> bool {
        match self {
            LedgerError::Io { path, .. } | LedgerError::Unreadable { path, .. } => fs::symlink_metadata(path).is_err(),
            LedgerError::Cleanup { .. } => false,
        }
    }
}

/// What one batch has committed, by each row's final record.
#[derive(Debug, Clone, Default)]
pub struct BatchLedger {
    /// Every done row's uuid; filled by [`scan_batch`] only (a whole-folder [`scan`] keeps
    /// counts, so its memory does not grow with the dataset).
    pub done: HashSet<String>,
    /// Rows that are done: a final record, and not to be retried.
    pub done_count: u64,
    /// Rows whose final record is a success.
    pub succeeded: u64,
    /// Rows whose final record is a failure.
    pub failed: u64,
    /// Of `failed`, those a later `download --retry-failed` would try again.
    pub retriable: u64,
    /// Of `retriable`, those this scan's [`RetryFailed`] asks to try again.
    pub to_retry: u64,
    /// Of `succeeded`, those this scan's [`Again::stored_before`] asks to revalidate.
    pub stale: u64,
    pub failed_by_class: BTreeMap<String, u64>,
    pub data_bytes: u64,
    /// Sequence number for the next shard of this batch.
    pub next_seq: u64,
    /// Rows with a record in more than one committed shard that `--retry-failed` and
    /// `--revalidate` do not explain (should stay 0; counted, not hidden).
    pub duplicates: u64,
    /// Failure records replaced by a later record of `--retry-failed`, and stored images'
    /// records replaced by a revalidation's (`--revalidate`).
    pub superseded: u64,
    /// `.tmp` files of a crashed run removed by [`scan_batch`].
    pub leftovers_removed: usize,
    /// The batch contents the shards say they were written for (one, unless prep re-cut the
    /// batch under the same id).
    pub batch_ids: BTreeSet<String>,
    /// The rows to retry, with the class of their committed failure; filled by [`scan_batch`]
    /// only.
    pub to_retry_classes: HashMap<String, String>,
    /// The stored images to revalidate, by uuid; filled by [`scan_batch`] only.
    pub to_revalidate: HashMap<String, StaleImage>,
    /// Shards a merged shard replaces, left behind by a crash during compaction (not counted;
    /// [`scan_batch`] removes them).
    pub replaced_parts: Vec<(u64, PathBuf)>,
    /// The shards counted, by number, with their sizes in bytes (what a summary must cover).
    pub shard_sizes: BTreeMap<u64, u64>,
    /// Temporary files and replaced parts seen in the folder: work for the batch's next owner
    /// (a whole-folder [`scan`] only counts them).
    pub leftovers_seen: usize,
    /// Why the batch was counted from its shards rather than its summary, when it was.
    pub distrusted: Option<String>,
}

impl BatchLedger {
    /// The counts to keep beside the shards (see `summary`).
    pub fn summary(&self) -> BatchSummary {
        BatchSummary {
            next_seq: self.next_seq,
            succeeded: self.succeeded,
            failed: self.failed,
            retriable: self.retriable,
            failed_by_class: self.failed_by_class.clone(),
            data_bytes: self.data_bytes,
            duplicates: self.duplicates,
            superseded: self.superseded,
            batch_ids: self.batch_ids.clone(),
            shards: Some(self.shard_sizes.clone()),
        }
    }

    /// Committed shard files counted (a complete batch with more than one is still to merge).
    pub fn shard_count(&self) -> usize {
        self.shard_sizes.len()
    }

    fn from_summary(s: BatchSummary) -> BatchLedger {
        BatchLedger {
            done_count: s.succeeded + s.failed,
            succeeded: s.succeeded,
            failed: s.failed,
            retriable: s.retriable,
            failed_by_class: s.failed_by_class,
            data_bytes: s.data_bytes,
            next_seq: s.next_seq,
            duplicates: s.duplicates,
            superseded: s.superseded,
            batch_ids: s.batch_ids,
            shard_sizes: s.shards.unwrap_or_default(),
            ..BatchLedger::default()
        }
    }
}

/// Every batch's ledger, keyed by (server, partition).
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    pub batches: BTreeMap<(String, u64), BatchLedger>,
}

impl Ledger {
    pub fn batch(&self, server: &str, partition: u64) -> Option<&BatchLedger> {
        self.batches.get(&(server.to_string(), partition))
    }

    pub fn succeeded(&self) -> u64 {
        self.batches.values().map(|b| b.succeeded).sum()
    }

    pub fn failed(&self) -> u64 {
        self.batches.values().map(|b| b.failed).sum()
    }

    /// Rows that are done (see [`BatchLedger::done_count`]).
    pub fn done(&self) -> u64 {
        self.batches.values().map(|b| b.done_count).sum()
    }

    pub fn retriable(&self) -> u64 {
        self.batches.values().map(|b| b.retriable).sum()
    }

    /// One line on the batches counted from their shards because their summary did not cover
    /// exactly the shards present (`None` when every summary was trusted, or when a retry
    /// cutoff made every batch be read from its shards anyway).
    pub fn distrust_note(&self) -> Option<String> {
        let mut distrusted = self.batches.iter().filter_map(|((h, p), b)| Some((h, p, b.distrusted.as_ref()?)));
        let (host, partition, why) = distrusted.next()?;
        let more = distrusted.count();
        let first = format!("{host}/{partition}: {why}");
        Some(match more {
            0 => format!("ledger: batch {first}; counted from its shards"),
            n => format!("ledger: {} batches counted from their shards, not their ledger.json (first: {first})", n + 1),
        })
    }
}

/// Scans the committed shards under `out`. It only reads: `.tmp` files may be shards being
/// written by another rank right now, so they are removed only by the batch's owner
/// ([`scan_batch`], when it loads the batch).
pub fn scan(out: &Path, retry: impl Into<Again>) -> Result<Ledger, LedgerError> {
    let retry = retry.into();
    let mut ledger = Ledger::default();
    let root = out.join(DOWNLOADS_DIR);
    if !root.exists() {
        return Ok(ledger);
    }
    for server_dir in subdirs(&root)? {
        let Some(server) = value_of(&server_dir, "server_name=") else { continue };
        for part_dir in subdirs(&server_dir)? {
            let Some(partition) = value_of(&part_dir, "partition_id=").and_then(|p| p.parse().ok()) else { continue };
            ledger.batches.insert((server.clone(), partition), counts(&part_dir, retry)?);
        }
    }
    if let Some(note) = ledger.distrust_note() {
        crate::telemetry::events::log("INFO", &note);
    }
    Ok(ledger)
}

/// Like [`scan`], for the given batches only: what one rank reads about the batches it owns,
/// without reading every other rank's shards.
pub fn scan_batches<'a>(
    out: &Path,
    batches: impl IntoIterator<Item = (&'a str, u64)>,
    retry: impl Into<Again>,
) -> Result<Ledger, LedgerError> {
    let retry = retry.into();
    let mut ledger = Ledger::default();
    for (server, partition) in batches {
        let dir = batch_dir(out, server, partition);
        if present(&dir)? {
            ledger.batches.insert((server.to_string(), partition), counts(&dir, retry)?);
        }
    }
    Ok(ledger)
}

/// A batch's counts without its row ids, so a whole-dataset ledger stays small: from its
/// summary when that covers exactly the shards present, numbers and sizes (no shard is opened,
/// one `stat` each), else from the shards, with the reason kept in `distrusted`. A retry cutoff
/// needs each failure's time, which only the shards hold.
fn counts(dir: &Path, retry: Again) -> Result<BatchLedger, LedgerError> {
    counts_from(dir, list(dir)?, retry)
}

/// How many times [`counts_from`] lists a batch folder again after a listed shard vanished.
const RELISTS: usize = 5;

/// [`counts`] from a first `listing` of `dir`. The owner may merge the shards while this reads
/// them (`status` during a run), committing the merged shard before removing the parts: a listed
/// shard since gone means the folder moved on, so it is listed again; other errors are returned.
fn counts_from(dir: &Path, mut listing: Listing, retry: Again) -> Result<BatchLedger, LedgerError> {
    for _ in 0..RELISTS {
        match counts_listed(dir, listing, retry) {
            Err(e) if e.vanished() => listing = list(dir)?,
            done => return done,
        }
    }
    counts_listed(dir, listing, retry)
}

fn counts_listed(dir: &Path, listing: Listing, retry: Again) -> Result<BatchLedger, LedgerError> {
    let mut distrusted = None;
    if retry == Again::default() && !listing.shards.is_empty() {
        let present = sizes(&listing.shards)?;
        match read_summary(dir) {
            Some(summary) => match summary.covers(&present) {
                Ok(()) => {
                    let mut batch = BatchLedger::from_summary(summary);
                    batch.leftovers_seen = listing.temporary;
                    return Ok(batch);
                }
                Err(why) => distrusted = Some(why),
            },
            None => distrusted = Some("it has no readable ledger.json".into()),
        }
    }
    let mut batch = scan_dir(listing.shards, retry, false)?;
    batch.done = HashSet::new();
    batch.to_retry_classes = HashMap::new();
    batch.leftovers_seen = listing.temporary + batch.replaced_parts.len();
    batch.distrusted = distrusted;
    Ok(batch)
}

/// What a batch folder holds, by name only.
struct Listing {
    /// Committed shards with their sequence numbers, in order.
    shards: Vec<(u64, PathBuf)>,
    /// Temporary files (a crash's leftovers, or a commit in flight).
    temporary: usize,
}

fn list(dir: &Path) -> Result<Listing, LedgerError> {
    let all = entries(dir)?;
    let temporary = all.iter().filter(|p| crate::store::atomic::is_temp(p)).count();
    let mut shards: Vec<(u64, PathBuf)> = all.into_iter().filter_map(|p| Some((shard_seq(&p)?, p))).collect();
    shards.sort();
    Ok(Listing { shards, temporary })
}

/// Each shard's size in bytes, by number.
fn sizes(shards: &[(u64, PathBuf)]) -> Result<BTreeMap<u64, u64>, LedgerError> {
    shards
        .iter()
        .map(|(seq, path)| {
            let meta = fs::metadata(path).map_err(|e| LedgerError::Io { path: path.clone(), source: e })?;
            Ok((*seq, meta.len()))
        })
        .collect()
}

/// Scans one batch: what the engine does when it loads a batch, so resume never needs every
/// batch's row ids in memory at once. Removes `.tmp` leftovers in the batch folder.
pub fn scan_batch(
    out: &Path,
    server: &str,
    partition: u64,
    retry: impl Into<Again>,
) -> Result<BatchLedger, LedgerError> {
    let retry = retry.into();
    let dir = batch_dir(out, server, partition);
    if !present(&dir)? {
        return Ok(BatchLedger::default());
    }
    let removed = remove_leftovers(&dir).map_err(|e| LedgerError::Io { path: dir.clone(), source: e })?;
    let mut batch = scan_dir(shards(&dir)?, retry, true)?;
    let parts = std::mem::take(&mut batch.replaced_parts);
    super::compact::remove_parts(&dir, &parts).map_err(|e| LedgerError::Cleanup { path: dir.clone(), source: e })?;
    Ok(BatchLedger { leftovers_removed: removed + parts.len(), ..batch })
}

/// Counts a batch from its committed shards (`listed`, in order), reading each one's index;
/// `with_rows` fills the row sets ([`BatchLedger::done`], the rows to retry and revalidate).
fn scan_dir(listed: Vec<(u64, PathBuf)>, retry: Again, with_rows: bool) -> Result<BatchLedger, LedgerError> {
    /// A row's latest record.
    enum Latest {
        /// A stored image: when it was last checked, its shard (index into `indexes`) and row.
        Stored {
            checked_at: f64,
            shard: usize,
            row: usize,
        },
        Failed(FailedRow),
    }
    let mut batch = BatchLedger::default();
    let mut indexes = Vec::new();
    for (seq, path) in listed {
        let index = read_index(&path).map_err(|e| LedgerError::Unreadable { path: path.clone(), source: e })?;
        let size = fs::metadata(&path).map_err(|e| LedgerError::Io { path: path.clone(), source: e })?.len();
        indexes.push((seq, path, index, size));
    }
    // A merged shard replaces every shard numbered below its `compacts_below` (left behind only
    // by a crash before they were removed): those are not counted.
    let cutoff = indexes.iter().filter_map(|(_, _, i, _)| i.compacts_below).max().unwrap_or(0);
    let mut latest: HashMap<String, Latest> = HashMap::new();
    let mut record = |batch: &mut BatchLedger, uuid: String, now: Latest| {
        let stored = matches!(now, Latest::Stored { .. });
        match latest.insert(uuid, now) {
            Some(Latest::Failed(earlier)) if earlier.retriable => batch.superseded += 1,
            // A revalidation's record (confirmed, changed, or kept after a failed check)
            // replaces the stored image's earlier one.
            Some(Latest::Stored { .. }) if stored => batch.superseded += 1,
            Some(_) => batch.duplicates += 1,
            None => {}
        }
    };
    let mut counted = Vec::new();
    for (shard, (seq, path, index, size)) in indexes.into_iter().enumerate() {
        batch.next_seq = batch.next_seq.max(seq + 1);
        if seq < cutoff {
            batch.replaced_parts.push((seq, path));
            counted.push(None);
            continue;
        }
        batch.shard_sizes.insert(seq, size);
        batch.data_bytes += index.data_bytes;
        batch.batch_ids.extend(index.batch_id);
        for (row, (uuid, checked_at)) in index.succeeded.into_iter().zip(index.checked_at).enumerate() {
            record(&mut batch, uuid, Latest::Stored { checked_at, shard, row });
        }
        for failure in index.failed {
            record(&mut batch, failure.uuid.clone(), Latest::Failed(failure));
        }
        counted.push(Some(path));
    }
    let mut stale: Vec<(String, usize, usize)> = Vec::new();
    for (uuid, last) in latest {
        match last {
            Latest::Stored { checked_at, shard, row } => {
                batch.succeeded += 1;
                if retry.stored_before.is_some_and(|before| checked_at < before) {
                    batch.stale += 1;
                    if with_rows {
                        stale.push((uuid, shard, row));
                    }
                    continue;
                }
            }
            Latest::Failed(f) => {
                batch.failed += 1;
                batch.retriable += u64::from(f.retriable);
                *batch.failed_by_class.entry(f.class.clone()).or_default() += 1;
                if retry.failed.wants(&f) {
                    batch.to_retry += 1;
                    if with_rows {
                        batch.to_retry_classes.insert(uuid, f.class);
                    }
                    continue;
                }
            }
        }
        batch.done_count += 1;
        if with_rows {
            batch.done.insert(uuid);
        }
    }
    // The validators of the rows to revalidate, read once per shard holding some.
    stale.sort_by_key(|(_, shard, row)| (*shard, *row));
    let mut validators: Option<(usize, [Vec<String>; 3])> = None;
    for (uuid, shard, row) in stale {
        let path = counted[shard].as_ref().expect("final records lie in counted shards");
        if validators.as_ref().is_none_or(|(s, _)| *s != shard) {
            let read = read_validators(path).map_err(|e| LedgerError::Unreadable { path: path.clone(), source: e })?;
            validators = Some((shard, read));
        }
        let (_, [etags, last_modified, sha256]) = validators.as_ref().expect("read above");
        let image = StaleImage {
            shard: path.clone(),
            row: row as u64,
            etag: etags[row].clone(),
            last_modified: last_modified[row].clone(),
            sha256: sha256[row].clone(),
        };
        batch.to_revalidate.insert(uuid, image);
    }
    Ok(batch)
}

/// Every entry of `dir`. An entry that cannot be read is an error, never skipped: a shard left
/// out would lower the next sequence number and hide committed rows.
fn entries(dir: &Path) -> Result<Vec<PathBuf>, LedgerError> {
    let io = |e| LedgerError::Io { path: dir.to_path_buf(), source: e };
    fs::read_dir(dir).map_err(io)?.map(|e| e.map(|e| e.path()).map_err(io)).collect()
}

/// Whether a batch has a shard folder. Absent is `false`; a folder that is there but cannot be
/// read (a dangling link, a broken mount, no permission) is an error: taking it for absent would
/// fetch its committed rows again.
fn present(dir: &Path) -> Result<bool, LedgerError> {
    let io = |e| LedgerError::Io { path: dir.to_path_buf(), source: e };
    match fs::metadata(dir) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match fs::symlink_metadata(dir) {
            Ok(_) => Err(io(e)),
            Err(_) => Ok(false),
        },
        Err(e) => Err(io(e)),
    }
}

fn subdirs(dir: &Path) -> Result<Vec<PathBuf>, LedgerError> {
    let mut v = Vec::new();
    for path in entries(dir)? {
        let meta = fs::metadata(&path).map_err(|e| LedgerError::Io { path: path.clone(), source: e })?;
        if meta.is_dir() {
            v.push(path);
        }
    }
    v.sort();
    Ok(v)
}

fn value_of(dir: &Path, prefix: &str) -> Option<String> {
    dir.file_name()?.to_str()?.strip_prefix(prefix).map(str::to_string)
}

/// Committed shards of a batch folder with their sequence numbers, in order.
pub(crate) fn shards(dir: &Path) -> Result<Vec<(u64, PathBuf)>, LedgerError> {
    Ok(list(dir)?.shards)
}

/// The sequence number of a committed shard's path (`shard-<seq>.h5`), `None` for anything else.
fn shard_seq(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    name.strip_prefix("shard-")?.strip_suffix(&format!(".{SHARD_EXT}"))?.parse().ok()
}

#[cfg(test)]
#[path = "ledger_tests.rs"]
mod tests;
