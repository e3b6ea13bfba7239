//! `actors::server`: one ServerActor per host, which applies `host`'s rules to real requests.
//!
//! `actor` is the ServerActor (robots.txt first, then spaced requests, answers classified and
//! written); `feed` keeps the host's queue of URLs (`row::Task`), filled in windows read off the
//! event loop (only `feed::perform` reads files, on the blocking pool); `messages` is what the
//! actor is given and accepts. How fast and whether at all is decided by `crate::host`.

pub mod actor;
pub mod feed;
pub mod row;
