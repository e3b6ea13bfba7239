//! `row`: one URL on its way through the host: the [`Task`] in the queue, and the record it ends
//! as (a success with the stored image, or a failure with its class).

use std::time::{SystemTime, UNIX_EPOCH};

use crate::fetch::client::Conditions;
use crate::host::outcome::ErrorClass;
use crate::imaging::Processed;
use crate::store::shards::ledger::StaleImage;
use crate::store::shards::record::{hex, FailureRecord, SuccessRecord};
use crate::store::shards::revalidation::{Answer, Previous, Revalidated};

/// One URL waiting in the host's queue.
#[derive(Debug, Clone)]
pub struct Task {
    pub uuid: String,
    pub url: String,
    pub source_ids: Vec<String>,
    pub partition: u64,
    /// Attempts already made.
    pub attempts: u32,
    /// Last HTTP status seen, for the failure record.
    pub last_status: u16,
    /// With `--retry-failed`: the class of the committed retriable failure this row retries.
    pub replaces: Option<String>,
    /// Where the last answer came from when redirects led there, and how many were followed.
    pub final_url: Option<String>,
    pub redirects: u32,
    /// The image answer's `ETag` and `Last-Modified`, once it came.
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// With `--revalidate`: the stored image this row asks about again (boxed: most rows have
    /// none).
    pub stale: Option<Box<StaleImage>>,
}

impl Task {
    /// The conditions its requests carry: the stored image's validators, none for a first
    /// download.
    pub fn conditions(&self) -> Conditions {
        self.stale.as_ref().map(|s| Conditions::of(&s.etag, &s.last_modified)).unwrap_or_default()
    }

    /// A revalidation's answer for the writer; `None` for a row that is not a revalidation.
    pub fn revalidated(&self, answer: Answer) -> Option<Revalidated> {
        let stale = self.stale.as_ref()?;
        let previous = Previous { shard: stale.shard.clone(), row: stale.row };
        Some(Revalidated { previous, answer, at: unix_now() })
    }

    /// The success record of this row, with the processed image.
    pub fn success(&self, host: &str, p: Processed) -> SuccessRecord {
        let now = unix_now();
        SuccessRecord {
            uuid: self.uuid.clone(),
            url: self.url.clone(),
            server: host.to_string(),
            source_ids: self.source_ids.clone(),
            original_width: p.original_width,
            original_height: p.original_height,
            stored_width: p.stored_width,
            stored_height: p.stored_height,
            format: p.format.name().to_string(),
            data: p.data,
            sha256: hex(&p.sha256),
            // Empty unless MD5=on.
            md5: p.md5.map(|m| hex(&m)).unwrap_or_default(),
            fetched_at: now,
            final_url: self.final_url.clone().unwrap_or_default(),
            redirects: self.redirects,
            etag: self.etag.clone().unwrap_or_default(),
            last_modified: self.last_modified.clone().unwrap_or_default(),
            pdq: p.fingerprint.map(|f| f.pdq_hex()).unwrap_or_default(),
            pdq_quality: p.fingerprint.map_or(0, |f| f.pdq_quality),
            phash: p.fingerprint.map_or(0, |f| f.phash),
            // A revalidation's new bytes are given their version by the writer, which reads the
            // previous record (`actors::writer`).
            version: 1,
            checked_at: now,
            check_error: String::new(),
        }
    }

    /// The failure record of this row.
    pub fn failure(self, host: &str, class: ErrorClass, detail: String, retriable: bool) -> FailureRecord {
        FailureRecord {
            uuid: self.uuid,
            url: self.url,
            server: host.to_string(),
            source_ids: self.source_ids,
            error_class: class.as_str().to_string(),
            detail,
            attempts: self.attempts,
            http_status: self.last_status,
            retriable,
            failed_at: unix_now(),
        }
    }
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}
