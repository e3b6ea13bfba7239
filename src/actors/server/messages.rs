//! What a ServerActor is given: its plan when it starts, and the messages it accepts.

use actix::Message;

use super::state::HostState;

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
