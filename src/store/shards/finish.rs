//! Finishing what an interrupted run left behind, before anything is planned.
//!
//! A batch is merged into one shard when it completes during a run (`compact`). A run killed in
//! that merge, or one whose merge failed, leaves a complete batch in many shards, a temporary
//! file, or parts beside the merged shard; the planner skips complete batches, so nothing would
//! ever merge them. [`finish_interrupted`] runs first in every download, even one with nothing
//! left to do: it merges every complete batch held in more than one shard, removes leftovers,
//! and rewrites the `ledger.json` of batches that had to be counted from their shards.
//!
//! It is cheap on a GBIF-sized output: it works from a whole-folder [`Ledger`] (a listing and a
//! summary per batch), and opens shards only in batches that need the work.
//!
//! Does not own: how a merge is written (`compact`) or counted (`ledger`).

use std::path::Path;

use super::compact::{compact, remove_parts, write_merged, Compacted};
use super::hdf5_io::{read_index, remove_leftovers, ShardError};
use super::image_data::is_concatenated;
use super::ledger::{batch_dir, scan_batch, shards, BatchLedger, Ledger, LedgerError, RetryFailed};
use super::summary::write_summary;
use crate::store::tables::ServerInfo;

#[derive(Debug, thiserror::Error)]
pub enum FinishError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("cannot merge the shards of complete batch {server}/{partition} (nothing was deleted): {source}")]
    Merge {
        server: String,
        partition: u64,
        #[source]
        source: ShardError,
    },
}

/// What [`finish_interrupted`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Finished {
    /// Complete batches merged into one shard.
    pub merged: usize,
    /// Batches whose temporary files or replaced parts were removed.
    pub cleaned: usize,
    /// Batches counted from their shards whose `ledger.json` was rewritten.
    pub resummarised: usize,
}

/// Merges the shards of `dir`'s batch into one, if it has more than one, and rewrites its
/// summary from the merged shard. Returns the merge (if any) and the batch's ledger after it.
/// Used by the writer when a batch completes, and by [`finish_interrupted`].
pub fn merge_batch(
    out: &Path,
    server: &str,
    partition: u64,
    batch_id: &str,
) -> Result<(Option<Compacted>, BatchLedger), FinishError> {
    let dir = batch_dir(out, server, partition);
    // A crash's temporary files go first; the parts are read once, by the merge. Parts a
    // merged shard already replaces (a crash before their removal) are merged again with it,
    // which changes no row: its records come after theirs and are final.
    remove_leftovers(&dir).map_err(|e| LedgerError::Io { path: dir.clone(), source: e })?;
    let listed = shards(&dir)?;
    let next_seq = listed.last().map_or(0, |(seq, _)| seq + 1);
    let merged = compact(&dir, &listed, next_seq, batch_id).map_err(|source| FinishError::Merge {
        server: server.to_string(),
        partition,
        source,
    })?;
    // Counts the result (one shard once merged) and removes what a merged shard replaces.
    let after = scan_batch(out, server, partition, RetryFailed::No)?;
    keep_summary(&dir, &after);
    Ok((merged, after))
}

/// Rewrites the shards of `dir`'s batch in the per-image layout when any of them is in the older,
/// concatenated one (see `image_data`): they are merged into one shard, as a complete batch is,
/// with every image checked against its CRC-32 on the way. Returns the merge, `None` when every
/// shard was per-image already. Only the process holding the folder's lock calls it.
pub fn upgrade_batch(out: &Path, server: &str, partition: u64) -> Result<Option<Compacted>, FinishError> {
    let dir = batch_dir(out, server, partition);
    let merge_err = |source| FinishError::Merge { server: server.to_string(), partition, source };
    let listed = shards(&dir)?;
    let mut old = false;
    for (_, path) in &listed {
        old |= is_concatenated(path).map_err(merge_err)?;
    }
    if !old {
        return Ok(None);
    }
    remove_leftovers(&dir).map_err(|e| LedgerError::Io { path: dir.clone(), source: e })?;
    let batch_id = match listed.last() {
        Some((_, last)) => read_index(last).map_err(merge_err)?.batch_id.unwrap_or_default(),
        None => String::new(),
    };
    let next_seq = listed.last().map_or(0, |(seq, _)| seq + 1);
    let (path, rows) = write_merged(&dir, &listed, next_seq, &batch_id).map_err(merge_err)?;
    remove_parts(&dir, &listed).map_err(merge_err)?;
    let after = scan_batch(out, server, partition, RetryFailed::No)?;
    keep_summary(&dir, &after);
    Ok(Some(Compacted { path, parts: listed.len(), rows }))
}

