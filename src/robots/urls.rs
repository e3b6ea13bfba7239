//! Where a host's robots.txt is, and the part of a URL its rules are matched against.

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
