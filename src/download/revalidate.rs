//! `download --revalidate [--older-than AGE]`: which stored images a run asks about again.
//!
//! A stored image last checked (`SuccessRecord::checked_at`) before the cutoff is requested again,
//! conditionally (`If-None-Match` with its `ETag`, `If-Modified-Since` with its `Last-Modified`),
//! through its host's ServerActor like any request. The cutoff is the pass's start, less the age
//! given: without `--older-than`, every stored image; with it, only those not checked within that
//! age. What each answer commits: `store::shards::revalidation`.
//!
//! A *pass* is the revalidation a first run starts and its later runs finish: its start is
//! recorded (`revalidation_pass.json`), and a run killed midway (a Slurm time limit) and started
//! again with the same `--older-than` cuts off at the pass's start, not its own, so the rows the
//! killed run checked are not asked again, with or without `--older-than`. A run that ends with
//! nothing left ends the pass. Plain logic, no clock of its own.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// Reads an age such as `90d`, `12h`, `30m` or `45s` (a whole number and a unit).
pub fn parse_age(text: &str) -> Result<Duration, String> {
    let bad = || format!("`{text}` is not an age: give a whole number and a unit (d, h, m or s), e.g. 90d, 12h or 30m");
    let text = text.trim();
    let unit = text.chars().last().ok_or_else(bad)?;
    let seconds = match unit {
        'd' => 86_400,
        'h' => 3_600,
        'm' => 60,
        's' => 1,
        _ => return Err(bad()),
    };
    let n: u64 = text[..text.len() - 1].parse().map_err(|_| bad())?;
    n.checked_mul(seconds).map(Duration::from_secs).ok_or_else(bad)
}

/// The revalidation cutoff in Unix seconds: `started` (the run's start, Unix seconds) less
/// `older_than` (none: every stored image).
pub fn cutoff(started: f64, older_than: Option<Duration>) -> f64 {
    started - older_than.map_or(0.0, |age| age.as_secs_f64())
}

/// A revalidation pass not finished yet: when its first run started and with which age.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pass {
    /// Unix seconds.
    pub started: f64,
    /// `--older-than` in seconds, if given.
    pub older_than_s: Option<u64>,
}

impl Pass {
    /// The unfinished pass in `out` run with `older_than`, if any. A pass with another age is
    /// not this one, and an unreadable record is none (a new pass then starts).
    pub fn unfinished(out: &Path, older_than: Option<Duration>) -> Option<Pass> {
        let text = std::fs::read_to_string(crate::store::paths::revalidation_pass(out)).ok()?;
        let pass: Pass = serde_json::from_str(&text).ok()?;
        (pass.older_than_s == older_than.map(|a| a.as_secs()) && pass.started.is_finite()).then_some(pass)
    }

    /// The pass a run starting at `now` belongs to: the unfinished one with the same
    /// `older_than`, or a new one from `now`, recorded. Returns it and whether it was resumed.
    pub fn begin(out: &Path, now: f64, older_than: Option<Duration>) -> anyhow::Result<(Pass, bool)> {
        if let Some(pass) = Pass::unfinished(out, older_than) {
            return Ok((pass, true));
        }
        let pass = Pass { started: now, older_than_s: older_than.map(|a| a.as_secs()) };
        let path = crate::store::paths::revalidation_pass(out);
        let json = serde_json::to_string_pretty(&pass).expect("a pass serialises") + "\n";
        crate::store::atomic::replace(&path, json.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok((pass, false))
    }

    /// A run ended with nothing left: the pass is over, and the next `--revalidate` starts anew.
    pub fn finish(out: &Path) -> anyhow::Result<()> {
        let path = crate::store::paths::revalidation_pass(out);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("cannot remove {}", path.display()))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_in_days_hours_minutes_and_seconds_and_anything_else_says_how() {
        assert_eq!(parse_age("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert_eq!(parse_age("12h"), Ok(Duration::from_secs(12 * 3_600)));
        assert_eq!(parse_age("30m"), Ok(Duration::from_secs(1_800)));
        assert_eq!(parse_age("45s"), Ok(Duration::from_secs(45)));
        for bad in ["", "d", "90", "1.5h", "-3d", "3w", "99999999999999999d"] {
            let err = parse_age(bad).unwrap_err();
            assert!(err.contains("e.g. 90d, 12h or 30m"), "{bad}: {err}");
        }
        assert_eq!(cutoff(1000.0, None), 1000.0);
        assert_eq!(cutoff(1000.0, Some(Duration::from_secs(60))), 940.0);
    }

    #[test]
    fn a_pass_is_resumed_with_the_same_age_until_it_is_finished() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        let day = Some(Duration::from_secs(86_400));
        assert_eq!(Pass::begin(out, 100.0, None).unwrap(), (Pass { started: 100.0, older_than_s: None }, false));
        assert_eq!(Pass::begin(out, 200.0, None).unwrap().0.started, 100.0, "a second run resumes the pass");
        assert_eq!(Pass::unfinished(out, day), None, "another --older-than is another pass");
        assert_eq!(Pass::begin(out, 300.0, day).unwrap(), (Pass { started: 300.0, older_than_s: Some(86_400) }, false));
        Pass::finish(out).unwrap();
        Pass::finish(out).unwrap();
        assert_eq!(Pass::begin(out, 400.0, day).unwrap().0.started, 400.0, "a finished pass is not resumed");
        std::fs::write(crate::store::paths::revalidation_pass(out), "{ not json").unwrap();
        assert_eq!(Pass::begin(out, 500.0, day).unwrap().0.started, 500.0, "an unreadable record starts anew");
    }
}
