//! What remains of a job, read from its output folder: the servers table, the committed shards
//! and the overrides file, turned into the hosts the simulation drains. It only reads.
//!
//! The rates are the ones rank 0 plans with (`download::ranks::make_plan`): the learned rate,
//! else the host's ceiling, never above the ceiling (`MAX_RATE_LIMIT`, or the host's `max_rate`
//! override). Two limits the engine obeys on top are applied here too: a robots.txt Crawl-delay
//! caps the rate at one request per delay (unless `ROBOTS=ignore`), and an excluded host is left
//! out and reported.

use std::path::Path;

use super::error::ForecastError;
use super::sim::HostWork;
use crate::config::Settings;
use crate::overrides::Overrides;
use crate::robots::RobotsPolicy;
use crate::store::shards::ledger::{self, Again};
use crate::store::tables::read_servers_table;

/// The hosts of a job, ready to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// Every host not excluded, with its rows not yet committed (a finished host has none).
    pub hosts: Vec<HostWork>,
    /// Hosts the overrides file excludes: never downloaded, so not planned.
    pub excluded: Vec<String>,
    /// Rows with a committed record already.
    pub done: u64,
}

/// Reads what remains under `out`; `again` says which committed rows a run would do again
/// (with `download --revalidate`, the stored images to ask about).
pub fn load(out: &Path, settings: &Settings, again: Again) -> Result<Loaded, ForecastError> {
    let servers = read_servers_table(out)?;
    if servers.is_empty() {
        return Err(ForecastError::EmptyTable { path: out.to_path_buf() });
    }
    let committed = ledger::scan(out, again)?;
    let overrides = Overrides::load(out, settings)?;
    let mut loaded = Loaded { hosts: Vec::new(), excluded: Vec::new(), done: 0 };
    for s in &servers {
        if overrides.excluded(&s.server_name) {
            loaded.excluded.push(s.server_name.clone());
            continue;
        }
        let mut batches = Vec::new();
        for p in 0..s.batch_count {
            let rows = s.rows_in(out, p)?;
            let done = committed.batch(&s.server_name, p).map_or(0, |b| b.done_count).min(rows);
            loaded.done += done;
            if rows > done {
                batches.push((p, rows - done));
            }
        }
        let effective = overrides.effective(&s.server_name, s.initial_rate_limit, settings);
        let mut rate = s.learned_rate_limit.unwrap_or(effective.max_rate).min(effective.max_rate);
        if settings.robots != RobotsPolicy::Ignore {
            if let Some(delay) = s.crawl_delay.filter(|d| *d > 0.0) {
                rate = rate.min(1.0 / delay);
            }
        }
        loaded.hosts.push(HostWork { host: s.server_name.clone(), batches, rate, in_flight: effective.max_in_flight });
    }
    if loaded.hosts.is_empty() {
        let overrides = overrides.path.as_ref().map_or_else(|| "SERVER_OVERRIDES".into(), |p| p.display().to_string());
        return Err(ForecastError::AllExcluded { path: out.to_path_buf(), overrides });
    }
    Ok(loaded)
}
