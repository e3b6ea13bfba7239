//! The record a revalidation (`download --revalidate`) commits for a stored image, made from the
//! row's previous record.
//!
//! A revalidation asks the server again, conditionally, about an image a shard already holds.
//! What it answered becomes the row's new final record, in the shard being committed:
//! - `304 Not Modified`: the previous record with `fetched_at` (and `checked_at`) now: the
//!   server confirmed the bytes at that moment. The bytes are not copied: the new row refers to
//!   where they lie (`carried`): the previous record's own shard and row, or, when the previous
//!   record was itself carried over, where it was carried from. A later merge of the batch
//!   (`compact`) copies the bytes of a reference into one of the shards it replaces, so no
//!   reference outlives its target.
//! - `200` with bytes whose SHA-256 is the stored one: the same, with the answer's validators.
//! - `200` with other bytes: the new image, stored like a first download's, as version + 1.
//! - a failure (404, timeouts, ...): the stored image is kept, referred to as for a 304, with
//!   `fetched_at` unchanged and `checked_at` now, `check_error` the failure's class; the row is
//!   not asked again in the same run.
//!
//! Does not own: deciding what the answer was (the ServerActor) or writing the shard (`hdf5_io`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::carried::CarriedFrom;
use super::error::ShardError;
use super::hdf5_io::{read_records, ShardRecords};
use super::image_data::ImageData;
use super::record::SuccessRecord;

/// A stored image's final record: the committed shard holding it and its index among that
/// shard's successes.
#[derive(Debug, Clone, PartialEq)]
pub struct Previous {
    pub shard: PathBuf,
    pub row: u64,
}

/// What the server answered a revalidation.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// `304 Not Modified`.
    NotModified,
    /// The image, fetched and processed as a first download's.
    Served(Box<SuccessRecord>),
    /// The revalidation failed, with this error class (`ErrorClass::as_str()`).
    Failed { class: String },
}

/// One revalidated row, as the ServerActor hands it to the writer.
#[derive(Debug, Clone, PartialEq)]
pub struct Revalidated {
    pub previous: Previous,
    pub answer: Answer,
    /// When the answer came, Unix seconds.
    pub at: f64,
}

/// The records to commit for `rows`, in order, each with where its bytes are when they are not
/// in the new shard. Reads each previous shard's records once (without image bytes).
/// `out` is the output folder the shards lie in.
pub fn resolve(out: &Path, rows: Vec<Revalidated>) -> Result<Vec<(SuccessRecord, Option<CarriedFrom>)>, ShardError> {
    let mut shards: HashMap<PathBuf, ShardRecords> = HashMap::new();
    let mut resolved = Vec::with_capacity(rows.len());
    for Revalidated { previous, answer, at } in rows {
        if !shards.contains_key(&previous.shard) {
            let records = read_records(&previous.shard, false)?;
            shards.insert(previous.shard.clone(), records);
        }
        let records = &shards[&previous.shard];
        let row = previous.row as usize;
        let Some(before) = records.contents.successes.get(row) else {
            return Err(ShardError::Damaged {
                path: previous.shard.clone(),
                what: format!("row {row} to revalidate is past the shard's images"),
            });
        };
        let kept = SuccessRecord { data: Vec::new(), checked_at: at, check_error: String::new(), ..before.clone() };
        let record = match answer {
            Answer::NotModified => SuccessRecord { fetched_at: at, ..kept },
            Answer::Served(new) if new.sha256 == before.sha256 => SuccessRecord {
                fetched_at: new.fetched_at,
                checked_at: new.fetched_at,
                etag: new.etag,
                last_modified: new.last_modified,
                ..kept
            },
            Answer::Served(new) => {
                let version = before.version.saturating_add(1);
                resolved.push((SuccessRecord { version, ..*new }, None));
                continue;
            }
            Answer::Failed { class } => SuccessRecord { check_error: class, ..kept },
        };
        let from = bytes_of(out, &previous, records)?;
        resolved.push((record, Some(from)));
    }
    Ok(resolved)
}

/// Where the bytes of `previous`'s image lie: where it was carried from, or its own shard and
/// row (relative to `out`), with their length and CRC-32.
fn bytes_of(out: &Path, previous: &Previous, records: &ShardRecords) -> Result<CarriedFrom, ShardError> {
    let row = previous.row as usize;
    let from = previous.shard.strip_prefix(out).map_err(|_| ShardError::Damaged {
        path: previous.shard.clone(),
        what: format!("the shard is not inside the output folder {}", out.display()),
    })?;
    // A shard of an older version: the bytes' checksum is computed once, here.
    let crc32 = || Ok(crc32fast::hash(&ImageData::open(&previous.shard)?.read(row)?));
    records.bytes_at(from.display().to_string(), row, crc32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::shards::hdf5_io::write_shard;
    use crate::store::shards::ledger::batch_dir;
    use crate::store::shards::record::{test_image, ShardContents};

    #[test]
    fn each_answer_makes_the_record_the_module_doc_says() {
        let out = tempfile::tempdir().unwrap();
        let dir = batch_dir(out.path(), "a.org", 0);
        let mut stored: Vec<SuccessRecord> = (0..4).map(|i| test_image(&format!("u{i}"), i as u8, 100)).collect();
        stored[2].version = 3;
        let shard = write_shard(&dir, 0, &ShardContents { successes: stored.clone(), failures: vec![] }, "b").unwrap();
        let prev = |row| Previous { shard: shard.clone(), row };
        let changed = SuccessRecord { sha256: "new".into(), fetched_at: 9.0, ..test_image("u2", 7, 50) };
        let same = SuccessRecord { fetched_at: 9.0, etag: "\"e2\"".into(), ..test_image("u1", 1, 100) };
        let rows = vec![
            Revalidated { previous: prev(0), answer: Answer::NotModified, at: 5.0 },
            Revalidated { previous: prev(1), answer: Answer::Served(Box::new(same)), at: 9.0 },
            Revalidated { previous: prev(2), answer: Answer::Served(Box::new(changed)), at: 9.0 },
            Revalidated { previous: prev(3), answer: Answer::Failed { class: "http_4xx".into() }, at: 6.0 },
        ];
        let got = resolve(out.path(), rows).unwrap();
        let rel = shard.strip_prefix(out.path()).unwrap().display().to_string();
        let at = |row: u64| {
            Some(CarriedFrom {
                from: rel.clone(),
                row,
                own: false,
                length: 100,
                crc32: crc32fast::hash(&[row as u8; 100]),
            })
        };
        let stored = |i: usize| SuccessRecord { data: Vec::new(), ..stored[i].clone() };
        assert_eq!(got[0], (SuccessRecord { fetched_at: 5.0, checked_at: 5.0, ..stored(0) }, at(0)), "304");
        assert_eq!(
            got[1],
            (SuccessRecord { fetched_at: 9.0, checked_at: 9.0, etag: "\"e2\"".into(), ..stored(1) }, at(1)),
            "200 with the stored bytes"
        );
        assert_eq!((got[2].0.version, got[2].0.data.len(), &got[2].1), (4, 50, &None), "200 with new bytes");
        assert_eq!(
            got[3],
            (SuccessRecord { checked_at: 6.0, check_error: "http_4xx".into(), ..stored(3) }, at(3)),
            "a failure keeps the image"
        );
    }
}
