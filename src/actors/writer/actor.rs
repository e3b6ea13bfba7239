//! The WriterActor: thin handlers over [`ShardPolicy`] and `store::shards::hdf5_io::write_shard`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use actix::{Actor, Handler, SyncContext};

use super::policy::ShardPolicy;
use crate::actors::messages::{BatchDone, BatchOpened, Drain, DrainReport, Record, Store, Tick};
use crate::store::shards::finish::{merge_batch, FinishError};
use crate::store::shards::hdf5_io::{write_shard_carrying, ShardError};
use crate::store::shards::ledger::batch_dir;
use crate::store::shards::record::ShardContents;
use crate::store::shards::revalidation::{resolve, Revalidated};
use crate::store::shards::summary::{write_summary, BatchSummary, SUMMARY_FILE};
use crate::telemetry::events::ShardCommitted;
use crate::telemetry::Counters;

type BatchKey = (String, u64);

impl Pending {
    fn rows(&self) -> usize {
        self.contents.len() + self.revalidated.len()
    }
}

#[derive(Default)]
struct Pending {
    contents: ShardContents,
    /// For each record of `contents`, in the same order: the class of the failure it replaces.
    success_replaces: Vec<Option<String>>,
    failure_replaces: Vec<Option<String>>,
    /// Revalidated rows, made into records when committed (after `contents.successes`).
    revalidated: Vec<Revalidated>,
    bytes: usize,
    oldest: Option<Instant>,
}

pub struct WriterActor {
    out: PathBuf,
    policy: ShardPolicy,
    counters: Arc<Counters>,
    /// Next shard sequence number per batch; starts after the committed ones (from the ledger).
    next_seq: HashMap<BatchKey, u64>,
    pending: BTreeMap<BatchKey, Pending>,
    /// Stored bytes in `pending`, over all batches.
    buffered: usize,
    /// Content id of each open batch, from `BatchOpened`.
    batch_ids: HashMap<BatchKey, String>,
    /// Committed counts of each open batch, kept current and written beside its shards.
    summaries: HashMap<BatchKey, BatchSummary>,
    verbose: bool,
}

impl WriterActor {
    pub fn new(
        out: PathBuf,
        policy: ShardPolicy,
        counters: Arc<Counters>,
        next_seq: HashMap<BatchKey, u64>,
        verbose: bool,
    ) -> WriterActor {
        WriterActor {
            out,
            policy,
            counters,
            next_seq,
            pending: BTreeMap::new(),
            buffered: 0,
            batch_ids: HashMap::new(),
            summaries: HashMap::new(),
            verbose,
        }
    }

