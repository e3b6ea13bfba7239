//! A download over the ranks of an MPI world: rank 0 plans, every rank downloads its share.
//!
//! Rank 0 reads what remains from the committed shards, computes the plan (`mpi_glue::planner`),
//! records it under `<output>/plans/`, and broadcasts it. Each rank runs the engine on the hosts
//! (or host shares) it owns. At the end every rank sends what its hosts learned to rank 0, which
//! writes it into `servers.parquet` and reads the global summary back from the shards. Errors
//! travel in the messages too, so no rank waits forever for one that failed.

use std::cell::Cell;
use std::collections::HashMap;

use anyhow::{anyhow, Context};

use std::time::{Duration, Instant, SystemTime};

use super::ending::deadline_margin;
use super::learned::write_learned;
use super::rounds::RoundRule;
use super::run::{run_round, DownloadOptions, NoRounds, Owned, RoundSignal, ShareRefusal};
use super::summary::DownloadSummary;
use crate::actors::cpu_pool::cpu_threads;
use crate::host::state::HostState;
use crate::mpi_glue::planner::{plan, HostLoad, Limits, Plan, Share};
use crate::mpi_glue::world::World;
use crate::store::shards::ledger;
use crate::store::tables::read_servers_table;
use crate::telemetry::counters::Snapshot;

/// Images per second one core stores, for the planner's default rank capacity: measured by
/// `make bench-download` at about 35 per core; 30 leaves room for the network side.
pub const IMAGES_PER_SEC_PER_CORE: f64 = 30.0;

/// What a rank reports to rank 0 at the end of a round: its hosts' learned states, its counters and wall
/// time, or what went wrong.
type Gathered = Result<(Vec<(String, u32, HostState)>, Snapshot, f64), RankError>;

/// An error that crossed between ranks: by then it is the text of the other rank's error chain.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, thiserror::Error)]
#[error("{0}")]
struct RankError(String);

/// Rounds of one rank: how it hears that a round ends early, says it ran out of work, and
/// passes refusals between the shares of a split host. Rank 0 counts the idle ranks and ends
/// the round by [`RoundRule`].
struct MpiRound<'a> {
    world: &'a World,
    round: u32,
    /// For each split host this rank owns a share of: the ranks owning its other shares.
    peers: HashMap<String, Vec<usize>>,
    /// Whether a new plan could give an idle rank work: some rank owns two shares or more.
    can_rebalance: bool,
    rule: RoundRule,
    started: Instant,
    /// Rank 0: ranks other than itself that ran out of work in this round.
    idle: Cell<usize>,
    /// Rank 0: the round was ended.
    ended: Cell<bool>,
}

