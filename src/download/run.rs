//! The coordinator of one rank: starts the writer and one ServerActor per owned host, shows
//! progress, stops issuing before the deadline, drains the writer, and summarises.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use actix::{Actor, Addr, SyncArbiter};
use anyhow::{anyhow, Context as _};
use tokio::sync::mpsc;

use super::ending::{deadline_margin, deadline_stops, Stall, STALL_LIMIT};
use super::summary::DownloadSummary;
use crate::actors::cpu_pool::{cpu_threads, CpuPool};
use crate::actors::engine::Engine;
use crate::actors::guests::{GuestSetup, Guests};
use crate::actors::messages::HostPlan;
use crate::actors::messages::{Drain, Tick};
use crate::actors::messages::{GiveUpParked, PeerRefusal, StopIssuing};
use crate::actors::messages::{HostEvent, HostFailure};
use crate::actors::server::actor::ServerActor;
use crate::actors::slots::Slots;
use crate::actors::writer::actor::WriterActor;
use crate::actors::writer::policy::ShardPolicy;
use crate::config::Settings;
use crate::fetch::budget::BodyBudget;
use crate::fetch::client::{build_client, build_public_client};
use crate::host::state::HostState;
use crate::progress::{human_count, Progress};
use crate::store::batches::batch_rows;
use crate::store::shards::ledger::{self, Again, RetryFailed};
use crate::store::tables::{read_servers_table, ServerInfo};
use crate::telemetry::events::RankGauges;
use crate::telemetry::Counters;

/// How often the writer is asked to commit rows that have waited long enough.
const TICK_INTERVAL: Duration = Duration::from_secs(5);

/// One host (or one share of a host) a rank owns.
#[derive(Debug, Clone, PartialEq)]
pub struct Owned {
    pub host: String,
    /// The batches of the host this rank downloads.
    pub partitions: Vec<u64>,
    /// Into how many shares the host is split over ranks (1 = the whole host is here).
    pub shares: u32,
    /// Whether this share asks the host for robots.txt: on a split host only the share holding
    /// its first batch does, the others read its answer from the cache.
    pub asks_robots: bool,
}

/// Resolved options of one download run.
#[derive(Debug, Clone)]
pub struct DownloadOptions {
    pub out: PathBuf,
    pub settings: Settings,
    pub contact: String,
    /// Stop taking new work in time to finish and commit before this moment.
    pub deadline: Option<SystemTime>,
    /// What this rank owns; `None` means every batch of every host (a single-rank run).
    pub owned: Option<Vec<Owned>>,
    pub verbose: bool,
    /// On many ranks: one plan for the whole run, no rounds (for comparisons).
    pub static_plan: bool,
    /// Which committed failures this run tries again (`--retry-failed`); the same on every rank.
    pub retry_failed: RetryFailed,
    /// `--revalidate`: ask again about images last checked before this (Unix s; every rank's).
    pub revalidate_before: Option<f64>,
    /// When the `download` command started: a robots.txt answer fetched since is never asked
    /// again in this run, whatever `ROBOTS_CACHE_HOURS` says.
    pub run_started: SystemTime,
    /// Ranks of the job (1 for a single-rank run): a server reached by redirects is asked at
    /// most `INITIAL_RATE_LIMIT / ranks` times a second from each.
    pub ranks: u32,
}

impl DownloadOptions {
    /// What the ledger counts as not done in this run (`--retry-failed`, `--revalidate`).
    pub fn again(&self) -> Again {
        Again { failed: self.retry_failed, stored_before: self.revalidate_before }
    }

    /// Every batch of `out` on one rank: no deadline, no retry of failures, not verbose.
    pub fn new(out: PathBuf, settings: Settings, contact: String) -> DownloadOptions {
        DownloadOptions {
            out,
            settings,
            contact,
            deadline: None,
            owned: None,
            verbose: false,
            static_plan: false,
            retry_failed: RetryFailed::No,
            revalidate_before: None,
            run_started: SystemTime::now(),
            ranks: 1,
        }
    }
}

/// What one run did: the summary of the batches it owned, and each host's learned state.
#[derive(Debug)]
pub struct RunResult {
    pub summary: DownloadSummary,
    /// (host, shares, state): a split host's state holds its share's rates.
    pub states: Vec<(String, u32, HostState)>,
}

