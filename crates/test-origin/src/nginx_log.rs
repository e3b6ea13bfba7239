//! Reading an nginx access log written in `nginx.rs`'s `LOG_FORMAT` back as a [`RequestLog`].

use std::time::Duration;

use crate::log::{RequestLog, RequestRecord};

/// Records from an access log in `LOG_FORMAT`, in arrival order, times from `start` (since the
/// Unix epoch).
pub(super) fn parse_log(text: &str, start: Duration) -> RequestLog {
    let mut records: Vec<(u64, RequestRecord)> = text.lines().filter_map(|l| parse_line(l, start)).collect();
    records.sort_by_key(|(_, r)| (r.arrived, r.completed));
    // nginx numbers connections across the whole server; number them per host, from 1.
    let mut seen: Vec<u64> = Vec::new();
    let records = records
        .into_iter()
        .map(|(serial, mut r)| {
            r.connection = match seen.iter().position(|&s| s == serial) {
                Some(p) => p as u64 + 1,
                None => {
                    seen.push(serial);
                    seen.len() as u64
                }
            };
            r
        })
        .collect();
    RequestLog::new(records)
}

/// One line: the record, and nginx's connection serial number.
fn parse_line(line: &str, start: Duration) -> Option<(u64, RequestRecord)> {
    let f: Vec<&str> = line.split('\t').collect();
    if f.len() != 9 {
        return None;
    }
    let end = Duration::from_millis(millis(f[0])?);
    let took = Duration::from_millis(millis(f[1])?);
    let number = |s: &str| if s == "-" { Some(0) } else { s.parse::<u64>().ok() };
    let record = RequestRecord {
        method: unescape(f[6]),
        path: unescape(f[7]),
        arrived: end.saturating_sub(took).saturating_sub(start),
        completed: Some(end.saturating_sub(start)),
        status: f[2].parse().ok()?,
        user_agent: (f[8] != "-").then(|| unescape(f[8])),
        if_none_match: None,
        if_modified_since: None,
        bytes_sent: number(f[4])?,
        content_length: number(f[5])?,
        connection: 0,
    };
    Some((f[3].parse().ok()?, record))
}

/// `1796196649.167` or `0.004` (seconds, three decimals) as milliseconds.
fn millis(s: &str) -> Option<u64> {
    let (whole, frac) = s.split_once('.')?;
    if frac.len() != 3 {
        return None;
    }
    Some(whole.parse::<u64>().ok()? * 1000 + frac.parse::<u64>().ok()?)
}

/// Undoes nginx's default log escaping: `"`, `\` and bytes outside printable ASCII as `\xHH`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let (mut out, mut i) = (Vec::with_capacity(b.len()), 0);
    while i < b.len() {
        let hex = (b[i] == b'\\' && i + 3 < b.len() && b[i + 1] == b'x')
            .then(|| std::str::from_utf8(&b[i + 2..i + 4]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()))
            .flatten();
        match hex {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
