//! `actors::server`: how fast, how often and whether at all we speak to one host.
//!
//! `token_bucket` spaces requests evenly at a rate; `rate` learns that rate from the host's
//! answers (slow start to the first refusal, then hold just below it; its child `recovery` is
//! the climb back after a refusal) and holds the in-flight cap, reading the evidence `send_log`
//! keeps and `leaky_fit` fits to nginx's `limit_req` (its inputs and reports are in `signal`); `retry`
//! decides per URL whether and when to try again and parks a host that stopped answering;
//! `state` gathers these into one host's live state and its serialisable form, which moves
//! between ranks and runs; `feed` keeps the host's queue of URLs (`row::Task`), filled in windows read
//! off the event loop. None of it owns a clock or a socket, and only `feed::perform` reads files (on the
//! blocking pool): the caller passes `Instant`s in and does the I/O.

pub mod actor;
pub mod feed;
pub mod leaky_fit;
pub mod messages;
pub mod rate;
pub mod retry;
pub mod row;
pub mod send_log;
pub mod signal;
pub mod state;
pub mod token_bucket;
