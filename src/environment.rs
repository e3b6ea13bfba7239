//! The one place the process environment is read: what the launcher (Slurm, MPI) tells us.
//!
//! Everything a user types goes through `cli.rs` and the config file; this module holds only
//! facts about where the process runs.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Facts from the launcher.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// `SLURM_JOB_END_TIME`: when Slurm will kill the job, as Unix seconds.
    pub slurm_job_end_time: Option<u64>,
    /// Whether an MPI launcher (`mpirun`, `srun --mpi=...`) started this process, seen from the
    /// variables OpenMPI, PMIx and PMI set. Without one the process is a world of one rank.
    pub mpi_launched: bool,
    /// `SLURM_JOB_ID`, recorded with each run in `runs.jsonl`.
    pub slurm_job_id: Option<String>,
    /// `SLURM_CPUS_PER_TASK`: the cores Slurm gave each rank; sizes the CPU pool when
    /// `CPU_THREADS` is 0 (with `srun --cpu-bind=none` a rank would otherwise see every core of
    /// the node, including its neighbours').
    pub slurm_cpus_per_task: Option<usize>,
    /// This rank's index among the ranks of its node (OpenMPI's, or Slurm's `SLURM_LOCALID`): the
    /// offset of its metrics port. 0 without a launcher.
    pub local_rank: usize,
}

impl Launch {
    pub fn from_env() -> Launch {
        let set = |k: &str| std::env::var_os(k).is_some();
        Launch {
            slurm_job_end_time: std::env::var("SLURM_JOB_END_TIME").ok().and_then(|v| v.trim().parse().ok()),
            mpi_launched: set("OMPI_COMM_WORLD_SIZE") || set("PMIX_RANK") || set("PMI_SIZE"),
            slurm_job_id: std::env::var("SLURM_JOB_ID").ok().filter(|v| !v.trim().is_empty()),
            slurm_cpus_per_task: std::env::var("SLURM_CPUS_PER_TASK")
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .filter(|n| *n > 0),
            local_rank: ["OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID"]
                .iter()
                .find_map(|k| std::env::var(k).ok()?.trim().parse().ok())
                .unwrap_or(0),
        }
    }
}

/// Parses a `--deadline` value: Unix seconds, or `+N[s|m|h]` from `now`.
pub fn parse_deadline(value: &str, now: SystemTime) -> Result<SystemTime, String> {
    let v = value.trim();
    if let Some(rel) = v.strip_prefix('+') {
        let (num, unit) = rel.split_at(rel.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(rel.len()));
        let n: f64 = num.parse().map_err(|_| format!("`{value}`: expected a number after `+`"))?;
        let secs = match unit {
            "" | "s" => n,
            "m" => n * 60.0,
            "h" => n * 3600.0,
            _ => return Err(format!("`{value}`: unit must be s, m or h")),
        };
        if !secs.is_finite() || secs < 0.0 {
            return Err(format!("`{value}`: must not be negative"));
        }
        return Ok(now + Duration::from_secs_f64(secs));
    }
    let secs: u64 = v.parse().map_err(|_| format!("`{value}`: expected Unix seconds or +90m / +2h / +3600s"))?;
    Ok(UNIX_EPOCH + Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_parse_in_both_forms_and_garbage_is_named() {
        let now = UNIX_EPOCH + Duration::from_secs(1000);
        assert_eq!(parse_deadline("+90m", now).unwrap(), now + Duration::from_secs(5400));
        assert_eq!(parse_deadline("+2h", now).unwrap(), now + Duration::from_secs(7200));
        assert_eq!(parse_deadline("+30", now).unwrap(), now + Duration::from_secs(30));
        assert_eq!(parse_deadline("1700000000", now).unwrap(), UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        assert!(parse_deadline("tomorrow", now).unwrap_err().contains("tomorrow"));
        assert!(parse_deadline("+5d", now).is_err());
    }
}
