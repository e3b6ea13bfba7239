//! The shared HTTP client and one fetch: the limits of `deadlines`, a body cap, a bounded
//! redirect chain followed hop by hop under the rules of `redirect`.
//!
//! An image fetch follows redirects within its own server and stops at a redirect to another
//! server, returning where it points ([`Fetched::moved_to`]): that server's robots.txt and rate
//! are the ServerActor's to consult (`actors::guests`), not the client's. A robots.txt fetch
//! follows redirects across servers, as RFC 9309 §2.3.1.2 asks.
//!
//! This module turns a URL into bytes or an [`Outcome`]; it does not decide about retries or
//! rates (the ServerActor does) and never looks inside the bytes (`imaging` does).

use std::time::{Duration, Instant};

use super::budget::{BodyBudget, BodyPermit};
use super::deadlines::{Cut, Deadlines, Progress};
use crate::host::outcome::{Outcome, TransportKind};

/// Connections kept idle per host. Our per-host in-flight cap is small, so a few suffice.
const POOL_IDLE_PER_HOST: usize = 4;

/// How long an idle pooled connection is kept. Servers close theirs after 5–60 s; 30 s reuses
/// most without holding sockets on hosts we have finished with.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings of the shared client, resolved from the config (`config::Settings::http`).
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub user_agent: String,
    /// Head, idle, minimum-rate and ceiling limits: a slow transfer that keeps going is read to
    /// the end, a stalled or trickling one is cut.
    pub deadlines: Deadlines,
    pub connect_timeout: Duration,
    /// Bodies larger than this end as `too_large` without being read to the end.
    pub max_body_bytes: u64,
    /// Host names answered with these addresses instead of the DNS (`RESOLVE`).
    pub resolve: Vec<(String, std::net::IpAddr)>,
}

/// A response with a status line.
#[derive(Debug)]
pub struct Fetched {
    pub status: u16,
    /// The body, read only for 2xx responses.
    pub body: Vec<u8>,
    /// The body's share of the rank's budget (2xx only): keep it until the body is processed.
    pub permit: Option<BodyPermit>,
    /// The raw `Retry-After` header, if any.
    pub retry_after: Option<String>,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// From sending to the response head.
    pub head_after: Duration,
    /// When the response head came.
    pub head_at: Instant,
    /// Every `X-Robots-Tag` header value.
    pub robots_tags: Vec<String>,
    /// The URL that gave this answer, when redirects were followed to it.
    pub final_url: Option<String>,
    /// Redirects followed before this answer, on the whole chain.
    pub redirects: u32,
    /// The `ETag` and `Last-Modified` headers, if any.
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// A redirect to another server that was not followed ([`OtherServers::Stop`]): its target,
    /// allowed by the rules of `redirect`. The status is the redirect's.
    pub moved_to: Option<reqwest::Url>,
}

/// Whether a fetch follows a redirect to another server itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtherServers {
    /// robots.txt: its rules are wherever the redirects end.
    Follow,
    /// Images: the other server is asked under its own robots.txt and rate, by the caller.
    Stop,
}

/// Where a fetch starts: the URL, and the chain of redirects that led to it.
#[derive(Debug, Clone)]
pub struct Hop {
    pub url: reqwest::Url,
    /// The URL the chain started at: a local origin may redirect within local addresses.
    pub origin: reqwest::Url,
    /// Redirects followed before this URL.
    pub redirects: u32,
    /// A revalidation's conditions, sent on every hop of the chain (the validators came from
    /// the answer at its end).
    pub conditions: Conditions,
}

/// The validators a conditional GET sends (`download --revalidate`): the stored `ETag` as
/// `If-None-Match` and the stored `Last-Modified` as `If-Modified-Since`, each when there is one.
/// A server that holds the same image answers `304 Not Modified`, without a body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conditions {
    pub if_none_match: Option<String>,
    pub if_modified_since: Option<String>,
}

impl Conditions {
    /// The conditions of a stored image with these validators ("" when it has none).
    pub fn of(etag: &str, last_modified: &str) -> Conditions {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Conditions { if_none_match: some(etag), if_modified_since: some(last_modified) }
    }

    /// Whether any condition is sent.
    pub fn any(&self) -> bool {
        self.if_none_match.is_some() || self.if_modified_since.is_some()
    }
}