impl MpiRound<'_> {
    /// Rank 0: counts newly idle ranks (plus itself when `self_idle`) and ends the round when the
    /// rule says so. True once the round is over.
    fn decide(&self, self_idle: bool) -> bool {
        if self.ended.get() {
            return true;
        }
        self.idle.set(self.idle.get() + self.world.poll_idle(self.round));
        let idle = self.idle.get() + usize::from(self_idle);
        if self.rule.should_end(idle, self.world.size(), self.started.elapsed(), self.can_rebalance) {
            eprintln!(
                "download: {idle} of {} ranks out of work after {:.0} s; ending round {} to plan again",
                self.world.size(),
                self.started.elapsed().as_secs_f64(),
                self.round
            );
            self.world.end_round(self.round);
            self.ended.set(true);
        }
        self.ended.get()
    }

    /// Rank 0, its own hosts done: waits until every other rank is done too or the rule ends the
    /// round, so idle ranks are noticed whether or not rank 0 owned hosts.
    fn watch(&self) {
        while !self.decide(true) && self.idle.get() + 1 < self.world.size() {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl RoundSignal for MpiRound<'_> {
    fn should_end(&self) -> bool {
        if self.world.is_root() {
            self.decide(false)
        } else {
            self.world.poll_end(self.round)
        }
    }

    /// Ranks announce the end of their work in `run_ranks`, once per round, whether or not they
    /// owned hosts.
    fn finished(&self) {}

    fn share_refused(&self, refusal: &ShareRefusal) {
        let Some(ranks) = self.peers.get(&refusal.host) else { return };
        let bytes = serde_json::to_vec(&(self.round, refusal)).expect("a refusal serialises");
        for &r in ranks {
            self.world.send_peer(r, &bytes);
        }
    }

    fn peer_refusals(&self) -> Vec<ShareRefusal> {
        // Refusals from an earlier round are dropped: the next plan carried the learned state.
        self.world
            .poll_peers()
            .into_iter()
            .filter_map(|b| serde_json::from_slice::<(u32, ShareRefusal)>(&b).ok())
            .filter(|(round, r)| *round == self.round && self.peers.contains_key(&r.host))
            .map(|(_, r)| r)
            .collect()
    }
}

/// Runs the download on every rank of `world`, in rounds; rank 0 returns the global summary.
pub fn run_ranks(world: &World, opts: DownloadOptions) -> anyhow::Result<Option<DownloadSummary>> {
    let started = Instant::now();
    let stop_at = opts.deadline.map(|d| {
        let left = d.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO);
        Instant::now() + left.saturating_sub(deadline_margin(opts.settings.request_timeout))
    });
    let (mut run_counters, mut stopped) = (Snapshot::default(), false);
    let mut previous: Option<Plan> = None;
    loop {
        // Rank 0 decides: the next plan, the end of the job (None), or an error for everyone.
        let next: Result<Option<Plan>, RankError> = if !world.is_root() {
            Err(RankError(String::new()))
        } else if stop_at.is_some_and(|s| Instant::now() >= s) {
            stopped = true;
            Ok(None)
        } else {
            make_plan(&opts, world.size()).map_err(|e| RankError(format!("{e:#}")))
        };
        let bytes = world.broadcast(serde_json::to_vec(&next).expect("plan serialises"));
        let plan = match serde_json::from_slice::<Result<Option<Plan>, RankError>>(&bytes)
            .context("rank 0 sent an unreadable plan")?
        {
            Ok(Some(plan)) => plan,
            Ok(None) => break,
            Err(e) => return Err(anyhow!("{e}")),
        };
        // Rank 0 alone counts moves, so that the sum over ranks is the number of moves.
        let hosts_moved = if world.is_root() { moved(previous.as_ref(), &plan) } else { 0 };
        crate::telemetry::events::RoundStarted { round: plan.round, hosts_moved }.emit();
        let owned: Vec<Owned> = plan
            .for_rank(world.rank())
            .map(|s| Owned {
                host: s.host.clone(),
                partitions: s.partitions.clone(),
                shares: s.shares,
                asks_robots: asks_robots(&plan, s),
            })
            .collect();
        eprintln!(
            "download: round {}: rank {}/{} owns {} host share(s)",
            plan.round,
            world.rank(),
            world.size(),
            owned.len()
        );
        let peers: HashMap<String, Vec<usize>> = owned
            .iter()
            .filter(|o| o.shares > 1)
            .map(|o| {
                let others = plan
                    .assignments
                    .iter()
                    .filter(|s| s.host == o.host && s.rank != world.rank())
                    .map(|s| s.rank)
                    .collect();
                (o.host.clone(), others)
            })
            .collect();
        let can_rebalance = (0..world.size()).any(|r| plan.for_rank(r).count() >= 2);
        previous = Some(plan.clone());
        let rounds = MpiRound {
            world,
            round: plan.round,
            peers,
            can_rebalance,
            rule: RoundRule::new(opts.settings.min_round, opts.settings.round),
            started: Instant::now(),
            idle: Cell::new(0),
            ended: Cell::new(false),
        };
        // Rank 0 ends rounds by the rule (ROUND_SECS included), so no rank has a round end of
        // its own; a static plan has a single round.
        let signal: &dyn RoundSignal = if opts.static_plan { &NoRounds } else { &rounds };
        let mine = if owned.is_empty() {
            Ok(None)
        } else {
            run_round(DownloadOptions { owned: Some(owned), ranks: world.size() as u32, ..opts.clone() }, signal, None)
                .map(Some)
        };
        if !opts.static_plan {
            if world.is_root() {
                rounds.watch();
            } else {
                world.announce_idle(plan.round);
            }
        }
        let gathered: Gathered = match mine {
            Ok(Some(r)) => {
                eprintln!(
                    "download: round {}: rank {}: {} stored, {} failed, {} remaining",
                    plan.round,
                    world.rank(),
                    r.summary.succeeded,
                    r.summary.failed,
                    r.summary.remaining
                );
                Ok((r.states, r.summary.run, r.summary.wall_seconds))
            }
            Ok(None) => Ok((Vec::new(), Snapshot::default(), 0.0)),
            Err(e) => Err(RankError(format!("rank {}: {e:#}", world.rank()))),
        };
        crate::telemetry::exporter::snapshot(&opts.out);
        let Some(all) = world.gather(serde_json::to_vec(&gathered).expect("states serialise")) else {
            continue;
        };
        let mut states = Vec::new();
        let mut errors = Vec::new();
        for bytes in all {
            match serde_json::from_slice::<Gathered>(&bytes) {
                Ok(Ok((s, counters, _))) => {
                    states.extend(s);
                    run_counters.add(&counters);
                }
                Ok(Err(e)) => errors.push(e.0),
                Err(e) => errors.push(format!("unreadable report from a rank: {e}")),
            }
        }
        // Hosts that move carry what was learned: the next round reads it from servers.parquet.
        // A failure here is rank 0's alone: it goes to every rank below, never returns early
        // while the others wait in the next broadcast.
        if let Err(e) = write_learned(&opts.out, &states) {
            errors.push(format!("rank 0: {e:#}"));
        }
        if opts.static_plan && errors.is_empty() {
            world.broadcast(serde_json::to_vec(&Ok::<Option<Plan>, RankError>(None)).expect("serialises"));
            break;
        }
        if !errors.is_empty() {
            let message = format!("{}; committed shards are safe, re-run to continue", errors.join("; "));
            world.broadcast(
                serde_json::to_vec(&Err::<Option<Plan>, RankError>(RankError(message.clone()))).expect("serialises"),
            );
            return Err(anyhow!(message));
        }
    }
    if !world.is_root() {
        return Ok(None);
    }
    let servers = read_servers_table(&opts.out)?;
    let rows_total = servers.iter().map(|s| s.url_count).sum();
    let after = ledger::scan(&opts.out, opts.again())?;
    let mut summary = DownloadSummary::from_ledger(
        &opts.out.display().to_string(),
        rows_total,
        &after,
        run_counters,
        started.elapsed().as_secs_f64(),
    );
    summary.stopped_by_deadline = stopped;
    Ok(Some(summary))
}

