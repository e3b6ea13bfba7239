//! `refresh/report.json`: how many images fall in each class, overall, per server and per
//! dataset, and what was read. Its maps grow with the servers and datasets, never with the rows.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::classify::{ClassCounts, Verdict};
use super::fields::NAMES;
use super::read::Tally;

/// The dataset of an image without an occurrence `datasetKey` on either side.
pub const UNKNOWN_DATASET: &str = "unknown";

/// What the diff found (`refresh/report.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiffReport {
    /// Images in the plan: one row each.
    pub images: u64,
    pub classes: ClassCounts,
    /// Images by reason: `not_in_old`, `failed_in_old` (both `new`), `not_in_snapshot` (`gone`),
    /// `removed_in_old` (`removed`).
    pub reasons: BTreeMap<String, u64>,
    /// `metadata_changed` images by field that changed (an image counts once per field).
    pub changed_fields: BTreeMap<String, u64>,
    /// Whether the occurrence fields were compared: only when both snapshots have them (the
    /// old manifest has an occurrence field on some row, the new one has occurrence files).
    pub occurrence_compared: bool,
    /// Scratch parts the snapshots were cut into (see the module doc of `refresh::diff`).
    pub parts: usize,
    /// What was read of the old manifest, the new batch files and the new occurrence files.
    pub old: Tally,
    pub new: Tally,
    pub occurrence: Tally,
    /// Images per class by server: the new snapshot's server, the old one's for `gone`.
    pub per_server: BTreeMap<String, ClassCounts>,
    /// Images per class by dataset: the occurrence `datasetKey` (the new snapshot's, else the
    /// old one's), else `unknown`.
    pub per_dataset: BTreeMap<String, ClassCounts>,
    /// The plan's folder.
    pub plan: String,
}

impl DiffReport {
    /// Counts one image.
    pub fn count(&mut self, v: &Verdict, server: &str, dataset: &str) {
        self.images += 1;
        self.classes.add(v.class, 1);
        if let Some(reason) = v.reason {
            bump(&mut self.reasons, reason.as_str());
        }
        for (i, name) in NAMES.iter().enumerate() {
            if v.changed & (1 << i) != 0 {
                bump(&mut self.changed_fields, name);
            }
        }
        by(&mut self.per_server, server).add(v.class, 1);
        let dataset = if dataset.is_empty() { UNKNOWN_DATASET } else { dataset };
        by(&mut self.per_dataset, dataset).add(v.class, 1);
    }
}

fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
    match map.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            map.insert(key.to_string(), 1);
        }
    }
}

/// The counts of `key`, added at zero the first time (no allocation once it is there).
fn by<'a>(map: &'a mut BTreeMap<String, ClassCounts>, key: &str) -> &'a mut ClassCounts {
    if !map.contains_key(key) {
        map.insert(key.to_string(), ClassCounts::default());
    }
    map.get_mut(key).expect("just inserted")
}
