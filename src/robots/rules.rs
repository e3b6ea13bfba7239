//! What a server says about crawlers, as plain logic (no I/O, no clock):
//!
//! - [`opt_out`]: whether a response's `X-Robots-Tag` opts out of us; `download` records such a
//!   row as `opted_out` and stores nothing.
//! - [`Robots`]: robots.txt (RFC 9309), the rules of one host for our product token and whether a
//!   path may be fetched.
//!
//! - Groups start with one or more `user-agent` lines. The groups naming our product token
//!   (case-insensitive, compared with the value's first word before any `/`) are combined; if
//!   none names it, the `*` groups are; if neither exists, everything is allowed.
//! - A path matches a rule when the rule's pattern matches its start (`*` is any run of
//!   characters, a final `$` anchors the end). The longest matching pattern wins; between an
//!   `allow` and a `disallow` of the same length, `allow` wins (the least restrictive). An empty
//!   `disallow` matches nothing. `/robots.txt` itself is always allowed.
//! - `crawl-delay` (not in RFC 9309, but what operators write) is the seconds to wait between
//!   requests: the download holds the host at 1/delay requests per second at most.
//! - Only the first 500 KiB are read (RFC 9309 asks crawlers to read at least that much).

/// The token our User-Agent starts with and robots.txt groups name.
pub const PRODUCT_TOKEN: &str = "distributed-downloader";

/// Bytes of a robots.txt that are read.
pub const MAX_BYTES: usize = 500 * 1024;

#[derive(Debug, Clone, PartialEq)]
struct Rule {
    allow: bool,
    pattern: String,
}

/// The rules that apply to us on one host.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Robots {
    rules: Vec<Rule>,
    crawl_delay: Option<f64>,
}

#[derive(Default)]
struct Group {
    agents: Vec<String>,
    rules: Vec<Rule>,
    crawl_delay: Option<f64>,
}

impl Robots {
    /// Everything allowed, no delay: what a missing robots.txt (a 4xx) means.
    pub fn allow_all() -> Robots {
        Robots::default()
    }

