//! `actors`: one rank's engine: its long-lived owners of state and what they share.
//!
//! `server` is the ServerActor, one per host, which applies `crate::host`'s rules (the plain,
//! clock-free politeness logic) to real requests; `writer` the WriterActor, which commits rows as
//! shards. `messages` is every message between the coordinator (`download::run`) and the actors.
//! `engine` is what every actor of a rank shares, built once per run: the HTTP clients, the
//! `cpu_pool` that decodes images, the rank-wide request `slots`, the writer, and the `guests`
//! (servers reached by a redirect from another, with their robots.txt and spacing). Nothing here
//! reads the config or plans rounds: `download` builds the engine and drives it.

pub mod cpu_pool;
pub mod engine;
pub mod guests;
pub mod messages;
pub mod server;
pub mod slots;
pub mod writer;
