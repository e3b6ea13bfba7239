//! `host`: how fast, how often and whether at all we speak to one server, as plain numbers.
//!
//! This is the politeness logic, kept as a leaf: it imports nothing else from the crate, owns no
//! clock, socket, file or actor, and draws no random numbers. The caller passes `Instant`s (and
//! jitter) in and does the I/O, so every rule here is tested on a simulated clock.
//!
//! `outcome` names what one HTTP attempt ended as (a status or a transport failure, never mixed)
//! and its bounded `ErrorClass`; `token_bucket` spaces requests evenly at a rate; `rate` learns
//! that rate from the server's answers (slow start to the first refusal, then hold just below it;
//! its child `recovery` is the climb back after a refusal) and holds the in-flight cap, reading
//! the evidence `send_log` keeps and `leaky_fit` fits to nginx's `limit_req` (its inputs and
//! reports are in `signal`); `retry` decides per URL whether and when to try again and parks a
//! server that stopped answering; `state` gathers these into one host's live state and its
//! serialisable form, which moves between ranks and runs; `arrival` holds the next request back
//! when an answer shows that one reached a host that forgets late. Each keeps its defaults
//! beside it; `config` reads the keys that change them.

pub mod arrival;
pub mod leaky_fit;
pub mod outcome;
pub mod rate;
pub mod retry;
pub mod send_log;
pub mod signal;
pub mod state;
pub mod token_bucket;