    fn commit(&mut self, key: &BatchKey) -> Result<usize, ShardError> {
        let Some(mut p) = self.pending.remove(key) else { return Ok(0) };
        self.buffered -= p.bytes;
        if p.rows() == 0 {
            return Ok(0);
        }
        // Revalidated rows follow the others; each refers to its stored bytes unless it
        // brought new ones.
        let fresh = p.contents.successes.len();
        let mut carried = vec![None; fresh];
        let revalidated = resolve(&self.out, std::mem::take(&mut p.revalidated))?;
        for (record, from) in revalidated {
            p.contents.successes.push(record);
            carried.push(from);
        }
        let seq = self.next_seq.entry(key.clone()).or_insert(0);
        let dir = batch_dir(&self.out, &key.0, key.1);
        let batch_id = self.batch_ids.get(key).map(String::as_str).unwrap_or_default();
        let started = Instant::now();
        let path = write_shard_carrying(&dir, *seq, &p.contents, &carried, batch_id)?;
        let seconds = started.elapsed().as_secs_f64();
        let committed = *seq;
        *seq += 1;
        if let Some(summary) = self.summaries.get_mut(key) {
            for (s, replaces) in p.contents.successes.iter().zip(&p.success_replaces) {
                summary.add_success(s.data.len() as u64, replaces.as_deref());
            }
            for (s, from) in p.contents.successes.iter().zip(&carried).skip(fresh) {
                // As the ledger counts a shard: the bytes it holds or refers to.
                summary.add_revalidated(from.as_ref().map_or(s.data.len() as u64, |c| c.length));
            }
            for (f, replaces) in p.contents.failures.iter().zip(&p.failure_replaces) {
                summary.add_failure(&f.error_class, f.retriable, replaces.as_deref());
            }
            summary.next_seq = *seq;
            // The summary names each shard it counts with its size: a reader trusts it only
            // while the folder holds exactly those (see `store::shards::summary`).
            match std::fs::metadata(&path) {
                Ok(meta) => {
                    summary.shards.get_or_insert_with(Default::default).insert(committed, meta.len());
                }
                Err(_) => summary.shards = None,
            }
            summary.batch_ids.insert(batch_id.to_string());
            // Derived data: without it, readers count from the shards, so a failure only warns.
            if let Err(e) = write_summary(&dir, summary) {
                crate::telemetry::events::log(
                    "WARN",
                    &format!("cannot write {}/{SUMMARY_FILE} ({e}); it will be rebuilt from the shards", dir.display()),
                );
            }
        }
        if p.contents.successes.len() > fresh {
            // Test-only: a test killing the process here proves a revalidation stopped midway
            // loses nothing and asks again only what it had not committed.
            crate::store::pause::point("revalidate-commit");
        }
        let rows = p.contents.len();
        ShardCommitted {
            seconds,
            server: &key.0,
            partition: key.1,
            rows,
            images: p.contents.successes.len(),
            image_bytes: p.contents.successes.iter().map(|s| s.data.len() as u64).sum(),
            bytes: p.bytes,
            verbose: self.verbose,
        }
        .emit(&self.counters);
        Ok(rows)
    }
}

impl WriterActor {
    /// Merges a complete batch's shards into one (`store::shards::finish::merge_batch`), which also
    /// rewrites its counts from the merged shard.
    fn compact(&mut self, key: &BatchKey) -> Result<(), ShardError> {
        let batch_id = self.batch_ids.get(key).map(String::as_str).unwrap_or_default();
        let (merged, ledger) = merge_batch(&self.out, &key.0, key.1, batch_id).map_err(|e| match e {
            FinishError::Merge { source, .. } => source,
            other => ShardError::Io {
                path: batch_dir(&self.out, &key.0, key.1),
                source: std::io::Error::other(other.to_string()),
            },
        })?;
        if let (Some(done), true) = (&merged, self.verbose) {
            crate::telemetry::events::log(
                "INFO",
                &format!("{}/{}: merged {} shards into {}", key.0, key.1, done.parts, done.path.display()),
            );
        }
        self.next_seq.insert(key.clone(), ledger.next_seq);
        self.summaries.insert(key.clone(), ledger.summary());
        Ok(())
    }
}

impl Actor for WriterActor {
    type Context = SyncContext<Self>;
}

impl Handler<Store> for WriterActor {
    type Result = Result<(), ShardError>;

    fn handle(&mut self, msg: Store, _: &mut Self::Context) -> Self::Result {
        let key = (msg.server, msg.partition);
        let p = self.pending.entry(key.clone()).or_default();
        p.oldest.get_or_insert_with(Instant::now);
        match msg.record {
            Record::Success(s) => {
                p.bytes += s.data.len();
                self.buffered += s.data.len();
                p.contents.successes.push(*s);
                p.success_replaces.push(msg.replaces);
            }
            Record::Failure(f) => {
                p.contents.failures.push(f);
                p.failure_replaces.push(msg.replaces);
            }
            Record::Revalidated(r) => {
                if let crate::store::shards::revalidation::Answer::Served(s) = &r.answer {
                    p.bytes += s.data.len();
                    self.buffered += s.data.len();
                }
                p.revalidated.push(r);
            }
        }
        if self.policy.should_commit(p.rows(), p.bytes, p.oldest, Instant::now()) {
            self.commit(&key)?;
        }
        while self.buffered > self.policy.max_buffered_bytes {
            let largest = self.pending.iter().max_by_key(|(_, p)| p.bytes).map(|(k, _)| k.clone());
            match largest {
                Some(key) => self.commit(&key)?,
                None => break,
            };
        }
        Ok(())
    }
}

