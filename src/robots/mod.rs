//! `robots`: what a server says about crawlers, and how a download obeys it.
//!
//! - `rules`: robots.txt matching (RFC 9309) and `X-Robots-Tag` opt-outs, as plain logic.
//! - `gate`: one host's robots.txt during a download (read the cache, ask, wait, obey), as a
//!   plain state machine the ServerActor drives; what an answer to robots.txt means.
//! - `urls`: where a host's robots.txt is, and the part of a URL its rules are matched against.
//! - `cache`: robots.txt answers kept in `<output>/robots/`, so a host is asked once per run and
//!   later runs (and `profile`) reuse a recent answer.

pub mod cache;
pub mod gate;
pub mod rules;
pub mod urls;

pub use rules::{opt_out, Robots, DEFAULT_OPT_OUT_TAGS, MAX_BYTES, PRODUCT_TOKEN};
pub use urls::{robots_url, url_path};

/// Whether a download asks for robots.txt and obeys it (`ROBOTS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RobotsPolicy {
    /// Ask every host for robots.txt once per run and obey it (the default).
    #[default]
    Obey,
    /// Never ask; fetch every URL. Only for hosts whose operators agreed; a warning says so.
    Ignore,
}
