//! Committed shards are credited only to the batch content they were written for.
//!
//! Prep run again with `--force` keeps `downloads/`. On a changed input it may put other rows
//! under the same partition ids; counting the old shards against the new batches would skip rows
//! never fetched and fetch others twice. Each shard records its batch's content id
//! (`store::shards::hdf5_io::BATCH_ID_ATTR`), prep records each batch's id in `servers.parquet`, and a
//! download compares them before it counts or fetches anything. (The ServerActor checks again,
//! against the batch files themselves, when it opens a batch.)

use std::collections::HashMap;
use std::path::Path;

use anyhow::anyhow;

use crate::actors::messages::HostFailure;
use crate::store::batches::batch_id;
use crate::store::shards::ledger::Ledger;
use crate::store::tables::ServerInfo;

/// Fails, naming the first batch whose shards were written for other content, and saying what
/// to do. Batches of outputs that predate content ids are read to compute theirs.
pub fn check(out: &Path, servers: &[ServerInfo], ledger: &Ledger) -> anyhow::Result<()> {
    let by_name: HashMap<&str, &ServerInfo> = servers.iter().map(|s| (s.server_name.as_str(), s)).collect();
    for ((host, partition), batch) in &ledger.batches {
        if batch.batch_ids.is_empty() {
            continue;
        }
        let recorded = by_name.get(host.as_str()).and_then(|s| s.batch_ids.as_ref()?.get(*partition as usize).cloned());
        let now = match recorded {
            Some(id) => id,
            None => batch_id(out, host, *partition)?,
        };
        if let Some(was) = batch.batch_ids.iter().find(|id| **id != now) {
            let failure = HostFailure::BatchChanged { partition: *partition, was: was.clone(), now };
            return Err(anyhow!("{host}: {failure}"));
        }
    }
    Ok(())
}