impl Handler<BatchOpened> for WriterActor {
    type Result = ();

    fn handle(&mut self, msg: BatchOpened, _: &mut Self::Context) {
        let key = (msg.server, msg.partition);
        self.batch_ids.insert(key.clone(), msg.batch_id);
        self.summaries.insert(key.clone(), msg.summary);
        let seq = self.next_seq.entry(key).or_insert(0);
        *seq = (*seq).max(msg.next_seq);
    }
}

impl Handler<BatchDone> for WriterActor {
    type Result = Result<(), ShardError>;

    fn handle(&mut self, msg: BatchDone, _: &mut Self::Context) -> Self::Result {
        let key = (msg.server, msg.partition);
        self.commit(&key)?;
        self.compact(&key)
    }
}

impl Handler<Tick> for WriterActor {
    type Result = Result<(), ShardError>;

    fn handle(&mut self, _: Tick, _: &mut Self::Context) -> Self::Result {
        let now = Instant::now();
        let due: Vec<BatchKey> = self
            .pending
            .iter()
            .filter(|(_, p)| self.policy.should_commit(p.rows(), p.bytes, p.oldest, now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            self.commit(&key)?;
        }
        let oldest = self.pending.values().filter_map(|p| p.oldest).min();
        metrics::gauge!(crate::telemetry::names::WRITER_OLDEST_PENDING_SECONDS)
            .set(oldest.map(|t| now.duration_since(t).as_secs_f64()).unwrap_or(0.0));
        Ok(())
    }
}

impl Handler<Drain> for WriterActor {
    type Result = Result<DrainReport, ShardError>;

    fn handle(&mut self, _: Drain, _: &mut Self::Context) -> Self::Result {
        let mut report = DrainReport::default();
        let keys: Vec<BatchKey> = self.pending.keys().cloned().collect();
        for key in keys {
            let rows = self.commit(&key)?;
            if rows > 0 {
                report.shards += 1;
                report.rows += rows;
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::shards::record::test_plain_image;
    use crate::store::shards::record::SuccessRecord;
    use actix::SyncArbiter;

    fn image(host: &str, i: usize, bytes: usize) -> Record {
        Record::Success(Box::new(SuccessRecord {
            url: format!("http://{host}/{i}.jpg"),
            server: host.into(),
            ..test_plain_image(&format!("{host}-{i}"), 1, 1, "jpeg", vec![0xAB; bytes])
        }))
    }

    #[test]
    fn past_the_buffer_cap_the_batch_holding_most_is_committed_early() {
        let out = tempfile::tempdir().unwrap();
        let policy = ShardPolicy { max_buffered_bytes: 10_000, ..ShardPolicy::default() };
        let dir = out.path().to_path_buf();
        let committed = actix::System::new().block_on(async move {
            let writer = SyncArbiter::start(1, move || {
                WriterActor::new(dir.clone(), policy, Arc::new(Counters::default()), HashMap::new(), false)
            });
            // Host a holds 6,000 bytes, host b 3,000; b's next image takes the total past 10,000.
            for (host, i, bytes) in [("a", 0, 3000), ("a", 1, 3000), ("b", 0, 3000), ("b", 1, 1500)] {
                let server = host.to_string();
                writer
                    .send(Store { server, partition: 0, record: image(host, i, bytes), replaces: None })
                    .await
                    .unwrap()
                    .unwrap();
            }
            let exists = |host: &str| batch_dir(out.path(), host, 0).join("shard-000000.h5").exists();
            (exists("a"), exists("b"))
        });
        assert_eq!(committed, (true, false), "a (6,000 bytes) is committed; b (4,500) keeps waiting");
    }
}
