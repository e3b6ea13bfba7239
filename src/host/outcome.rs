//! What one HTTP attempt ended as, and the bounded error class it is recorded under.
//!
//! An attempt ends either with a status line from the server ([`Outcome::Status`]) or without
//! one ([`Outcome::Transport`]). The two are kept apart on purpose: a DNS failure is never given a
//! made-up status code, so a researcher reading the error records can tell "the server said 5xx"
//! from "we never reached the server". This module owns the mapping to [`ErrorClass`] and the
//! answer to "is this worth another try?". It does not decide when to retry (see
//! `host::retry`) nor how a host's rate reacts (see `host::rate`).

use std::fmt;

/// Why an attempt ended without an HTTP status from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// The total deadline of the request passed (connect, headers and body together).
    Timeout,
    /// The host name did not resolve: the resolver could not answer (asked again later).
    Dns,
    /// The DNS answered that the host name does not exist (NXDOMAIN) or has no address.
    NoSuchName,
    /// The TCP connection was refused, reset or unreachable before any HTTP was spoken.
    Connect,
    /// The TLS handshake failed (bad or expired certificate, no common protocol).
    Tls,
    /// The status line arrived but reading the body failed part way (connection dropped).
    Body,
    /// A redirect the client would not follow (`fetch::redirect`): more than it follows
    /// (usually a loop on the server), https to http, or a public host pointing into local
    /// addresses.
    TooManyRedirects,
    /// Anything the HTTP client could not place above.
    Other,
}

/// How an HTTP attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The server answered with this status code.
    Status(u16),
    /// No status was received.
    Transport(TransportKind),
}

/// The bounded set of reasons a URL ends as an error record. `as_str()` is what records, log
/// lines and metric labels carry, so the set never grows with the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorClass {
    /// A 4xx other than 429: the URL is gone, forbidden or malformed.
    Http4xx,
    /// 429 Too Many Requests: the server asked us to slow down.
    Http429,
    /// Any 5xx, including 503 Service Unavailable.
    Http5xx,
    Timeout,
    Dns,
    /// The DNS answered, twice, that the host name does not exist (NXDOMAIN).
    Nxdomain,
    Connect,
    Tls,
    /// A redirect loop, a redirect refused by `fetch::redirect`, or a 3xx the client could not
    /// follow.
    Redirect,
    /// The body is larger than the configured maximum download size.
    TooLarge,
    /// The bytes claim to be an image but could not be decoded.
    Decode,
    /// The image header announces more pixels than allowed (decompression-bomb guard).
    TooManyPixels,
    /// The body is not an image at all (an HTML error page served with 200, say).
    NotImage,
    /// The host's robots.txt disallows the URL (or never answered: then retriable).
    Robots,
    /// The response's `X-Robots-Tag` opts out (`noai`, ...): the body was not stored.
    OptedOut,
    /// The host stopped answering and was given up for this run; retriable in a later one.
    Parked,
    /// Reading the body failed part way.
    Body,
    /// Taken down by `remove`: never fetched again, and with `--purge` its bytes are gone.
    Removed,
    Other,
}

impl ErrorClass {
    /// Every class, in a fixed order (used to pre-register counters and to check names).
    pub const ALL: [ErrorClass; 19] = [
        ErrorClass::Http4xx,
        ErrorClass::Http429,
        ErrorClass::Http5xx,
        ErrorClass::Timeout,
        ErrorClass::Dns,
        ErrorClass::Nxdomain,
        ErrorClass::Connect,
        ErrorClass::Tls,
        ErrorClass::Redirect,
        ErrorClass::TooLarge,
        ErrorClass::Decode,
        ErrorClass::TooManyPixels,
        ErrorClass::NotImage,
        ErrorClass::Robots,
        ErrorClass::OptedOut,
        ErrorClass::Parked,
        ErrorClass::Body,
        ErrorClass::Removed,
        ErrorClass::Other,
    ];

