//! `fetch`: one HTTP attempt.
//!
//! `client` is the only code here that touches the network (the shared reqwest client and one
//! fetch), with `dns`, its resolver, which tells a name that does not exist from one the
//! resolver could not answer for, and `redirect`, the rule for which redirects it follows; `budget` is the rank's memory for bodies, which a fetch reserves before reading one. The rest is plain code: `deadlines` decides when a request has taken too long (head,
//! idle, minimum rate, ceiling); `outcome` names what an attempt ended as (an HTTP status or a
//! transport failure, never mixed) and maps it to the bounded `ErrorClass` that records, logs and
//! metric labels use; `retry_after` reads a server's `Retry-After` header. Deciding what to do
//! about an outcome (retry, slow down, park the host) is not here: it belongs to `actors::server`.

pub mod budget;
pub mod client;
pub mod deadlines;
pub mod dns;
pub mod outcome;
pub mod redirect;
pub mod retry_after;
