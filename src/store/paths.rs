//! Every file and folder name of the output folder, spelled once.
//!
//! ```text
//! <output>/
//!   writer.lock                                        held by the one process writing (see `lock`)
//!   urls/server_name=<key>/partition_id=<n>/           one batch of URLs (prep)
//!   servers.parquet                                    one row per server (prep, then downloads)
//!   prep_report.json                                   what prep read, kept and dropped
//!   downloads/server_name=<key>/partition_id=<n>/      one batch's shards and its ledger.json
//!   plans/round-<n>.json                               rank 0's plans
//!   quarantine/server_name=<key>/partition_id=<n>/     shards `verify --repair` moved out
//!   download_summary.json                              the last download's summary
//!   runs.jsonl, robots/, profile/, overrides.toml, metrics/, slurm/jobs.json, logs/
//!   refresh/plan/part-<k>.parquet, refresh/report.json   a snapshot's diff against an older one
//!   refresh/state.json                                 how far that refresh went
//!   carried/<id>/downloads/...                         the older snapshot's shards it refers to (hard links)
//! ```

use std::path::{Path, PathBuf};

/// Batches of URLs written by prep.
pub const URLS_DIR: &str = "urls";
/// The servers table.
pub const SERVERS_TABLE: &str = "servers.parquet";
/// Prep's report.
pub const PREP_REPORT: &str = "prep_report.json";
/// Committed shards.
pub const DOWNLOADS_DIR: &str = "downloads";
/// Rank 0's plans, one file per round.
pub const PLANS_DIR: &str = "plans";
/// Shards moved out by `verify --repair`.
pub const QUARANTINE_DIR: &str = "quarantine";
/// The last download's summary.
pub const DOWNLOAD_SUMMARY: &str = "download_summary.json";
/// The unfinished `download --revalidate` pass, while one is.
pub const REVALIDATION_PASS: &str = "revalidation_pass.json";
/// The lock of the process writing the folder.
pub const LOCK_FILE: &str = "writer.lock";
/// Prep's scratch folder while it runs; its outputs are moved out of it when complete.
pub const PREP_TMP_DIR: &str = ".prep-tmp";
/// Each server's last robots.txt answer, `robots/<server>.json`.
pub const ROBOTS_DIR: &str = "robots";
/// What `profile` found about each server, `profile/<server>.json`.
pub const PROFILE_DIR: &str = "profile";
/// The user's per-server overrides.
pub const OVERRIDES_FILE: &str = "overrides.toml";
/// A line per download start and end, what `status` reads recent throughput from.
pub const RUNS_FILE: &str = "runs.jsonl";
/// Each rank's last metrics and the job's Prometheus targets.
pub const METRICS_DIR: &str = "metrics";
/// The job scripts `submit` rendered and the chain's record.
pub const SLURM_DIR: &str = "slurm";
/// The chain's record of jobs, under [`SLURM_DIR`].
pub const JOBS_FILE: &str = "jobs.json";
/// The Slurm jobs' logs.
pub const LOGS_DIR: &str = "logs";

/// `server_name=<key>/partition_id=<n>`: where one batch lives under `urls/`, `downloads/` and
/// `quarantine/`.
pub fn batch_subdir(server: &str, partition: u64) -> PathBuf {
    Path::new(&format!("server_name={server}")).join(format!("partition_id={partition}"))
}

/// The keep-list `filter` writes in output folder `out`, which `index` respects.
pub fn keep_list(out: &Path) -> PathBuf {
    out.join("filter").join("keep.parquet")
}

/// The servers table of output folder `out`.
pub fn servers_table(out: &Path) -> PathBuf {
    out.join(SERVERS_TABLE)
}

/// Prep's report of output folder `out`.
pub fn prep_report(out: &Path) -> PathBuf {
    out.join(PREP_REPORT)
}

