//! What `profile` found about one server, and where it is kept: one JSON file per server,
//! `<output>/profile/<server>.json`, replaced whole, later merged into `servers.parquet`.
//!
//! The per-server files are the truth of a profile: they are what makes it resumable (a server
//! with a file is kept, unless `--force`) and what rank 0 merges, however many ranks wrote them.
//! This file owns their shape, reading and writing them, the merge, and how results are shown;
//! sending requests is `run.rs`'s.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::rule::rate_text;
use crate::store::table_updates::{update_profiled, Profiled};

/// The folder under the output folder.
pub use crate::store::paths::PROFILE_DIR;

/// One server's profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileResult {
    pub server: String,
    /// When the profile ended (RFC 3339 UTC).
    pub profiled_at: String,
    /// What robots.txt answered: `"200"`, `"404"`, `"503"`, `"unreachable (connect)"`, or
    /// `"ignored"` under `ROBOTS=ignore`.
    pub robots_status: String,
    /// robots.txt's Crawl-delay, seconds.
    pub crawl_delay: Option<f64>,
    pub samples_sent: u32,
    /// Each sample's status (`"200"`) or error class (`"timeout"`, `"dns"`, `"connect"`).
    pub statuses: Vec<String>,
    /// Median full response time of the answered samples, ms.
    pub latency_ms_median: Option<f64>,
    /// The rate the next download starts this server at, req/s (see `rule.rs`).
    pub start_rate: f64,
    pub notes: Vec<String>,
}

impl ProfileResult {
    /// The one stderr line per server: `profile: a.org: 3 samples 200, median 42 ms, robots.txt
    /// 200 (Crawl-delay 2 s), start 0.5 req/s`, then the notes.
    pub fn line(&self) -> String {
        let mut s = format!("profile: {}: ", self.server);
        // `write!` into a String cannot fail; its Result is ignored throughout.
        match self.statuses.first() {
            None => s.push_str("no sample"),
            Some(first) if self.statuses.iter().all(|x| x == first) => {
                let _ = write!(s, "{} sample{} {first}", self.statuses.len(), plural(self.statuses.len()));
            }
            Some(_) => {
                let _ = write!(s, "{} samples {}", self.statuses.len(), self.statuses.join(","));
            }
        }
        if let Some(ms) = self.latency_ms_median {
            let _ = write!(s, ", median {ms:.0} ms");
        }
        let _ = write!(s, ", robots.txt {}", self.robots_status);
        if let Some(d) = self.crawl_delay {
            let _ = write!(s, " (Crawl-delay {d} s)");
        }
        let _ = write!(s, ", start {} req/s", rate_text(self.start_rate));
        if !self.notes.is_empty() {
            let _ = write!(s, "; {}", self.notes.join("; "));
        }
        s
    }

