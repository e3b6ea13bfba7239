//! In-process counters: what the progress line and the final summary read.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::host::outcome::ErrorClass;

/// Shared by every actor of a rank (behind an `Arc`). Only `events.rs` writes to it.
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub response_bytes: AtomicU64,
    pub images_stored: AtomicU64,
    pub stored_bytes: AtomicU64,
    pub rows_failed: AtomicU64,
    pub retries: AtomicU64,
    pub shards_committed: AtomicU64,
    /// Responses with status 429.
    pub refusals_429: AtomicU64,
    pub hosts_active: AtomicI64,
    pub hosts_backing_off: AtomicI64,
    pub hosts_parked: AtomicI64,
    pub hosts_done: AtomicI64,
    pub failed_by_class: Mutex<BTreeMap<ErrorClass, u64>>,
    /// `download --revalidate`: stored images asked about again (one per row), and of them
    /// those asked unconditionally (their record has neither `ETag` nor `Last-Modified`).
    pub revalidations_sent: AtomicU64,
    pub revalidations_unconditional: AtomicU64,
    /// How revalidations ended: a 304; new bytes stored; a 200 with the stored bytes; failed
    /// (the stored image kept).
    pub not_modified: AtomicU64,
    pub changed: AtomicU64,
    pub same_bytes: AtomicU64,
    pub revalidations_failed: AtomicU64,
}

/// A consistent-enough copy of the counters, for printing and JSON.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Snapshot {
    pub requests: u64,
    pub response_bytes: u64,
    pub images_stored: u64,
    pub stored_bytes: u64,
    pub rows_failed: u64,
    pub retries: u64,
    pub shards_committed: u64,
    pub refusals_429: u64,
    pub hosts_active: i64,
    pub hosts_backing_off: i64,
    pub hosts_parked: i64,
    pub hosts_done: i64,
    pub failed_by_class: BTreeMap<String, u64>,
    /// See [`Counters`]; absent in summaries of older versions.
    #[serde(default)]
    pub revalidations_sent: u64,
    #[serde(default)]
    pub revalidations_unconditional: u64,
    #[serde(default)]
    pub not_modified: u64,
    #[serde(default)]
    pub changed: u64,
    #[serde(default)]
    pub same_bytes: u64,
    #[serde(default)]
    pub revalidations_failed: u64,
}

impl Snapshot {
    /// Adds another rank's counters to these.
    pub fn add(&mut self, o: &Snapshot) {
        self.requests += o.requests;
        self.response_bytes += o.response_bytes;
        self.images_stored += o.images_stored;
        self.stored_bytes += o.stored_bytes;
        self.rows_failed += o.rows_failed;
        self.retries += o.retries;
        self.shards_committed += o.shards_committed;
        self.refusals_429 += o.refusals_429;
        self.hosts_active += o.hosts_active;
        self.hosts_backing_off += o.hosts_backing_off;
        self.hosts_parked += o.hosts_parked;
        self.hosts_done += o.hosts_done;
        self.revalidations_sent += o.revalidations_sent;
        self.revalidations_unconditional += o.revalidations_unconditional;
        self.not_modified += o.not_modified;
        self.changed += o.changed;
        self.same_bytes += o.same_bytes;
        self.revalidations_failed += o.revalidations_failed;
        for (k, v) in &o.failed_by_class {
            *self.failed_by_class.entry(k.clone()).or_default() += v;
        }
    }
}

impl Counters {
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            requests: self.requests.load(Relaxed),
            response_bytes: self.response_bytes.load(Relaxed),
            images_stored: self.images_stored.load(Relaxed),
            stored_bytes: self.stored_bytes.load(Relaxed),
            rows_failed: self.rows_failed.load(Relaxed),
            retries: self.retries.load(Relaxed),
            shards_committed: self.shards_committed.load(Relaxed),
            refusals_429: self.refusals_429.load(Relaxed),
            hosts_active: self.hosts_active.load(Relaxed),
            hosts_backing_off: self.hosts_backing_off.load(Relaxed),
            hosts_parked: self.hosts_parked.load(Relaxed),
            hosts_done: self.hosts_done.load(Relaxed),
            revalidations_sent: self.revalidations_sent.load(Relaxed),
            revalidations_unconditional: self.revalidations_unconditional.load(Relaxed),
            not_modified: self.not_modified.load(Relaxed),
            changed: self.changed.load(Relaxed),
            same_bytes: self.same_bytes.load(Relaxed),
            revalidations_failed: self.revalidations_failed.load(Relaxed),
            failed_by_class: self
                .failed_by_class
                .lock()
                .expect("counter lock")
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), *v))
                .collect(),
        }
    }
}
