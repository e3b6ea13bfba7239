//! The `SLURM_*` keys of the configuration file: what `submit` asks Slurm for.

use super::read::Values;
use super::ConfigError;

/// The `SLURM_*` keys: what `submit` puts in the job scripts. Optional fields left unset are
/// left to the site's defaults (no `#SBATCH` line).
#[derive(Debug, Clone, PartialEq)]
pub struct SlurmSettings {
    pub account: Option<String>,
    pub partition: Option<String>,
    pub qos: Option<String>,
    pub nodes: u32,
    pub tasks_per_node: u32,
    pub cpus_per_task: u32,
    pub mem: Option<String>,
    /// Time limit of one download job, in Slurm's form, and in seconds.
    pub time: String,
    pub time_secs: u64,
    pub chain_jobs: u32,
    pub prep_time: String,
    pub prep_mem: Option<String>,
    pub prep_cpus: u32,
    /// Extra sbatch options, each put on its own `#SBATCH` line.
    pub extra_args: Vec<String>,
}

/// A download job runs one day by default: long jobs waste little in drains and restarts, and
/// most clusters allow a day. Four of them cover a GBIF snapshot on a few nodes.
pub const DEFAULT_SLURM_TIME: &str = "24:00:00";
pub const DEFAULT_SLURM_CHAIN_JOBS: u32 = 4;
/// One rank per node with every core of it: a rank's CPU pool uses all its cores, and fewer
/// ranks mean fewer host shares. 4 cores per rank is a small node's share.
pub const DEFAULT_SLURM_CPUS_PER_TASK: u32 = 4;
/// Prep of a GBIF snapshot (200M rows) takes well under an hour; 4 hours leave room on slow
/// file systems.
pub const DEFAULT_SLURM_PREP_TIME: &str = "04:00:00";
pub const DEFAULT_SLURM_PREP_CPUS: u32 = 4;

/// Parses a Slurm time limit (`minutes`, `minutes:seconds`, `hours:minutes:seconds`,
/// `days-hours`, `days-hours:minutes`, `days-hours:minutes:seconds`) into seconds.
pub fn parse_slurm_time(value: &str) -> Option<u64> {
    let v = value.trim();
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (days, rest) = match v.split_once('-') {
        Some((d, r)) => (Some(num(d)?), r),
        None => (None, v),
    };
    let parts: Vec<u64> = rest.split(':').map(num).collect::<Option<_>>()?;
    let secs = match (days, parts.as_slice()) {
        (None, [m]) => m * 60,
        (None, [m, s]) => m * 60 + s,
        (None, [h, m, s]) => h * 3600 + m * 60 + s,
        (Some(d), [h]) => d * 86400 + h * 3600,
        (Some(d), [h, m]) => d * 86400 + h * 3600 + m * 60,
        (Some(d), [h, m, s]) => d * 86400 + h * 3600 + m * 60 + s,
        _ => return None,
    };
    (secs > 0).then_some(secs)
}

/// A Slurm memory size: a whole number with an optional K, M, G or T suffix.
fn is_slurm_mem(value: &str) -> bool {
    let digits = value.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && value.len() - digits.len() <= 1
}

