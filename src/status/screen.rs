//! The screen `status` prints: totals, the ETA, the slowest servers, the job chain and the last
//! plans, as a person reads them (`--json` gives the same report as data).

use std::fmt;

use super::gather::StatusReport;
use crate::slurm::record::JobKind;

/// `3d 4h`, `2h 05m`, `4m 10s`, `12s`.
pub fn duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

impl fmt::Display for StatusReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.totals;
        let pct = |n: u64| if t.rows == 0 { 100.0 } else { 100.0 * n as f64 / t.rows as f64 };
        writeln!(f, "status: {}", self.output)?;
        if !self.prepped {
            writeln!(f, "  no batches yet: prep has not written servers.parquet (see the jobs below, or run `prep`)")?;
        }
        writeln!(f, "  rows       {:>12}  on {} servers", t.rows, t.servers)?;
        writeln!(f, "  stored     {:>12}  ({:.1}%, {:.1} MB)", t.stored, pct(t.stored), t.stored_bytes as f64 / 1e6)?;
        writeln!(f, "  failed     {:>12}  ({:.1}%)", t.failed, pct(t.failed))?;
        for (class, n) in &t.failed_by_class {
            writeln!(f, "    {class:<16}{n:>10}")?;
        }
        if t.retriable > 0 {
            writeln!(f, "    of which retriable{:>8}  (`download --retry-failed` tries them again)", t.retriable)?;
        }
        writeln!(f, "  remaining  {:>12}  ({:.1}%)", t.remaining, pct(t.remaining))?;
        let e = &self.eta;
        if t.remaining == 0 {
            writeln!(f, "  complete: every row has a committed record")?;
        } else {
            let recent = match (e.recent_rows_per_sec, e.recent_window_secs, e.by_throughput_secs) {
                (Some(r), Some(w), Some(b)) => {
                    format!("{r:.1} rows/s over the last {} gives {}", duration(w), duration(b))
                }
                (Some(r), Some(w), None) => format!("{r:.1} rows/s over the last {}", duration(w)),
                _ => "no recent run to measure".to_string(),
            };
            writeln!(
                f,
                "  ETA        {:>12}  (throughput: {recent}; politeness floor: {}{})",
                duration(e.estimate_secs),
                duration(e.politeness_floor_secs),
                e.slowest_server.as_ref().map(|s| format!(", set by {s}")).unwrap_or_default()
            )?;
        }
        writeln!(f)?;
        let shown = self.servers.len().min(self.show_servers);
        writeln!(
            f,
            "servers, slowest first ({shown} of {}{}):",
            self.servers.len(),
            if shown < self.servers.len() { "; `--all` shows every one, `--json` too" } else { "" }
        )?;
        writeln!(
            f,
            "  {:<32} {:>9} {:>6} {:>9} {:>8} {:>7} {:>5}  {:<12} {:>8}",
            "server", "rows", "done", "remaining", "rate/s", "limit", "429s", "state", "floor"
        )?;
        for s in self.servers.iter().take(shown) {
            let name = if s.server.chars().count() > 32 {
                format!("{}…", s.server.chars().take(31).collect::<String>())
            } else {
                s.server.clone()
            };
            writeln!(
                f,
                "  {:<32} {:>9} {:>5.1}% {:>9} {:>8} {:>7} {:>5}  {:<12} {:>8}",
                name,
                s.rows,
                100.0 * s.progress,
                s.remaining,
                format!(
                    "{:.2}{}",
                    s.rate,
                    if s.overrides.is_some() {
                        "o"
                    } else if s.rate_learned {
                        ""
                    } else {
                        "*"
                    }
                ),
                s.known_limit.map(|l| format!("{l:.2}")).unwrap_or_else(|| "-".into()),
                s.refusals,
                s.state,
                duration(s.floor_secs)
            )?;
        }
        writeln!(
            f,
            "  (* not learned yet: the initial rate; o: set by the server overrides; limit: the lowest rate refused, over all runs)"
        )?;
        if let Some(c) = &self.chain {
            writeln!(f)?;
            writeln!(
                f,
                "jobs of chain {}{}:",
                c.number,
                if c.slurm_answered { "" } else { " (Slurm not reachable: states as the jobs recorded them)" }
            )?;
            for j in &c.jobs {
                let kind = match j.kind {
                    JobKind::Prep => "prep",
                    JobKind::Download => "download",
                };
                let ended = match (j.exit_code, j.remaining_at_end) {
                    (Some(code), Some(r)) => format!("exit {code}, {r} rows remained"),
                    (Some(code), None) => format!("exit {code}"),
                    _ => String::new(),
                };
                writeln!(f, "  {:<12} {:<9} {:<22} {ended}", j.id, kind, j.state)?;
            }
            if let Some(why) = &c.stopped {
                writeln!(f, "  chain stopped: {why}")?;
            }
        }
        if !self.plans.is_empty() {
            writeln!(f)?;
            writeln!(f, "plans (plans/round-<n>.json):")?;
            for p in &self.plans {
                writeln!(
                    f,
                    "  round {}: {} host shares on {} ranks, longest rank estimated {}",
                    p.round,
                    p.host_shares,
                    p.ranks,
                    duration(p.estimated_secs)
                )?;
            }
        }
        Ok(())
    }
}
