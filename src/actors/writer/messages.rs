//! Messages the WriterActor accepts.

use actix::Message;

use crate::store::shards::hdf5_io::ShardError;
use crate::store::shards::record::{FailureRecord, SuccessRecord};
use crate::store::shards::summary::BatchSummary;

/// One finished row.
#[derive(Debug)]
pub enum Record {
    Success(SuccessRecord),
    Failure(FailureRecord),
}

/// Sent by a ServerActor for every row that finished (stored or failed for good). The reply is
/// Err when a commit this message triggered failed (disk full, ...): the run must stop, and the
/// uncommitted rows are fetched again by the next run.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), ShardError>")]
pub struct Store {
    pub server: String,
    pub partition: u64,
    pub record: Record,
    /// With `--retry-failed`: the class of the committed retriable failure this record replaces.
    pub replaces: Option<String>,
}

/// Sent by a ServerActor when it loads a batch, before any `Store` for it: the sequence number
/// the batch's next shard takes (after the shards committed by earlier runs).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct BatchOpened {
    pub server: String,
    pub partition: u64,
    pub next_seq: u64,
    /// The batch's content id, written into each of its shards.
    pub batch_id: String,
    /// What the batch's committed shards hold; each commit adds to it and writes it beside them.
    pub summary: BatchSummary,
}

/// Sent by a ServerActor after the last `Store` of a batch: commit what is pending for it.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), ShardError>")]
pub struct BatchDone {
    pub server: String,
    pub partition: u64,
}

/// Sent periodically by the coordinator: commit batches whose oldest pending row has waited too
/// long, so a slow host's rows become durable without waiting for its batch to end.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), ShardError>")]
pub struct Tick;

/// Sent once by the coordinator at the end: commit everything pending. The reply comes when all
/// of it is durable on disk.
#[derive(Debug, Message)]
#[rtype(result = "Result<DrainReport, ShardError>")]
pub struct Drain;

/// What a drain committed.
#[derive(Debug, Clone, Default)]
pub struct DrainReport {
    pub shards: usize,
    pub rows: usize,
}
