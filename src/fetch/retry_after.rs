//! Reading a server's `Retry-After` header (RFC 9110 §10.2.3) into a wait.
//!
//! Both forms are accepted: delta-seconds (`120`) and an HTTP-date, in the preferred IMF-fixdate
//! form (`Wed, 21 Oct 2015 07:28:00 GMT`) or the two obsolete forms RFC 9110 still requires
//! recipients to read (RFC 850 `Wednesday, 21-Oct-15 07:28:00 GMT` and asctime
//! `Wed Oct 21 07:28:00 2015`); dates are parsed by the `httpdate` crate. This module only turns
//! text into a `Duration`; whether to honour it for a given status is `host::retry`'s
//! call. The current time is passed in, so parsing is deterministic.

use std::time::{Duration, SystemTime};

use crate::host::retry::MAX_RETRY_AFTER;

/// The wait a `Retry-After` value asks for, measured from `now`.
///
/// Returns `None` for a value that is neither form (negative or fractional seconds included, as
/// the RFC allows only digits), `Duration::ZERO` for a date already past, and at most
/// [`MAX_RETRY_AFTER`] for anything longer (including delta-seconds too large for a `u64`).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let wait = if value.bytes().all(|b| b.is_ascii_digit()) {
        // All digits: a number too large for u64 is still a (very long) valid delay.
        value.parse::<u64>().map(Duration::from_secs).unwrap_or(Duration::MAX)
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    /// 2015-10-21T07:28:00Z, the RFC's example date.
    fn rfc_example() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_445_412_480)
    }

    #[test]
    fn delta_seconds_are_read_as_a_wait() {
        let now = rfc_example();
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
    }

    #[test]
    fn imf_fixdate_is_read_relative_to_now() {
        let now = rfc_example() - Duration::from_secs(90);
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now), Some(Duration::from_secs(90)));
    }

    #[test]
    fn obsolete_date_forms_are_accepted() {
        let now = rfc_example() - Duration::from_secs(30);
        let expected = Some(Duration::from_secs(30));
        assert_eq!(parse_retry_after("Wednesday, 21-Oct-15 07:28:00 GMT", now), expected);
        assert_eq!(parse_retry_after("Wed Oct 21 07:28:00 2015", now), expected);
    }

    #[test]
    fn a_date_in_the_past_means_retry_now() {
        // A server whose clock is behind ours must not make us wait forever nor be ignored.
        let now = rfc_example() + Duration::from_secs(3600);
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now), Some(Duration::ZERO));
    }

    #[test]
    fn absurd_waits_are_capped_at_one_hour() {
        let now = rfc_example();
        assert_eq!(parse_retry_after("86400", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("99999999999999999999999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("Fri, 01 Jan 2100 00:00:00 GMT", now), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn garbage_is_not_a_wait() {
        let now = rfc_example();
        for value in ["", "   ", "-5", "1.5", "+3", "soon", "120s", "Wed, 32 Oct 2015 07:28:00 GMT", "٣"] {
            assert_eq!(parse_retry_after(value, now), None, "{value:?}");
        }
    }
}
