//! `<output>/slurm/jobs.json`: every chain `submit` queued, its jobs in order, how each ended,
//! and why a chain stopped. Written atomically (temporary file, then rename).

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::SLURM_DIR;

/// What a job of a chain does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    Prep,
    Download,
}

/// How a job ended, as its script recorded it (`job-end`). A job killed by Slurm (time limit,
/// node failure, `scancel`) records nothing; Slurm's own state says what happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEnd {
    pub exit_code: i32,
    /// Unix seconds.
    pub at: f64,
    /// Rows without a committed record when the job ended, when the output could be read.
    pub remaining: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub kind: JobKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<JobEnd>,
}

/// Why a chain stopped before its last job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stopped {
    /// The job whose end stopped the chain, or `None` when a user cancelled it.
    pub by_job: Option<String>,
    pub reason: String,
    /// Unix seconds.
    pub at: f64,
    /// The jobs cancelled.
    pub cancelled: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chain {
    /// 1 for the first chain of the output folder, then 2, …
    pub number: u32,
    /// Unix seconds.
    pub submitted_at: f64,
    /// The config file the jobs read.
    pub config: PathBuf,
    pub jobs: Vec<Job>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<Stopped>,
}

/// Every chain of one output folder, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub chains: Vec<Chain>,
}

impl JobRecord {
    pub fn path(out: &Path) -> PathBuf {
        out.join(SLURM_DIR).join(crate::store::paths::JOBS_FILE)
    }

    /// The record, or an empty one when no chain was ever submitted.
    pub fn load(out: &Path) -> anyhow::Result<JobRecord> {
        let path = Self::path(out);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!("{} is not a job record; move it away if it was edited by hand", path.display())
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(JobRecord::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    pub fn save(&self, out: &Path) -> anyhow::Result<()> {
        crate::store::atomic::replace(&Self::path(out), (serde_json::to_string_pretty(self)? + "\n").as_bytes())?;
        Ok(())
    }

    pub fn latest(&self) -> Option<&Chain> {
        self.chains.last()
    }

    /// The chain holding job `id`, and the job's place in it.
    pub fn find_mut(&mut self, id: &str) -> Option<(&mut Chain, usize)> {
        self.chains.iter_mut().rev().find_map(|c| {
            let i = c.jobs.iter().position(|j| j.id == id)?;
            Some((c, i))
        })
    }
}

/// Unix seconds now.
pub fn now_unix() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_survives_a_round_trip_and_finds_jobs_by_id() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(JobRecord::load(dir.path()).unwrap(), JobRecord::default());
        let mut r = JobRecord::default();
        r.chains.push(Chain {
            number: 1,
            submitted_at: 1.0,
            config: "/c.env".into(),
            jobs: vec![
                Job { id: "7".into(), kind: JobKind::Prep, ended: None },
                Job { id: "8".into(), kind: JobKind::Download, ended: None },
            ],
            stopped: None,
        });
        r.save(dir.path()).unwrap();
        let mut back = JobRecord::load(dir.path()).unwrap();
        assert_eq!(back, r);
        let (chain, i) = back.find_mut("8").unwrap();
        assert_eq!((chain.number, i), (1, 1));
        assert!(back.find_mut("9").is_none());
        std::fs::write(JobRecord::path(dir.path()), "{").unwrap();
        let err = format!("{:#}", JobRecord::load(dir.path()).unwrap_err());
        assert!(err.contains("jobs.json is not a job record"), "{err}");
    }
}
