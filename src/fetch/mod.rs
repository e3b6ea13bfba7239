//! `fetch`: plain code about one HTTP attempt, with no actix, no tokio and no network in it.
//!
//! `outcome` names what an attempt ended as (an HTTP status or a transport failure, never mixed)
//! and maps it to the bounded `ErrorClass` that records, logs and metric labels use.
//! `retry_after` reads a server's `Retry-After` header. Deciding what to do about an outcome
//! (retry, slow down, park the host) is not here: it belongs to `actors::server`.

pub mod client;
pub mod outcome;
pub mod retry_after;
