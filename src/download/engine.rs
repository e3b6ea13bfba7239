//! What every actor of one rank shares. Built once by `run.rs` from the validated settings.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use actix::{Addr, Recipient};
use tokio::sync::mpsc;

use super::cpu_pool::CpuPool;
use super::slots::Slots;
use crate::actors::server::messages::Wake;
use crate::actors::server::rate::RateConfig;
use crate::actors::server::retry::{BreakerPolicy, RetryPolicy};
use crate::actors::server::state::HostState;
use crate::actors::writer::actor::WriterActor;
use crate::fetch::budget::BodyBudget;
use crate::fetch::client::HttpSettings;
use crate::imaging::ImageSettings;
use crate::store::error::StoreError;
use crate::store::shards::hdf5_io::ShardError;
use crate::store::shards::ledger::{LedgerError, RetryFailed};
use crate::telemetry::Counters;

/// Built once per run by `run.rs` and shared read-only (`Arc<Engine>`) by every actor: no field
/// is ever replaced. What changes while the run goes is behind its own synchronisation, and each
/// such field says who changes it.
pub struct Engine {
    /// The prep output folder: batches are read from it, shards written into it.
    pub out: PathBuf,
    /// One HTTP client (one connection pool) for every host of the rank.
    pub client: reqwest::Client,
    pub http: HttpSettings,
    pub image: ImageSettings,
    /// Every host's starting rate settings; a ServerActor copies and scales them for its share.
    pub rate: RateConfig,
    pub breaker: BreakerPolicy,
    pub retry: RetryPolicy,
    /// Which committed failures count as not done when a batch is loaded; set once per run.
    pub retry_failed: RetryFailed,
    /// Written only through the typed events of `telemetry::events`.
    pub counters: Arc<Counters>,
    pub cpu: CpuPool,
    /// Memory for response bodies (`CPU_QUEUE_MB`): a fetch reserves a body's share before
    /// reading it, and the ServerActor holds it until the image is processed.
    pub body_budget: BodyBudget,
    /// Rank-wide request slots: taken and given back by the ServerActors, through
    /// [`Engine::give_back_slot`] and [`Engine::pass_on_slot`] for the hand-over.
    pub slots: Mutex<Slots<Recipient<Wake>>>,
    pub writer: Addr<WriterActor>,
    /// Where hosts report that they finished, stopped, were refused (split hosts) or failed.
    pub events: mpsc::UnboundedSender<HostEvent>,
    /// `X-Robots-Tag` directives that stop an image from being stored (`OPT_OUT_TAGS`).
    pub opt_out_tags: Vec<String>,
    /// Whether robots.txt is asked for and obeyed (`ROBOTS`).
    pub robots: crate::robots::RobotsPolicy,
    /// How long a cached robots.txt answer from an earlier run is reused (`ROBOTS_CACHE_HOURS`).
    pub robots_cache: std::time::Duration,
    /// `download --verbose`: log every rate change, rises included.
    pub verbose: bool,
    /// When the `download` command started (see `DownloadOptions::run_started`).
    pub run_started: std::time::SystemTime,
    /// Becomes `true` once, set by `run.rs` [`COMMIT_MARGIN`](super::ending::COMMIT_MARGIN) before
    /// the deadline: transfers still running are dropped and their rows stay pending.
    pub cut: tokio::sync::watch::Receiver<bool>,
    /// Servers reached by a redirect from another server, with their robots.txt and spacing;
    /// shared by the rank's ServerActors.
    pub guests: super::guests::Guests,
}

/// Why a host's actor had to stop the run.
#[derive(Debug, thiserror::Error)]
pub enum HostFailure {
    #[error("cannot read batch {partition}: {source}")]
    ReadBatch {
        partition: u64,
        #[source]
        source: StoreError,
    },
    #[error("cannot read the committed shards of batch {partition}: {source}")]
    ScanShards {
        partition: u64,
        #[source]
        source: LedgerError,
    },
    #[error(
        "batch {partition} is not the batch its committed shards were downloaded from (content {was}, now \
         {now}): prep was re-run on a changed input, and its rows would be fetched twice. Re-run prep \
         with --force on the original input, or move downloads/ away to start the dataset over"
    )]
    BatchChanged { partition: u64, was: String, now: String },
    #[error("reading a batch stopped unexpectedly: {0}")]
    ReadPanicked(String),
    #[error("a shard commit failed: {0}")]
    Commit(#[from] ShardError),
    #[error("the shard writer stopped unexpectedly: {0}")]
    WriterGone(#[from] actix::MailboxError),
}

/// What a ServerActor tells the coordinator.
#[derive(Debug)]
pub enum HostEvent {
    /// The host has nothing left in flight: all its rows are recorded, or it was told to stop
    /// and the rest is left for the next round or run (the shards say how many).
    Finished { host: String, state: HostState },
    /// A commit failed: the run must stop (the rows not committed will be fetched again).
    Fatal { host: String, error: HostFailure },
    /// A share of a split host was refused: its rate after the cut and what is left of the
    /// server's pause, for the coordinator to pass to the host's other shares on other ranks.
    Refused { host: String, share_rate: f64, pause: Option<std::time::Duration> },
}

impl Engine {
    /// Wakes the next waiting host if a slot is free; called by a host that was woken but sent
    /// nothing.
    pub fn pass_on_slot(&self) {
        loop {
            let waiter = self.slots.lock().expect("slots lock").pass_on();
            match waiter {
                None => return,
                Some(w) if wake(&w) => return,
                Some(_) => continue,
            }
        }
    }

    /// Gives a slot back and wakes the next host waiting for one.
    pub fn give_back_slot(&self) {
        let waiter = self.slots.lock().expect("slots lock").give_back();
        match waiter {
            Some(w) if !wake(&w) => self.pass_on_slot(),
            _ => {}
        }
    }
}

/// Wakes a waiting host; false when it has stopped (finished), so the turn goes to the next.
fn wake(w: &Recipient<Wake>) -> bool {
    !matches!(w.try_send(Wake), Err(actix::dev::SendError::Closed(_)))
}