impl Hop {
    /// The first URL of a chain; `None` when `url` is not an absolute URL.
    pub fn first(url: &str) -> Option<Hop> {
        let url = reqwest::Url::parse(url).ok()?;
        Some(Hop { origin: url.clone(), url, redirects: 0, conditions: Conditions::default() })
    }
}

/// Why a fetch produced no usable response.
#[derive(Debug)]
pub enum FetchFailure {
    Transport { kind: TransportKind, detail: String },
    TooLarge { limit: u64, announced: Option<u64> },
}

impl FetchFailure {
    pub fn outcome(&self) -> Option<Outcome> {
        match self {
            FetchFailure::Transport { kind, .. } => Some(Outcome::Transport(*kind)),
            FetchFailure::TooLarge { .. } => None,
        }
    }
}

/// The User-Agent every request carries: the product token robots.txt rules name, the version,
/// the operator's page about the crawl when they gave one (`CRAWL_INFO_URL`), and their contact.
/// No other page: an operator who follows a link must reach the people running this crawl.
pub fn user_agent(contact: &str, info_url: Option<&str>) -> String {
    let token = format!("{}/{}", crate::robots::PRODUCT_TOKEN, env!("CARGO_PKG_VERSION"));
    match info_url {
        Some(url) => format!("{token} (+{url}; contact: {contact})"),
        None => format!("{token} (contact: {contact})"),
    }
}

/// Builds the one client a rank shares: pooled connections, and no redirect followed by
/// reqwest (`fetch` follows them itself, hop by hop).
pub fn build_client(s: &HttpSettings) -> reqwest::Result<reqwest::Client> {
    client_with(s, super::dns::SystemResolver::new(&s.resolve))
}

/// The client for servers reached by a redirect from a public host: the same, but a name that
/// resolves only to local addresses is refused (`redirect`).
pub fn build_public_client(s: &HttpSettings) -> reqwest::Result<reqwest::Client> {
    client_with(s, super::dns::SystemResolver::new(&s.resolve).public_only())
}

fn client_with(s: &HttpSettings, resolver: super::dns::SystemResolver) -> reqwest::Result<reqwest::Client> {
    // reqwest is built without a default TLS crypto provider; install ring's once.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(s.user_agent.clone())
        .dns_resolver(std::sync::Arc::new(resolver))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(s.connect_timeout)
        .timeout(s.deadlines.ceiling)
        .pool_max_idle_per_host(POOL_IDLE_PER_HOST)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .build()
}

/// Fetches `url` under the limits of [`Deadlines`], following every redirect the rules of
/// `redirect` allow (robots.txt, `profile`). See [`fetch_from`].
pub async fn fetch(
    client: &reqwest::Client,
    url: &str,
    s: &HttpSettings,
    budget: &BodyBudget,
) -> Result<Fetched, FetchFailure> {
    match Hop::first(url) {
        Some(hop) => fetch_from(client, hop, OtherServers::Follow, s, budget).await,
        None => Err(not_a_url(url)),
    }
}

