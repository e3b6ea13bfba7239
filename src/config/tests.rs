//! The config file's keys, values and errors, read from temporary files.

use super::*;
use crate::fetch::deadlines;
use std::io::Write;

/// A config file holding `text` (also used by `slurm.rs`'s tests).
pub(crate) fn write_env(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

#[test]
fn defaults_apply_when_keys_are_missing_or_empty() {
    let f = write_env("BATCH_SIZE=\n# a comment\nCONTACT=me@example.org\n");
    let s = RawConfig::from_file(f.path()).unwrap().validate().unwrap();
    assert_eq!(s.batch_size, DEFAULT_BATCH_SIZE);
    assert_eq!(s.initial_rate_limit, DEFAULT_INITIAL_RATE_LIMIT);
    assert_eq!(s.contact.as_deref(), Some("me@example.org"));
}

/// An empty config resolves to the limits that `fetch::deadlines`'s tests prove read a 100 MB
/// image sent at 300 KB/s to the end, and to a body cap that lets it through (tests/deadlines.rs
/// runs that transfer for real, scaled down, with these values divided alike).
#[test]
fn an_empty_config_resolves_to_the_limits_that_read_a_100_mb_image() {
    let f = write_env("");
    let s = RawConfig::from_file(f.path()).unwrap().validate().unwrap();
    let secs = std::time::Duration::from_secs_f64;
    assert_eq!(s.head_timeout, secs(deadlines::DEFAULT_HEAD_TIMEOUT_SECS));
    assert_eq!(s.idle_timeout, secs(deadlines::DEFAULT_IDLE_TIMEOUT_SECS));
    assert_eq!(s.min_transfer_bytes_per_sec, deadlines::DEFAULT_MIN_TRANSFER_KB_PER_SEC * 1e3);
    assert_eq!(s.request_timeout, secs(deadlines::DEFAULT_REQUEST_TIMEOUT_SECS));
    assert!(s.max_body_bytes >= 100_000_000, "a default body cap of {} bytes refuses a 100 MB image", s.max_body_bytes);
}

#[test]
fn unknown_key_names_the_key_and_the_file() {
    let f = write_env("BATCH_SIZ=5\n");
    let err = RawConfig::from_file(f.path()).unwrap_err().to_string();
    assert!(err.contains("BATCH_SIZ"), "{err}");
    assert!(err.contains(&f.path().display().to_string()), "{err}");
}

#[test]
fn resolve_pins_names_to_addresses_and_a_malformed_pair_is_refused_by_name() {
    let f = write_env("RESOLVE=\"Museum.Example.org=127.0.0.5, cdn.example.net=::1\"\n");
    let s = RawConfig::from_file(f.path()).unwrap().validate().unwrap();
    let expect: Vec<(String, std::net::IpAddr)> = vec![
        ("museum.example.org".into(), "127.0.0.5".parse().unwrap()),
        ("cdn.example.net".into(), "::1".parse().unwrap()),
    ];
    assert_eq!(s.resolve, expect);
    for bad in ["museum.example.org", "museum.example.org=not-an-ip", "127.0.0.1=127.0.0.2"] {
        let f = write_env(&format!("RESOLVE={bad}\n"));
        let err = RawConfig::from_file(f.path()).unwrap().validate().unwrap_err().to_string();
        assert!(err.contains("RESOLVE") && err.contains("name=address"), "{bad}: {err}");
    }
}

#[test]
fn a_crawl_info_url_goes_into_the_user_agent_and_a_bad_one_is_refused() {
    let f = write_env("CRAWL_INFO_URL=https://lab.example.org/crawl\n");
    let s = RawConfig::from_file(f.path()).unwrap().validate().unwrap();
    let ua = crate::fetch::client::user_agent("ops@example.org", s.crawl_info_url.as_deref());
    assert!(ua.ends_with("(+https://lab.example.org/crawl; contact: ops@example.org)"), "{ua}");
    let plain = crate::fetch::client::user_agent("ops@example.org", None);
    assert!(plain.ends_with(" (contact: ops@example.org)") && !plain.contains("http"), "{plain}");
    for bad in ["lab.example.org", "https://a b", "https://a;b"] {
        let f = write_env(&format!("CRAWL_INFO_URL=\"{bad}\"\n"));
        let err = RawConfig::from_file(f.path()).unwrap().validate().unwrap_err().to_string();
        assert!(err.contains("CRAWL_INFO_URL"), "{bad}: {err}");
    }
}

#[test]
fn malformed_value_names_the_key_and_the_file() {
    let f = write_env("BATCH_SIZE=ten\n");
    let err = RawConfig::from_file(f.path()).unwrap().validate().unwrap_err().to_string();
    assert!(err.contains("BATCH_SIZE") && err.contains("ten"), "{err}");
    assert!(err.contains(&f.path().display().to_string()), "{err}");
    let f = write_env("INITIAL_RATE_LIMIT=-2\n");
    let err = RawConfig::from_file(f.path()).unwrap().validate().unwrap_err().to_string();
    assert!(err.contains("INITIAL_RATE_LIMIT"), "{err}");
}

#[test]
fn example_env_documents_every_key() {
    let text = include_str!("../../config/example.env");
    for key in KEYS {
        assert!(text.contains(&format!("{key}=")), "config/example.env lacks {key}");
    }
    // And the example itself must be a valid config.
    let f = write_env(text);
    RawConfig::from_file(f.path()).unwrap().validate().unwrap();
}

/// The key table of `docs/configuration.md`: each row's keys and their documented defaults
/// (`None` for a default described in words, such as "(none)").
fn documented_defaults() -> Vec<(String, Option<String>)> {
    let doc = include_str!("../../docs/configuration.md");
    let mut rows = Vec::new();
    for line in doc.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let keys: Vec<String> = cells[1].split(',').map(|k| k.trim().trim_matches('`').to_string()).collect();
        let default = cells[2];
        assert!(!cells[3].is_empty(), "docs/configuration.md gives {} no meaning", cells[1]);
        // A row of several keys lists their defaults in order, or one for all.
        let parts: Vec<&str> = default.split(", ").collect();
        for (i, key) in keys.into_iter().enumerate() {
            let d = if keys_len_matches(&parts, cells[1]) { parts[i] } else { default };
            rows.push((key, (!d.starts_with('(')).then(|| d.to_string())));
        }
    }
    rows
}

fn keys_len_matches(parts: &[&str], keys_cell: &str) -> bool {
    let n = keys_cell.split(',').count();
    n > 1 && parts.len() == n
}

#[test]
fn the_configuration_guide_lists_every_key_once_with_the_default_the_code_uses() {
    let rows = documented_defaults();
    let documented: Vec<&str> = rows.iter().map(|(k, _)| k.as_str()).collect();
    let mut sorted = documented.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), documented.len(), "a key is listed twice in docs/configuration.md: {documented:?}");
    for key in KEYS {
        assert!(documented.contains(key), "docs/configuration.md lacks {key}");
    }
    for key in &documented {
        assert!(KEYS.contains(key), "docs/configuration.md lists {key}, which is not a key");
    }
    let defaults = RawConfig::from_file(write_env("").path()).unwrap().validate().unwrap();
    for (key, default) in rows.iter().filter_map(|(k, d)| Some((k, d.as_ref()?))) {
        let f = write_env(&format!("{key}={default}\n"));
        let set = RawConfig::from_file(f.path()).unwrap().validate();
        let set = set.unwrap_or_else(|e| panic!("{key}={default} (the documented default) is refused: {e}"));
        assert_eq!(set, defaults, "docs/configuration.md says {key} defaults to {default}; the code's default differs");
    }
}
