//! `fetch`: one HTTP attempt.
//!
//! `client` is the only code here that touches the network (the shared reqwest client and one
//! fetch), with `dns`, its resolver, which tells a name that does not exist from one the
//! resolver could not answer for, and `redirect`, the rule for which redirects it follows;
//! `budget` is the rank's memory for bodies, which a fetch reserves before reading one. The rest
//! is plain code: `deadlines` decides when a request has taken too long (head, idle, minimum
//! rate, ceiling); `retry_after` reads a server's `Retry-After` header. What an attempt ended as
//! (`host::outcome`) and what to do about it (retry, slow down, park the host) belong to `host`.

pub mod budget;
pub mod client;
pub mod deadlines;
pub mod dns;
pub mod redirect;
pub mod retry_after;
