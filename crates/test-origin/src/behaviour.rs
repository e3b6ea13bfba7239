//! `origin::behaviour`: the script of one test host, as a plain enum.
//!
//! Owns what each host is meant to do and the `Retry-After` wording. How a script turns into an
//! answer for one request lives in `respond`; this file is the menu a test reads.

use std::time::{Duration, SystemTime};

use super::http::http_date;

/// What one loopback host does with every request it receives.
///
/// Unless stated otherwise, the body is the image for the path (see `origin::images`), and a
/// path that is not an image gets 404. `/robots.txt` is answered apart from the behaviour (404
/// unless the host has one, see [`RobotsFile`]). `HEAD` gets the same head, no body.
#[derive(Debug, Clone, PartialEq)]
pub enum Behaviour {
    /// Serves the image for the path with 200.
    Ok,
    /// Serves at most `per_second` requests in any sliding 1 s window and answers 429 to the
    /// rest, like a real limiter: requests it refused do not count against the client, so a
    /// client that keeps to the rate is never refused. Below 1/s the window is `1/per_second`
    /// seconds with room for one request. `retry_after` sets the header sent with each 429.
    RateLimited { per_second: f64, retry_after: Option<RetryAfterForm> },
    /// Every `every`-th request this host receives (the n-th, 2n-th, …, counting all paths)
    /// gets 503; the others are served as `Ok`. `every: 0` never fails.
    Flaky503 { every: u32 },
    /// Each request independently gets 503 (without `Retry-After`) with probability
    /// `percent`/100; the others are served as `Ok`. The draws come from a
    /// [`SplitMix64`](crate::rng::SplitMix64) per host, seeded from a constant and the host's
    /// position in `Origin::start`, so the n-th request a host receives gets the same answer in
    /// every run, and two such hosts fail independently. `percent: 0` never fails, `100` always does.
    Random503 { percent: u32 },
    /// Waits `delay` before sending the response head, then serves as `Ok`.
    Slow { delay: Duration },
    /// Sends the head with the full `Content-Length`, the first `after_bytes` of the body
    /// (at most all but the last byte), then sends nothing more and keeps the socket open until
    /// the origin stops. The request's `completed` stays `None` in the log.
    StallMidBody { after_bytes: usize },
    /// Sends the body at about `bytes_per_sec`, in ten small writes per second.
    Trickle { bytes_per_sec: u64 },
    /// Answers `hops` 302s in a chain (`/p` → `/hop/1/p` → … → `/hop/<hops>/p`) on the same
    /// host, then serves the image for the original `/p`.
    Redirect { hops: u32 },
    /// Answers 302 to `{to}{path}` for every path but robots.txt: a host that moved its images
    /// elsewhere (another host, another scheme, an address of the tester's choosing).
    RedirectTo { to: String },
    /// Answers 404 to everything.
    NotFound,
    /// Answers 403 to everything.
    Forbidden,
    /// 200 `image/jpeg` whose body starts like a JPEG (`FF D8`) and then is garbage no decoder
    /// accepts, with an honest `Content-Length`.
    Corrupt,
    /// 200 with the first half of the image's bytes and an honest `Content-Length` of that half:
    /// the transfer completes, but the image is cut.
    Truncated,
    /// 200 `text/html` page instead of an image (a portal's "viewer" page or a login wall).
    Html,
    /// 200 `image/jpeg` with a body of exactly `bytes` bytes, generated while sending and never
    /// held in memory. It starts like a JPEG and is filler after that: for size limits, not
    /// decoding.
    Huge { bytes: u64 },
    /// Serves the image for the path with 200 and the header `X-Robots-Tag: <tag>`, e.g.
    /// `noai` or `distributed-downloader: noimageai`: an operator opting out.
    Tagged { tag: String },
    /// 200 `image/bmp`: a valid `side` × `side` 24-bit BMP (`side` is rounded down to a multiple
    /// of 4, so rows need no padding) whose pixels are generated while sending, sent at about
    /// `bytes_per_sec` (0: as fast as the socket takes it). A large image from a slow server:
    /// 5,772 px a side is 100 MB.
    LargeBmp { side: u32, bytes_per_sec: u64 },
    /// 200 `image/png`, under 100 bytes, whose header claims [`BOMB_SIDE`] × [`BOMB_SIDE`]
    /// pixels (10 gigapixels); the pixel data is cut short. A client must refuse it from the
    /// header without allocating.
    Bomb,
    /// A host that refuses connections. `Origin::start` reserves its address by binding a socket
    /// that never listens, so connecting gets "connection refused" and nothing else can take the
    /// port while the origin lives. Its log stays empty.
    Dead,
}

