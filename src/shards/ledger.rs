//! What is done, derived from the committed shards and nothing else.
//!
//! Resume, `status` and the summary call [`scan`]: it lists every committed shard under
//! `<output>/downloads/`, removes `.tmp` leftovers of a crash, and collects which rows each batch
//! has accounted for. A row is done when a committed shard holds its success or failure record.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use super::hdf5_io::{read_index, remove_leftovers, WriteError, SHARD_EXT};

/// The folder under the output folder where shards go.
pub const DOWNLOADS_DIR: &str = "downloads";

/// The folder of one batch's shards.
pub fn batch_dir(out: &Path, server: &str, partition: u64) -> PathBuf {
    out.join(DOWNLOADS_DIR).join(format!("server_name={server}")).join(format!("partition_id={partition}"))
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
    #[error("committed shard {path} is unreadable ({source}); move it out of the output folder and re-run: its rows will be fetched again")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: WriteError,
    },
}

/// What one batch has committed.
#[derive(Debug, Clone, Default)]
pub struct BatchLedger {
    /// Every row uuid with a committed record; filled by [`scan_batch`] only (a whole-folder
    /// [`scan`] keeps counts, so its memory does not grow with the dataset).
    pub done: HashSet<String>,
    /// Rows with a committed record.
    pub done_count: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Failures a later run may retry (`--retry-failed`): uuid set.
    pub retriable_failed: HashSet<String>,
    pub failed_by_class: BTreeMap<String, u64>,
    pub data_bytes: u64,
    /// Sequence number for the next shard of this batch.
    pub next_seq: u64,
    /// Rows that appear in more than one committed shard (should stay 0; counted, not hidden).
    pub duplicates: u64,
    /// `.tmp` files of a crashed run removed by [`scan_batch`].
    pub leftovers_removed: usize,
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
}

/// Scans the committed shards under `out`. It only reads: `.tmp` files may be shards being
/// written by another rank right now, so they are removed only by the batch's owner
/// ([`scan_batch`], when it loads the batch).
pub fn scan(out: &Path) -> Result<Ledger, LedgerError> {
    let mut ledger = Ledger::default();
    let root = out.join(DOWNLOADS_DIR);
    if !root.exists() {
        return Ok(ledger);
    }
    for server_dir in subdirs(&root)? {
        let Some(server) = value_of(&server_dir, "server_name=") else { continue };
        for part_dir in subdirs(&server_dir)? {
            let Some(partition) = value_of(&part_dir, "partition_id=").and_then(|p| p.parse().ok()) else { continue };
            ledger.batches.insert((server.clone(), partition), counts_only(scan_dir(&part_dir)?));
        }
    }
    Ok(ledger)
}

/// Like [`scan`], for the given batches only: what one rank reads about the batches it owns,
/// without reading every other rank's shards.
pub fn scan_batches<'a>(out: &Path, batches: impl IntoIterator<Item = (&'a str, u64)>) -> Result<Ledger, LedgerError> {
    let mut ledger = Ledger::default();
    for (server, partition) in batches {
        let dir = batch_dir(out, server, partition);
        if present(&dir)? {
            ledger.batches.insert((server.to_string(), partition), counts_only(scan_dir(&dir)?));
        }
    }
    Ok(ledger)
}

/// Keeps a batch's counts and drops its row ids, so a whole-dataset ledger stays small.
fn counts_only(mut batch: BatchLedger) -> BatchLedger {
    batch.done_count = batch.done.len() as u64;
    batch.done = HashSet::new();
    batch.retriable_failed = HashSet::new();
    batch
}

/// Scans one batch: what the engine does when it loads a batch, so resume never needs every
/// batch's row ids in memory at once. Removes `.tmp` leftovers in the batch folder.
pub fn scan_batch(out: &Path, server: &str, partition: u64) -> Result<BatchLedger, LedgerError> {
    let dir = batch_dir(out, server, partition);
    if !present(&dir)? {
        return Ok(BatchLedger::default());
    }
    let removed = remove_leftovers(&dir).map_err(|e| LedgerError::Io { path: dir.clone(), source: e })?;
    let batch = scan_dir(&dir)?;
    Ok(BatchLedger { leftovers_removed: removed, done_count: batch.done.len() as u64, ..batch })
}