/// The last download's summary in output folder `out`.
pub fn download_summary(out: &Path) -> PathBuf {
    out.join(DOWNLOAD_SUMMARY)
}

/// The unfinished `download --revalidate` pass in output folder `out` (see `download::revalidate`).
pub fn revalidation_pass(out: &Path) -> PathBuf {
    out.join(REVALIDATION_PASS)
}

/// The folder of one batch's URL file(s).
pub fn batch_urls(out: &Path, server: &str, partition: u64) -> PathBuf {
    out.join(URLS_DIR).join(batch_subdir(server, partition))
}

/// Where `prep --occurrence` puts each batch's joined dataset, publisher and taxonomy.
pub const OCCURRENCE_DIR: &str = "occurrence";

/// The file of one batch's joined occurrence fields (beside `urls/`, so that `urls/` reads as
/// one table).
pub fn batch_occurrence(out: &Path, server: &str, partition: u64) -> PathBuf {
    out.join(OCCURRENCE_DIR).join(batch_subdir(server, partition)).join("occurrence.parquet")
}

/// The folder of one batch's shards.
pub fn batch_shards(out: &Path, server: &str, partition: u64) -> PathBuf {
    out.join(DOWNLOADS_DIR).join(batch_subdir(server, partition))
}

/// Where `verify --repair` moves a bad shard of one batch.
pub fn batch_quarantine(out: &Path, server: &str, partition: u64) -> PathBuf {
    out.join(QUARANTINE_DIR).join(batch_subdir(server, partition))
}

/// Rank 0's plan of round `round`.
pub fn plan_file(out: &Path, round: u32) -> PathBuf {
    out.join(PLANS_DIR).join(format!("round-{round:04}.json"))
}

/// Shards of older snapshots whose images `refresh` carried over: `carried/<id>/downloads/...`,
/// hard links of the old folder's shards (see `store::shards::carried`).
pub const CARRIED_DIR: &str = "carried";
/// What `refresh` writes in the new snapshot's output folder.
pub const REFRESH_DIR: &str = "refresh";

/// The refresh plan of output folder `out`: one row per image of either snapshot, in parts.
pub fn refresh_plan(out: &Path) -> PathBuf {
    out.join(REFRESH_DIR).join("plan")
}

/// Part `part` of the refresh plan, inside the plan folder `plan_dir` (the plan or its staged copy).
pub fn refresh_plan_part(plan_dir: &Path, part: usize) -> PathBuf {
    plan_dir.join(format!("part-{part:05}.parquet"))
}

/// Where the refresh plan is written before it replaces [`refresh_plan`] whole.
pub fn refresh_plan_staging(out: &Path) -> PathBuf {
    out.join(REFRESH_DIR).join(".plan-staging")
}

/// The refresh report of output folder `out` (written last: a plan without it is incomplete).
pub fn refresh_report(out: &Path) -> PathBuf {
    out.join(REFRESH_DIR).join("report.json")
}

/// How far the refresh of output folder `out` went (`refresh::state`).
pub fn refresh_state(out: &Path) -> PathBuf {
    out.join(REFRESH_DIR).join("state.json")
}

/// The refresh diff's default scratch folder in output folder `out`.
pub fn refresh_scratch(out: &Path) -> PathBuf {
    out.join(REFRESH_DIR).join(".scratch")
}

/// The lock file of output folder `out`.
pub fn lock_file(out: &Path) -> PathBuf {
    out.join(LOCK_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_has_the_same_hive_path_under_each_tree() {
        let out = Path::new("/o");
        assert_eq!(batch_urls(out, "a.org", 3), Path::new("/o/urls/server_name=a.org/partition_id=3"));
        assert_eq!(batch_shards(out, "a.org", 3), Path::new("/o/downloads/server_name=a.org/partition_id=3"));
        assert_eq!(batch_quarantine(out, "a.org", 3), Path::new("/o/quarantine/server_name=a.org/partition_id=3"));
    }
}
