//! Which redirects the client follows: a rule over the URLs alone, applied to every hop.
//!
//! Refused, each as a [`RedirectRefused`] the fetch records as a `redirect` failure:
//! - a scheme other than http(s);
//! - https to http (a downgrade: the image would come over a channel the first server did not
//!   offer);
//! - from a public host into a loopback, private, link-local or otherwise local address (an IP
//!   literal in those ranges, or `localhost`): a server on the internet must not be able to
//!   point the crawler at the cluster's own network. A host that is itself local (a loopback
//!   origin, as in the tests and the demo) may redirect within local addresses.
//!
//! Only the URL is read here; a public name that resolves to a local address is caught by the
//! resolver of the client used after a cross-server redirect (`dns::SystemResolver::public_only`).
//! A hop to another server is not followed by the client for an image: the row goes to
//! `actors::guests`, which asks that server's robots.txt and keeps to its spacing.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use reqwest::Url;

/// Redirects followed at most. Image CDNs chain two or three; five is what browsers consider a
/// generous minimum.
pub const MAX_REDIRECTS: usize = 5;

/// A redirect the client would not follow, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectRefused {
    pub reason: String,
}

impl fmt::Display for RedirectRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for RedirectRefused {}

/// Whether the hop from `from` to `to`, on a chain that started at `origin` after `hops`
/// earlier redirects, is refused; `None` follows it.
pub fn refused(origin: &Url, from: &Url, to: &Url, hops: usize) -> Option<RedirectRefused> {
    let why = |reason: String| Some(RedirectRefused { reason });
    if hops >= MAX_REDIRECTS {
        return why(format!("more than {MAX_REDIRECTS} redirects (a loop?)"));
    }
    if !matches!(to.scheme(), "http" | "https") {
        return why(format!("a redirect to a {} URL is not followed", to.scheme()));
    }
    if from.scheme() == "https" && to.scheme() == "http" {
        return why(format!("a redirect from https to http is not followed ({to})"));
    }
    if is_local(to) && !is_local(origin) {
        let host = to.host_str().unwrap_or_default();
        return why(format!(
            "a redirect from the public host {} into the local address {host} is not followed",
            origin.host_str().unwrap_or_default()
        ));
    }
    None
}

/// The URL's host is a loopback, private, link-local, shared (CGNAT), unique-local or
/// unspecified address, or `localhost`.
pub fn is_local(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => local_v4(ip),
        Some(url::Host::Ipv6(ip)) => local_v6(ip),
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        None => false,
    }
}

/// A loopback, private, link-local, shared (CGNAT), unique-local or unspecified address.
pub fn is_local_ip(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => local_v4(v4),
        std::net::IpAddr::V6(v6) => local_v6(v6),
    }
}

fn local_v4(ip: Ipv4Addr) -> bool {
    let shared = ip.octets()[0] == 100 && (ip.octets()[1] & 0xC0) == 64; // 100.64.0.0/10
    ip.is_loopback() || ip.is_private() || ip.is_link_local() || ip.is_unspecified() || shared
}

fn local_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return local_v4(v4);
    }
    let first = ip.segments()[0];
    let unique_local = (first & 0xFE00) == 0xFC00; // fc00::/7
    let link_local = (first & 0xFFC0) == 0xFE80; // fe80::/10
    ip.is_loopback() || ip.is_unspecified() || unique_local || link_local
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn hop(origin: &str, to: &str) -> Option<String> {
        refused(&url(origin), &url(origin), &url(to), 0).map(|r| r.reason)
    }

    #[test]
    fn a_public_host_cannot_send_the_crawler_into_local_addresses() {
        for target in [
            "http://127.0.0.1/x.jpg",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.1.2.3/x.jpg",
            "http://192.168.0.9/x.jpg",
            "http://172.20.0.1/x.jpg",
            "http://100.64.0.1/x.jpg",
            "http://0.0.0.0/x.jpg",
            "http://[::1]/x.jpg",
            "http://[fd00::1]/x.jpg",
            "http://[fe80::1]/x.jpg",
            "http://[::ffff:127.0.0.1]/x.jpg",
            "http://localhost:8080/x.jpg",
            "http://api.localhost/x.jpg",
        ] {
            let why = hop("https://museum.example.org/img/1.jpg", &target.replace("http://", "https://"));
            assert!(why.as_deref().is_some_and(|w| w.contains("public host museum.example.org")), "{target}: {why:?}");
        }
        assert_eq!(hop("http://museum.example.org/1.jpg", "http://cdn.example.net/1.jpg"), None, "public to public");
        assert_eq!(hop("http://museum.example.org/1.jpg", "http://172.32.0.1/1.jpg"), None, "172.32 is public");
    }

    #[test]
    fn a_local_origin_may_redirect_within_local_addresses() {
        assert_eq!(hop("http://127.0.0.2:8080/1.jpg", "http://127.0.0.3:9090/1.jpg"), None);
        assert_eq!(hop("http://localhost/1.jpg", "http://10.0.0.5/1.jpg"), None);
    }

    #[test]
    fn https_never_redirects_down_to_http_and_only_web_schemes_are_followed() {
        let why = hop("https://museum.example.org/1.jpg", "http://museum.example.org/1.jpg").unwrap();
        assert!(why.contains("from https to http"), "{why}");
        assert_eq!(hop("http://museum.example.org/1.jpg", "https://museum.example.org/1.jpg"), None, "upgrade");
        assert!(hop("http://museum.example.org/1.jpg", "ftp://museum.example.org/1.jpg").is_some());
        assert!(hop("http://museum.example.org/1.jpg", "file:///etc/passwd").is_some());
        // The downgrade is judged hop by hop: http → https → http is refused at the second hop.
        let (a, b, c) = (url("http://a.example.org/1"), url("https://a.example.org/1"), url("http://a.example.org/2"));
        assert!(refused(&a, &b, &c, 1).is_some());
    }

    #[test]
    fn a_chain_ends_after_five_redirects() {
        let (a, b) = (url("http://a.example.org/1"), url("http://a.example.org/2"));
        assert_eq!(refused(&a, &a, &b, 4), None);
        assert!(refused(&a, &a, &b, 5).unwrap().reason.contains("more than 5 redirects"));
    }
}
