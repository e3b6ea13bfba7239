//! `robots`: what a server says about crawlers, and how a download obeys it.
//!
//! - `rules`: robots.txt matching (RFC 9309) and `X-Robots-Tag` opt-outs, as plain logic.
//! - `gate`: one host's robots.txt during a download (read the cache, ask, wait, obey), as a
//!   plain state machine the ServerActor drives; what an answer to robots.txt means.
//! - `cache`: robots.txt answers kept in `<output>/robots/`, so a host is asked once per run and
//!   later runs (and `profile`) reuse a recent answer.

pub mod cache;
pub mod gate;
pub mod rules;

pub use rules::{opt_out, Robots, DEFAULT_OPT_OUT_TAGS, MAX_BYTES, PRODUCT_TOKEN};

/// Whether a download asks for robots.txt and obeys it (`ROBOTS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RobotsPolicy {
    /// Ask every host for robots.txt once per run and obey it (the default).
    #[default]
    Obey,
    /// Never ask; fetch every URL. Only for hosts whose operators agreed; a warning says so.
    Ignore,
}

/// The robots.txt URL for the host of `url`: same scheme, host and port. `None` if `url` does
/// not parse (such a row fails on its own request).
pub fn robots_url(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    let mut r = u.join("/robots.txt").ok()?;
    r.set_query(None);
    r.set_fragment(None);
    Some(r.into())
}

/// The part of `url` robots.txt rules are matched against: its path and query, percent-encoded
/// as sent (`/img/a.jpg?size=2`).
pub fn url_path(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    Some(match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn robots_txt_lives_at_the_root_of_the_urls_origin() {
        assert_eq!(robots_url("https://a.org:8443/x/y.jpg?z=1#f").as_deref(), Some("https://a.org:8443/robots.txt"));
        assert_eq!(robots_url("not a url"), None);
        assert_eq!(url_path("http://a.org/img/a%20b.jpg?size=2").as_deref(), Some("/img/a%20b.jpg?size=2"));
        assert_eq!(url_path("http://a.org").as_deref(), Some("/"));
    }
}