/// How a run takes part in rounds over many ranks (see `ranks.rs`); a single rank has none.
pub trait RoundSignal {
    /// Polled twice a second: true when another rank asked this round to end.
    fn should_end(&self) -> bool;
    /// Called once, when every host of this run has finished its work for the round.
    fn finished(&self);
    /// A share of a split host was refused on this rank: tell the ranks owning its other shares.
    fn share_refused(&self, _refusal: &ShareRefusal) {}
    /// Polled twice a second: refusals that other ranks saw on shares of hosts this rank owns.
    fn peer_refusals(&self) -> Vec<ShareRefusal> {
        Vec::new()
    }
}

/// A refusal seen by one share of a split host, passed to its other shares.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ShareRefusal {
    pub host: String,
    /// The refused share's rate after its cut; every share of a host has the same fraction.
    pub share_rate: f64,
    /// What was left of the server's `Retry-After` pause, in ms, when it was sent.
    pub pause_ms: Option<u64>,
}

/// No rounds: a single-rank run goes until its work is done or the deadline.
pub struct NoRounds;

impl RoundSignal for NoRounds {
    fn should_end(&self) -> bool {
        false
    }
    fn finished(&self) {}
}

/// Runs the download of the owned batches; the summary is read back from the committed shards.
pub fn run(opts: DownloadOptions) -> anyhow::Result<RunResult> {
    run_round(opts, &NoRounds, None)
}