/// Hosts of `plan` that `previous` placed on other ranks (0 for the first plan).
/// Whether `share` is the one of its host that asks for robots.txt: the share holding the
/// host's lowest batch this round (every share of an unsplit host asks).
fn asks_robots(plan: &Plan, share: &Share) -> bool {
    let first = |s: &Share| s.partitions.iter().min().copied();
    let lowest = plan.assignments.iter().filter(|s| s.host == share.host).filter_map(first).min();
    share.shares <= 1 || first(share) == lowest
}

fn moved(previous: Option<&Plan>, plan: &Plan) -> u64 {
    let Some(prev) = previous else { return 0 };
    let ranks_of = |p: &Plan, host: &str| {
        let mut r: Vec<usize> = p.assignments.iter().filter(|s| s.host == host).map(|s| s.rank).collect();
        r.sort_unstable();
        r
    };
    let hosts: std::collections::BTreeSet<&str> = plan.assignments.iter().map(|s| s.host.as_str()).collect();
    hosts.into_iter().filter(|h| !ranks_of(prev, h).is_empty() && ranks_of(prev, h) != ranks_of(plan, h)).count() as u64
}

/// Rank 0: what remains per host, the plan over `ranks`, recorded under `plans/`; `None` when
/// nothing remains.
pub fn make_plan(opts: &DownloadOptions, ranks: usize) -> anyhow::Result<Option<Plan>> {
    let servers = read_servers_table(&opts.out)?;
    let mut done = ledger::scan(&opts.out, opts.again())?;
    super::unchanged::check(&opts.out, &servers, &done)?;
    if super::interrupted::finish(&opts.out, &servers, &done, opts.again())? {
        done = ledger::scan(&opts.out, opts.again())?;
    }
    let overrides = crate::overrides::Overrides::load(&opts.out, &opts.settings)?;
    let mut loads = Vec::new();
    for s in servers.iter().filter(|s| !overrides.excluded(&s.server_name)) {
        let mut partitions = Vec::new();
        let mut remaining = 0;
        for p in 0..s.batch_count {
            let rows = s.rows_in(&opts.out, p)?;
            let committed = done.batch(&s.server_name, p).map(|b| b.done_count).unwrap_or(0);
            if rows > committed {
                partitions.push(p);
                remaining += rows - committed;
            }
        }
        let ceiling = overrides.effective(&s.server_name, s.initial_rate_limit, &opts.settings).max_rate;
        // A Crawl-delay `profile` found caps the host too (the download applies it from robots.txt).
        let ceiling = s.crawl_delay.filter(|d| *d > 0.0).map_or(ceiling, |d| ceiling.min(1.0 / d));
        let rate = s.learned_rate_limit.unwrap_or(ceiling).min(ceiling);
        loads.push(HostLoad { host: s.server_name.clone(), partitions, remaining, rate });
    }
    let threads = cpu_threads(opts.settings.cpu_threads);
    let capacity = match opts.settings.rank_images_per_sec {
        r if r > 0.0 => r,
        _ => IMAGES_PER_SEC_PER_CORE * threads as f64,
    };
    let limits = Limits { rank_images_per_sec: capacity, max_shares: opts.settings.max_in_flight_per_host };
    let round = crate::store::plans::next_round(&opts.out)?;
    let p = plan(round, &loads, ranks, limits);
    if p.assignments.is_empty() {
        return Ok(None);
    }
    crate::store::plans::record(&opts.out, p.round, &p)?;
    let per_rank: HashMap<usize, usize> = p.assignments.iter().fold(HashMap::new(), |mut m, s| {
        *m.entry(s.rank).or_default() += 1;
        m
    });
    eprintln!(
        "download: plan {} over {ranks} ranks: {} host shares, per rank {:?}, estimated {:?} s",
        p.round,
        p.assignments.len(),
        (0..ranks).map(|r| per_rank.get(&r).copied().unwrap_or(0)).collect::<Vec<_>>(),
        p.estimated_seconds.iter().map(|s| s.round() as u64).collect::<Vec<_>>()
    );
    Ok(Some(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mpi_glue::planner::Share;

    fn plan(places: &[(&str, usize)]) -> Plan {
        Plan {
            round: 0,
            ranks: 3,
            assignments: places
                .iter()
                .map(|(h, r)| Share {
                    host: h.to_string(),
                    rank: *r,
                    shares: 1,
                    partitions: vec![0],
                    rate: 1.0,
                    estimated_seconds: 1.0,
                })
                .collect(),
            estimated_seconds: vec![1.0; 3],
        }
    }

    #[test]
    fn a_host_counts_as_moved_when_its_ranks_change() {
        let first = plan(&[("a", 0), ("b", 1), ("c", 2)]);
        assert_eq!(moved(None, &first), 0);
        // b moved to rank 2; c is done (absent from the new plan) and counts for nothing.
        assert_eq!(moved(Some(&first), &plan(&[("a", 0), ("b", 2)])), 1);
        assert_eq!(moved(Some(&first), &first), 0);
    }
}
