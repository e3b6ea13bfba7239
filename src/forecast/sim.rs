//! The simulated run: rank 0's planner and round rule over simulated time, and the floors no
//! plan can beat. Pure: no clock, no files, nothing sleeps.
//!
//! A round is what rank 0 does in a real run: it calls `mpi_glue::planner::plan` on what
//! remains, every share drains its batches, and `download::rounds::RoundRule` decides when the
//! round ends (the very functions, called, not copied). The simulation is event-driven over
//! host shares, never per URL: time jumps to the next share finishing, or to the moment the
//! rule could fire (`MIN_ROUND_SECS`, `ROUND_SECS`).
//!
//! The model, and what it leaves out:
//! - A share drains at its rate (the host's rate over its shares), unless its rank's CPUs bind:
//!   a rank processes `rank_images_per_sec` in all, shared max-min fairly among its shares
//!   (a slow host takes what it can use, the rest is split among the others).
//! - A share works through its batches in order; the rows it did are taken from the front, so
//!   the next plan sees the partly done batch and the untouched ones, as the ledger would.
//! - Ending a round costs a drain: every host still working finishes its requests in flight,
//!   modelled as `in_flight / rate` seconds (a full in-flight window at the host's pace),
//!   capped at `REQUEST_TIMEOUT_SECS`; the slowest host sets the drain, since rank 0 waits for
//!   every rank. Then `RESTART_SECS` for rank 0 to plan and the hosts to start again.
//! - Not modelled: refusals, failures and retries (a host is taken at its allowed rate), the
//!   latency of single requests, the start of the job and the waits between chained Slurm jobs.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

use super::error::ForecastError;
use crate::download::rounds::RoundRule;
use crate::mpi_glue::planner::{plan, HostLoad, Limits};

/// Seconds between the drain of a round and the start of the next: rank 0 scans the committed
/// shards, plans and broadcasts; hosts start again (robots.txt is cached within a run). The
/// scan dominates; 10 s is a generous figure for a few thousand shard files.
pub const RESTART_SECS: f64 = 10.0;

/// Rounds after which the simulation gives up: a round rule that ends rounds every few
/// seconds on a long job re-plans without end, in a real run as here.
pub const MAX_ROUNDS: u32 = 20_000;

/// Rows left below which a share counts as finished: the fluid model drains fractions of rows.
const DONE: f64 = 1e-6;

/// One host's remaining work, with the truth per batch (the planner only sees totals).
#[derive(Debug, Clone, PartialEq)]
pub struct HostWork {
    pub host: String,
    /// Batches with rows left: (partition, rows left), by partition.
    pub batches: Vec<(u64, u64)>,
    /// Requests per second the host allows.
    pub rate: f64,
    /// Requests the host may have in flight: what a round end waits for.
    pub in_flight: u32,
}

impl HostWork {
    pub fn remaining(&self) -> u64 {
        self.batches.iter().map(|b| b.1).sum()
    }
}

/// What the simulated job runs on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimConfig {
    pub ranks: usize,
    /// Images per second one rank's CPUs process.
    pub rank_images_per_sec: f64,
    /// Most shares a host is split into (`MAX_IN_FLIGHT_PER_HOST`, as rank 0 passes it).
    pub max_shares: u32,
    pub rule: RoundRule,
    /// `REQUEST_TIMEOUT_SECS`: the longest a drain can wait for one host.
    pub request_timeout: f64,
}

impl SimConfig {
    fn limits(&self) -> Limits {
        Limits { rank_images_per_sec: self.rank_images_per_sec, max_shares: self.max_shares }
    }
}

/// Rounds (rank 0 plans again by the rule), or one plan for the whole run (`--static-plan`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Rounds,
    Static,
}

/// How the simulated run went.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SimOutcome {
    /// From the first plan to the last row, drains included.
    pub wall_secs: f64,
    pub rounds: u32,
    /// Time lost between rounds: drains and restarts.
    pub drain_secs: f64,
}

/// One host's floor: the least time a polite download of it takes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostFloor {
    pub host: String,
    pub remaining: u64,
    /// The rate it can be served at: its allowed rate, unless even its most shares cannot
    /// process that much.
    pub rate: f64,
    pub secs: f64,
}

/// The bounds no plan beats.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Floors {
    /// The largest host floor: a host split into k shares still needs remaining / rate.
    pub politeness_secs: f64,
    /// All remaining rows over what all ranks together process.
    pub cpu_secs: f64,
    /// Every host's floor, the longest first.
    pub hosts: Vec<HostFloor>,
}

impl Floors {
    pub fn max(&self) -> f64 {
        self.politeness_secs.max(self.cpu_secs)
    }
}

