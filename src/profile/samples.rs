//! One server's sample requests as plain data, and what they say: labels, the median response
//! time, the notes a user reads, and the [`Evidence`] the start-rate rule takes.
//!
//! No I/O and no clock: `run.rs` sends the samples and times them; this file only reads them.

use std::time::Duration;

use super::rule::Evidence;
use crate::host::outcome::{ErrorClass, Outcome};

/// The shortest start-to-start spacing of a server's requests during `profile`: one a second,
/// the default starting rate of a download, so profiling never asks more of a server than the
/// download would on its first seconds. robots.txt's Crawl-delay lengthens it.
pub const MIN_SPACING: Duration = Duration::from_secs(1);

/// How one sample request ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The server answered with this status; `retry_after`: with a `Retry-After` header.
    Status { status: u16, retry_after: bool },
    /// No usable answer: a transport failure, or a body over `MAX_BODY_MB` (`too_large`).
    Failed(ErrorClass),
}

/// One sample: how it ended and how long the whole response took (head and body).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub answer: Answer,
    pub elapsed: Duration,
}

impl Sample {
    /// What the results file lists: the status (`"200"`) or the error class (`"timeout"`).
    pub fn label(&self) -> String {
        match &self.answer {
            Answer::Status { status, .. } => status.to_string(),
            Answer::Failed(class) => class.as_str().to_string(),
        }
    }

    /// The refusal this sample was, if any: `"429"`, or `"503 with Retry-After"`.
    pub fn refusal(&self) -> Option<String> {
        match self.answer {
            Answer::Status { status, retry_after } if Outcome::Status(status).is_refusal(retry_after) => {
                Some(if status == 429 { "429".into() } else { format!("{status} with Retry-After") })
            }
            _ => None,
        }
    }

    /// Whether no more samples are sent after this one: the server refused (it asked us to
    /// slow down, and sampling on would ignore it), or it did not answer at all (timeout, DNS,
    /// connect: one such sample says the host is down as well as three, and three timeouts
    /// would cost minutes).
    pub fn ends_sampling(&self) -> bool {
        self.refusal().is_some()
            || matches!(self.answer, Answer::Failed(ErrorClass::Timeout | ErrorClass::Dns | ErrorClass::Connect))
    }

    fn is_success(&self) -> bool {
        matches!(self.answer, Answer::Status { status: 200..=299, .. })
    }
}

/// The spacing of a server's requests: [`MIN_SPACING`], or its Crawl-delay when longer.
pub fn spacing(crawl_delay: Option<f64>) -> Duration {
    match crawl_delay.filter(|d| d.is_finite() && *d > 0.0) {
        // A Crawl-delay of a year is a refusal in all but name; cap what Duration is asked to hold.
        Some(d) => MIN_SPACING.max(Duration::from_secs_f64(d.min(86_400.0))),
        None => MIN_SPACING,
    }
}

/// The median full response time, in ms, of the samples that were answered (any status).
pub fn median_ms(samples: &[Sample]) -> Option<f64> {
    let mut ms: Vec<f64> = samples
        .iter()
        .filter(|s| matches!(s.answer, Answer::Status { .. }))
        .map(|s| s.elapsed.as_secs_f64() * 1000.0)
        .collect();
    if ms.is_empty() {
        return None;
    }
    ms.sort_by(f64::total_cmp);
    let mid = ms.len() / 2;
    Some(if ms.len() % 2 == 1 { ms[mid] } else { (ms[mid - 1] + ms[mid]) / 2.0 })
}

/// The summary the start-rate rule works from.
pub fn evidence(samples: &[Sample], spacing: Duration, crawl_delay: Option<f64>) -> Evidence {
    Evidence {
        sent: samples.len(),
        successes: samples.iter().filter(|s| s.is_success()).count(),
        refused: samples.iter().find_map(Sample::refusal),
        median_latency: median_ms(samples).map(|ms| Duration::from_secs_f64(ms / 1000.0)),
        spacing,
        crawl_delay,
    }
}