/// What a host answers to `GET /robots.txt` when it is given one (see
/// [`HostSpec::with_robots`](crate::HostSpec::with_robots)); without one, robots.txt gets 404 like
/// any path that is not an image.
#[derive(Debug, Clone, PartialEq)]
pub enum RobotsFile {
    /// 200 `text/plain` with this text.
    Text(String),
    /// This status to every robots.txt request.
    Status(u16),
    /// `status` to the first `failures` robots.txt requests, then 200 with `text`: a server
    /// that comes back.
    FailThenText { failures: u32, status: u16, text: String },
}

/// Width and height claimed by the [`Behaviour::Bomb`] PNG header.
pub const BOMB_SIDE: u32 = 100_000;

/// The two forms RFC 9110 allows for `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfterForm {
    /// `Retry-After: <seconds>`, e.g. `Retry-After: 3`.
    Seconds(u32),
    /// `Retry-After: <HTTP-date>` naming the moment `seconds` from now, rounded up to the next
    /// whole second, e.g. `Retry-After: Sun, 06 Nov 1994 08:49:37 GMT`.
    HttpDate { seconds: u32 },
}

impl RetryAfterForm {
    /// The header value as sent at `now`.
    pub fn header_value(&self, now: SystemTime) -> String {
        match *self {
            RetryAfterForm::Seconds(s) => s.to_string(),
            RetryAfterForm::HttpDate { seconds } => {
                // Rounding up means a client that waits until the date never waits too little.
                let at = now + Duration::from_secs(u64::from(seconds)) + Duration::from_millis(999);
                http_date(at)
            }
        }
    }
}

/// The accepted spellings, for error messages and the hidden `origin` subcommand's help.
pub const BEHAVIOUR_SYNTAX: &str = "ok | notfound | forbidden | corrupt | truncated | html | bomb | dead | \
ratelimit:<per_second>[:<retry_after_secs> | :date<retry_after_secs>] | flaky503:<every> | random503:<percent> | \
slow:<ms> | stall:<after_bytes> | trickle:<bytes_per_sec> | redirect:<hops> | huge:<bytes> | \
bmp:<side>:<bytes_per_sec> | tagged:<x-robots-tag value>";

/// A behaviour spelled on a command line could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read test origin behaviour `{input}`: {why}; expected one of: {BEHAVIOUR_SYNTAX}")]
pub struct BehaviourParseError {
    pub input: String,
    pub why: &'static str,
}

impl std::str::FromStr for Behaviour {
    type Err = BehaviourParseError;

