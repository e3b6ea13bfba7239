//! The end-of-run summary: what the committed shards hold, and what this run did.
//!
//! Totals come from the shards (the truth), rates and refusals from the run's counters.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::store::shards::ledger::Ledger;
use crate::telemetry::counters::Snapshot;

#[derive(Debug, Clone, Serialize, Default)]
pub struct DownloadSummary {
    pub output: String,
    /// Rows prep wrote for the hosts this run covered.
    pub rows_total: u64,
    /// Rows with a committed success record.
    pub succeeded: u64,
    /// Rows whose final committed record is a failure.
    pub failed: u64,
    /// Of `failed`, those `download --retry-failed` would try again (parked, timeout, 5xx, ...).
    pub retriable: u64,
    pub failed_by_class: BTreeMap<String, u64>,
    /// Rows with no committed record yet, or waiting to be retried by a `--retry-failed` run
    /// (or revalidated by a `--revalidate` run) that stopped early: the next run fetches them.
    pub remaining: u64,
    /// Rows found in more than one committed shard, not explained by `--retry-failed` or
    /// `--revalidate` (should be 0).
    pub duplicates: u64,
    pub stored_bytes: u64,
    /// Whether the run stopped early because of the deadline.
    pub stopped_by_deadline: bool,
    pub wall_seconds: f64,
    /// This run: images stored per second of wall time.
    pub images_per_second: f64,
    /// This run: response bytes per second.
    pub bytes_per_second: f64,
    pub run: Snapshot,
}

impl DownloadSummary {
    pub fn from_ledger(output: &str, rows_total: u64, ledger: &Ledger, run: Snapshot, wall: f64) -> DownloadSummary {
        let mut failed_by_class = BTreeMap::new();
        for b in ledger.batches.values() {
            for (class, n) in &b.failed_by_class {
                *failed_by_class.entry(class.clone()).or_default() += n;
            }
        }
        let (succeeded, failed) = (ledger.succeeded(), ledger.failed());
        let wall = wall.max(1e-9);
        DownloadSummary {
            output: output.to_string(),
            rows_total,
            succeeded,
            failed,
            retriable: ledger.retriable(),
            failed_by_class,
            remaining: rows_total.saturating_sub(ledger.done()),
            duplicates: ledger.batches.values().map(|b| b.duplicates).sum(),
            stored_bytes: ledger.batches.values().map(|b| b.data_bytes).sum(),
            stopped_by_deadline: false,
            wall_seconds: wall,
            images_per_second: run.images_stored as f64 / wall,
            bytes_per_second: run.response_bytes as f64 / wall,
            run,
        }
    }
}

impl fmt::Display for DownloadSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "download: {}", self.output)?;
        writeln!(f, "  rows             {:>12}", self.rows_total)?;
        writeln!(f, "  stored           {:>12}  ({:.1} MB)", self.succeeded, self.stored_bytes as f64 / 1e6)?;
        writeln!(f, "  failed           {:>12}", self.failed)?;
        for (class, n) in &self.failed_by_class {
            writeln!(f, "    {class:<18}{n:>10}")?;
        }
        if self.retriable > 0 {
            writeln!(f, "    of which retriable{:>10}  (`download --retry-failed` tries them again)", self.retriable)?;
        }
        writeln!(f, "  remaining        {:>12}", self.remaining)?;
        let r = &self.run;
        if r.revalidations_sent > 0 {
            writeln!(
                f,
                "  revalidated      {:>12}  ({} not modified, {} changed and stored again, {} same bytes, {} failed: image kept)",
                r.revalidations_sent, r.not_modified, r.changed, r.same_bytes, r.revalidations_failed
            )?;
            if r.revalidations_unconditional > 0 {
                writeln!(
                    f,
                    "    of which unconditional{:>6}  (stored without ETag or Last-Modified: asked for the whole image)",
                    r.revalidations_unconditional
                )?;
            }
        }
        if self.duplicates > 0 {
            writeln!(f, "  DUPLICATE ROWS   {:>12}  (please report this)", self.duplicates)?;
        }
        writeln!(
            f,
            "  this run: {} requests, {} refused with 429, {} retries, {:.1} images/s, {:.2} MB/s, {:.1} s",
            self.run.requests,
            self.run.refusals_429,
            self.run.retries,
            self.images_per_second,
            self.bytes_per_second / 1e6,
            self.wall_seconds
        )?;
        if self.stopped_by_deadline {
            write!(f, "  stopped for the deadline: {} rows remain; run `download` again to continue", self.remaining)?;
        } else if self.remaining > 0 {
            write!(f, "  {} rows remain; run `download` again to continue", self.remaining)?;
        } else {
            write!(f, "  complete: every row has a committed record")?;
        }
        Ok(())
    }
}