/// Fetches from `start` under the limits of [`Deadlines`] (counted from the first hop here),
/// reserving the body's share of `budget` (its `Content-Length`, else the body cap) before
/// reading it. Waiting for the budget does not count against the idle and minimum-rate limits.
/// A redirect is followed when the rules of `redirect` allow it and, with
/// [`OtherServers::Stop`], only within the server of the URL that redirects.
pub async fn fetch_from(
    client: &reqwest::Client,
    start: Hop,
    other: OtherServers,
    s: &HttpSettings,
    budget: &BodyBudget,
) -> Result<Fetched, FetchFailure> {
    let sent = Instant::now();
    let d = &s.deadlines;
    let head_limit = d.head.min(d.ceiling);
    let Hop { mut url, origin, mut redirects, conditions } = start;
    let (mut response, moved_to) = loop {
        let left = head_limit.saturating_sub(sent.elapsed());
        let mut request = client.get(url.clone());
        if let Some(etag) = &conditions.if_none_match {
            request = request.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        if let Some(date) = &conditions.if_modified_since {
            request = request.header(reqwest::header::IF_MODIFIED_SINCE, date);
        }
        let response = match tokio::time::timeout(left, request.send()).await {
            Ok(result) => result.map_err(transport)?,
            Err(_) => return Err(cut(Cut::Head { limit: head_limit })),
        };
        let Some(to) = redirect_target(&response, &url)? else { break (response, None) };
        if let Some(refusal) = super::redirect::refused(&origin, &url, &to, redirects as usize) {
            return Err(FetchFailure::Transport { kind: TransportKind::TooManyRedirects, detail: refusal.reason });
        }
        if other == OtherServers::Stop && !same_server(&url, &to) {
            break (response, Some(to));
        }
        redirects += 1;
        url = to;
    };
    let final_url = (redirects > 0).then(|| url.to_string());
    let head_at = Instant::now();
    let head_after = head_at.saturating_duration_since(sent);
    let status = response.status().as_u16();
    let header = |name: reqwest::header::HeaderName| {
        response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
    };
    let retry_after = header(reqwest::header::RETRY_AFTER);
    let content_type = header(reqwest::header::CONTENT_TYPE);
    let (etag, last_modified) = (header(reqwest::header::ETAG), header(reqwest::header::LAST_MODIFIED));
    let robots_tags: Vec<String> =
        response.headers().get_all("x-robots-tag").iter().filter_map(|v| v.to_str().ok()).map(str::to_string).collect();
    let head = Fetched {
        status,
        body: Vec::new(),
        permit: None,
        retry_after,
        content_type,
        head_after,
        head_at,
        robots_tags,
        final_url,
        redirects,
        etag,
        last_modified,
        moved_to,
    };
    // Anything but a 2xx (a 304 among them) is answered by its head: no body is read.
    if !(200..300).contains(&status) {
        return Ok(head);
    }
    let max = s.max_body_bytes;
    let announced = response.content_length();
    if announced.is_some_and(|n| n > max) {
        return Err(FetchFailure::TooLarge { limit: max, announced });
    }
    let permit = budget.reserve(announced.unwrap_or(max)).await;
    let mut body = Vec::with_capacity(announced.unwrap_or(64 * 1024).min(max) as usize);
    let head_at = sent.elapsed();
    let mut progress = Progress { head_at, now: head_at, last_byte_at: head_at, bytes: 0 };
    loop {
        // Waiting for a chunk is cancel-safe: a read that times out loses no data.
        match tokio::time::timeout(d.check_within(progress), response.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                if body.len() as u64 + chunk.len() as u64 > max {
                    return Err(FetchFailure::TooLarge { limit: max, announced });
                }
                body.extend_from_slice(&chunk);
                progress.bytes = body.len() as u64;
                progress.last_byte_at = sent.elapsed();
            }
            Ok(Ok(None)) => break,
            Ok(Err(e)) => return Err(transport(e)),
            Err(_) => {}
        }
        progress.now = sent.elapsed();
        if let Some(c) = d.body_cut(progress) {
            return Err(cut(c));
        }
    }
    Ok(Fetched { body, permit: Some(permit), ..head })
}

/// Where a redirect answer points: `None` for any other answer (a 3xx without a `Location` is
/// an answer like any other). A `Location` that is not a URL ends the fetch as `redirect`.
fn redirect_target(response: &reqwest::Response, from: &reqwest::Url) -> Result<Option<reqwest::Url>, FetchFailure> {
    if !matches!(response.status().as_u16(), 301 | 302 | 303 | 307 | 308) {
        return Ok(None);
    }
    let Some(location) = response.headers().get(reqwest::header::LOCATION) else { return Ok(None) };
    let bad = |why: &str| FetchFailure::Transport {
        kind: TransportKind::TooManyRedirects,
        detail: format!("the redirect's Location {why}"),
    };
    let text = location.to_str().map_err(|_| bad("is not text"))?;
    from.join(text).map(Some).map_err(|_| bad(&format!("`{text}` is not a URL")))
}

/// Whether two URLs are on one server, as the server key has it: the same host and port, the
/// scheme's default port dropped (`http://a.org/` and `https://a.org/` are one server).
pub fn same_server(a: &reqwest::Url, b: &reqwest::Url) -> bool {
    let key = |u: &reqwest::Url| (u.host_str().map(str::to_ascii_lowercase), u.port());
    key(a) == key(b)
}

/// The failure of a row whose URL does not parse (prep keeps only URLs that do).
pub fn not_a_url(url: &str) -> FetchFailure {
    FetchFailure::Transport { kind: TransportKind::Other, detail: format!("`{url}` is not an absolute URL") }
}

fn cut(c: Cut) -> FetchFailure {
    FetchFailure::Transport { kind: TransportKind::Timeout, detail: c.detail() }
}