/// Like [`run`], as one round: it also stops issuing at `round_end`, or when `signal` says so.
pub fn run_round(
    opts: DownloadOptions,
    signal: &dyn RoundSignal,
    round_end: Option<Instant>,
) -> anyhow::Result<RunResult> {
    let started = Instant::now();
    let servers = read_servers_table(&opts.out)?;
    let overrides = crate::overrides::Overrides::load(&opts.out, &opts.settings)?;
    let owned: Vec<Owned> = match &opts.owned {
        Some(o) => o.clone(),
        None => servers
            .iter()
            .map(|s| Owned {
                host: s.server_name.clone(),
                partitions: (0..s.batch_count).collect(),
                shares: 1,
                asks_robots: true,
            })
            .collect(),
    };
    // Excluded servers are not downloaded; their rows stay for a run without the exclusion.
    let (owned, excluded): (Vec<Owned>, Vec<Owned>) = owned.into_iter().partition(|o| !overrides.excluded(&o.host));
    if !excluded.is_empty() && opts.owned.is_none() {
        let names: Vec<&str> = excluded.iter().take(5).map(|o| o.host.as_str()).collect();
        eprintln!(
            "download: {} server(s) excluded by {} are not downloaded: {}{}",
            excluded.len(),
            overrides.path.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
            names.join(", "),
            if excluded.len() > 5 { ", …" } else { "" }
        );
    }
    let keep: HashSet<(String, u64)> =
        owned.iter().flat_map(|o| o.partitions.iter().map(|p| (o.host.clone(), *p))).collect();
    let info: HashMap<&str, &ServerInfo> = servers.iter().map(|s| (s.server_name.as_str(), s)).collect();
    let mut rows_total = 0u64;
    for (host, p) in &keep {
        rows_total += match info.get(host.as_str()) {
            Some(s) => s.rows_in(&opts.out, *p)?,
            None => batch_rows(&opts.out, host, *p)?,
        };
    }
    let scan_kept = || ledger::scan_batches(&opts.out, keep.iter().map(|(h, p)| (h.as_str(), *p)), opts.again());
    let before = if opts.owned.is_none() {
        // One rank over the whole folder: finish what an interrupted run left first (on many
        // ranks, rank 0 does this before each plan), then count from the same scan unless the
        // finishing changed the folder.
        let whole = ledger::scan(&opts.out, opts.again())?;
        super::unchanged::check(&opts.out, &servers, &whole)?;
        if super::interrupted::finish(&opts.out, &servers, &whole, opts.again())? {
            scan_kept()?
        } else {
            let batches = whole.batches.into_iter().filter(|(key, _)| keep.contains(key)).collect();
            ledger::Ledger { batches }
        }
    } else {
        let before = scan_kept()?;
        super::unchanged::check(&opts.out, &servers, &before)?;
        before
    };
    let done_before = before.done();
    let out_name = opts.out.display().to_string();
    let idle = |stopped| {
        let mut summary = DownloadSummary::from_ledger(&out_name, rows_total, &before, Default::default(), 0.0);
        summary.stopped_by_deadline = stopped;
        RunResult { summary, states: Vec::new() }
    };
    let timeout = opts.settings.request_timeout;
    let stop_at = match opts.deadline.map(|d| deadline_stops(d, timeout, Instant::now(), SystemTime::now())) {
        None => None,
        Some(Ok(stops)) => Some(stops),
        Some(Err(left)) => {
            eprintln!(
                "download: the deadline is {:.0} s away, within the {:.0} s kept to finish requests and commit; starting nothing",
                left.as_secs_f64(),
                deadline_margin(timeout).as_secs_f64()
            );
            return Ok(idle(true));
        }
    };
    if done_before >= rows_total {
        let retriable = before.retriable();
        let hint = match opts.retry_failed {
            RetryFailed::No if retriable > 0 => {
                format!("; {retriable} of them are retriable failures: `download --retry-failed` tries them again")
            }
            _ => String::new(),
        };
        eprintln!("download: nothing left to do: all {rows_total} rows already have a committed record{hint}");
        return Ok(idle(false));
    }
    let by_name: HashMap<&str, &ServerInfo> = servers.iter().map(|s| (s.server_name.as_str(), s)).collect();
    let mut plans = Vec::new();
    for o in &owned {
        let s = by_name
            .get(o.host.as_str())
            .ok_or_else(|| anyhow!("host {} is not in servers.parquet of {}", o.host, opts.out.display()))?;
        let eff = overrides.effective(&o.host, s.initial_rate_limit, &opts.settings);
        // What an earlier run learned; outages (parking) are forgotten, rates and limits kept.
        let mut learned =
            s.learned_state.as_deref().and_then(|j| super::learned::restore_state(&o.host, j, opts.run_started));
        if let (Some(state), Some(set)) = (learned.as_mut(), overrides.get(&o.host)) {
            // The user's start and in-flight cap win over the learned ones; the known limit is
            // kept (the rate controller holds below it and probes as usual).
            state.rate = set.initial_rate.unwrap_or(state.rate);
            state.max_in_flight = set.max_in_flight.unwrap_or(state.max_in_flight);
        }
        plans.push(HostPlan {
            host: o.host.clone(),
            partitions: o.partitions.clone(),
            learned,
            // The start (profiled, or overridden), also the floor for a host restored without a
            // known limit: a low rate learned from failures alone is not carried into this run.
            initial_rate: eff.initial_rate,
            max_rate: eff.max_rate,
            max_in_flight: eff.max_in_flight,
            shares: o.shares,
            asks_robots: o.asks_robots,
            batch_ids: s.batch_ids.clone(),
        });
    }
    let shares: HashMap<String, u32> = owned.iter().map(|o| (o.host.clone(), o.shares)).collect();

    let counters = Arc::new(Counters::default());
    let stops = Stops { deadline: stop_at.map(|s| s.0), cut: stop_at.map(|s| s.1), round_end, signal };
    let outcome = actix::System::new().block_on(drive(
        opts.clone(),
        plans,
        Arc::clone(&counters),
        rows_total,
        done_before,
        stops,
    ));
    actix::System::current().stop();
    let (stopped_by_deadline, states) = outcome?;
    let states = states.into_iter().map(|(h, st)| (h.clone(), shares.get(&h).copied().unwrap_or(1), st)).collect();

    let after = ledger::scan_batches(&opts.out, keep.iter().map(|(h, p)| (h.as_str(), *p)), opts.again())?;
    let mut summary = DownloadSummary::from_ledger(
        &out_name,
        rows_total,
        &after,
        counters.snapshot(),
        started.elapsed().as_secs_f64(),
    );
    summary.stopped_by_deadline = stopped_by_deadline;
    Ok(RunResult { summary, states })
}

/// The async part: returns whether the run stopped for the deadline, and each host's learned state.
/// When the coordinator stops issuing new requests.
struct Stops<'a> {
    /// Before the job's deadline (ends the job): no new requests from then on.
    deadline: Option<Instant>,
    /// `COMMIT_MARGIN` before the deadline: transfers still running are cut.
    cut: Option<Instant>,
    /// At the end of the round (the next round re-plans).
    round_end: Option<Instant>,
    signal: &'a dyn RoundSignal,
}

