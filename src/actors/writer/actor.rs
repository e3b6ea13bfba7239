//! The WriterActor: thin handlers over [`ShardPolicy`] and `shards::hdf5_io::write_shard`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use actix::{Actor, Handler, SyncContext};

use super::messages::{BatchDone, BatchOpened, Drain, DrainReport, Record, Store, Tick};
use super::policy::ShardPolicy;
use crate::shards::hdf5_io::{write_shard, WriteError};
use crate::shards::ledger::batch_dir;
use crate::shards::record::ShardContents;
use crate::telemetry::events::ShardCommitted;
use crate::telemetry::Counters;

type BatchKey = (String, u64);

#[derive(Default)]
struct Pending {
    contents: ShardContents,
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
        WriterActor { out, policy, counters, next_seq, pending: BTreeMap::new(), verbose }
    }

    fn commit(&mut self, key: &BatchKey) -> Result<usize, WriteError> {
        let Some(p) = self.pending.remove(key) else { return Ok(0) };
        if p.contents.is_empty() {
            return Ok(0);
        }
        let seq = self.next_seq.entry(key.clone()).or_insert(0);
        let dir = batch_dir(&self.out, &key.0, key.1);
        write_shard(&dir, *seq, &p.contents)?;
        *seq += 1;
        let rows = p.contents.len();
        ShardCommitted { server: &key.0, partition: key.1, rows, bytes: p.bytes, verbose: self.verbose }
            .emit(&self.counters);
        Ok(rows)
    }
}

impl Actor for WriterActor {
    type Context = SyncContext<Self>;
}

impl Handler<Store> for WriterActor {
    type Result = Result<(), WriteError>;

    fn handle(&mut self, msg: Store, _: &mut Self::Context) -> Self::Result {
        let key = (msg.server, msg.partition);
        let p = self.pending.entry(key.clone()).or_default();
        p.oldest.get_or_insert_with(Instant::now);
        match msg.record {
            Record::Success(s) => {
                p.bytes += s.data.len();
                p.contents.successes.push(s);
            }
            Record::Failure(f) => p.contents.failures.push(f),
        }
        if self.policy.should_commit(p.contents.len(), p.bytes, p.oldest, Instant::now()) {
            self.commit(&key)?;
        }
        Ok(())
    }
}

impl Handler<BatchOpened> for WriterActor {
    type Result = ();

    fn handle(&mut self, msg: BatchOpened, _: &mut Self::Context) {
        let seq = self.next_seq.entry((msg.server, msg.partition)).or_insert(0);
        *seq = (*seq).max(msg.next_seq);
    }
}

impl Handler<BatchDone> for WriterActor {
    type Result = Result<(), WriteError>;

    fn handle(&mut self, msg: BatchDone, _: &mut Self::Context) -> Self::Result {
        self.commit(&(msg.server, msg.partition)).map(|_| ())
    }
}

impl Handler<Tick> for WriterActor {
    type Result = Result<(), WriteError>;

    fn handle(&mut self, _: Tick, _: &mut Self::Context) -> Self::Result {
        let now = Instant::now();
        let due: Vec<BatchKey> = self
            .pending
            .iter()
            .filter(|(_, p)| self.policy.should_commit(p.contents.len(), p.bytes, p.oldest, now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            self.commit(&key)?;
        }
        Ok(())
    }
}

impl Handler<Drain> for WriterActor {
    type Result = Result<DrainReport, WriteError>;

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
