//! Finishing what an interrupted run left behind, before anything is planned.
//!
//! A batch is merged into one shard when it completes during a run (`compact`). A run killed in
//! that merge, or one whose merge failed, leaves a complete batch in many shards, a temporary
//! file, or parts beside the merged shard; the planner skips complete batches, so nothing would
//! ever merge them. [`finish_interrupted`] runs first in every download, even one with nothing
//! left to do: it merges every complete batch held in more than one shard and removes leftovers.
//!
//! It is cheap on a GBIF-sized output: it works from a whole-folder [`Ledger`] (a listing and a
//! summary per batch), and opens shards only in batches that need the work.
//!
//! Does not own: how a merge is written (`compact`) or counted (`ledger`).

use std::path::Path;

use super::compact::{compact, Compacted};
use super::hdf5_io::WriteError;
use super::ledger::{batch_dir, scan_batch, shards, BatchLedger, Ledger, LedgerError, RetryFailed};
use super::summary::write_summary;
use crate::prep::batches::ServerInfo;

#[derive(Debug, thiserror::Error)]
pub enum FinishError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(
        "cannot merge the shards of complete batch {server}/{partition}: {source}. Nothing was deleted; run \
         `distributed-downloader verify --repair` on the output folder, then `download` again"
    )]
    Merge {
        server: String,
        partition: u64,
        #[source]
        source: WriteError,
    },
}

/// What [`finish_interrupted`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Finished {
    /// Complete batches merged into one shard.
    pub merged: usize,
    /// Batches whose temporary files or replaced parts were removed.
    pub cleaned: usize,
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
    // The owner's view first: removes a crash's temporary files and replaced parts.
    let before = scan_batch(out, server, partition, RetryFailed::No)?;
    let listed = shards(&dir)?;
    let merged = compact(&dir, &listed, before.next_seq, batch_id).map_err(|source| FinishError::Merge {
        server: server.to_string(),
        partition,
        source,
    })?;
    let after = match merged {
        Some(_) => scan_batch(out, server, partition, RetryFailed::No)?,
        None => before,
    };
    // Derived data: without it, readers count from the shards, so a failure only warns.
    if let Err(e) = write_summary(&dir, &after.summary()) {
        crate::telemetry::events::log("WARN", &format!("{e}; it will be rebuilt from the shards"));
    }
    Ok((merged, after))
}

/// Merges every complete batch of `ledger` (a whole-folder scan without a retry cutoff) that is
/// held in more than one shard, and removes the leftovers of batches that have some; updates
/// `ledger` for the batches it touched. Run by the one process holding the folder's lock, before
/// planning. A merge that fails stops the run, naming the file: nothing has been deleted.
pub fn finish_interrupted(out: &Path, servers: &[ServerInfo], ledger: &mut Ledger) -> Result<Finished, FinishError> {
    let mut finished = Finished::default();
    let rows_of = |server: &str, partition: u64| {
        let info = servers.iter().find(|s| s.server_name == server).filter(|s| partition < s.batch_count)?;
        info.rows_in(out, partition).ok()
    };
    let todo: Vec<(String, u64, bool)> = ledger
        .batches
        .iter()
        .filter_map(|((server, partition), b)| {
            // Batches of servers no longer in the table (an older prep) are not this run's.
            let rows = rows_of(server, *partition)?;
            let complete = b.done_count >= rows && b.shard_count() > 1;
            (complete || b.leftovers_seen > 0).then(|| (server.clone(), *partition, complete))
        })
        .collect();
    for (server, partition, complete) in todo {
        let key = (server.clone(), partition);
        let b = if complete {
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
        } else {
            let b = scan_batch(out, &server, partition, RetryFailed::No)?;
            finished.cleaned += usize::from(b.leftovers_removed > 0);
            b
        };
        let old = ledger.batches.get(&key).cloned().unwrap_or_default();
        ledger.batches.insert(
            key,
            BatchLedger {
                done: Default::default(),
                to_retry_classes: Default::default(),
                leftovers_seen: 0,
                distrusted: old.distrusted,
                ..b
            },
        );
    }
    Ok(finished)
}
