//! What can stop a forecast: input that makes no sense (a usage error: nothing to simulate) and
//! an output folder that cannot be read. Owns the error type only; the checks live where the
//! values are used (`sim.rs` for the simulation's inputs, `load.rs` for the folder).

use std::path::PathBuf;

/// Why `plan` cannot forecast.
#[derive(Debug, thiserror::Error)]
pub enum ForecastError {
    #[error("the job has no rank: {nodes} node(s) × {ranks_per_node} rank(s) per node; pass --nodes and --ranks-per-node of at least 1")]
    NoRanks { nodes: u32, ranks_per_node: u32 },
    #[error("{what} must be a positive number of images per second, not {value}")]
    BadThroughput { what: String, value: f64 },
    #[error("{what} must be a positive number of seconds, not {value}")]
    BadDuration { what: String, value: f64 },
    #[error("the servers table of {path} lists no server: nothing to plan. Check the input list and the filters, then run `prep` again")]
    EmptyTable { path: PathBuf },
    #[error("every server of {path} is excluded by the overrides file ({overrides}): nothing to plan")]
    AllExcluded { path: PathBuf, overrides: String },
    #[error("the job has no host to download: the list of hosts is empty")]
    NoHosts,
    #[error("server {host} has a rate of {rate} requests/s, and a polite download of it would never end; fix its learned rate (servers.parquet) or set `max_rate` for it in the overrides file")]
    BadRate { host: String, rate: f64 },
    #[error("the simulated run re-planned {rounds} times without finishing: rounds of {min_round} to {max_round} s are too short for this job; raise MIN_ROUND_SECS or ROUND_SECS (--round-secs)")]
    TooManyRounds { rounds: u32, min_round: f64, max_round: f64 },
    #[error(transparent)]
    Store(#[from] crate::store::error::StoreError),
    #[error(transparent)]
    Ledger(#[from] crate::store::shards::ledger::LedgerError),
    #[error(transparent)]
    Overrides(#[from] crate::overrides::OverridesError),
}

impl ForecastError {
    /// Whether the error is in what the user typed or configured (exit code 2) rather than in
    /// the output folder (exit code 1).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ForecastError::NoRanks { .. }
                | ForecastError::BadThroughput { .. }
                | ForecastError::BadDuration { .. }
                | ForecastError::TooManyRounds { .. }
        )
    }
}
