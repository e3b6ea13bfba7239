//! The server key: which host a URL belongs to, in a form that is safe as a directory name.
//!
//! The key is the URL's host and port, lowercased, with the scheme's default port dropped
//! (`http://Example.org:80/a` and `https://example.org/b` are both `example.org`). It names the
//! `urls/server_name=<key>/` folder, so it may only hold `[a-z0-9._-]`, never starts with a dot,
//! and is never `.` or `..`: a hostile host string cannot escape the output folder.
//! This module owns URL checking too, since both come from the same parse.

use url::{Host, Url};

/// Longest key kept verbatim. Longer hosts (legal DNS names reach 253 bytes) are cut and get a
/// hash suffix, so that two long hosts never share a folder and names stay under filesystem limits.
const MAX_KEY_LEN: usize = 120;

/// A URL that passed the checks, in canonical form, with its server key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedUrl {
    /// The URL as the `url` crate serialises it: host lowercased, default port dropped. Identical
    /// URLs are detected on this form.
    pub url: String,
    /// The server key, see the module docs.
    pub server: String,
}

/// Why an identifier is not a URL we can download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlProblem {
    /// Not parseable as an absolute URL.
    Unparseable,
    /// A scheme other than http or https (ftp:, file:, data:, ...).
    NotHttp,
    /// No host (`http:///x`).
    NoHost,
}

/// Parses and checks `raw`, returning the canonical URL and its server key.
pub fn check_url(raw: &str) -> Result<CheckedUrl, UrlProblem> {
    let raw = raw.trim();
    let url = Url::parse(raw).map_err(|_| UrlProblem::Unparseable)?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(UrlProblem::NotHttp);
    }
    let host = match url.host() {
        None | Some(Host::Domain("")) => return Err(UrlProblem::NoHost),
        Some(Host::Domain(d)) => d.to_ascii_lowercase(),
        Some(Host::Ipv4(ip)) => ip.to_string(),
        // Colons are legal in folder names on Linux but not in hive partition values everywhere.
        Some(Host::Ipv6(ip)) => format!("ipv6-{}", ip.to_string().replace(':', "-")),
    };
    // `Url::port` is already None for the scheme's default port.
    let with_port = match url.port() {
        Some(p) => format!("{host}_{p}"),
        None => host,
    };
    Ok(CheckedUrl { server: sanitize_key(&with_port), url: url.into() })
}

/// Makes `raw` safe as one path component, see the module docs.
pub fn sanitize_key(raw: &str) -> String {
    let mut key: String = raw
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if key.is_empty() || key.starts_with('.') {
        key.insert(0, '_');
    }
    if key.len() > MAX_KEY_LEN {
        let digest = fnv1a(raw.as_bytes());
        key.truncate(MAX_KEY_LEN - 17);
        key.push_str(&format!("-{digest:016x}"));
    }
    key
}

/// A small stable hash for key suffixes and spill buckets. Stable across runs and platforms,
/// unlike `std`'s randomly seeded hasher, which matters because bucket numbers decide batch order.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(u: &str) -> String {
        check_url(u).unwrap().server
    }

    #[test]
    fn host_is_lowercased_and_default_ports_dropped() {
        assert_eq!(key("http://Example.ORG:80/a.jpg"), "example.org");
        assert_eq!(key("https://example.org:443/a.jpg"), "example.org");
        assert_eq!(key("https://example.org:8443/a.jpg"), "example.org_8443");
        assert_eq!(key("http://127.0.0.1:8080/x"), "127.0.0.1_8080");
        assert_eq!(check_url(" http://EX.org/A b.jpg ").unwrap().url, "http://ex.org/A%20b.jpg");
    }

    #[test]
    fn non_http_and_garbage_are_rejected() {
        assert_eq!(check_url("ftp://example.org/a.jpg"), Err(UrlProblem::NotHttp));
        assert_eq!(check_url("file:///etc/passwd"), Err(UrlProblem::NotHttp));
        assert_eq!(check_url("not a url"), Err(UrlProblem::Unparseable));
        assert_eq!(check_url(""), Err(UrlProblem::Unparseable));
        assert!(check_url("http://").is_err());
        assert!(check_url("https://:80/x").is_err());
    }

    #[test]
    fn hostile_hosts_cannot_escape_the_output_folder() {
        for raw in [
            "http://../etc/passwd",
            "http://..:8080/x",
            "http://%2e%2e/x",
            "http://a%2fb/x",
            "http://[::1]:9000/x",
            "http://xn--nxasmq6b.com/x",
        ] {
            if let Ok(c) = check_url(raw) {
                let k = c.server;
                assert!(!k.contains('/') && !k.contains('\\') && !k.starts_with('.'), "{raw} -> {k}");
                assert!(k != "." && k != "..", "{raw} -> {k}");
            }
        }
        assert_eq!(sanitize_key(".."), "_..");
        assert_eq!(sanitize_key("a/../../b"), "a_.._.._b");
        assert_eq!(key("http://[::1]:9000/x"), "ipv6---1_9000");
    }

    #[test]
    fn very_long_hosts_are_cut_without_collisions() {
        let a = format!("http://{}a.example.org/x", "x".repeat(200));
        let b = format!("http://{}b.example.org/x", "x".repeat(200));
        let (ka, kb) = (key(&a), key(&b));
        assert!(ka.len() <= MAX_KEY_LEN && kb.len() <= MAX_KEY_LEN);
        assert_ne!(ka, kb);
    }
}
