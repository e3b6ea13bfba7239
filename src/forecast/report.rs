//! What `plan` prints: the `Forecast` as a table for people (`Display`) and as JSON
//! (`Serialize`, the same fields). Owns the wording and the layout, no arithmetic beyond it.

use std::fmt;

use serde::Serialize;

/// One host among those that set the tail.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TailHost {
    pub host: String,
    pub remaining: u64,
    /// Requests/s it is served at.
    pub rate: f64,
    /// remaining / rate: the least time it takes, however many nodes.
    pub floor_secs: f64,
    /// floor_secs over the estimated wall time.
    pub share_of_wall: f64,
}

/// The estimate on one node count.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeRow {
    pub nodes: u32,
    pub ranks: usize,
    pub wall_secs: f64,
    pub rounds: u32,
    /// The count asked for with `--nodes`.
    pub requested: bool,
    /// Past this count more nodes stop helping (see `knee_rule`).
    pub knee: bool,
}

/// The whole forecast.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Forecast {
    /// The output folder, or the generated list.
    pub source: String,
    pub nodes: u32,
    pub ranks_per_node: u32,
    pub ranks: usize,
    pub rank_images_per_sec: f64,
    /// Where the rank throughput came from.
    pub throughput_from: String,
    /// Hosts with rows left.
    pub hosts: usize,
    /// Hosts the overrides file excludes.
    pub excluded: Vec<String>,
    pub urls_done: u64,
    pub urls_remaining: u64,
    /// With rounds, as a download on many ranks runs.
    pub estimated_secs: f64,
    pub rounds: u32,
    /// Time lost between rounds: drains and restarts.
    pub drain_secs: f64,
    /// One plan for the whole run, no rounds.
    pub static_secs: f64,
    pub politeness_floor_secs: f64,
    pub cpu_floor_secs: f64,
    pub tail: Vec<TailHost>,
    pub nodes_table: Vec<NodeRow>,
    pub knee_nodes: Option<u32>,
    pub knee_rule: String,
    pub slurm_time: String,
    /// Seconds of download one job of `slurm_time` gives.
    pub slurm_work_secs: f64,
    /// Chained jobs the estimate needs; `None` when a job leaves no time to download.
    pub slurm_jobs: Option<u64>,
    /// `SLURM_CHAIN_JOBS`.
    pub chain_jobs: u32,
}

/// Seconds as a person reads them: "45 s", "12.0 min", "5.3 h", "16.9 d".
pub fn human(secs: f64) -> String {
    match secs {
        s if s < 90.0 => format!("{s:.0} s"),
        s if s < 90.0 * 60.0 => format!("{:.1} min", s / 60.0),
        s if s < 48.0 * 3600.0 => format!("{:.1} h", s / 3600.0),
        s => format!("{:.1} d", s / 86400.0),
    }
}

impl fmt::Display for Forecast {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "plan: {} on {} node(s) × {} rank(s) = {} ranks, {:.0} images/s per rank ({})",
            self.source, self.nodes, self.ranks_per_node, self.ranks, self.rank_images_per_sec, self.throughput_from
        )?;
        write!(f, "  remaining: {} URLs on {} hosts", self.urls_remaining, self.hosts)?;
        if self.urls_done > 0 {
            write!(f, " ({} already committed)", self.urls_done)?;
        }
        writeln!(f)?;
        if !self.excluded.is_empty() {
            writeln!(f, "  excluded by the overrides file, not planned: {}", self.excluded.join(", "))?;
        }
        if self.urls_remaining == 0 {
            return writeln!(f, "  nothing remains: the job is complete");
        }
        writeln!(
            f,
            "  estimated wall time: {} ({} round(s); {} lost to draining between them)",
            human(self.estimated_secs),
            self.rounds,
            human(self.drain_secs)
        )?;
        writeln!(f, "  static split (one plan, no rounds): {}", human(self.static_secs))?;
        let tail = self.tail.first().map(|h| format!(": {} at {:.2} req/s", h.host, h.rate)).unwrap_or_default();
        writeln!(f, "  politeness floor: {} (the longest host{tail})", human(self.politeness_floor_secs))?;
        writeln!(
            f,
            "  CPU floor: {} (all URLs over {} ranks × {:.0} images/s)",
            human(self.cpu_floor_secs),
            self.ranks,
            self.rank_images_per_sec
        )?;
        writeln!(f, "  hosts that set the tail (remaining / rate, and its share of the wall time):")?;
        for h in &self.tail {
            writeln!(
                f,
                "    {:<40} {:>12} URLs  {:>6.2} req/s  {:>9}  {:>5.1}%",
                h.host,
                h.remaining,
                h.rate,
                human(h.floor_secs),
                h.share_of_wall * 100.0
            )?;
        }
        writeln!(f, "  wall time by node count (knee: {}):", self.knee_rule)?;
        writeln!(f, "    {:>6} {:>6} {:>10} {:>7}", "nodes", "ranks", "wall", "rounds")?;
        for r in &self.nodes_table {
            let mut note = Vec::new();
            if r.requested {
                note.push("requested");
            }
            if r.knee {
                note.push("knee: more nodes stop helping");
            }
            let note = if note.is_empty() { String::new() } else { format!("  <- {}", note.join("; ")) };
            writeln!(f, "    {:>6} {:>6} {:>10} {:>7}{note}", r.nodes, r.ranks, human(r.wall_secs), r.rounds)?;
        }
        if self.knee_nodes.is_none() {
            writeln!(f, "    no knee in the table: doubling the nodes still helps at the largest count")?;
        }
        match self.slurm_jobs {
            Some(jobs) => {
                write!(
                    f,
                    "  Slurm: {jobs} chained job(s) of SLURM_TIME {} ({} of download each; queue waits not counted)",
                    self.slurm_time,
                    human(self.slurm_work_secs)
                )?;
                if jobs > u64::from(self.chain_jobs) {
                    write!(f, "; SLURM_CHAIN_JOBS is {}: raise it to {jobs}", self.chain_jobs)?;
                }
                writeln!(f)
            }
            None => writeln!(
                f,
                "  Slurm: a job of SLURM_TIME {} leaves no time to download once the end of a job is kept back \
                 (REQUEST_TIMEOUT_SECS and the final commit); raise SLURM_TIME",
                self.slurm_time
            ),
        }
    }
}