async fn drive(
    opts: DownloadOptions,
    plans: Vec<HostPlan>,
    counters: Arc<Counters>,
    rows_total: u64,
    done_before: u64,
    stops: Stops<'_>,
) -> anyhow::Result<(bool, Vec<(String, HostState)>)> {
    let stop_at = stops.deadline;
    // Kept to the end of the run: a fetch treats a closed channel as "never cut".
    let (cut_tx, cut) = tokio::sync::watch::channel(false);
    let s = &opts.settings;
    let (http, image, rate) = (s.http(&opts.contact), s.image(), s.rate());
    let (breaker, retry) = (s.breaker(), s.retry());
    let client = build_client(&http).context("cannot build the HTTP client")?;
    let public_client = build_public_client(&http).context("cannot build the HTTP client")?;
    let body_budget = BodyBudget::new(opts.settings.cpu_queue_bytes);
    let http_for_guests = http.clone();
    let writer: Addr<WriterActor> = {
        let policy = ShardPolicy {
            max_rows: opts.settings.commit_rows,
            max_age: opts.settings.commit_interval,
            ..ShardPolicy::default()
        };
        let (out, counters, verbose) = (opts.out.clone(), Arc::clone(&counters), opts.verbose);
        SyncArbiter::start(1, move || {
            WriterActor::new(out.clone(), policy, Arc::clone(&counters), Default::default(), verbose)
        })
    };
    let threads = cpu_threads(opts.settings.cpu_threads);
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let engine = Arc::new(Engine {
        out: opts.out.clone(),
        client: client.clone(),
        http,
        image,
        rate,
        breaker,
        retry,
        retry_failed: opts.retry_failed,
        revalidate_before: opts.revalidate_before,
        counters: Arc::clone(&counters),
        cpu: CpuPool::new(threads),
        body_budget: body_budget.clone(),
        slots: Mutex::new(Slots::new(opts.settings.max_requests_in_flight)),
        writer: writer.clone(),
        events: events_tx,
        opt_out_tags: opts.settings.opt_out_tags.clone(),
        robots: opts.settings.robots,
        robots_cache: opts.settings.robots_cache,
        verbose: opts.verbose,
        run_started: opts.run_started,
        cut,
        guests: Guests::new(GuestSetup {
            out: opts.out.clone(),
            client,
            public_client,
            http: http_for_guests,
            body_budget: body_budget.clone(),
            counters: Arc::clone(&counters),
            robots: opts.settings.robots,
            robots_cache: opts.settings.robots_cache,
            run_started: opts.run_started,
            rate: opts.settings.initial_rate_limit / f64::from(opts.ranks.max(1)),
        }),
    });
    eprintln!(
        "download: {} hosts, {} of {} rows left, {} CPU threads, deadline {}",
        plans.len(),
        rows_total - done_before,
        rows_total,
        threads,
        stop_at
            .map(|s| format!("in {:.0} s (stop issuing)", s.saturating_duration_since(Instant::now()).as_secs_f64()))
            .unwrap_or_else(|| "none".into())
    );
    let addrs: BTreeMap<String, Addr<ServerActor>> =
        plans.into_iter().map(|p| (p.host.clone(), ServerActor::new(p, Arc::clone(&engine)).start())).collect();

    let mut progress = Progress::new("download");
    let mut open: HashSet<String> = addrs.keys().cloned().collect();
    let mut fatal: Option<HostFailure> = None;
    let mut states: Vec<(String, HostState)> = Vec::new();
    let mut stopped = false;
    let mut round_over = false;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let max_in_flight = opts.settings.max_requests_in_flight;
    let mut last_writer_tick = Instant::now();
    let mut stall = Stall::default();
    let t0 = Instant::now();
    while !open.is_empty() {
        tokio::select! {
            event = events.recv() => match event {
                Some(HostEvent::Finished { host, state }) => {
                    open.remove(&host);
                    states.push((host, state));
                }
                Some(HostEvent::Refused { host, share_rate, pause }) => {
                    let pause_ms = pause.map(|p| p.as_millis().min(u128::from(u64::MAX)) as u64);
                    stops.signal.share_refused(&ShareRefusal { host, share_rate, pause_ms });
                }
                Some(HostEvent::Fatal { host, error }) => {
                    if fatal.is_none() {
                        eprintln!("download: stopping: {host}: {error}");
                        fatal = Some(error);
                        for a in addrs.values() { a.do_send(StopIssuing); }
                    }
                }
                None => break,
            },
            _ = tick.tick() => {
                if let Some(stop) = stop_at {
                    if !stopped && Instant::now() >= stop {
                        stopped = true;
                        eprintln!("download: deadline near: no new requests; finishing those in flight and committing");
                        for a in addrs.values() { a.do_send(StopIssuing); }
                    }
                }
                if stops.cut.is_some_and(|cut| Instant::now() >= cut) && !*cut_tx.borrow() {
                    let running = max_in_flight.saturating_sub(engine.slots.lock().expect("slots lock").available());
                    eprintln!(
                        "download: deadline: cutting {running} transfer(s) still running; their rows stay pending for the next run"
                    );
                    // Fails only when no fetch holds a receiver, and then there is nothing to cut.
                    let _ = cut_tx.send(true);
                }
                for r in stops.signal.peer_refusals() {
                    if let Some(addr) = addrs.get(&r.host) {
                        addr.do_send(PeerRefusal {
                            share_rate: r.share_rate,
                            pause: r.pause_ms.map(Duration::from_millis),
                        });
                    }
                }
                if !round_over && (stops.round_end.is_some_and(|t| Instant::now() >= t) || stops.signal.should_end()) {
                    round_over = true;
                    for a in addrs.values() { a.do_send(StopIssuing); }
                }
                if last_writer_tick.elapsed() >= TICK_INTERVAL {
                    last_writer_tick = Instant::now();
                    if let Ok(Err(e)) = writer.send(Tick).await {
                        if fatal.is_none() {
                            fatal = Some(HostFailure::Commit(e));
                            for a in addrs.values() { a.do_send(StopIssuing); }
                        }
                    }
                }
                let s = counters.snapshot();
                if stall.check(&s, Instant::now()) {
                    eprintln!(
                        "download: no progress for {} s and {} host(s) parked: recording their rows as `parked` (retriable; `download --retry-failed` asks them again)",
                        STALL_LIMIT.as_secs(),
                        s.hosts_parked
                    );
                    for a in addrs.values() { a.do_send(GiveUpParked { after: STALL_LIMIT }); }
                }
                // A revalidation confirmed or kept (a changed image counts as stored).
                let revalidated = s.not_modified + s.same_bytes + s.revalidations_failed;
                let done = done_before + s.images_stored + s.rows_failed + revalidated;
                let (busy, workers) = engine.cpu.busy();
                RankGauges {
                    requests_in_flight: max_in_flight.saturating_sub(engine.slots.lock().expect("slots lock").available()),
                    cpu_queue_bytes: engine.body_budget.in_use(),
                    cpu_workers_busy: busy,
                    cpu_workers: workers,
                    rows_remaining: rows_total.saturating_sub(done),
                }
                .emit();
                let secs = t0.elapsed().as_secs_f64().max(1e-3);
                let errors: Vec<String> = s.failed_by_class.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let msg = format!(
                    "{}/{} rows, {:.1} img/s, {:.2} MB/s, errors: {}; hosts: {} active, {} backing off, {} parked, {} done",
                    human_count(done), human_count(rows_total), s.images_stored as f64 / secs,
                    s.response_bytes as f64 / secs / 1e6,
                    if errors.is_empty() { "none".to_string() } else { errors.join(" ") },
                    s.hosts_active, s.hosts_backing_off, s.hosts_parked, s.hosts_done
                );
                progress.update(done as f64 / rows_total.max(1) as f64, &msg);
            }
        }
    }
    progress.finish();
    stops.signal.finished();
    let drained = writer.send(Drain).await.map_err(|e| anyhow!("writer stopped unexpectedly: {e}"))?;
    drained.context("final commit failed; rows not committed will be fetched again by the next run")?;
    if let Some(error) = fatal {
        return Err(anyhow!("download stopped: {error}; committed shards are safe, re-run to continue"));
    }
    Ok((stopped, states))
}