/// Merges every complete batch of `ledger` (a whole-folder scan without a retry cutoff) that is
/// held in more than one shard, removes the leftovers of batches that have some, and rewrites
/// the `ledger.json` of batches that were counted from their shards (so the next reader trusts
/// it); updates `ledger` for the batches it touched. Run by the one process holding the
/// folder's lock, before planning. A merge that fails stops the run, naming the file: nothing
/// has been deleted.
pub fn finish_interrupted(out: &Path, servers: &[ServerInfo], ledger: &mut Ledger) -> Result<Finished, FinishError> {
    let mut finished = Finished::default();
    let rows_of = |server: &str, partition: u64| {
        let info = servers.iter().find(|s| s.server_name == server).filter(|s| partition < s.batch_count)?;
        info.rows_in(out, partition).ok()
    };
    let todo: Vec<(String, u64, Work)> = ledger
        .batches
        .iter()
        .filter_map(|((server, partition), b)| {
            // Batches of servers no longer in the table (an older prep) are not this run's.
            let rows = rows_of(server, *partition)?;
            let work = if b.done_count >= rows && b.shard_count() > 1 {
                Work::Merge
            } else if b.leftovers_seen > 0 {
                Work::Clean
            } else if b.distrusted.is_some() {
                Work::Resummarise
            } else {
                return None;
            };
            Some((server.clone(), *partition, work))
        })
        .collect();
    for (server, partition, work) in todo {
        let key = (server.clone(), partition);
        let dir = batch_dir(out, &server, partition);
        let b = match work {
            Work::Merge => {
                let id = servers
                    .iter()
                    .find(|s| s.server_name == server)
                    .and_then(|s| s.batch_ids.as_ref()?.get(partition as usize).cloned())
                    .unwrap_or_default();
                let (merged, b) = merge_batch(out, &server, partition, &id)?;
                if let Some(m) = merged {
                    finished.merged += 1;
                    crate::telemetry::events::log(
                        "INFO",
                        &format!(
                            "{server}/{partition}: complete; merged {} shards left by an interrupted run into {}",
                            m.parts,
                            m.path.display()
                        ),
                    );
                }
                b
            }
            Work::Clean => {
                let b = scan_batch(out, &server, partition, RetryFailed::No)?;
                finished.cleaned += usize::from(b.leftovers_removed > 0);
                keep_summary(&dir, &b);
                b
            }
            Work::Resummarise => {
                let b = ledger.batches.get(&key).cloned().unwrap_or_default();
                keep_summary(&dir, &b);
                finished.resummarised += 1;
                b
            }
        };
        let distrusted = ledger.batches.get(&key).and_then(|old| old.distrusted.clone());
        ledger.batches.insert(
            key,
            BatchLedger {
                done: Default::default(),
                to_retry_classes: Default::default(),
                leftovers_seen: 0,
                distrusted,
                ..b
            },
        );
    }
    Ok(finished)
}

/// What a batch needs before planning.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Work {
    /// Complete, in more than one shard.
    Merge,
    /// Temporary files or replaced parts to remove.
    Clean,
    /// Counted from its shards: its summary is rewritten so the next reader trusts it.
    Resummarise,
}

