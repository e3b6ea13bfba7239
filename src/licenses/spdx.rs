//! A licence string as publishers write it, read as an SPDX id.
//!
//! GBIF passes media licences on as they were published: the same licence comes as
//! `http://creativecommons.org/licenses/by/4.0/`, `https://creativecommons.org/licenses/by/4.0/legalcode`,
//! `CC BY 4.0` or `CC-BY`. The string is first *canonicalised* (lowercase; the scheme, `www.`,
//! `/legalcode`, `/deed.<lang>` and a trailing `/` cut; any other character that is not a letter or
//! digit read as a space, `.` kept only between digits), then read:
//!
//! 1. listed in `config/licenses.csv` (public domain, all rights reserved, placeholders): that id;
//! 2. Creative Commons Zero (`cc0`, `publicdomain zero`, `cc zero`, "public domain dedication"):
//!    `CC0-1.0`;
//! 3. a Creative Commons licence (a `cc`, `creativecommons` or "creative commons" word, or the word
//!    "attribution" with a version or "international"): `CC-BY`, then `-NC`, then `-ND` or `-SA`
//!    from the words `nc`/`noncommercial`/"non commercial", `nd`/`noderivatives`/`noderivs`/"no
//!    derivatives", `sa`/`sharealike`/"share alike", then the version (1.0, 2.0, 2.5, 3.0, 4.0;
//!    ported versions such as `3.0/us` read as the generic one). **Unversioned** (`cc-by`,
//!    `creativecommons.org/licenses/by-nc/`) reads as **4.0**, the version GBIF publishes under and
//!    the only one a new publication can choose; [`Licence::assumed_version`] says so, and the raw
//!    string is always kept beside the id;
//! 4. "all rights reserved", `©` or "(c)" anywhere: `all-rights-reserved`; "public domain":
//!    `public-domain`;
//! 5. anything else, and an empty string: `unknown`.

use std::collections::HashMap;
use std::sync::OnceLock;

/// Read when nothing is known about the licence.
pub const UNKNOWN: &str = "unknown";

/// The table of listed strings, in the repo at `config/licenses.csv`.
const TABLE: &str = include_str!("../../config/licenses.csv");

/// Creative Commons versions with an SPDX id of their own.
const VERSIONS: [&str; 5] = ["1.0", "2.0", "2.5", "3.0", "4.0"];

/// What an unversioned Creative Commons licence is read as (see the module doc).
pub const UNVERSIONED_AS: &str = "4.0";

/// A licence string, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Licence {
    /// An SPDX id (`CC-BY-4.0`), or `public-domain`, `public-domain-mark`,
    /// `all-rights-reserved` or `unknown`.
    pub id: String,
    /// A Creative Commons licence that named no version, read as `UNVERSIONED_AS`.
    pub assumed_version: bool,
}

impl Licence {
    fn of(id: &str) -> Licence {
        Licence { id: id.to_string(), assumed_version: false }
    }
}

/// Reads `raw` (see the module doc).
pub fn normalise(raw: &str) -> Licence {
    let canonical = canonicalise(raw);
    if canonical.is_empty() {
        return Licence::of(UNKNOWN);
    }
    if let Some(id) = table().get(canonical.as_str()) {
        return Licence::of(id);
    }
    let words: Vec<&str> = canonical.split(' ').collect();
    let has = |w: &str| words.contains(&w);
    let pair = |a: &str, b: &str| words.windows(2).any(|p| p[0] == a && p[1] == b);
    if has("cc0")
        || pair("publicdomain", "zero")
        || pair("cc", "zero")
        || canonical.contains("public domain dedication")
    {
        return Licence::of("CC0-1.0");
    }
    let version = words.iter().find_map(|w| match *w {
        "4" => Some("4.0"),
        "3" => Some("3.0"),
        "2" => Some("2.0"),
        "1" => Some("1.0"),
        v => VERSIONS.contains(&v).then_some(v),
    });
    let marked = has("cc") || has("creativecommons") || pair("creative", "commons");
    let attribution = has("attribution") && (version.is_some() || has("international"));
    if marked || attribution {
        if let Some(l) = creative_commons(&words, version) {
            return l;
        }
    }
    if canonical.contains("all rights reserved") || raw.contains('©') || raw.to_lowercase().contains("(c)") {
        return Licence::of("all-rights-reserved");
    }
    if canonical.contains("public domain") {
        return Licence::of("public-domain");
    }
    Licence::of(UNKNOWN)
}

/// The Creative Commons id of `words`, if they name the terms consistently (BY at least, not ND
/// and SA together).
fn creative_commons(words: &[&str], version: Option<&str>) -> Option<Licence> {
    let has = |w: &str| words.contains(&w);
    let pair = |a: &str, b: &str| words.windows(2).any(|p| p[0] == a && p[1] == b);
    let by = has("by") || has("attribution");
    let nc = has("nc") || has("noncommercial") || pair("non", "commercial");
    let nd = has("nd") || has("noderivatives") || has("noderivs") || pair("no", "derivatives") || pair("no", "derivs");
    let sa = has("sa") || has("sharealike") || pair("share", "alike");
    if !by || (nd && sa) {
        return None;
    }
    let mut id = String::from("CC-BY");
    if nc {
        id.push_str("-NC");
    }
    if nd {
        id.push_str("-ND");
    } else if sa {
        id.push_str("-SA");
    }
    id.push('-');
    id.push_str(version.unwrap_or(UNVERSIONED_AS));
    Some(Licence { id, assumed_version: version.is_none() })
}

/// The canonical form of a licence string (see the module doc).
pub fn canonicalise(raw: &str) -> String {
    let mut s = raw.trim().to_lowercase();
    for scheme in ["https://", "http://"] {
        if let Some(rest) = s.strip_prefix(scheme) {
            s = rest.to_string();
        }
    }
    if let Some(rest) = s.strip_prefix("www.") {
        s = rest.to_string();
    }
    loop {
        let before = s.len();
        s = s.trim_end_matches('/').to_string();
        if let Some(at) = s.rfind("/deed.").filter(|at| !s[at + 6..].contains('/')) {
            s.truncate(at);
        }
        for tail in ["/legalcode", "/deed"] {
            if let Some(rest) = s.strip_suffix(tail) {
                s = rest.to_string();
            }
        }
        if s.len() == before {
            break;
        }
    }
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    for (i, c) in chars.iter().enumerate() {
        let digit = |j: Option<usize>| j.and_then(|j| chars.get(j)).is_some_and(|c| c.is_ascii_digit());
        let keep = c.is_alphanumeric() || (*c == '.' && digit(i.checked_sub(1)) && digit(Some(i + 1)));
        out.push(if keep { *c } else { ' ' });
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `config/licenses.csv`, read once.
fn table() -> &'static HashMap<&'static str, &'static str> {
    static TABLE_MAP: OnceLock<HashMap<&'static str, &'static str>> = OnceLock::new();
    TABLE_MAP.get_or_init(|| {
        let rows = TABLE.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).skip(1);
        rows.filter_map(|l| l.split_once(',')).map(|(k, v)| (k.trim(), v.trim())).collect()
    })
}

#[cfg(test)]
#[path = "spdx_tests.rs"]
mod tests;
