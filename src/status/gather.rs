//! The status report gathered from the output folder (ledgers, servers table, overrides, the
//! job record and the plans) and, when asked, from Slurm's queue; `screen` prints it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::runs;
use crate::host::state::HostState;
use crate::mpi_glue::planner::Plan;
use crate::slurm::queue;
use crate::slurm::record::{now_unix, JobKind, JobRecord};
use crate::store::shards::ledger::{self, Ledger, RetryFailed};
use crate::store::tables::{read_servers_table, ServerInfo};

/// Rows, by their committed records.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Totals {
    pub servers: usize,
    pub rows: u64,
    pub stored: u64,
    pub failed: u64,
    pub failed_by_class: BTreeMap<String, u64>,
    /// Of `failed`, those `download --retry-failed` would try again.
    pub retriable: u64,
    pub remaining: u64,
    pub stored_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerStatus {
    pub server: String,
    pub rows: u64,
    pub stored: u64,
    pub failed: u64,
    pub remaining: u64,
    /// Done rows over rows, 0 to 1.
    pub progress: f64,
    /// Requests/s the next run starts the host at: what was learned, else its initial rate.
    pub rate: f64,
    pub rate_learned: bool,
    /// The lowest rate at which it refused, and how many refusals taught it (over all runs).
    pub known_limit: Option<f64>,
    pub refusals: u32,
    /// `done`, `not started`, `in progress`, `paused` (a pending `Retry-After`), `parked` or
    /// `gave up` (as the last run left it), or `excluded` (by the server overrides).
    pub state: String,
    /// The server's overrides as set in the overrides file (`initial_rate=5 max_rate=20`), if any.
    pub overrides: Option<String>,
    /// What `profile` found, if it ran: robots.txt's answer and Crawl-delay, and its notes.
    pub robots_status: Option<String>,
    pub crawl_delay: Option<f64>,
    pub profile_notes: Option<String>,
    /// The host's remaining rows over its rate: no run can finish it sooner.
    pub floor_secs: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Eta {
    /// Rows recorded per second, and over how many seconds (see `runs::recent_rate`).
    pub recent_rows_per_sec: Option<f64>,
    pub recent_window_secs: Option<f64>,
    /// Remaining rows at the recent throughput.
    pub by_throughput_secs: Option<f64>,
    /// The largest floor of a host's remaining rows: the politeness floor of what is left.
    pub politeness_floor_secs: f64,
    pub slowest_server: Option<String>,
    /// The larger of the two (the floor alone when throughput is unknown); 0 when complete.
    pub estimate_secs: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobStatus {
    pub id: String,
    pub kind: JobKind,
    /// Slurm's state (`squeue`, else `sacct`), else what the job recorded, else `unknown`.
    pub state: String,
    pub exit_code: Option<i32>,
    pub remaining_at_end: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChainStatus {
    pub number: u32,
    pub submitted_at: f64,
    pub jobs: Vec<JobStatus>,
    /// Why the chain stopped early, if it did.
    pub stopped: Option<String>,
    /// Whether Slurm's tools answered (false: states are what the jobs recorded).
    pub slurm_answered: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanBrief {
    pub round: u32,
    pub ranks: usize,
    pub host_shares: usize,
    /// The longest rank's estimated seconds.
    pub estimated_secs: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub output: String,
    /// Whether prep has written the servers table (false: every count is 0).
    pub prepped: bool,
    /// Unix seconds.
    pub at: f64,
    pub totals: Totals,
    pub eta: Eta,
    /// Slowest first (largest floor), then by name.
    pub servers: Vec<ServerStatus>,
    /// The latest chain `submit` queued, if any.
    pub chain: Option<ChainStatus>,
    /// The last three recorded plans, newest last.
    pub plans: Vec<PlanBrief>,
    /// How many servers the screen shows (the JSON holds all).
    #[serde(skip)]
    pub show_servers: usize,
}

/// What the committed shards hold against what prep wrote.
pub fn totals(servers: &[ServerInfo], done: &Ledger) -> Totals {
    let mut t = Totals { servers: servers.len(), ..Totals::default() };
    t.rows = servers.iter().map(|s| s.url_count).sum();
    for b in done.batches.values() {
        t.stored += b.succeeded;
        t.failed += b.failed;
        t.retriable += b.retriable;
        t.stored_bytes += b.data_bytes;
        for (class, n) in &b.failed_by_class {
            *t.failed_by_class.entry(class.clone()).or_default() += n;
        }
    }
    t.remaining = t.rows.saturating_sub(done.done());
    t
}

/// Rows without a committed record: what `job-end` records.
pub fn remaining(out: &Path) -> anyhow::Result<u64> {
    let servers = read_servers_table(out)?;
    let done = ledger::scan(out, RetryFailed::No)?;
    Ok(totals(&servers, &done).remaining)
}

/// Reads everything `status` shows. `query_slurm` asks `squeue`/`sacct` for the jobs' states.
pub fn report(
    out: &Path,
    overrides: &crate::overrides::Overrides,
    settings: &crate::config::Settings,
    query_slurm: bool,
) -> anyhow::Result<StatusReport> {
    // Before prep has finished (a queued chain's first job) there is nothing to count yet, but
    // the jobs are worth showing.
    let prepped = crate::store::paths::servers_table(out).exists();
    let servers = if prepped { read_servers_table(out)? } else { Vec::new() };
    let done = ledger::scan(out, RetryFailed::No)?;
    let totals = totals(&servers, &done);
    let now = now_unix();
    let mut by_server: BTreeMap<&str, (u64, u64, u64)> = BTreeMap::new();
    for ((server, _), b) in &done.batches {
        let e = by_server.entry(server.as_str()).or_default();
        e.0 += b.succeeded;
        e.1 += b.failed;
        e.2 += b.done_count;
    }
    let mut rows: Vec<ServerStatus> = servers
        .iter()
        .map(|s| {
            let mut row = server_status(s, by_server.get(s.server_name.as_str()).copied(), now);
            apply_overrides(&mut row, s, overrides, settings);
            row
        })
        .collect();
    rows.sort_by(|a, b| b.floor_secs.total_cmp(&a.floor_secs).then_with(|| a.server.cmp(&b.server)));

    let lines = runs::read(out)?;
    let recent = runs::recent_rate(&lines, done.done(), now);
    let slowest = rows.first().filter(|s| s.remaining > 0);
    let floor = slowest.map(|s| s.floor_secs).unwrap_or(0.0);
    let by_throughput = recent.and_then(|(r, _)| (r > 0.0).then(|| totals.remaining as f64 / r));
    let estimate = if totals.remaining == 0 { 0.0 } else { by_throughput.unwrap_or(0.0).max(floor) };
    let eta = Eta {
        recent_rows_per_sec: recent.map(|r| r.0),
        recent_window_secs: recent.map(|r| r.1),
        by_throughput_secs: by_throughput,
        politeness_floor_secs: floor,
        slowest_server: slowest.map(|s| s.server.clone()),
        estimate_secs: estimate,
    };
    Ok(StatusReport {
        output: out.display().to_string(),
        prepped,
        at: now,
        totals,
        eta,
        servers: rows,
        chain: chain_status(out, query_slurm)?,
        plans: last_plans(out, 3)?,
        show_servers: 20,
    })
}

/// What the server overrides change in a server's row: the rate the next run starts it at, its
/// floor, and an `excluded` state (no floor: no run downloads it).
fn apply_overrides(
    row: &mut ServerStatus,
    s: &ServerInfo,
    overrides: &crate::overrides::Overrides,
    settings: &crate::config::Settings,
) {
    let Some(o) = overrides.get(&s.server_name) else { return };
    let eff = overrides.effective(&s.server_name, s.initial_rate_limit, settings);
    let mut set = Vec::new();
    if let Some(r) = o.initial_rate {
        set.push(format!("initial_rate={r}"));
        row.rate = r;
        row.rate_learned = false;
    }
    if let Some(m) = o.max_rate {
        set.push(format!("max_rate={m}"));
    }
    if let Some(n) = o.max_in_flight {
        set.push(format!("max_in_flight={n}"));
    }
    row.rate = row.rate.min(eff.max_rate).max(1e-6);
    row.floor_secs = row.remaining as f64 / row.rate;
    if o.exclude {
        set.push("exclude".into());
        if row.remaining > 0 {
            row.state = "excluded".into();
            row.floor_secs = 0.0;
        }
    }
    row.overrides = Some(set.join(" "));
}

fn server_status(s: &ServerInfo, done: Option<(u64, u64, u64)>, now: f64) -> ServerStatus {
    let (stored, failed, done_rows) = done.unwrap_or_default();
    let remaining = s.url_count.saturating_sub(done_rows);
    let state: Option<HostState> = s.learned_state.as_deref().and_then(|j| serde_json::from_str(j).ok());
    let rate = s.learned_rate_limit.filter(|r| *r > 0.0).unwrap_or(s.initial_rate_limit).max(1e-6);
    let now_ms = (now * 1e3) as u64;
    let label = match &state {
        _ if remaining == 0 => "done",
        Some(st) if st.dead => "gave up",
        Some(st) if st.parked_until_unix_ms.is_some() => "parked",
        Some(st) if st.backoff_until_unix_ms.is_some_and(|t| t > now_ms) => "paused",
        _ if done_rows == 0 => "not started",
        _ => "in progress",
    };
    ServerStatus {
        server: s.server_name.clone(),
        rows: s.url_count,
        stored,
        failed,
        remaining,
        progress: if s.url_count == 0 { 1.0 } else { done_rows as f64 / s.url_count as f64 },
        rate,
        rate_learned: s.learned_rate_limit.is_some(),
        known_limit: state.as_ref().and_then(|st| st.known_limit),
        refusals: state.as_ref().map(|st| st.limit_refusals).unwrap_or(0),
        state: label.to_string(),
        overrides: None,
        robots_status: s.robots_status.clone(),
        crawl_delay: s.crawl_delay,
        profile_notes: s.profile_notes.clone().filter(|n| !n.is_empty()),
        floor_secs: remaining as f64 / rate,
    }
}

fn chain_status(out: &Path, query_slurm: bool) -> anyhow::Result<Option<ChainStatus>> {
    let record = JobRecord::load(out)?;
    let Some(chain) = record.latest() else { return Ok(None) };
    let ids: Vec<String> = chain.jobs.iter().map(|j| j.id.clone()).collect();
    let slurm = if query_slurm { queue::states(&ids) } else { None };
    let jobs = chain
        .jobs
        .iter()
        .map(|j| {
            let recorded = j.ended.as_ref().map(|e| if e.exit_code == 0 { "ENDED" } else { "FAILED" });
            let state = slurm
                .as_ref()
                .and_then(|m| m.get(&j.id).cloned())
                .or_else(|| recorded.map(str::to_string))
                .unwrap_or_else(|| if slurm.is_some() { "ENDED (not recorded)".into() } else { "unknown".into() });
            JobStatus {
                id: j.id.clone(),
                kind: j.kind,
                state,
                exit_code: j.ended.as_ref().map(|e| e.exit_code),
                remaining_at_end: j.ended.as_ref().and_then(|e| e.remaining),
            }
        })
        .collect();
    Ok(Some(ChainStatus {
        number: chain.number,
        submitted_at: chain.submitted_at,
        jobs,
        stopped: chain.stopped.as_ref().map(|s| s.reason.clone()),
        slurm_answered: slurm.is_some(),
    }))
}

/// The last `n` plans under `plans/`, oldest first.
fn last_plans(out: &Path, n: usize) -> anyhow::Result<Vec<PlanBrief>> {
    let found = crate::store::plans::recorded(out)?;
    let mut briefs = Vec::new();
    for (_, path) in found.iter().rev().take(n).rev() {
        let p: Plan = crate::store::plans::read(path)?;
        briefs.push(PlanBrief {
            round: p.round,
            ranks: p.ranks,
            host_shares: p.assignments.len(),
            estimated_secs: p.estimated_seconds.iter().copied().fold(0.0, f64::max),
        });
    }
    Ok(briefs)
}

#[cfg(test)]
mod tests {
    use super::super::duration;
    use super::*;

    fn server(name: &str, rows: u64, learned: Option<f64>, state: Option<&str>) -> ServerInfo {
        ServerInfo {
            server_name: name.into(),
            url_count: rows,
            batch_count: 1,
            initial_rate_limit: 1.0,
            learned_rate_limit: learned,
            learned_state: state.map(str::to_string),
            ..ServerInfo::default()
        }
    }

    #[test]
    fn a_server_shows_its_floor_and_the_state_its_last_run_left() {
        let parked = r#"{"rate":2.0,"known_limit":2.5,"limit_refusals":3,"max_in_flight":2,"backoff_until_unix_ms":null,"consecutive_failures":0,"parks":2,"parked_until_unix_ms":5,"dead":false}"#;
        let s = server_status(&server("a", 100, Some(2.0), Some(parked)), Some((30, 10, 40)), 1000.0);
        assert_eq!((s.stored, s.failed, s.remaining), (30, 10, 60));
        assert_eq!(s.floor_secs, 30.0, "60 rows at 2 req/s");
        assert_eq!((s.state.as_str(), s.known_limit, s.refusals), ("parked", Some(2.5), 3));
        let fresh = server_status(&server("b", 10, None, None), None, 1000.0);
        assert_eq!((fresh.state.as_str(), fresh.rate, fresh.rate_learned), ("not started", 1.0, false));
        let done = server_status(&server("c", 10, None, None), Some((10, 0, 10)), 1000.0);
        assert_eq!((done.state.as_str(), done.floor_secs), ("done", 0.0));
    }

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(duration(12.4), "12s");
        assert_eq!(duration(250.0), "4m 10s");
        assert_eq!(duration(7500.0), "2h 05m");
        assert_eq!(duration(3.0 * 86400.0 + 4.0 * 3600.0), "3d 4h");
    }
}
