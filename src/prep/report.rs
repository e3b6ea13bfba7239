//! The prep report: what was read, kept and dropped, written as `prep_report.json` and printed.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::filter::DropReason;
use crate::store::tables::ServerRow;

/// Malformed lines kept as examples in the report; the rest are only counted.
pub const MAX_SAMPLES: usize = 20;

/// Servers listed by size in the report.
pub const TOP_SERVERS: usize = 10;

/// One malformed line, as an example for the user.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MalformedSample {
    pub line: u64,
    pub problem: String,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct PrepReport {
    pub input: String,
    pub output: String,
    /// `gbif` or `generic`.
    pub schema: String,
    /// Lines of a text input (CSV, TSV), as `wc -l` counts them plus a last line without a
    /// newline: the header and blank lines included. Rows of a parquet input. Always
    /// `lines_not_rows + rows_kept + sum(dropped)`.
    pub rows_read: u64,
    /// Lines read that hold no row: the header and blank lines of a text input; 0 for parquet.
    pub lines_not_rows: u64,
    /// Rows that passed every filter (before identical URLs were merged).
    pub rows_kept: u64,
    /// Dropped rows by reason; every reason is listed, zeros included.
    pub dropped: BTreeMap<String, u64>,
    pub malformed_samples: Vec<MalformedSample>,
    /// Kept rows whose URL was already kept from another row; they are linked to it, not fetched again.
    pub duplicate_url_rows: u64,
    pub unique_urls: u64,
    pub servers: u64,
    pub batches: u64,
    pub batch_size: usize,
    /// Keys read from the ignored-servers file.
    pub ignored_servers_listed: u64,
    pub largest_servers: Vec<ServerRow>,
    pub wall_seconds: f64,
    /// Peak resident memory of the prep process, in MiB (Linux `VmHWM`).
    pub peak_rss_mib: Option<f64>,
    /// The join with `--occurrence`, when asked.
    pub occurrence: Option<super::occurrence::OccurrenceJoin>,
}

impl PrepReport {
    pub fn new() -> PrepReport {
        let dropped = DropReason::ALL.iter().map(|r| (r.as_str().to_string(), 0)).collect();
        PrepReport { dropped, ..Default::default() }
    }

    pub fn count_drop(&mut self, reason: DropReason) {
        *self.dropped.entry(reason.as_str().to_string()).or_default() += 1;
    }

    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }
}

impl fmt::Display for PrepReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "prep: {} -> {} ({} schema)", self.input, self.output, self.schema)?;
        writeln!(f, "  rows read        {:>12}", self.rows_read)?;
        if self.lines_not_rows > 0 {
            writeln!(f, "    {:<18}{:>10}  (lines that hold no row)", "header and blank", self.lines_not_rows)?;
        }
        writeln!(f, "  rows kept        {:>12}", self.rows_kept)?;
        writeln!(f, "  rows dropped     {:>12}", self.dropped_total())?;
        for (reason, n) in self.dropped.iter().filter(|(_, n)| **n > 0) {
            writeln!(f, "    {reason:<18}{n:>10}")?;
        }
        for s in &self.malformed_samples {
            writeln!(f, "    e.g. line {}: {}", s.line, s.problem)?;
        }
        writeln!(f, "  duplicate URLs   {:>12}  (linked to the first, fetched once)", self.duplicate_url_rows)?;
        writeln!(f, "  unique URLs      {:>12}", self.unique_urls)?;
        writeln!(f, "  servers          {:>12}", self.servers)?;
        writeln!(f, "  batches          {:>12}  (at most {} URLs each)", self.batches, self.batch_size)?;
        if !self.largest_servers.is_empty() {
            writeln!(f, "  largest servers:")?;
            for s in &self.largest_servers {
                writeln!(f, "    {:<40}{:>10} URLs {:>6} batches", s.server_name, s.url_count, s.batch_count)?;
            }
        }
        if let Some(j) = &self.occurrence {
            writeln!(
                f,
                "  occurrence join  {:>12}  URLs matched in {} ({} occurrence rows); {} without a row{}",
                j.matched_urls,
                j.file,
                j.rows,
                j.unmatched_urls,
                if j.missing_columns.is_empty() {
                    String::new()
                } else {
                    format!("; columns missing: {}", j.missing_columns.join(", "))
                }
            )?;
            if j.malformed_lines > 0 {
                writeln!(f, "    {} occurrence line(s) with too few fields skipped", j.malformed_lines)?;
            }
        }
        write!(f, "  wall time {:.1} s", self.wall_seconds)?;
        if let Some(rss) = self.peak_rss_mib {
            write!(f, ", peak RSS {rss:.0} MiB")?;
        }
        Ok(())
    }
}

/// Peak resident set size of this process in MiB, from `/proc/self/status` (Linux only).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