/// Places a reqwest error in the bounded [`TransportKind`] set, from the error's kind and the
/// types of its causes, never from words: a failed lookup is one of `dns`'s errors (a name that
/// does not exist apart from a resolver that could not answer), a TLS error a `rustls::Error`,
/// a refused or reset connection an `io::Error` of that kind. The messages hold the URL, and a
/// host called `tls.example.org` must not make a refused connection a TLS failure.
fn transport(e: reqwest::Error) -> FetchFailure {
    let e = e.without_url();
    let mut causes: Vec<&(dyn std::error::Error + 'static)> = Vec::new();
    let mut source = std::error::Error::source(&e);
    while let Some(err) = source {
        causes.push(err);
        source = err.source();
    }
    let io_kind = causes.iter().find_map(|c| c.downcast_ref::<std::io::Error>()).map(std::io::Error::kind);
    let tls = causes.iter().any(|c| c.downcast_ref::<rustls::Error>().is_some());
    let no_such_name = causes.iter().find_map(|c| c.downcast_ref::<super::dns::NoSuchName>());
    let lookup_failed = causes.iter().any(|c| c.downcast_ref::<super::dns::LookupFailed>().is_some());
    if let Some(local) = causes.iter().find_map(|c| c.downcast_ref::<super::dns::LocalOnly>()) {
        return FetchFailure::Transport { kind: TransportKind::TooManyRedirects, detail: local.to_string() };
    }
    let words: String = causes.iter().map(|c| c.to_string().to_ascii_lowercase() + ": ").collect();
    use std::io::ErrorKind as Io;
    if let Some(nx) = no_such_name {
        // The whole story in one sentence; the layers above it add nothing.
        return FetchFailure::Transport { kind: TransportKind::NoSuchName, detail: nx.to_string() };
    }
    let kind = if lookup_failed {
        TransportKind::Dns
    } else if e.is_timeout() || io_kind == Some(Io::TimedOut) {
        TransportKind::Timeout
    } else if e.is_redirect() {
        TransportKind::TooManyRedirects
    } else if tls {
        TransportKind::Tls
    } else if e.is_connect()
        || matches!(
            io_kind,
            Some(
                Io::ConnectionRefused
                    | Io::ConnectionReset
                    | Io::ConnectionAborted
                    | Io::NotConnected
                    | Io::AddrNotAvailable
                    | Io::HostUnreachable
                    | Io::NetworkUnreachable
            )
        )
    {
        TransportKind::Connect
    } else if e.is_body() || e.is_decode() {
        TransportKind::Body
    } else {
        TransportKind::Other
    };
    let detail = format!("{e}: {words}");
    FetchFailure::Transport { kind, detail: detail.trim_end_matches(": ").to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The class of what one GET to `url` ends with, `host` resolved to `addr`.
    fn class_of(url: &str, host: &str, addr: std::net::SocketAddr) -> TransportKind {
        // Err only when a provider is installed already (another test did it): nothing to do.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let client = reqwest::Client::builder()
                .resolve(host, addr)
                .connect_timeout(Duration::from_secs(5))
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            let err = client.get(url).send().await.expect_err("nothing listens there");
            match transport(err) {
                FetchFailure::Transport { kind, .. } => kind,
                other => panic!("{other:?}"),
            }
        })
    }

    #[test]
    fn a_name_that_does_not_exist_is_no_such_name_and_never_leaves_the_machine() {
        // Err only when a provider is installed already (another test did it): nothing to do.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let kind = rt.block_on(async {
            let client = reqwest::Client::builder()
                .dns_resolver(std::sync::Arc::new(super::super::dns::SystemResolver::default()))
                .build()
                .unwrap();
            let err = client.get("http://museum.invalid/img/1.jpg").send().await.expect_err("no such name");
            match transport(err) {
                FetchFailure::Transport { kind, detail } => {
                    assert!(detail.contains("museum.invalid does not exist (NXDOMAIN)"), "{detail}");
                    kind
                }
                other => panic!("{other:?}"),
            }
        });
        assert_eq!(kind, TransportKind::NoSuchName);
    }

    #[test]
    fn a_refused_connection_is_connect_whatever_the_host_is_called() {
        // A port nothing listens on: bound, then let go.
        let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let url = format!("http://tls.example.org:{}/dns/certificate.jpg", addr.port());
        assert_eq!(class_of(&url, "tls.example.org", addr), TransportKind::Connect);
    }
}