    fn to_profiled(&self) -> Profiled {
        Profiled {
            start_rate: self.start_rate,
            at: self.profiled_at.clone(),
            latency_ms: self.latency_ms_median,
            statuses: self.statuses.join(","),
            robots_status: self.robots_status.clone(),
            crawl_delay: self.crawl_delay,
            notes: self.notes.join("; "),
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Where `server`'s profile lives.
pub fn path(out: &Path, server: &str) -> PathBuf {
    out.join(PROFILE_DIR).join(format!("{server}.json"))
}

/// `server`'s profile, if it has a readable one. A damaged file counts as none: the server is
/// profiled again.
pub fn read(out: &Path, server: &str) -> Option<ProfileResult> {
    let bytes = std::fs::read(path(out, server)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Writes a profile, replacing any earlier one at once.
pub fn write(out: &Path, result: &ProfileResult) -> anyhow::Result<()> {
    let bytes = serde_json::to_vec_pretty(result).expect("a profile serialises");
    crate::store::atomic::replace(&path(out, &result.server), &bytes)
        .with_context(|| format!("cannot keep the profile of {}", result.server))
}

/// Every readable profile of a server in `servers`, by server name. Files of other servers (a
/// prep run again on another list) are left out; `warnings` says which files could not be read.
pub fn read_all(out: &Path, servers: &HashSet<&str>) -> anyhow::Result<(Vec<ProfileResult>, Vec<String>)> {
    let dir = out.join(PROFILE_DIR);
    let (mut found, mut warnings) = (Vec::new(), Vec::new());
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((found, warnings)),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
    };
    for entry in entries {
        let p = entry.with_context(|| format!("cannot list {}", dir.display()))?.path();
        let Some(server) = p.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".json")) else {
            continue; // temporary files of a writer that died
        };
        if !servers.contains(server) {
            continue;
        }
        match read(out, server) {
            Some(r) if r.server == server => found.push(r),
            _ => warnings.push(format!(
                "{} is damaged or not a profile; it is left out (run `profile` again to redo {server})",
                p.display()
            )),
        }
    }
    found.sort_by(|a, b| a.server.cmp(&b.server));
    Ok((found, warnings))
}

/// Writes `results` into `servers.parquet`: start rates become `initial_rate_limit`, with the
/// profile's columns beside them (see `store::table_updates::update_profiled`).
pub fn merge(out: &Path, results: &[ProfileResult]) -> anyhow::Result<()> {
    let by_server: HashMap<String, Profiled> = results.iter().map(|r| (r.server.clone(), r.to_profiled())).collect();
    update_profiled(out, &by_server).with_context(|| {
        format!("cannot write the profiles into {}", crate::store::paths::servers_table(out).display())
    })
}

/// The counts of one profile run, over every rank.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    /// Servers profiled by this run.
    pub profiled: Vec<String>,
    /// Servers that already had a profile (kept without a request).
    pub kept: Vec<String>,
    /// Servers excluded by the server overrides (sent nothing).
    pub excluded: Vec<String>,
    /// Servers whose profile could not be made or kept, with why.
    pub failed: Vec<String>,
}

impl Counts {
    pub fn add(&mut self, other: Counts) {
        self.profiled.extend(other.profiled);
        self.kept.extend(other.kept);
        self.excluded.extend(other.excluded);
        self.failed.extend(other.failed);
    }
}

/// The summary rank 0 prints: the counts, then one line per profiled server.
pub fn summary(out: &Path, counts: &Counts, results: &[ProfileResult]) -> String {
    let mut s = format!("profile of {}\n", out.display());
    let _ = writeln!(s, "  profiled now:   {}", counts.profiled.len());
    let _ = writeln!(
        s,
        "  kept:           {}{}",
        counts.kept.len(),
        if counts.kept.is_empty() { "" } else { " (profiled before; `profile --force` profiles them again)" }
    );
    let _ = writeln!(s, "  excluded:       {}{}", counts.excluded.len(), names(&counts.excluded));
    if !counts.failed.is_empty() {
        let _ = writeln!(s, "  failed:         {}", counts.failed.len());
    }
    if results.is_empty() {
        return s;
    }
    let samples = |r: &ProfileResult| if r.statuses.is_empty() { "-".to_string() } else { r.statuses.join(",") };
    let widest =
        |f: &dyn Fn(&ProfileResult) -> usize, title: &str| results.iter().map(f).max().unwrap_or(0).max(title.len());
    let w_server = widest(&|r| r.server.len(), "server");
    let w_robots = widest(&|r| r.robots_status.len(), "robots.txt");
    let w_samples = widest(&|r| samples(r).len(), "samples");
    let _ = writeln!(
        s,
        "\n  {:<w_server$}  {:>11}  {:>9}  {:<w_robots$}  {:<w_samples$}  notes",
        "server", "start req/s", "median ms", "robots.txt", "samples"
    );
    for r in results {
        let median = r.latency_ms_median.map(|m| format!("{m:.0}")).unwrap_or_else(|| "-".into());
        let line = format!(
            "  {:<w_server$}  {:>11}  {:>9}  {:<w_robots$}  {:<w_samples$}  {}",
            r.server,
            rate_text(r.start_rate),
            median,
            r.robots_status,
            samples(r),
            r.notes.join("; ")
        );
        let _ = writeln!(s, "{}", line.trim_end());
    }
    s
}

fn names(v: &[String]) -> String {
    if v.is_empty() {
        String::new()
    } else {
        format!(" ({})", v.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(server: &str) -> ProfileResult {
        ProfileResult {
            server: server.into(),
            profiled_at: "2026-01-02T03:04:05Z".into(),
            robots_status: "200".into(),
            crawl_delay: Some(2.0),
            samples_sent: 3,
            statuses: vec!["200".into(); 3],
            latency_ms_median: Some(42.4),
            start_rate: 0.5,
            notes: vec!["Crawl-delay 2 s caps the rate at 0.5 req/s".into()],
        }
    }

    #[test]
    fn the_stderr_line_reads_like_a_sentence() {
        assert_eq!(
            result("a.org").line(),
            "profile: a.org: 3 samples 200, median 42 ms, robots.txt 200 (Crawl-delay 2 s), start 0.5 req/s; \
             Crawl-delay 2 s caps the rate at 0.5 req/s"
        );
        let mut held = result("b.org");
        (held.statuses, held.latency_ms_median, held.crawl_delay, held.notes) = (vec![], None, None, vec![]);
        (held.robots_status, held.start_rate) = ("503".into(), 1.0);
        assert_eq!(held.line(), "profile: b.org: no sample, robots.txt 503, start 1 req/s");
        held.statuses = vec!["200".into(), "404".into()];
        assert!(held.line().contains(": 2 samples 200,404,"), "{}", held.line());
    }

    #[test]
    fn profiles_round_trip_and_only_servers_of_the_table_are_read_back() {
        let out = tempfile::tempdir().unwrap();
        write(out.path(), &result("a.org")).unwrap();
        write(out.path(), &result("gone.org")).unwrap();
        std::fs::write(path(out.path(), "b.org"), b"{\"server\":").unwrap();
        assert_eq!(read(out.path(), "a.org"), Some(result("a.org")));
        assert_eq!(read(out.path(), "b.org"), None, "a damaged file counts as none");
        let table: HashSet<&str> = ["a.org", "b.org"].into();
        let (found, warnings) = read_all(out.path(), &table).unwrap();
        assert_eq!(found, [result("a.org")]);
        assert!(warnings.len() == 1 && warnings[0].contains("b.org.json"), "{warnings:?}");
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(read_all(empty.path(), &table).unwrap(), (vec![], vec![]), "no profile folder yet");
    }

    #[test]
    fn the_summary_counts_and_lists_each_server() {
        let counts = Counts {
            profiled: vec!["a.org".into()],
            kept: vec!["c.org".into()],
            excluded: vec!["x.org".into()],
            failed: vec![],
        };
        let s = summary(Path::new("/out"), &counts, &[result("a.org")]);
        assert!(s.contains("profiled now:   1") && s.contains("kept:           1 (profiled before"), "{s}");
        assert!(s.contains("excluded:       1 (x.org)"), "{s}");
        let row = s.lines().find(|l| l.trim_start().starts_with("a.org")).unwrap();
        assert!(row.contains("0.5") && row.contains("42") && row.contains("200,200,200"), "{row}");
    }
}