    /// Parses the compact form used on command lines, e.g. `ok`, `ratelimit:2:date5`, `slow:300`.
    fn from_str(input: &str) -> Result<Behaviour, BehaviourParseError> {
        let fail = |why| BehaviourParseError { input: input.to_owned(), why };
        let mut parts = input.trim().split(':');
        let name = parts.next().unwrap_or("").to_ascii_lowercase();
        let args: Vec<&str> = parts.collect();
        let number = |i: usize| -> Result<u64, BehaviourParseError> {
            args.get(i).ok_or(fail("missing number"))?.parse().map_err(|_| fail("not a whole number"))
        };
        let expect_args = |n: usize| if args.len() == n { Ok(()) } else { Err(fail("wrong number of `:` arguments")) };
        let small = |v: u64| u32::try_from(v).map_err(|_| fail("number too large"));
        let behaviour = match name.as_str() {
            "ok" | "notfound" | "404" | "forbidden" | "403" | "corrupt" | "truncated" | "html" | "bomb" | "dead" => {
                expect_args(0)?;
                match name.as_str() {
                    "ok" => Behaviour::Ok,
                    "notfound" | "404" => Behaviour::NotFound,
                    "forbidden" | "403" => Behaviour::Forbidden,
                    "corrupt" => Behaviour::Corrupt,
                    "truncated" => Behaviour::Truncated,
                    "html" => Behaviour::Html,
                    "bomb" => Behaviour::Bomb,
                    _ => Behaviour::Dead,
                }
            }
            "ratelimit" => {
                if args.is_empty() || args.len() > 2 {
                    return Err(fail("ratelimit takes a rate and an optional Retry-After"));
                }
                let per_second: f64 = args[0].parse().map_err(|_| fail("rate is not a number"))?;
                if !(per_second.is_finite() && per_second > 0.0) {
                    return Err(fail("rate must be above zero"));
                }
                let retry_after = match args.get(1) {
                    None => None,
                    Some(a) => Some(match a.strip_prefix("date") {
                        Some(s) => RetryAfterForm::HttpDate {
                            seconds: s.parse().map_err(|_| fail("bad Retry-After date seconds"))?,
                        },
                        None => RetryAfterForm::Seconds(a.parse().map_err(|_| fail("bad Retry-After seconds"))?),
                    }),
                };
                Behaviour::RateLimited { per_second, retry_after }
            }
            "flaky503" | "random503" | "slow" | "stall" | "trickle" | "redirect" | "huge" => {
                expect_args(1)?;
                let n = number(0)?;
                match name.as_str() {
                    "flaky503" => Behaviour::Flaky503 { every: small(n)? },
                    "random503" if n > 100 => return Err(fail("percent must be from 0 to 100")),
                    "random503" => Behaviour::Random503 { percent: small(n)? },
                    "slow" => Behaviour::Slow { delay: Duration::from_millis(n) },
                    "stall" => Behaviour::StallMidBody { after_bytes: n as usize },
                    "trickle" => Behaviour::Trickle { bytes_per_sec: n.max(1) },
                    "redirect" => Behaviour::Redirect { hops: small(n)? },
                    _ => Behaviour::Huge { bytes: n },
                }
            }
            "tagged" => {
                // The tag may itself hold `:` (`distributed-downloader: noai`).
                let tag = input.trim().split_once(':').map(|(_, t)| t.trim().to_owned()).unwrap_or_default();
                if tag.is_empty() {
                    return Err(fail("tagged takes the X-Robots-Tag value"));
                }
                Behaviour::Tagged { tag }
            }
            "bmp" => {
                expect_args(2)?;
                Behaviour::LargeBmp { side: small(number(0)?)?, bytes_per_sec: number(1)? }
            }
            _ => return Err(fail("unknown behaviour")),
        };
        Ok(behaviour)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_spellings_parse_and_typos_are_refused() {
        let rl = Behaviour::RateLimited { per_second: 2.0, retry_after: Some(RetryAfterForm::HttpDate { seconds: 5 }) };
        assert_eq!("ratelimit:2:date5".parse::<Behaviour>().unwrap(), rl);
        assert_eq!(
            "bmp:5772:300000".parse::<Behaviour>().unwrap(),
            Behaviour::LargeBmp { side: 5772, bytes_per_sec: 300_000 }
        );
        assert!("bmp:5772".parse::<Behaviour>().is_err(), "bmp takes a side and a rate");
        assert_eq!("slow:300".parse::<Behaviour>().unwrap(), Behaviour::Slow { delay: Duration::from_millis(300) });
        assert_eq!("404".parse::<Behaviour>().unwrap(), Behaviour::NotFound);
        assert_eq!("random503:15".parse::<Behaviour>().unwrap(), Behaviour::Random503 { percent: 15 });
        assert_eq!("random503:0".parse::<Behaviour>().unwrap(), Behaviour::Random503 { percent: 0 });
        for bad in [
            "okay",
            "slow",
            "slow:x",
            "ratelimit:0",
            "ok:1",
            "redirect:99999999999",
            "random503",
            "random503:101",
            "random503:1.5",
            "random503:15:2",
        ] {
            let err = bad.parse::<Behaviour>().expect_err(bad).to_string();
            assert!(err.contains(bad) && err.contains("ratelimit:<per_second>"), "{err}");
        }
    }
}