/// Writes `b`'s counts as the batch's summary; derived data, so a failure only warns.
fn keep_summary(dir: &Path, b: &BatchLedger) {
    if let Err(e) = write_summary(dir, &b.summary()) {
        crate::telemetry::events::log("WARN", &format!("{e}; it will be rebuilt from the shards"));
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::store::shards::hdf5_io::write_shard;
    use crate::store::shards::ledger::scan;
    use crate::store::shards::record::{FailureRecord, ShardContents};

    fn rows(uuids: &[&str]) -> ShardContents {
        let failure = |uuid: &&str| FailureRecord {
            uuid: uuid.to_string(),
            url: format!("http://a.org/{uuid}"),
            server: "a.org".into(),
            source_ids: vec![],
            error_class: "http_4xx".into(),
            detail: String::new(),
            attempts: 1,
            http_status: 404,
            retriable: false,
            failed_at: 0.0,
        };
        ShardContents { successes: vec![], failures: uuids.iter().map(failure).collect() }
    }

    fn server(batch_rows: Vec<u64>) -> ServerInfo {
        ServerInfo {
            server_name: "a.org".into(),
            url_count: batch_rows.iter().sum(),
            batch_count: batch_rows.len() as u64,
            batch_rows: Some(batch_rows),
            ..ServerInfo::default()
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        v.sort();
        v
    }

    #[test]
    fn a_complete_batch_left_in_parts_is_merged_and_an_incomplete_one_only_cleaned() {
        let out = tempfile::tempdir().unwrap();
        let (done, partial) = (batch_dir(out.path(), "a.org", 0), batch_dir(out.path(), "a.org", 1));
        for (seq, uuids) in [["a", "b"], ["c", "d"], ["e", "f"]].iter().enumerate() {
            write_shard(&done, seq as u64, &rows(uuids), "").unwrap();
        }
        write_shard(&partial, 0, &rows(&["x"]), "").unwrap();
        write_shard(&partial, 1, &rows(&["y"]), "").unwrap();
        fs::write(done.join("shard-000003.h5.node7-99-0.tmp"), b"a killed merge").unwrap();
        fs::write(partial.join("shard-000002.h5.node7-99-1.tmp"), b"a killed commit").unwrap();
        let servers = [server(vec![6, 5])];
        let mut ledger = scan(out.path(), RetryFailed::No).unwrap();
        let finished = finish_interrupted(out.path(), &servers, &mut ledger).unwrap();
        assert_eq!((finished.merged, finished.cleaned), (1, 1));
        assert_eq!(names(&done), ["ledger.json", "shard-000003.h5"], "one file, and its summary");
        assert_eq!(names(&partial), ["ledger.json", "shard-000000.h5", "shard-000001.h5"], "not complete: not merged");
        let after = scan(out.path(), RetryFailed::No).unwrap();
        assert_eq!((after.done(), after.distrust_note()), (8, None), "each row once; both summaries trusted");
        assert_eq!(ledger.done(), 8, "the caller's ledger is updated too");
        // Nothing left to do: a second pass changes nothing.
        let again = finish_interrupted(out.path(), &servers, &mut after.clone()).unwrap();
        assert_eq!(again, Finished::default());
    }

    #[test]
    fn a_batch_counted_from_its_shards_gets_a_summary_the_next_reader_trusts() {
        let out = tempfile::tempdir().unwrap();
        let dir = batch_dir(out.path(), "a.org", 0);
        write_shard(&dir, 0, &rows(&["a"]), "").unwrap();
        let mut ledger = scan(out.path(), RetryFailed::No).unwrap();
        assert!(ledger.distrust_note().is_some(), "no ledger.json yet");
        let finished = finish_interrupted(out.path(), &[server(vec![3])], &mut ledger).unwrap();
        assert_eq!(finished.resummarised, 1);
        assert_eq!(scan(out.path(), RetryFailed::No).unwrap().distrust_note(), None);
    }
}
