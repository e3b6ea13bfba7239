//! The whole forecast from a list of hosts: the run on the requested nodes, the static split,
//! the floors, the hosts that set the tail, the wall time against the node count and its knee,
//! and the chain of Slurm jobs. Pure: it calls `sim.rs` and fills a `Forecast`.

use super::error::ForecastError;
use super::report::{Forecast, NodeRow, TailHost};
use super::sim::{floors, simulate, HostWork, Mode, SimConfig};

/// Doubling the nodes must cut the wall time by at least this share to count as helping: below
/// it, the extra nodes mostly hold idle ranks while a few hosts finish at their allowed rates.
pub const KNEE_GAIN: f64 = 0.05;

/// Hosts listed as setting the tail.
pub const TAIL_HOSTS: usize = 5;

/// The table goes up to this many times the requested nodes.
pub const TABLE_FACTOR: u32 = 4;

/// What the job runs on, resolved from the flags and the config.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    pub nodes: u32,
    pub ranks_per_node: u32,
    /// The simulation's settings; its `ranks` is ignored (it is nodes × ranks per node).
    pub sim: SimConfig,
    /// Where the rank throughput came from, in words.
    pub throughput_from: String,
    /// `SLURM_TIME` as written, and the seconds of work one job gives: its time limit less what
    /// the end of a job keeps back (the last requests and the final commit).
    pub slurm_time: String,
    pub slurm_work_secs: f64,
    /// `SLURM_CHAIN_JOBS`.
    pub chain_jobs: u32,
}

/// Node counts of the table: 1, 2, 4, ... up to `TABLE_FACTOR` × `requested`, and `requested`.
pub fn node_counts(requested: u32) -> Vec<u32> {
    let mut counts: Vec<u32> = std::iter::successors(Some(1u32), |c| c.checked_mul(2))
        .take_while(|c| *c <= requested.saturating_mul(TABLE_FACTOR))
        .collect();
    counts.push(requested);
    counts.sort_unstable();
    counts.dedup();
    counts
}

/// The knee of `rows`: the first power-of-two count whose doubling (also in the table) cuts the
/// wall time by less than `KNEE_GAIN`.
pub fn knee(rows: &[NodeRow]) -> Option<u32> {
    rows.iter().filter(|r| r.nodes.is_power_of_two()).find_map(|r| {
        let doubled = rows.iter().find(|d| d.nodes == r.nodes * 2)?;
        (doubled.wall_secs > (1.0 - KNEE_GAIN) * r.wall_secs).then_some(r.nodes)
    })
}

/// Forecasts `hosts` on `params`; `source` names where the hosts came from, `excluded` the
/// hosts left out, `done` the rows already committed.
pub fn forecast(
    source: &str,
    hosts: &[HostWork],
    excluded: Vec<String>,
    done: u64,
    params: &Params,
) -> Result<Forecast, ForecastError> {
    if params.nodes == 0 || params.ranks_per_node == 0 {
        return Err(ForecastError::NoRanks { nodes: params.nodes, ranks_per_node: params.ranks_per_node });
    }
    let on = |nodes: u32| SimConfig { ranks: (nodes as usize) * (params.ranks_per_node as usize), ..params.sim };
    let cfg = on(params.nodes);
    let run = simulate(hosts, &cfg, Mode::Rounds)?;
    let fixed = simulate(hosts, &cfg, Mode::Static)?;
    let mut table = Vec::new();
    for nodes in node_counts(params.nodes) {
        let run = if nodes == params.nodes { run } else { simulate(hosts, &on(nodes), Mode::Rounds)? };
        table.push(NodeRow {
            nodes,
            ranks: on(nodes).ranks,
            wall_secs: run.wall_secs,
            rounds: run.rounds,
            requested: nodes == params.nodes,
            knee: false,
        });
    }
    let knee_nodes = knee(&table);
    for row in &mut table {
        row.knee = Some(row.nodes) == knee_nodes;
    }
    let f = floors(hosts, &cfg);
    let tail = f
        .hosts
        .iter()
        .take(TAIL_HOSTS)
        .map(|h| TailHost {
            host: h.host.clone(),
            remaining: h.remaining,
            rate: h.rate,
            floor_secs: h.secs,
            share_of_wall: if run.wall_secs > 0.0 { h.secs / run.wall_secs } else { 0.0 },
        })
        .collect();
    let slurm_jobs =
        (params.slurm_work_secs > 0.0).then(|| (run.wall_secs / params.slurm_work_secs).ceil().max(1.0) as u64);
    Ok(Forecast {
        source: source.to_string(),
        nodes: params.nodes,
        ranks_per_node: params.ranks_per_node,
        ranks: cfg.ranks,
        rank_images_per_sec: cfg.rank_images_per_sec,
        throughput_from: params.throughput_from.clone(),
        hosts: hosts.iter().filter(|h| h.remaining() > 0).count(),
        excluded,
        urls_done: done,
        urls_remaining: hosts.iter().map(HostWork::remaining).sum(),
        estimated_secs: run.wall_secs,
        rounds: run.rounds,
        drain_secs: run.drain_secs,
        static_secs: fixed.wall_secs,
        politeness_floor_secs: f.politeness_secs,
        cpu_floor_secs: f.cpu_secs,
        tail,
        nodes_table: table,
        knee_nodes,
        knee_rule: format!(
            "the first node count whose doubling cuts the wall time by less than {:.0}%",
            KNEE_GAIN * 100.0
        ),
        slurm_time: params.slurm_time.clone(),
        slurm_work_secs: params.slurm_work_secs,
        slurm_jobs,
        chain_jobs: params.chain_jobs,
    })
}
