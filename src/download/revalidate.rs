//! `download --revalidate [--older-than AGE]`: which stored images a run asks about again.
//!
//! A stored image last checked (`SuccessRecord::checked_at`) before the cutoff is requested again,
//! conditionally (`If-None-Match` with its `ETag`, `If-Modified-Since` with its `Last-Modified`),
//! through its host's ServerActor like any request. The cutoff is the run's start, less the age
//! given: without `--older-than`, every stored image; with it, only those not checked within that
//! age, so a revalidation that stopped early and runs again asks only the rows it had not reached
//! (give it the same `--older-than`). What each answer commits: `store::shards::revalidation`.
//! Plain logic, no clock of its own.

use std::time::Duration;

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
}