impl Values<'_> {
    pub(super) fn slurm(&self) -> Result<SlurmSettings, ConfigError> {
        let count = |key: &str, default: u32, max: u32| {
            self.parse(key, default, |n| (1..=max).contains(n), &format!("must be a whole number from 1 to {max}"))
        };
        let time = |key: &str, default: &str| -> Result<(String, u64), ConfigError> {
            let t = self.text(key).unwrap_or_else(|| default.to_string());
            match parse_slurm_time(&t) {
                Some(secs) => Ok((t, secs)),
                None => Err(self.bad(key, &t, "must be a Slurm time limit: minutes, HH:MM:SS or D-HH:MM:SS")),
            }
        };
        let mem = |key: &str| match self.text(key) {
            Some(m) if !is_slurm_mem(&m) => Err(self.bad(key, &m, "must be a Slurm memory size, e.g. 64G or 8000M")),
            other => Ok(other),
        };
        let word = |key: &str| match self.text(key) {
            Some(w) if w.chars().any(|c| c.is_whitespace() || c.is_control() || c == '\'' || c == '"') => {
                Err(self.bad(key, &w, "must be one word (no spaces or quotes)"))
            }
            other => Ok(other),
        };
        let (job_time, time_secs) = time("SLURM_TIME", DEFAULT_SLURM_TIME)?;
        let prep_time = time("SLURM_PREP_TIME", DEFAULT_SLURM_PREP_TIME)?.0;
        let extra = self.text("SLURM_EXTRA_ARGS").unwrap_or_default();
        let extra_args: Vec<String> = extra.split_whitespace().map(str::to_string).collect();
        if let Some(bad) = extra_args.iter().find(|a| !a.starts_with('-') || a.contains(['\'', '"', '`', '$'])) {
            return Err(self.bad(
                "SLURM_EXTRA_ARGS",
                &extra,
                &format!("must be sbatch options separated by spaces, each starting with `-`, without quotes or `$` (`{bad}`)"),
            ));
        }
        Ok(SlurmSettings {
            account: word("SLURM_ACCOUNT")?,
            partition: word("SLURM_PARTITION")?,
            qos: word("SLURM_QOS")?,
            nodes: count("SLURM_NODES", 1, 100_000)?,
            tasks_per_node: count("SLURM_TASKS_PER_NODE", 1, 1024)?,
            cpus_per_task: count("SLURM_CPUS_PER_TASK", DEFAULT_SLURM_CPUS_PER_TASK, 4096)?,
            mem: mem("SLURM_MEM")?,
            time: job_time,
            time_secs,
            chain_jobs: count("SLURM_CHAIN_JOBS", DEFAULT_SLURM_CHAIN_JOBS, 1000)?,
            prep_time,
            prep_mem: mem("SLURM_PREP_MEM")?,
            prep_cpus: count("SLURM_PREP_CPUS", DEFAULT_SLURM_PREP_CPUS, 4096)?,
            extra_args,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::write_env;
    use crate::config::RawConfig;

    #[test]
    fn slurm_time_limits_parse_in_every_form_slurm_accepts() {
        assert_eq!(parse_slurm_time("30"), Some(1800));
        assert_eq!(parse_slurm_time("1:30"), Some(90));
        assert_eq!(parse_slurm_time("24:00:00"), Some(86400));
        assert_eq!(parse_slurm_time("2-12"), Some(2 * 86400 + 12 * 3600));
        assert_eq!(parse_slurm_time("1-00:30"), Some(86400 + 1800));
        assert_eq!(parse_slurm_time("1-0:0:5"), Some(86405));
        for bad in ["", "0", "1h", "a:b", "1:2:3:4", "-5", "1-"] {
            assert_eq!(parse_slurm_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn bad_slurm_values_name_the_key() {
        for (line, key) in [
            ("SLURM_TIME=\"1 day\"", "SLURM_TIME"),
            ("SLURM_MEM=lots", "SLURM_MEM"),
            ("SLURM_ACCOUNT=\"my account\"", "SLURM_ACCOUNT"),
            ("SLURM_NODES=0", "SLURM_NODES"),
            ("SLURM_EXTRA_ARGS='--comment=$(rm)'", "SLURM_EXTRA_ARGS"),
        ] {
            let f = write_env(&format!("{line}\n"));
            let err = RawConfig::from_file(f.path()).unwrap().validate().unwrap_err().to_string();
            assert!(err.contains(key), "{line}: {err}");
        }
        let f = write_env("SLURM_EXTRA_ARGS=\"--constraint=cpu --exclusive\"\nSLURM_MEM=64G\n");
        let s = RawConfig::from_file(f.path()).unwrap().validate().unwrap().slurm;
        assert_eq!(s.extra_args, ["--constraint=cpu", "--exclusive"]);
        assert_eq!(s.mem.as_deref(), Some("64G"));
        assert_eq!(s.time_secs, 86400);
    }
}
