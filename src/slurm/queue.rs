//! The only caller of Slurm's commands: `sbatch`, `squeue`, `sacct` and `scancel`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::{anyhow, bail, Context};

/// Slurm states of a job that is still queued or running (everything `squeue` lists except the
/// end states it shows for a moment).
pub fn is_active(state: &str) -> bool {
    !matches!(
        state,
        "COMPLETED"
            | "CANCELLED"
            | "FAILED"
            | "TIMEOUT"
            | "NODE_FAIL"
            | "OUT_OF_MEMORY"
            | "BOOT_FAIL"
            | "DEADLINE"
            | "PREEMPTED"
            | "REVOKED"
            | "SPECIAL_EXIT"
    ) && !state.starts_with("ENDED")
        && !state.starts_with("CANCELLED")
        && state != "unknown"
}

/// The arguments of the `sbatch` call that queues `script`, after `after` if given.
pub fn sbatch_args(script: &Path, log: &Path, after: Option<&str>) -> Vec<String> {
    let mut args = vec!["--parsable".to_string(), format!("--output={}", log.display()), "--open-mode=append".into()];
    if let Some(id) = after {
        args.push(format!("--dependency=afterany:{id}"));
    }
    args.push(script.display().to_string());
    args
}

/// Queues a job; returns its id.
pub fn sbatch(args: &[String]) -> anyhow::Result<String> {
    let out = Command::new("sbatch")
        .args(args)
        .output()
        .context("cannot run sbatch: is Slurm installed here? (run `submit` on a login node of the cluster)")?;
    if !out.status.success() {
        bail!("sbatch {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    // `--parsable` prints `<id>` or `<id>;<cluster>`.
    let text = String::from_utf8_lossy(&out.stdout);
    let id = text.trim().split(';').next().unwrap_or_default().to_string();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        bail!("sbatch printed {text:?}, not a job id");
    }
    Ok(id)
}

/// Each job's Slurm state: `squeue` for jobs still known to the controller, `sacct` for the
/// rest where accounting is on. `None` when neither command can be run (not a Slurm machine);
/// a job neither knows is absent from the map.
pub fn states(ids: &[String]) -> Option<BTreeMap<String, String>> {
    if ids.is_empty() {
        return Some(BTreeMap::new());
    }
    let list = ids.join(",");
    let mut found = BTreeMap::new();
    // `-t all`: without it squeue hides jobs that ended, though the controller still knows them
    // (for MinJobAge, 5 minutes by default).
    let squeue = Command::new("squeue").args(["-h", "-t", "all", "-o", "%i %T", "-j", &list]).output().ok()?;
    if squeue.status.success() {
        for line in String::from_utf8_lossy(&squeue.stdout).lines() {
            if let Some((id, state)) = line.trim().split_once(' ') {
                found.insert(id.to_string(), state.trim().to_string());
            }
        }
    } else if !String::from_utf8_lossy(&squeue.stderr).contains("Invalid job id") {
        // The controller did not answer: nothing is known (which is not "nothing is queued").
        return None;
    }
    // (squeue exits 1 with "Invalid job id specified" when none of the ids is known any more.)
    let missing: Vec<&String> = ids.iter().filter(|i| !found.contains_key(*i)).collect();
    if !missing.is_empty() {
        let list = missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",");
        if let Ok(sacct) = Command::new("sacct").args(["-n", "-P", "-X", "-o", "JobID,State", "-j", &list]).output() {
            if sacct.status.success() {
                for line in String::from_utf8_lossy(&sacct.stdout).lines() {
                    if let Some((id, state)) = line.trim().split_once('|') {
                        // `CANCELLED by 0` → `CANCELLED`.
                        let state = state.split_whitespace().next().unwrap_or_default();
                        found.entry(id.to_string()).or_insert_with(|| state.to_string());
                    }
                }
            }
        }
    }
    Some(found)
}

/// Cancels `ids`.
pub fn scancel(ids: &[String]) -> anyhow::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let out = Command::new("scancel").args(ids).output().context("cannot run scancel")?;
    if !out.status.success() {
        return Err(anyhow!("scancel {} failed: {}", ids.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_and_running_jobs_are_active_ended_ones_are_not() {
        for s in ["PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED"] {
            assert!(is_active(s), "{s}");
        }
        for s in ["COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "OUT_OF_MEMORY", "ENDED", "unknown"] {
            assert!(!is_active(s), "{s}");
        }
    }

    #[test]
    fn a_chained_job_waits_for_any_end_of_the_one_before() {
        let args = sbatch_args(Path::new("/o/slurm/download.sbatch"), Path::new("/o/logs/job-%j.log"), Some("41"));
        assert_eq!(
            args,
            [
                "--parsable",
                "--output=/o/logs/job-%j.log",
                "--open-mode=append",
                "--dependency=afterany:41",
                "/o/slurm/download.sbatch"
            ]
        );
    }
}
