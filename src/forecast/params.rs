//! The forecast's settings from `plan`'s flags over the config: nodes, ranks, the rank
//! throughput (and where it came from), the round rule, the Slurm time limit. Pure; refuses
//! values that make no sense with a usage error naming the flag.

use std::time::Duration;

use super::error::ForecastError;
use super::scale::Params;
use super::sim::SimConfig;
use crate::config::Settings;
use crate::download::ending::deadline_margin;
use crate::download::rounds::RoundRule;

/// What the user typed, `None` where the config decides.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Flags {
    pub nodes: Option<u32>,
    pub ranks_per_node: Option<u32>,
    pub round_secs: Option<f64>,
    pub rank_images_per_sec: Option<f64>,
}

/// `flags` over `settings`. Nodes and ranks per node default to `SLURM_NODES` and
/// `SLURM_TASKS_PER_NODE` (what `submit` would ask for). A rank's throughput is
/// `--rank-images-per-sec`, else `RANK_IMAGES_PER_SEC`, else `IMAGES_PER_SEC_PER_CORE` times the
/// cores a rank gets: `CPU_THREADS`, else `SLURM_CPUS_PER_TASK` (the cores of this machine would
/// say nothing about the cluster's).
pub fn resolve(settings: &Settings, flags: Flags) -> Result<Params, ForecastError> {
    let nodes = flags.nodes.unwrap_or(settings.slurm.nodes);
    let ranks_per_node = flags.ranks_per_node.unwrap_or(settings.slurm.tasks_per_node);
    if nodes == 0 || ranks_per_node == 0 {
        return Err(ForecastError::NoRanks { nodes, ranks_per_node });
    }
    let per_core = crate::download::ranks::IMAGES_PER_SEC_PER_CORE;
    let (rank_images_per_sec, throughput_from) = match flags.rank_images_per_sec {
        Some(x) if !(x.is_finite() && x > 0.0) => {
            return Err(ForecastError::BadThroughput { what: "--rank-images-per-sec".into(), value: x })
        }
        Some(x) => (x, "--rank-images-per-sec".to_string()),
        None if settings.rank_images_per_sec > 0.0 => (settings.rank_images_per_sec, "RANK_IMAGES_PER_SEC".into()),
        None if settings.cpu_threads > 0 => (
            per_core * settings.cpu_threads as f64,
            format!("{per_core} images/s per core × {} cores (CPU_THREADS)", settings.cpu_threads),
        ),
        None => (
            per_core * f64::from(settings.slurm.cpus_per_task),
            format!("{per_core} images/s per core × {} cores (SLURM_CPUS_PER_TASK)", settings.slurm.cpus_per_task),
        ),
    };
    let round = match flags.round_secs {
        Some(s) if !(s.is_finite() && s > 0.0) => {
            return Err(ForecastError::BadDuration { what: "--round-secs".into(), value: s })
        }
        Some(s) => Duration::from_secs_f64(s),
        None => settings.round,
    };
    let request_timeout = settings.request_timeout.as_secs_f64();
    Ok(Params {
        nodes,
        ranks_per_node,
        sim: SimConfig {
            ranks: nodes as usize * ranks_per_node as usize,
            rank_images_per_sec,
            max_shares: settings.max_in_flight_per_host,
            rule: RoundRule::new(settings.min_round, round),
            request_timeout,
        },
        throughput_from,
        slurm_time: settings.slurm.time.clone(),
        // A job stops taking work this long before its end (see `download::run`).
        slurm_work_secs: settings.slurm.time_secs as f64 - deadline_margin(settings.request_timeout).as_secs_f64(),
        chain_jobs: settings.slurm.chain_jobs,
    })
}