/// Refuses input the simulation cannot make sense of, saying what is wrong.
pub fn check(hosts: &[HostWork], cfg: &SimConfig) -> Result<(), ForecastError> {
    if cfg.ranks == 0 {
        return Err(ForecastError::NoRanks { nodes: 0, ranks_per_node: 0 });
    }
    if !(cfg.rank_images_per_sec.is_finite() && cfg.rank_images_per_sec > 0.0) {
        return Err(ForecastError::BadThroughput {
            what: "a rank's throughput".into(),
            value: cfg.rank_images_per_sec,
        });
    }
    if hosts.is_empty() {
        return Err(ForecastError::NoHosts);
    }
    for h in hosts.iter().filter(|h| h.remaining() > 0) {
        if !(h.rate.is_finite() && h.rate > 0.0) {
            return Err(ForecastError::BadRate { host: h.host.clone(), rate: h.rate });
        }
    }
    Ok(())
}

/// The politeness and CPU floors of `hosts` on `cfg`.
pub fn floors(hosts: &[HostWork], cfg: &SimConfig) -> Floors {
    let mut list: Vec<HostFloor> = hosts
        .iter()
        .filter(|h| h.remaining() > 0)
        .map(|h| {
            // The planner splits a host into at most this many shares, each on its own rank.
            let most = (cfg.max_shares.max(1) as usize).min(cfg.ranks).min(h.batches.len()).max(1);
            let rate = h.rate.min(most as f64 * cfg.rank_images_per_sec);
            HostFloor { host: h.host.clone(), remaining: h.remaining(), rate, secs: h.remaining() as f64 / rate }
        })
        .collect();
    list.sort_by(|a, b| b.secs.total_cmp(&a.secs).then_with(|| a.host.cmp(&b.host)));
    let total: u64 = hosts.iter().map(HostWork::remaining).sum();
    Floors {
        politeness_secs: list.first().map_or(0.0, |h| h.secs),
        cpu_secs: total as f64 / (cfg.ranks as f64 * cfg.rank_images_per_sec),
        hosts: list,
    }
}

/// A share during a round.
struct Live {
    host: usize,
    rank: usize,
    /// Indices into the host's batches, in the order the share works through them.
    batches: Vec<usize>,
    start: f64,
    left: f64,
    /// The share's allowed rate.
    cap: f64,
    /// What it drains at now (its cap, or its part of the rank's CPUs).
    speed: f64,
}

/// Runs the job to its end; see the module doc for the model.
pub fn simulate(hosts: &[HostWork], cfg: &SimConfig, mode: Mode) -> Result<SimOutcome, ForecastError> {
    check(hosts, cfg)?;
    let index: HashMap<&str, usize> = hosts.iter().enumerate().map(|(i, h)| (h.host.as_str(), i)).collect();
    // Rows left per batch, as floats: shares drain fractions of rows.
    let mut left: Vec<Vec<(u64, f64)>> = hosts
        .iter()
        .map(|h| {
            let mut b: Vec<(u64, f64)> = h.batches.iter().map(|&(p, n)| (p, n as f64)).collect();
            b.sort_by_key(|x| x.0);
            b
        })
        .collect();
    let mut out = SimOutcome { wall_secs: 0.0, rounds: 0, drain_secs: 0.0 };
    loop {
        let loads: Vec<HostLoad> = hosts
            .iter()
            .zip(&left)
            .filter_map(|(h, b)| {
                let open: Vec<&(u64, f64)> = b.iter().filter(|x| x.1 > DONE).collect();
                let rows: f64 = open.iter().map(|x| x.1).sum();
                (!open.is_empty()).then(|| HostLoad {
                    host: h.host.clone(),
                    partitions: open.iter().map(|x| x.0).collect(),
                    remaining: rows.ceil() as u64,
                    rate: h.rate,
                })
            })
            .collect();
        if loads.is_empty() {
            return Ok(out);
        }
        let p = plan(out.rounds, &loads, cfg.ranks, cfg.limits());
        let mut live: Vec<Live> = p
            .assignments
            .iter()
            .map(|s| {
                let host = index[s.host.as_str()];
                let batches: Vec<usize> = s
                    .partitions
                    .iter()
                    .map(|p| left[host].binary_search_by_key(p, |x| x.0).expect("the plan names batches of the load"))
                    .collect();
                let rows: f64 = batches.iter().map(|&i| left[host][i].1).sum();
                Live { host, rank: s.rank, batches, start: rows, left: rows, cap: s.rate, speed: 0.0 }
            })
            .collect();
        let can_rebalance = (0..cfg.ranks).any(|r| p.for_rank(r).count() >= 2);
        let rule = match mode {
            Mode::Rounds => Some((cfg.rule, can_rebalance)),
            Mode::Static => None,
        };
        let (elapsed, finished) = run_round(&mut live, cfg, rule);
        for s in &live {
            let mut done = s.start - s.left;
            for &i in &s.batches {
                let take = done.min(left[s.host][i].1);
                left[s.host][i].1 -= take;
                done -= take;
            }
        }
        out.rounds += 1;
        out.wall_secs += elapsed;
        if out.rounds >= MAX_ROUNDS && !finished {
            return Err(ForecastError::TooManyRounds {
                rounds: MAX_ROUNDS,
                min_round: cfg.rule.min_round.as_secs_f64(),
                max_round: cfg.rule.max_round.as_secs_f64(),
            });
        }
        if !finished {
            let drain = live
                .iter()
                .filter(|s| s.left > DONE)
                .map(|s| (f64::from(hosts[s.host].in_flight.max(1)) / hosts[s.host].rate).min(cfg.request_timeout))
                .fold(0.0, f64::max)
                + RESTART_SECS;
            out.wall_secs += drain;
            out.drain_secs += drain;
        }
    }
}

