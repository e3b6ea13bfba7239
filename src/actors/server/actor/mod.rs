//! The ServerActor: one per host, the only thing that talks to that host (a server that a
//! redirect leads to is asked by the rank's guests, `guest.rs`).
//!
//! It owns the host's `Feed` (its queue, filled in windows read on the blocking pool) and its
//! `LiveHost` (token bucket, adaptive rate, in-flight cap, Retry-After backoff, circuit breaker).
//! Handlers stay thin: the decisions are made by the plain logic in `actors::server::feed` and
//! `crate::host`; the files here only move rows between the feed, the network, the CPU pool and
//! the writer, one concern each:
//! - `life`: the actor's start from its plan, its phase, its wake-ups and its end;
//! - `reads`: the feed's reads of batch windows on the blocking pool;
//! - `robots`: robots.txt before anything else;
//! - `send`: sending as many requests as the host's gate and the rank's slots allow;
//! - `answer`: what the host learns from an answer, and where the row goes next;
//! - `decide`: an answer turned into a stored image, a retry or a failure record;
//! - `guest`: a row handed to the server a redirect leads to;
//! - `writes`: rows to the writer, batches committed, a host given up;
//! - `handlers`: the messages the actor accepts.
//!
//! A row that needs a retry goes back to the end of the queue after its wait; it is never
//! retried in a loop.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use actix::SpawnHandle;

use super::feed::Feed;
use crate::actors::engine::Engine;
use crate::host::outcome::ErrorClass;
use crate::host::state::{HostPhase, LiveHost};
use crate::robots::gate::RobotsGate;

mod answer;
mod decide;
mod guest;
mod handlers;
mod life;
mod reads;
mod robots;
mod send;
mod writes;

pub struct ServerActor {
    host: String,
    engine: Arc<Engine>,
    live: LiveHost,
    /// The queue of rows to send, fed in windows.
    feed: Feed,
    /// Rows of each open batch queued and not yet acknowledged by the writer.
    outstanding: HashMap<u64, u64>,
    /// Open batches read to their end: committed once their last row is written.
    read_to_end: HashSet<u64>,
    /// The host was given up: every row left is recorded as a failure of this class (`parked`,
    /// `robots` when robots.txt never answered, `nxdomain` when the name does not exist),
    /// retriable, a window at a time.
    given_up: Option<(ErrorClass, String)>,
    /// Answers so far that the host's name does not exist (NXDOMAIN), from robots.txt or image
    /// requests alike; past `NXDOMAIN_RETRIES` the host is given up.
    no_such_name: u32,
    /// Its robots.txt: nothing is sent before the rules are known.
    robots: RobotsGate,
    in_flight: u32,
    /// Fetched rows on the CPU pool.
    processing: u32,
    /// Finished rows sent to the writer and not yet acknowledged.
    in_flight_writes: u32,
    /// Retries waiting out their delay before going back to the queue.
    waiting_retries: u32,
    wake: Option<SpawnHandle>,
    /// Shares of this host on other ranks (1 = none): refusals seen here are passed on to them.
    shares: u32,
    stopping: bool,
    finished: bool,
    phase: HostPhase,
    /// The host's gauges as last set (in flight, queued, known limit): `pump` runs for every
    /// event of the host, so they are set only when they change.
    gauges: (u32, usize, Option<f64>),
}