    /// The rules of `text` for `token`.
    pub fn parse(text: &str, token: &str) -> Robots {
        let mut end = text.len().min(MAX_BYTES);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let text = &text[..end];
        let mut groups: Vec<Group> = Vec::new();
        let mut in_agents = false;
        for raw in text.lines() {
            let line = raw.split('#').next().unwrap_or_default().trim();
            let Some((key, value)) = line.split_once(':') else { continue };
            let (key, value) = (key.trim().to_ascii_lowercase(), value.trim());
            match key.as_str() {
                "user-agent" => {
                    if !in_agents {
                        groups.push(Group::default());
                        in_agents = true;
                    }
                    let agent = value.split(['/', ' ']).next().unwrap_or_default().to_ascii_lowercase();
                    groups.last_mut().expect("pushed").agents.push(agent);
                }
                "allow" | "disallow" => {
                    in_agents = false;
                    if let Some(g) = groups.last_mut() {
                        if !value.is_empty() {
                            g.rules.push(Rule { allow: key == "allow", pattern: value.to_string() });
                        }
                    }
                }
                "crawl-delay" => {
                    in_agents = false;
                    if let Some(g) = groups.last_mut() {
                        if let Ok(d) = value.parse::<f64>() {
                            if d.is_finite() && d > 0.0 {
                                g.crawl_delay = Some(g.crawl_delay.map_or(d, |old: f64| old.max(d)));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        let token = token.to_ascii_lowercase();
        let ours: Vec<&Group> = groups.iter().filter(|g| g.agents.contains(&token)).collect();
        let chosen =
            if ours.is_empty() { groups.iter().filter(|g| g.agents.iter().any(|a| a == "*")).collect() } else { ours };
        Robots {
            rules: chosen.iter().flat_map(|g| g.rules.iter().cloned()).collect(),
            crawl_delay: chosen.iter().filter_map(|g| g.crawl_delay).reduce(f64::max),
        }
    }

    /// Whether `path` (the URL's path and query, e.g. `/img/a.jpg?size=2`) may be fetched.
    pub fn allows(&self, path: &str) -> bool {
        if path == "/robots.txt" {
            return true;
        }
        let mut best: Option<(usize, bool)> = None;
        for r in &self.rules {
            if matches(&r.pattern, path) {
                let len = r.pattern.len();
                best = match best {
                    Some((l, a)) if l > len || (l == len && a) => Some((l, a)),
                    _ => Some((len, r.allow)),
                };
            }
        }
        best.is_none_or(|(_, allow)| allow)
    }

    /// Seconds to wait between requests, if the host asks for it.
    pub fn crawl_delay(&self) -> Option<f64> {
        self.crawl_delay
    }
}

/// Whether `pattern` matches the start of `path` (`*` any run, a final `$` the end).
fn matches(pattern: &str, path: &str) -> bool {
    let (pattern, anchored) = match pattern.strip_suffix('$') {
        Some(p) => (p, true),
        None => (pattern, false),
    };
    let p = pattern.as_bytes();
    let s = path.as_bytes();
    // reach[j]: the pattern so far can end having consumed s[..j].
    let mut reach = vec![false; s.len() + 1];
    reach[0] = true;
    for &c in p {
        if c == b'*' {
            for j in 1..=s.len() {
                reach[j] = reach[j] || reach[j - 1];
            }
        } else {
            for j in (1..=s.len()).rev() {
                reach[j] = reach[j - 1] && s[j - 1] == c;
            }
            reach[0] = false;
        }
    }
    if anchored {
        reach[s.len()]
    } else {
        reach.iter().any(|r| *r)
    }
}

/// The opt-out directives that stop an image from being stored, by default.
pub const DEFAULT_OPT_OUT_TAGS: &[&str] = &["noai", "noimageai", "noindex", "noimageindex"];

/// Whether the `X-Robots-Tag` header values of a response opt out of us: the first directive of
/// `tags` found, either unscoped (`noai`) or scoped to our `token` (`distributed-downloader:
/// noai`). Directives scoped to other crawlers (`googlebot: noindex`) do not apply.
pub fn opt_out(headers: &[String], token: &str, tags: &[String]) -> Option<String> {
    for value in headers {
        // A value is `[agent:] directive, directive, …`; an agent is a word before a `:` that is
        // not itself a directive taking an argument (`unavailable_after: <date>`).
        let (scope, directives) = match value.split_once(':') {
            Some((agent, rest)) if !agent.contains(',') && !agent.trim().eq_ignore_ascii_case("unavailable_after") => {
                (Some(agent.trim().to_ascii_lowercase()), rest)
            }
            _ => (None, value.as_str()),
        };
        if scope.as_ref().is_some_and(|a| *a != token.to_ascii_lowercase()) {
            continue;
        }
        for d in directives.split(',').map(|d| d.trim().to_ascii_lowercase()) {
            if let Some(t) = tags.iter().find(|t| t.eq_ignore_ascii_case(&d)) {
                return Some(t.clone());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_group_wins_over_star_and_groups_naming_us_combine() {
        let text = "User-agent: *\nDisallow: /\n\nUser-agent: Distributed-Downloader/1.0\nUser-agent: other\nDisallow: /private/\nCrawl-delay: 2\n\nuser-agent: distributed-downloader\nallow: /private/ok\n";
        let r = Robots::parse(text, PRODUCT_TOKEN);
        assert!(r.allows("/img/a.jpg"), "the * group does not apply when ours exists");
        assert!(!r.allows("/private/x.jpg"));
        assert!(r.allows("/private/ok.jpg"), "rules of every group naming us combine");
        assert_eq!(r.crawl_delay(), Some(2.0));
        // Without a group naming us, the * group applies.
        let star = Robots::parse("User-agent: *\nDisallow: /no\nCrawl-delay: 0.5\n", PRODUCT_TOKEN);
        assert!(!star.allows("/no/a.jpg") && star.allows("/yes/a.jpg"));
        assert_eq!(star.crawl_delay(), Some(0.5));
        assert!(
            Robots::parse("User-agent: somebot\nDisallow: /\n", PRODUCT_TOKEN).allows("/a"),
            "no group for us or *"
        );
    }

    #[test]
    fn the_longest_match_wins_and_allow_wins_a_tie() {
        let r = Robots::parse(
            "User-agent: *\nDisallow: /a\nAllow: /a/b\nDisallow: /a/b/c\nAllow: /x\nDisallow: /x\n",
            PRODUCT_TOKEN,
        );
        assert!(!r.allows("/a/z"));
        assert!(r.allows("/a/b/z"));
        assert!(!r.allows("/a/b/c/z"));
        assert!(r.allows("/x/1"), "equal length: the least restrictive");
        let all = Robots::parse("User-agent: *\nDisallow: /\n", PRODUCT_TOKEN);
        assert!(!all.allows("/img/1.jpg"));
        assert!(all.allows("/robots.txt"), "robots.txt itself is always allowed");
    }

    #[test]
    fn wildcards_and_end_anchors_match_as_rfc_9309_says() {
        let r = Robots::parse("User-agent: *\nDisallow: /*.png$\nDisallow: /tmp*/cache\nDisallow:\n", PRODUCT_TOKEN);
        assert!(!r.allows("/img/a.png"));
        assert!(r.allows("/img/a.png?x=1"), "$ anchors the end");
        assert!(r.allows("/img/a.jpg"));
        assert!(!r.allows("/tmp-2024/cache/a.jpg"));
        assert!(r.allows("/tmp/other"));
        assert!(matches("/a*", "/a") && matches("*", "") && !matches("/b", "/a"));
    }

    #[test]
    fn x_robots_tag_opts_out_unscoped_or_for_us_but_not_for_others() {
        let tags: Vec<String> = DEFAULT_OPT_OUT_TAGS.iter().map(|t| t.to_string()).collect();
        let h = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(opt_out(&h(&["noai"]), PRODUCT_TOKEN, &tags), Some("noai".into()));
        assert_eq!(opt_out(&h(&["nofollow, NoImageAI"]), PRODUCT_TOKEN, &tags), Some("noimageai".into()));
        assert_eq!(opt_out(&h(&["Distributed-Downloader: noindex"]), PRODUCT_TOKEN, &tags), Some("noindex".into()));
        assert_eq!(opt_out(&h(&["googlebot: noindex", "nofollow"]), PRODUCT_TOKEN, &tags), None);
        assert_eq!(opt_out(&h(&["unavailable_after: 25 Jun 2010 15:00:00 PST"]), PRODUCT_TOKEN, &tags), None);
        assert_eq!(opt_out(&h(&["noai"]), PRODUCT_TOKEN, &[]), None, "an empty list turns the check off");
    }

    #[test]
    fn comments_unknown_lines_and_rules_before_any_agent_are_ignored() {
        let text = "Disallow: /early\n# a comment\nSitemap: http://x/s.xml\nUser-agent: * # everyone\nDisallow: /b # not /c\nnonsense line\n";
        let r = Robots::parse(text, PRODUCT_TOKEN);
        assert!(r.allows("/early/a") && !r.allows("/b/a") && r.allows("/c"));
        assert_eq!(Robots::parse("", PRODUCT_TOKEN), Robots::allow_all());
    }
}