/// What the samples say that a user should know: every sample failing the same way, or some
/// of them failing. Refusals and Crawl-delay are the rule's notes.
pub fn notes(samples: &[Sample]) -> Vec<String> {
    let failed: Vec<&Sample> = samples.iter().filter(|s| !s.is_success()).collect();
    if failed.is_empty() {
        return Vec::new();
    }
    let first = failed[0];
    if failed.len() == samples.len() && failed.iter().all(|s| s.answer == first.answer) {
        let note = match &first.answer {
            Answer::Status { status, .. } => format!("all samples {status}"),
            Answer::Failed(ErrorClass::Dns) => "DNS fails".into(),
            Answer::Failed(ErrorClass::Connect) => "connections fail".into(),
            Answer::Failed(ErrorClass::Timeout) => "no answer in time (timeout)".into(),
            Answer::Failed(class) => format!("all samples fail ({class})"),
        };
        return vec![note];
    }
    let mut labels: Vec<String> = failed.iter().map(|s| s.label()).collect();
    labels.dedup();
    vec![format!("{} of {} samples failed ({})", failed.len(), samples.len(), labels.join(", "))]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, ms: u64) -> Sample {
        Sample { answer: Answer::Status { status, retry_after: false }, elapsed: Duration::from_millis(ms) }
    }

    fn failed(class: ErrorClass) -> Sample {
        Sample { answer: Answer::Failed(class), elapsed: Duration::from_secs(5) }
    }

    #[test]
    fn the_median_is_over_answered_samples_only() {
        assert_eq!(median_ms(&[status(200, 40), status(404, 10), status(200, 90)]), Some(40.0));
        assert_eq!(median_ms(&[status(200, 40), failed(ErrorClass::Timeout), status(200, 60)]), Some(50.0));
        assert_eq!(median_ms(&[failed(ErrorClass::Dns)]), None);
        assert_eq!(median_ms(&[]), None);
    }

    #[test]
    fn refusals_and_dead_hosts_end_sampling_a_plain_failure_does_not() {
        let ra = Sample { answer: Answer::Status { status: 503, retry_after: true }, elapsed: Duration::ZERO };
        assert_eq!(ra.refusal().as_deref(), Some("503 with Retry-After"));
        assert_eq!(status(429, 1).refusal().as_deref(), Some("429"));
        assert!(ra.ends_sampling() && status(429, 1).ends_sampling());
        assert_eq!(status(503, 1).refusal(), None, "a bare 503 is a failure, not a refusal");
        assert!(!status(503, 1).ends_sampling() && !status(404, 1).ends_sampling());
        assert!(failed(ErrorClass::Dns).ends_sampling() && failed(ErrorClass::Timeout).ends_sampling());
        assert!(!failed(ErrorClass::TooLarge).ends_sampling());
    }

    #[test]
    fn notes_say_how_samples_failed() {
        assert_eq!(notes(&[status(403, 1), status(403, 1), status(403, 1)]), ["all samples 403"]);
        assert_eq!(notes(&[failed(ErrorClass::Dns)]), ["DNS fails"]);
        assert_eq!(notes(&[status(200, 1), status(404, 1), status(404, 1)]), ["2 of 3 samples failed (404)"]);
        assert_eq!(notes(&[status(404, 1), status(500, 1)]), ["2 of 2 samples failed (404, 500)"]);
        assert!(notes(&[status(200, 1), status(204, 1)]).is_empty());
        assert!(notes(&[]).is_empty());
    }

    #[test]
    fn evidence_counts_successes_and_the_first_refusal() {
        let e = evidence(&[status(200, 30), status(429, 2)], Duration::from_secs(1), Some(0.5));
        assert_eq!((e.sent, e.successes, e.refused.as_deref()), (2, 1, Some("429")));
        assert_eq!(e.median_latency, Some(Duration::from_millis(16)));
        assert_eq!(e.crawl_delay, Some(0.5));
        assert_eq!(status(200, 1).label(), "200");
        assert_eq!(failed(ErrorClass::Timeout).label(), "timeout");
    }

    #[test]
    fn requests_are_a_second_apart_or_a_crawl_delay_apart() {
        assert_eq!(spacing(None), Duration::from_secs(1));
        assert_eq!(spacing(Some(0.2)), Duration::from_secs(1), "never faster than one a second");
        assert_eq!(spacing(Some(2.5)), Duration::from_millis(2500));
        assert_eq!(spacing(Some(f64::INFINITY)), Duration::from_secs(1), "an unreadable delay is none");
        assert_eq!(spacing(Some(1e12)), Duration::from_secs(86_400));
    }
}