    /// The stable name written in error records and used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Http4xx => "http_4xx",
            ErrorClass::Http429 => "http_429",
            ErrorClass::Http5xx => "http_5xx",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Dns => "dns",
            ErrorClass::Nxdomain => "nxdomain",
            ErrorClass::Connect => "connect",
            ErrorClass::Tls => "tls",
            ErrorClass::Redirect => "redirect",
            ErrorClass::TooLarge => "too_large",
            ErrorClass::Decode => "decode",
            ErrorClass::TooManyPixels => "too_many_pixels",
            ErrorClass::NotImage => "not_image",
            ErrorClass::Robots => "robots",
            ErrorClass::OptedOut => "opted_out",
            ErrorClass::Parked => "parked",
            ErrorClass::Body => "body",
            ErrorClass::Removed => "removed",
            ErrorClass::Other => "other",
        }
    }

    /// The class whose `as_str()` is `name`, for reading error records back.
    pub fn from_name(name: &str) -> Option<ErrorClass> {
        ErrorClass::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Outcome {
    /// A 2xx: the server delivered the resource. Whether the bytes are an image is decided later.
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Status(200..=299))
    }

    /// The class this outcome is recorded under, or `None` for a 2xx.
    ///
    /// A 3xx that reaches us was not followable (no `Location`, or a 304 we never asked for), so
    /// it is `redirect`; a status outside 100..=599 is `other`.
    pub fn class(&self) -> Option<ErrorClass> {
        let class = match *self {
            Outcome::Status(200..=299) => return None,
            Outcome::Status(429) => ErrorClass::Http429,
            Outcome::Status(300..=399) => ErrorClass::Redirect,
            Outcome::Status(400..=499) => ErrorClass::Http4xx,
            Outcome::Status(500..=599) => ErrorClass::Http5xx,
            Outcome::Status(_) => ErrorClass::Other,
            Outcome::Transport(kind) => match kind {
                TransportKind::Timeout => ErrorClass::Timeout,
                TransportKind::Dns => ErrorClass::Dns,
                TransportKind::NoSuchName => ErrorClass::Nxdomain,
                TransportKind::Connect => ErrorClass::Connect,
                TransportKind::Tls => ErrorClass::Tls,
                TransportKind::Body => ErrorClass::Body,
                TransportKind::TooManyRedirects => ErrorClass::Redirect,
                TransportKind::Other => ErrorClass::Other,
            },
        };
        Some(class)
    }

    /// Whether the same request may succeed if tried again later.
    ///
    /// Retriable: 408, 429, 5xx except 501 and 505 (those describe what the server software
    /// supports, which no wait changes), timeouts, connection failures, broken bodies, and DNS
    /// failures. DNS is retriable because resolvers fail transiently, but only a few times (see
    /// `RetryPolicy::max_dns_retries`), and it counts toward the host's circuit breaker like
    /// connect and timeout, so a name that is really gone parks the host instead of costing
    /// every URL its full retry budget. A definitive "no such name" is tried once more
    /// (`NXDOMAIN_RETRIES`): a zone being reloaded answers NXDOMAIN for a moment.
    ///
    /// Not retriable: 2xx (nothing to retry), 3xx, other 4xx (404 stays 404, 403 stays 403),
    /// TLS failures (a certificate does not fix itself within a run), redirect loops, and
    /// unknown transport errors (we would rather record them than hammer a host blindly).
    pub fn is_retriable(&self) -> bool {
        match *self {
            Outcome::Status(code) => {
                matches!(code, 408 | 429) || ((500..=599).contains(&code) && code != 501 && code != 505)
            }
            Outcome::Transport(kind) => matches!(
                kind,
                TransportKind::Timeout
                    | TransportKind::Dns
                    | TransportKind::NoSuchName
                    | TransportKind::Connect
                    | TransportKind::Body
            ),
        }
    }

    /// The server is asking us to send less: a 429, or any error status (4xx/5xx) that comes
    /// with a `Retry-After`. A 503 without `Retry-After` is a failure, not a statement about the
    /// rate: overloaded and broken servers both send it, often at random.
    pub fn is_refusal(&self, has_retry_after: bool) -> bool {
        match *self {
            Outcome::Status(429) => true,
            Outcome::Status(code) => code >= 400 && has_retry_after,
            Outcome::Transport(_) => false,
        }
    }

    /// Timeout, DNS or connect failure: the host may be down. These, and only these, count
    /// toward the circuit breaker; any HTTP status proves the host is reachable. A name that
    /// does not exist is not parked: its host gives up on the second such answer
    /// (`NXDOMAIN_RETRIES`).
    pub fn suggests_host_down(&self) -> bool {
        matches!(self, Outcome::Transport(TransportKind::Timeout | TransportKind::Dns | TransportKind::Connect))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_class_names_are_the_documented_bounded_set() {
        let names: Vec<&str> = ErrorClass::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            names,
            [
                "http_4xx",
                "http_429",
                "http_5xx",
                "timeout",
                "dns",
                "nxdomain",
                "connect",
                "tls",
                "redirect",
                "too_large",
                "decode",
                "too_many_pixels",
                "not_image",
                "robots",
                "opted_out",
                "parked",
                "body",
                "removed",
                "other"
            ]
        );
        for class in ErrorClass::ALL {
            assert_eq!(ErrorClass::from_name(class.as_str()), Some(class), "{class} must read back");
        }
        assert_eq!(ErrorClass::from_name("HTTP_4XX"), None);
    }

    #[test]
    fn transport_failures_never_get_a_made_up_status_class() {
        // A crawler that maps DNS failure to "525" makes researchers blame a server that was
        // never reached. Transport kinds must land in transport classes, never in http_*.
        for kind in [
            TransportKind::Timeout,
            TransportKind::Dns,
            TransportKind::Connect,
            TransportKind::Tls,
            TransportKind::Body,
            TransportKind::TooManyRedirects,
            TransportKind::Other,
        ] {
            let class = Outcome::Transport(kind).class().expect("a transport failure is an error");
            assert!(!class.as_str().starts_with("http_"), "{kind:?} became {class}");
        }
        assert_eq!(Outcome::Transport(TransportKind::Dns).class(), Some(ErrorClass::Dns));
    }

    #[test]
    fn statuses_map_to_their_class() {
        assert_eq!(Outcome::Status(200).class(), None);
        assert_eq!(Outcome::Status(206).class(), None);
        assert_eq!(Outcome::Status(404).class(), Some(ErrorClass::Http4xx));
        assert_eq!(Outcome::Status(429).class(), Some(ErrorClass::Http429));
        assert_eq!(Outcome::Status(503).class(), Some(ErrorClass::Http5xx));
        assert_eq!(Outcome::Status(304).class(), Some(ErrorClass::Redirect));
        assert_eq!(Outcome::Status(99).class(), Some(ErrorClass::Other));
        assert_eq!(Outcome::Status(700).class(), Some(ErrorClass::Other));
    }

    #[test]
    fn gone_and_forbidden_urls_are_not_retried() {
        // Retrying a 404 or 403 costs the server requests that cannot succeed.
        for code in [400, 401, 403, 404, 410, 451, 501, 505, 301, 200] {
            assert!(!Outcome::Status(code).is_retriable(), "{code} must not be retried");
        }
        assert!(!Outcome::Transport(TransportKind::Tls).is_retriable());
        assert!(!Outcome::Transport(TransportKind::TooManyRedirects).is_retriable());
    }

    #[test]
    fn transient_failures_are_retried() {
        for code in [408, 429, 500, 502, 503, 504] {
            assert!(Outcome::Status(code).is_retriable(), "{code} must be retried");
        }
        for kind in [TransportKind::Timeout, TransportKind::Dns, TransportKind::Connect, TransportKind::Body] {
            assert!(Outcome::Transport(kind).is_retriable(), "{kind:?} must be retried");
        }
    }

    #[test]
    fn only_unreachability_feeds_the_circuit_breaker() {
        assert!(Outcome::Transport(TransportKind::Dns).suggests_host_down());
        assert!(Outcome::Transport(TransportKind::Connect).suggests_host_down());
        assert!(Outcome::Transport(TransportKind::Timeout).suggests_host_down());
        // A server answering 503 is up: it is the rate controller's business, not the breaker's.
        assert!(!Outcome::Status(503).suggests_host_down());
        assert!(!Outcome::Transport(TransportKind::Body).suggests_host_down());
    }

    #[test]
    fn refusals_are_429_or_an_error_status_with_retry_after() {
        assert!(Outcome::Status(429).is_refusal(false) && Outcome::Status(429).is_refusal(true));
        assert!(Outcome::Status(503).is_refusal(true) && Outcome::Status(500).is_refusal(true));
        assert!(!Outcome::Status(503).is_refusal(false), "a bare 503 is a failure, not a refusal");
        assert!(!Outcome::Status(301).is_refusal(true), "Retry-After on a redirect is not about the rate");
        assert!(!Outcome::Transport(TransportKind::Timeout).is_refusal(true));
    }
}
