//! The messages between the rank's coordinator (`download::run`) and its actors, in one place:
//! what a ServerActor is given and accepts, what it reports back, and what the WriterActor
//! accepts.

use actix::Message;

use crate::host::state::HostState;
use crate::store::error::StoreError;
use crate::store::shards::hdf5_io::ShardError;
use crate::store::shards::ledger::LedgerError;
use crate::store::shards::record::{FailureRecord, SuccessRecord};
use crate::store::shards::revalidation::Revalidated;
use crate::store::shards::summary::BatchSummary;

// ---- To a ServerActor -------------------------------------------------------------------------

/// What the coordinator gives a ServerActor: the host and the batches it owns.
#[derive(Debug, Clone)]
pub struct HostPlan {
    pub host: String,
    pub partitions: Vec<u64>,
    /// Learned state from an earlier run or another rank, if any.
    pub learned: Option<HostState>,
    /// The host's starting rate: the servers table's (profiled, or prep's default), or its
    /// override.
    pub initial_rate: f64,
    /// The host's ceiling: `MAX_RATE_LIMIT`, or its override.
    pub max_rate: f64,
    /// The host's in-flight cap: `MAX_IN_FLIGHT_PER_HOST`, or its override.
    pub max_in_flight: u32,
    /// Into how many shares the planner split the host (1 = not split). Each share gets 1/k of
    /// the host's rates and of its in-flight cap, so together they never exceed what the host
    /// allows.
    pub shares: u32,
    /// Whether this share asks the host for robots.txt (see `robots::gate`).
    pub asks_robots: bool,
    /// Each batch's content id by partition, from `servers.parquet` (`None` for outputs of older
    /// versions of prep: the id is then computed from the batch files when a batch is opened).
    pub batch_ids: Option<Vec<String>>,
}

/// Sent by the rank's slot pool when a request slot was given back and this host was waiting
/// for one. The actor tries to send its next request.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Wake;

/// Sent by the coordinator when the deadline nears: start no new request, let the ones in flight
/// finish and reach the writer, then report `Finished` with what remains.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StopIssuing;

/// Sent by the coordinator when its hosts have made no progress for `after` (no image stored,
/// no row recorded, no answer) while some are parked: a parked host records its rows as
/// retriable `parked` failures and finishes, so the run ends instead of waiting out the parking
/// schedule. Hosts that are not parked ignore it.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct GiveUpParked {
    pub after: std::time::Duration,
}

/// Sent by the coordinator when another share of this host, on another rank, was refused: the
/// share's rate after its cut, and what is left of the server's `Retry-After`, if any. The actor
/// follows the rate down (never up) and pauses, so together the shares stay within the host's
/// limit within seconds instead of at the next round.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct PeerRefusal {
    pub share_rate: f64,
    pub pause: Option<std::time::Duration>,
}

// ---- From a ServerActor to the coordinator ----------------------------------------------------

/// Why a host's actor had to stop the run.
#[derive(Debug, thiserror::Error)]
pub enum HostFailure {
    #[error("cannot read batch {partition}: {source}")]
    ReadBatch {
        partition: u64,
        #[source]
        source: StoreError,
    },
    #[error("cannot read the committed shards of batch {partition}: {source}")]
    ScanShards {
        partition: u64,
        #[source]
        source: LedgerError,
    },
    #[error(
        "batch {partition} is not the batch its committed shards were downloaded from (content {was}, now \
         {now}): prep was re-run on a changed input, and its rows would be fetched twice. Re-run prep \
         with --force on the original input, or move downloads/ away to start the dataset over"
    )]
    BatchChanged { partition: u64, was: String, now: String },
    #[error("reading a batch stopped unexpectedly: {0}")]
    ReadPanicked(String),
    #[error("a shard commit failed: {0}")]
    Commit(#[from] ShardError),
    #[error("the shard writer stopped unexpectedly: {0}")]
    WriterGone(#[from] actix::MailboxError),
}

/// What a ServerActor tells the coordinator.
#[derive(Debug)]
pub enum HostEvent {
    /// The host has nothing left in flight: all its rows are recorded, or it was told to stop
    /// and the rest is left for the next round or run (the shards say how many).
    Finished { host: String, state: HostState },
    /// A commit failed: the run must stop (the rows not committed will be fetched again).
    Fatal { host: String, error: HostFailure },
    /// A share of a split host was refused: its rate after the cut and what is left of the
    /// server's pause, for the coordinator to pass to the host's other shares on other ranks.
    Refused { host: String, share_rate: f64, pause: Option<std::time::Duration> },
}

// ---- To the WriterActor -----------------------------------------------------------------------

/// One finished row.
#[derive(Debug)]
pub enum Record {
    /// Boxed: a record with its metadata is twice a failure's size.
    Success(Box<SuccessRecord>),
    Failure(FailureRecord),
    /// A stored image asked about again (`download --revalidate`): the writer makes its record
    /// from the previous one when it commits (`store::shards::revalidation`).
    Revalidated(Revalidated),
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
