//! A batch's committed counts in one small file beside its shards, so planning and summaries do
//! not read every shard again.
//!
//! `ledger.json` is written by the writer after each commit (temporary file, then rename) and
//! says which shards it covers (`next_seq`: every shard numbered below it). It is derived data:
//! the shards stay the truth. A reader trusts it only when the batch folder holds exactly the
//! shards it covers; otherwise (a crash between a commit and its summary, a summary from an
//! older version, a damaged file) the reader counts from the shards as before.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Name of the summary file in a batch folder.
pub const SUMMARY_FILE: &str = "ledger.json";

/// What a batch's committed shards hold, by each row's final record (see `ledger`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchSummary {
    /// Every shard numbered below this is counted, and no other.
    pub next_seq: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub retriable: u64,
    pub failed_by_class: BTreeMap<String, u64>,
    pub data_bytes: u64,
    pub duplicates: u64,
    pub superseded: u64,
    pub batch_ids: BTreeSet<String>,
}

impl BatchSummary {
    /// Adds one committed success; `replaces` is the class of the retriable failure it replaces.
    pub fn add_success(&mut self, bytes: u64, replaces: Option<&str>) {
        self.take_back(replaces);
        self.succeeded += 1;
        self.data_bytes += bytes;
    }

    /// Adds one committed failure; `replaces` as for [`BatchSummary::add_success`].
    pub fn add_failure(&mut self, class: &str, retriable: bool, replaces: Option<&str>) {
        self.take_back(replaces);
        self.failed += 1;
        self.retriable += u64::from(retriable);
        *self.failed_by_class.entry(class.to_string()).or_default() += 1;
    }

    /// A retried row's earlier record (a retriable failure of `class`) is no longer final.
    fn take_back(&mut self, replaces: Option<&str>) {
        let Some(class) = replaces else { return };
        self.failed = self.failed.saturating_sub(1);
        self.retriable = self.retriable.saturating_sub(1);
        if let Some(n) = self.failed_by_class.get_mut(class) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.failed_by_class.remove(class);
            }
        }
        self.superseded += 1;
    }
}

/// Writes `summary` into batch folder `dir`, replacing the previous one atomically.
pub fn write_summary(dir: &Path, summary: &BatchSummary) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{SUMMARY_FILE}.{}.tmp", std::process::id()));
    fs::write(&tmp, serde_json::to_vec(summary).expect("a summary serialises"))?;
    fs::rename(&tmp, dir.join(SUMMARY_FILE))
}

/// The summary of batch folder `dir`, if there is a readable one.
pub fn read_summary(dir: &Path) -> Option<BatchSummary> {
    serde_json::from_slice(&fs::read(dir.join(SUMMARY_FILE)).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retried_row_moves_from_its_old_class_to_its_new_record() {
        let mut s = BatchSummary::default();
        s.add_failure("timeout", true, None);
        s.add_failure("http_4xx", false, None);
        s.add_success(100, Some("timeout"));
        assert_eq!((s.succeeded, s.failed, s.retriable, s.superseded, s.data_bytes), (1, 1, 0, 1, 100));
        assert_eq!(s.failed_by_class, BTreeMap::from([("http_4xx".to_string(), 1)]));
    }

    #[test]
    fn summaries_round_trip_and_damaged_ones_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_summary(dir.path()), None);
        let s = BatchSummary { next_seq: 3, succeeded: 5, ..BatchSummary::default() };
        write_summary(dir.path(), &s).unwrap();
        assert_eq!(read_summary(dir.path()), Some(s));
        fs::write(dir.path().join(SUMMARY_FILE), b"{\"next_seq\": ").unwrap();
        assert_eq!(read_summary(dir.path()), None);
    }
}
