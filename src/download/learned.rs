//! What hosts learned, written back into `servers.parquet` between rounds and runs, and read
//! back at the start of the next.
//!
//! Owns merging the states of a split host's shares into one state for the host. The state
//! itself is `host::state::HostState`; the parquet columns are `prep::batches`'.

use std::collections::HashMap;
use std::path::Path;
use std::time::SystemTime;

use anyhow::Context;

use crate::host::state::HostState;
use crate::store::table_updates::{update_learned, Learned};

/// A host's learned state from `servers.parquet`, ready for a new run; `None`, with a warning,
/// when it cannot be read (a hand edit, a damaged table): the host then starts fresh from
/// `INITIAL_RATE_LIMIT` rather than from a guess.
pub fn restore_state(host: &str, json: &str, run_started: SystemTime) -> Option<HostState> {
    match serde_json::from_str::<HostState>(json) {
        Ok(state) => Some(state.for_run(run_started)),
        Err(e) => {
            eprintln!(
                "download: warning: the learned state of {host} in servers.parquet cannot be read ({e}); \
                 the host starts fresh from INITIAL_RATE_LIMIT, and this run's state replaces it"
            );
            None
        }
    }
}

/// Writes what hosts learned into `servers.parquet` (see [`merge`] for split hosts).
pub fn write_learned(out: &Path, states: &[(String, u32, HostState)]) -> anyhow::Result<()> {
    let at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let learned: HashMap<String, Learned> = merge(states)
        .into_iter()
        .map(|(host, st)| {
            let row = Learned {
                rate: st.rate,
                max_in_flight: st.max_in_flight,
                at: at.clone(),
                state_json: serde_json::to_string(&st).expect("state serialises"),
            };
            (host, row)
        })
        .collect();
    update_learned(out, &learned).context("cannot write learned rates into servers.parquet")
}

/// One state per host from (host, shares, share state) triples. A split host's shares are added
/// back up: its rate and in-flight cap are k times the lowest share's, its known limit the
/// lowest share limit times k, seen as often and as recently as any share saw it. That its limit
/// judges gaps alone (`forgets`) is kept only for a host in one share.
pub fn merge(states: &[(String, u32, HostState)]) -> HashMap<String, HostState> {
    let mut merged: HashMap<String, HostState> = HashMap::new();
    for (host, k, st) in states {
        let shares = (*k).max(1);
        let k = f64::from(shares);
        let whole = HostState {
            rate: st.rate * k,
            known_limit: st.known_limit.map(|l| l * k),
            max_in_flight: st.max_in_flight.saturating_mul(shares),
            forgets: st.forgets && shares == 1,
            ..st.clone()
        };
        merged
            .entry(host.clone())
            .and_modify(|m| {
                m.rate = m.rate.min(whole.rate);
                m.max_in_flight = m.max_in_flight.min(whole.max_in_flight);
                m.known_limit = match (m.known_limit, whole.known_limit) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                m.limit_refusals = m.limit_refusals.max(whole.limit_refusals);
                m.forgets = m.forgets && whole.forgets;
                m.limit_seen_unix_ms = m.limit_seen_unix_ms.max(whole.limit_seen_unix_ms);
                m.probe_interval_secs = match (m.probe_interval_secs, whole.probe_interval_secs) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
            })
            .or_insert(whole);
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(rate: f64, limit: Option<f64>, refusals: u32) -> HostState {
        HostState {
            rate,
            known_limit: limit,
            limit_refusals: refusals,
            limit_seen_unix_ms: limit.map(|_| 1_700_000_000_000 + u64::from(refusals)),
            probe_interval_secs: Some(600.0 * f64::from(refusals.max(1))),
            max_in_flight: 1,
            backoff_until_unix_ms: None,
            consecutive_failures: 0,
            parks: 0,
            parked_until_unix_ms: None,
            dead: false,
            saved_unix_ms: None,
            forgets: false,
        }
    }

    #[test]
    fn a_split_hosts_shares_add_back_up_to_one_host_within_its_limits() {
        let forgets = |st: HostState| HostState { forgets: true, ..st };
        let states = vec![
            ("cdn".to_string(), 2, forgets(share(3.0, Some(3.5), 1))),
            ("cdn".to_string(), 2, share(2.5, None, 0)),
            ("museum".to_string(), 1, forgets(share(1.94, Some(2.3), 2))),
        ];
        let m = merge(&states);
        let cdn = &m["cdn"];
        assert_eq!(cdn.rate, 5.0, "twice the slower share: the host is never credited more than both held");
        assert_eq!(cdn.max_in_flight, 2, "each share had half the cap");
        assert_eq!((cdn.known_limit, cdn.limit_refusals), (Some(7.0), 1));
        assert!(!cdn.forgets, "a share saw its own gaps, not the host's");
        assert_eq!(m["museum"], states[2].2, "an unsplit host is written as it is");
    }

    #[test]
    fn learned_at_is_rfc3339_utc_to_the_second() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_609_815);
        assert_eq!(humantime::format_rfc3339_seconds(t).to_string(), "2026-11-25T12:30:15Z");
    }
}