fn scan_dir(part_dir: &Path) -> Result<BatchLedger, LedgerError> {
    let mut batch = BatchLedger::default();
    for (seq, path) in shards(part_dir)? {
        let index = read_index(&path).map_err(|e| LedgerError::Unreadable { path: path.clone(), source: e })?;
        batch.next_seq = batch.next_seq.max(seq + 1);
        batch.data_bytes += index.data_bytes;
        for uuid in index.succeeded {
            batch.succeeded += 1;
            if !batch.done.insert(uuid) {
                batch.duplicates += 1;
            }
        }
        for (uuid, class, retriable) in index.failed {
            batch.failed += 1;
            *batch.failed_by_class.entry(class).or_default() += 1;
            if retriable {
                batch.retriable_failed.insert(uuid.clone());
            }
            if !batch.done.insert(uuid) {
                batch.duplicates += 1;
            }
        }
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
fn shards(dir: &Path) -> Result<Vec<(u64, PathBuf)>, LedgerError> {
    let mut v: Vec<(u64, PathBuf)> = entries(dir)?
        .into_iter()
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?;
            let seq = name.strip_prefix("shard-")?.strip_suffix(&format!(".{SHARD_EXT}"))?.parse().ok()?;
            Some((seq, p))
        })
        .collect();
    v.sort();
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shards::hdf5_io::write_shard;
    use crate::shards::record::{FailureRecord, ShardContents};

    fn failure(uuid: &str, class: &str, retriable: bool) -> FailureRecord {
        FailureRecord {
            uuid: uuid.into(),
            url: format!("http://a.org/{uuid}"),
            server: "a.org".into(),
            source_ids: vec![],
            error_class: class.into(),
            detail: String::new(),
            attempts: 3,
            http_status: 503,
            retriable,
            failed_at: 0.0,
        }
    }

    #[test]
    fn ledger_counts_committed_rows_and_ignores_crash_leftovers() {
        let out = tempfile::tempdir().unwrap();
        let dir = batch_dir(out.path(), "a.org", 2);
        let c1 = ShardContents { successes: vec![], failures: vec![failure("u1", "http_5xx", true)] };
        let c2 = ShardContents { successes: vec![], failures: vec![failure("u2", "http_4xx", false)] };
        write_shard(&dir, 0, &c1).unwrap();
        write_shard(&dir, 1, &c2).unwrap();
        let tmp = dir.join("shard-000002.h5.tmp");
        fs::write(&tmp, b"a crash left this").unwrap();
        let ledger = scan(out.path()).unwrap();
        assert!(tmp.exists(), "a whole-folder scan only reads: another rank may be writing it");
        assert_eq!(ledger.batch("a.org", 2).unwrap().done_count, 2);
        let b = scan_batch(out.path(), "a.org", 2).unwrap();
        assert_eq!(b.leftovers_removed, 1, "the owner removes it");
        assert!(!tmp.exists());
        assert_eq!(b.done.len(), 2);
        assert_eq!(b.next_seq, 2, "the next shard does not overwrite a committed one");
        assert!(b.retriable_failed.contains("u1") && !b.retriable_failed.contains("u2"));
        assert_eq!(b.failed_by_class["http_4xx"], 1);
        assert_eq!(b.duplicates, 0);
    }

    #[test]
    fn an_unreadable_shard_is_named_with_what_to_do() {
        let out = tempfile::tempdir().unwrap();
        let dir = batch_dir(out.path(), "a.org", 0);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("shard-000000.h5"), b"not hdf5").unwrap();
        let err = scan(out.path()).unwrap_err().to_string();
        assert!(err.contains("shard-000000.h5") && err.contains("move it out"), "{err}");
    }
}
