//! `download`: runs the ServerActors of the hosts this rank owns over a prep output folder.
//!
//! `engine` holds what every actor of a rank shares (the HTTP client, the CPU pool, the global
//! request slots, the writer); `slots` is the rank-wide cap on requests in flight; `run` is the
//! coordinator: it starts the actors, drives progress, the deadline and the final drain, and
//! `ending` holds the rules that end a run by itself (the deadline's margin, parked hosts);
//! `summary` reads the committed shards back and reports what is done and what remains;
//! `learned` writes what hosts learned back into `servers.parquet`; `unchanged` refuses shards
//! written for other batch content; `guests` asks servers reached by a redirect from another; `interrupted` finishes what an interrupted run left first; `ranks` runs rounds over many ranks, and `rounds` is the
//! rule for ending one early.

pub mod cpu_pool;
pub mod ending;
pub mod engine;
pub mod guests;
pub mod interrupted;
pub mod learned;
pub mod ranks;
pub mod rounds;
pub mod run;
pub mod slots;
pub mod summary;
pub mod unchanged;
