//! A batch's committed counts in one small file beside its shards, so planning and summaries do
//! not read every shard again.
//!
//! `ledger.json` is written by the writer after each commit (`store::atomic`: temporary file,
//! fsync, rename) and says which shards it covers: each shard's number and size in bytes. It is
//! derived data: the shards stay the truth. A reader trusts it only when the batch folder holds
//! exactly the shards it covers, with the same sizes ([`BatchSummary::covers`]); otherwise (a
//! crash between a commit and its summary, a shard moved out by hand or by `verify --repair`, a
//! summary from an older version, a damaged file) the reader counts from the shards and says why.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::store::atomic;

/// Name of the summary file in a batch folder.
pub const SUMMARY_FILE: &str = "ledger.json";

/// What a batch's committed shards hold, by each row's final record (see `ledger`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchSummary {
    /// The next shard number of the batch (every committed shard is numbered below it).
    pub next_seq: u64,
    /// The shards counted, by number, with each one's size in bytes: the summary is trusted only
    /// while the folder holds exactly these. `None` in summaries of older versions (never
    /// trusted).
    #[serde(default)]
    pub shards: Option<BTreeMap<u64, u64>>,
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
    /// Whether this summary counts exactly the shards `present` (number to size in bytes);
    /// `Err` says why not, for the one line a reader prints before counting from the shards.
    pub fn covers(&self, present: &BTreeMap<u64, u64>) -> Result<(), String> {
        let Some(counted) = &self.shards else {
            return Err("its ledger.json was written by an older version".into());
        };
        if counted == present {
            return Ok(());
        }
        let name = |seq: &u64| format!("shard-{seq:06}");
        if let Some(seq) = counted.keys().find(|s| !present.contains_key(s)) {
            return Err(format!("{} is counted in ledger.json but missing", name(seq)));
        }
        if let Some(seq) = present.keys().find(|s| !counted.contains_key(s)) {
            return Err(format!("{} is not counted in ledger.json", name(seq)));
        }
        let (seq, size) = present.iter().find(|(s, n)| counted.get(s) != Some(n)).expect("maps differ");
        Err(format!("{} is {size} bytes, ledger.json counted {}", name(seq), counted[seq]))
    }

    /// Adds one committed success; `replaces` is the class of the retriable failure it replaces.
    pub fn add_success(&mut self, bytes: u64, replaces: Option<&str>) {
        self.take_back(replaces);
        self.succeeded += 1;
        self.data_bytes += bytes;
    }

    /// Adds one committed success that replaces the row's earlier stored image (a revalidation,
    /// `download --revalidate`): the row was counted already.
    pub fn add_revalidated(&mut self, bytes: u64) {
        self.superseded += 1;
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
pub fn write_summary(dir: &Path, summary: &BatchSummary) -> Result<(), atomic::CommitError> {
    atomic::replace(&dir.join(SUMMARY_FILE), &serde_json::to_vec(summary).expect("a summary serialises"))
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
    fn a_summary_covers_only_the_exact_shards_it_counted_and_says_what_differs() {
        let present = BTreeMap::from([(0, 100), (1, 200), (2, 300)]);
        let s = |shards: &[(u64, u64)]| BatchSummary {
            shards: Some(shards.iter().copied().collect()),
            ..BatchSummary::default()
        };
        assert_eq!(s(&[(0, 100), (1, 200), (2, 300)]).covers(&present), Ok(()));
        let middle_gone =
            s(&[(0, 100), (1, 200), (2, 300), (3, 50)]).covers(&BTreeMap::from([(0, 100), (2, 300), (3, 50)]));
        assert_eq!(middle_gone.unwrap_err(), "shard-000001 is counted in ledger.json but missing");
        let extra = s(&[(0, 100), (1, 200)]).covers(&present).unwrap_err();
        assert_eq!(extra, "shard-000002 is not counted in ledger.json");
        let resized = s(&[(0, 100), (1, 200), (2, 299)]).covers(&present).unwrap_err();
        assert_eq!(resized, "shard-000002 is 300 bytes, ledger.json counted 299");
        let old = BatchSummary { next_seq: 3, ..BatchSummary::default() };
        assert!(old.covers(&present).unwrap_err().contains("older version"));
        let old_json: BatchSummary = serde_json::from_str(
            r#"{"next_seq":3,"succeeded":1,"failed":0,"retriable":0,
            "failed_by_class":{},"data_bytes":0,"duplicates":0,"superseded":0,"batch_ids":[]}"#,
        )
        .unwrap();
        assert_eq!(old_json.shards, None, "a summary of an older version reads, and is never trusted");
    }

    #[test]
    fn summaries_round_trip_and_damaged_ones_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_summary(dir.path()), None);
        let s = BatchSummary {
            next_seq: 3,
            succeeded: 5,
            shards: Some(BTreeMap::from([(2, 9)])),
            ..BatchSummary::default()
        };
        write_summary(dir.path(), &s).unwrap();
        assert_eq!(read_summary(dir.path()), Some(s));
        fs::write(dir.path().join(SUMMARY_FILE), b"{\"next_seq\": ").unwrap();
        assert_eq!(read_summary(dir.path()), None);
    }
}
