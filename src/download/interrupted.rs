//! What a download does first, before it plans: finish what an interrupted run left in the
//! output folder (`store::shards::finish`), and say so in one or two lines.

use std::path::Path;

use crate::store::shards::ledger::{scan, Again, Ledger, RetryFailed};
use crate::store::tables::ServerInfo;

/// Before planning: merges the complete batches an interrupted run left in many shards and
/// removes leftovers (`store::shards::finish`), and says so. `done` is a whole-folder scan by `retry`;
/// the work needs one without a retry or revalidation cutoff, read again when `retry` has one. Returns whether
/// anything changed on disk (the caller's ledger is then stale).
pub fn finish(out: &Path, servers: &[ServerInfo], done: &Ledger, retry: Again) -> anyhow::Result<bool> {
    let mut plain = if retry == Again::default() { done.clone() } else { scan(out, RetryFailed::No)? };
    let finished = crate::store::shards::finish::finish_interrupted(out, servers, &mut plain)?;
    if finished.resummarised > 0 {
        eprintln!("download: ledger.json rewritten from the shards for {} batch(es)", finished.resummarised);
    }
    if finished.merged > 0 || finished.cleaned > 0 {
        eprintln!(
            "download: finished what an interrupted run left: {} complete batch(es) merged into one shard, \
             leftovers removed in {} batch(es)",
            finished.merged, finished.cleaned
        );
        return Ok(true);
    }
    Ok(false)
}
