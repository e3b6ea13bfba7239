//! Messages a ServerActor accepts.

use actix::Message;

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
