//! What every actor of one rank shares. Built once by `download::run` from the validated settings.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use actix::{Addr, Recipient};
use tokio::sync::mpsc;

use super::cpu_pool::CpuPool;
use super::slots::Slots;
use crate::actors::messages::{HostEvent, Wake};
use crate::actors::writer::actor::WriterActor;
use crate::fetch::budget::BodyBudget;
use crate::fetch::client::HttpSettings;
use crate::host::rate::RateConfig;
use crate::host::retry::{BreakerPolicy, RetryPolicy};
use crate::imaging::ImageSettings;
use crate::store::shards::ledger::{Again, RetryFailed};
use crate::telemetry::Counters;

/// Built once per run by `download::run` and shared read-only (`Arc<Engine>`) by every actor: no field
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
    /// `--revalidate`: stored images last checked before this moment (Unix seconds) are asked
    /// about again; set once per run.
    pub revalidate_before: Option<f64>,
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
    /// Becomes `true` once, set by `download::run` its `COMMIT_MARGIN` before
    /// the deadline: transfers still running are dropped and their rows stay pending.
    pub cut: tokio::sync::watch::Receiver<bool>,
    /// Servers reached by a redirect from another server, with their robots.txt and spacing;
    /// shared by the rank's ServerActors.
    pub guests: super::guests::Guests,
}

impl Engine {
    /// What a batch's ledger counts as not done in this run.
    pub fn again(&self) -> Again {
        Again { failed: self.retry_failed, stored_before: self.revalidate_before }
    }

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