/// Gives each active share of `rank` its speed: max-min fair shares of the rank's CPUs, each
/// at most its allowed rate.
fn share_cpu(live: &mut [Live], on_rank: &[usize], capacity: f64) {
    let mut active: Vec<usize> = on_rank.iter().copied().filter(|&i| live[i].left > DONE).collect();
    active.sort_by(|&a, &b| live[a].cap.total_cmp(&live[b].cap));
    let mut spare = capacity;
    for (k, &i) in active.iter().enumerate() {
        let speed = live[i].cap.min(spare / (active.len() - k) as f64);
        live[i].speed = speed;
        spare -= speed;
    }
}

/// Runs one round; returns its length and whether every share finished (else the rule ended it).
fn run_round(live: &mut [Live], cfg: &SimConfig, rule: Option<(RoundRule, bool)>) -> (f64, bool) {
    let mut by_rank: Vec<Vec<usize>> = vec![Vec::new(); cfg.ranks];
    for (i, s) in live.iter().enumerate() {
        by_rank[s.rank].push(i);
    }
    for shares in &by_rank {
        share_cpu(live, shares, cfg.rank_images_per_sec);
    }
    let busy = |live: &[Live], r: usize| by_rank[r].iter().any(|&i| live[i].left > DONE);
    let mut idle = (0..cfg.ranks).filter(|&r| !busy(live, r)).count();
    // The moments the rule can fire without a rank going idle. A round lasts a moment at least:
    // the rule is not asked at 0 s, so every round moves the job forward.
    let mut moments: Vec<f64> = match rule {
        Some((r, _)) => vec![r.min_round.as_secs_f64(), r.max_round.as_secs_f64()],
        None => Vec::new(),
    };
    moments.retain(|m| *m > 0.0);
    moments.sort_by(f64::total_cmp);
    let ends = |idle: usize, t: f64| {
        rule.is_some_and(|(r, can)| t > 0.0 && r.should_end(idle, cfg.ranks, Duration::from_secs_f64(t), can))
    };
    let mut t = 0.0;
    loop {
        let next = live.iter().filter(|s| s.left > DONE).map(|s| s.left / s.speed).fold(f64::INFINITY, f64::min);
        if next.is_infinite() {
            return (t, true);
        }
        let moment = moments.iter().copied().find(|m| *m > t && *m < t + next);
        let dt = moment.map_or(next, |m| m - t);
        // Shares finishing now (within rounding) are done; their ranks' CPUs go to the shares
        // left on them.
        let mut touched: Vec<usize> = Vec::new();
        for s in live.iter_mut().filter(|s| s.left > DONE) {
            s.left = (s.left - s.speed * dt).max(0.0);
            if s.left <= DONE || (moment.is_none() && s.left / s.speed <= 1e-9 * dt.max(1.0)) {
                s.left = 0.0;
                touched.push(s.rank);
            }
        }
        t += dt;
        if !touched.is_empty() {
            touched.sort_unstable();
            touched.dedup();
            for r in touched {
                share_cpu(live, &by_rank[r], cfg.rank_images_per_sec);
                if !busy(live, r) {
                    idle += 1;
                }
            }
            if idle == cfg.ranks {
                return (t, true);
            }
        }
        if ends(idle, t) {
            return (t, false);
        }
    }
}

#[cfg(test)]
#[path = "sim_tests.rs"]
mod tests;
