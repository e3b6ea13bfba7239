//! A download over the ranks of an MPI world: rank 0 plans, every rank downloads its share.
//!
//! Rank 0 reads what remains from the committed shards, computes the plan (`mpi_glue::planner`),
//! records it under `<output>/plans/`, and broadcasts it. Each rank runs the engine on the hosts
//! (or host shares) it owns. At the end every rank sends what its hosts learned to rank 0, which
//! writes it into `servers.parquet` and reads the global summary back from the shards. Errors
//! travel in the messages too, so no rank waits forever for one that failed.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, Context};

use super::run::{run, write_learned, DownloadOptions, Owned, RunResult};
use super::summary::DownloadSummary;
use crate::actors::server::state::HostState;
use crate::mpi_glue::planner::{plan, HostLoad, Limits, Plan};
use crate::mpi_glue::world::World;
use crate::prep::batches::{batch_rows, read_servers_table};
use crate::shards::ledger;
use crate::telemetry::counters::Snapshot;

/// Images per second one core stores, for the planner's default rank capacity: measured by
/// `make bench-download` at about 35 per core; 30 leaves room for the network side.
pub const IMAGES_PER_SEC_PER_CORE: f64 = 30.0;

/// Where the plans are recorded, one JSON file per round.
pub const PLANS_DIR: &str = "plans";

/// What a rank reports to rank 0 at the end: its hosts' learned states, its counters and wall
/// time, or what went wrong.
type Gathered = Result<(Vec<(String, u32, HostState)>, Snapshot, f64), String>;

/// Runs the download on every rank of `world`; rank 0 returns the global summary.
pub fn run_ranks(world: &World, opts: DownloadOptions) -> anyhow::Result<Option<DownloadSummary>> {
    let planned: Result<Plan, String> = if world.is_root() {
        make_plan(&opts, world.size()).map_err(|e| format!("{e:#}"))
    } else {
        Err(String::new())
    };
    let bytes = world.broadcast(serde_json::to_vec(&planned).expect("plan serialises"));
    let plan: Plan = serde_json::from_slice::<Result<Plan, String>>(&bytes)
        .context("rank 0 sent an unreadable plan")?
        .map_err(|e| anyhow!("rank 0 could not plan: {e}"))?;
    let owned: Vec<Owned> = plan
        .for_rank(world.rank())
        .map(|s| Owned { host: s.host.clone(), partitions: s.partitions.clone(), shares: s.shares })
        .collect();
    eprintln!("download: rank {}/{} owns {} host share(s)", world.rank(), world.size(), owned.len());
    let mine: anyhow::Result<RunResult> = run(DownloadOptions { owned: Some(owned), ..opts.clone() });
    let (gathered, local_error): (Gathered, Option<anyhow::Error>) = match mine {
        Ok(r) => {
            eprintln!("download: rank {}: {} stored, {} failed, {} remaining", world.rank(), r.summary.succeeded, r.summary.failed, r.summary.remaining);
            (Ok((r.states, r.summary.run, r.summary.wall_seconds)), None)
        }
        Err(e) => (Err(format!("rank {}: {e:#}", world.rank())), Some(e)),
    };
    let all = world.gather(serde_json::to_vec(&gathered).expect("states serialise"));
    let Some(all) = all else {
        return match local_error {
            Some(e) => Err(e),
            None => Ok(None),
        };
    };
    let mut states = Vec::new();
    let mut errors = Vec::new();
    let (mut run_counters, mut wall) = (Snapshot::default(), 0.0f64);
    for bytes in all {
        match serde_json::from_slice::<Gathered>(&bytes) {
            Ok(Ok((s, counters, seconds))) => {
                states.extend(s);
                run_counters.add(&counters);
                wall = wall.max(seconds);
            }
            Ok(Err(e)) => errors.push(e),
            Err(e) => errors.push(format!("unreadable report from a rank: {e}")),
        }
    }
    write_learned(&opts.out, &states)?;
    if !errors.is_empty() {
        return Err(anyhow!("{}; committed shards are safe, re-run to continue", errors.join("; ")));
    }
    let servers = read_servers_table(&opts.out)?;
    let rows_total = servers.iter().map(|s| s.url_count).sum();
    let after = ledger::scan(&opts.out)?;
    Ok(Some(DownloadSummary::from_ledger(&opts.out.display().to_string(), rows_total, &after, run_counters, wall)))
}

/// Rank 0: what remains per host, the plan over `ranks`, recorded under `plans/`.
fn make_plan(opts: &DownloadOptions, ranks: usize) -> anyhow::Result<Plan> {
    let servers = read_servers_table(&opts.out)?;
    let done = ledger::scan(&opts.out)?;
    let mut loads = Vec::new();
    for s in &servers {
        let mut partitions = Vec::new();
        let mut remaining = 0;
        for p in 0..s.batch_count {
            let rows = batch_rows(&opts.out, &s.server_name, p)?;
            let committed = done.batch(&s.server_name, p).map(|b| b.done_count).unwrap_or(0);
            if rows > committed {
                partitions.push(p);
                remaining += rows - committed;
            }
        }
        let rate = s.learned_rate_limit.unwrap_or(opts.settings.max_rate_limit);
        loads.push(HostLoad { host: s.server_name.clone(), partitions, remaining, rate });
    }
    let threads = match opts.settings.cpu_threads {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        n => n,
    };
    let capacity = match opts.settings.rank_images_per_sec {
        r if r > 0.0 => r,
        _ => IMAGES_PER_SEC_PER_CORE * threads as f64,
    };
    let limits = Limits { rank_images_per_sec: capacity, max_shares: opts.settings.max_in_flight_per_host };
    let round = next_round(&opts.out);
    let p = plan(round, &loads, ranks, limits);
    record(&opts.out, &p)?;
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
    Ok(p)
}

/// The number of the next plan: one more than the plans already recorded.
fn next_round(out: &Path) -> u32 {
    std::fs::read_dir(out.join(PLANS_DIR))
        .map(|d| d.filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().ends_with(".json")).count() as u32)
        .unwrap_or(0)
}

/// Writes `plans/round-<n>.json` atomically.
fn record(out: &Path, p: &Plan) -> anyhow::Result<()> {
    let dir = out.join(PLANS_DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(format!("round-{:04}.json", p.round));
    let tmp = dir.join(format!(".round-{:04}.json.tmp", p.round));
    std::fs::write(&tmp, serde_json::to_string_pretty(p)? + "\n").with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
