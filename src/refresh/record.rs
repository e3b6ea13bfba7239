//! The records the diff spills to its scratch parts, one kind per input: a row of the old
//! manifest, a URL of the new snapshot's batches, and an occurrence row of the new snapshot.
//! Each record is written length-prefixed (`dedup::spill::put_bytes`) and read back from a part
//! held in memory, borrowing its strings from it.

use super::fields::{take_u32, take_u64, Meta};
use crate::dedup::spill::{put_bytes, take_bytes};

/// What the old snapshot's final record of an image is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Stored,
    Failed,
    /// Taken down (`remove`): never fetched again.
    Removed,
}

impl Status {
    /// The manifest's `status` values; `None` for any other.
    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "stored" => Some(Status::Stored),
            "failed" => Some(Status::Failed),
            "removed" => Some(Status::Removed),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Stored => "stored",
            Status::Failed => "failed",
            Status::Removed => "removed",
        }
    }

    /// Which of two records of one uuid in the old manifest counts (the same uuid in two batches
    /// of an old dataset): a takedown is final, then a stored image beats a failure.
    pub fn rank(self) -> u8 {
        match self {
            Status::Removed => 2,
            Status::Stored => 1,
            Status::Failed => 0,
        }
    }

    fn code(self) -> u8 {
        self.rank()
    }

    fn from_code(c: u8) -> Status {
        match c {
            2 => Status::Removed,
            1 => Status::Stored,
            _ => Status::Failed,
        }
    }
}

/// One row of the old manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct OldRecord<'a> {
    pub uuid: u128,
    pub status: Status,
    pub batch: u64,
    /// The record's row in its shard.
    pub row: u32,
    pub meta: Meta,
    pub server: &'a str,
    /// The shard, relative to the old output folder.
    pub shard: &'a str,
    pub url: &'a str,
    /// The occurrence's `dataset_key`, empty when unknown.
    pub dataset: &'a str,
}

/// One URL of the new snapshot's batches.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRecord<'a> {
    pub uuid: u128,
    pub batch: u64,
    pub meta: Meta,
    pub server: &'a str,
    pub url: &'a str,
}

/// One row of the new snapshot's occurrence files: its occurrence fields.
#[derive(Debug, Clone, PartialEq)]
pub struct OccRecord<'a> {
    pub uuid: u128,
    pub meta: Meta,
    pub dataset: &'a str,
}

impl OldRecord<'_> {
    /// Appends the record, length-prefixed, to `out` (`scratch` is reused between calls).
    pub fn encode(&self, scratch: &mut Vec<u8>, out: &mut Vec<u8>) {
        scratch.clear();
        scratch.extend_from_slice(&self.uuid.to_le_bytes());
        scratch.push(self.status.code());
        scratch.extend_from_slice(&self.batch.to_le_bytes());
        scratch.extend_from_slice(&self.row.to_le_bytes());
        self.meta.encode(scratch);
        for s in [self.server, self.shard, self.url, self.dataset] {
            put_bytes(scratch, s.as_bytes());
        }
        put_bytes(out, scratch);
    }

    pub fn decode(mut b: &[u8]) -> OldRecord<'_> {
        let uuid = take_u128(&mut b);
        let status = Status::from_code(b[0]);
        b = &b[1..];
        let batch = take_u64(&mut b);
        let row = take_u32(&mut b);
        let meta = Meta::decode(&mut b);
        let (server, shard, url, dataset) = (text(&mut b), text(&mut b), text(&mut b), text(&mut b));
        OldRecord { uuid, status, batch, row, meta, server, shard, url, dataset }
    }
}

impl NewRecord<'_> {
    pub fn encode(&self, scratch: &mut Vec<u8>, out: &mut Vec<u8>) {
        scratch.clear();
        scratch.extend_from_slice(&self.uuid.to_le_bytes());
        scratch.extend_from_slice(&self.batch.to_le_bytes());
        self.meta.encode(scratch);
        put_bytes(scratch, self.server.as_bytes());
        put_bytes(scratch, self.url.as_bytes());
        put_bytes(out, scratch);
    }

    pub fn decode(mut b: &[u8]) -> NewRecord<'_> {
        let uuid = take_u128(&mut b);
        let batch = take_u64(&mut b);
        let meta = Meta::decode(&mut b);
        let (server, url) = (text(&mut b), text(&mut b));
        NewRecord { uuid, batch, meta, server, url }
    }
}

impl OccRecord<'_> {
    pub fn encode(&self, scratch: &mut Vec<u8>, out: &mut Vec<u8>) {
        scratch.clear();
        scratch.extend_from_slice(&self.uuid.to_le_bytes());
        self.meta.encode(scratch);
        put_bytes(scratch, self.dataset.as_bytes());
        put_bytes(out, scratch);
    }

    pub fn decode(mut b: &[u8]) -> OccRecord<'_> {
        let uuid = take_u128(&mut b);
        let meta = Meta::decode(&mut b);
        OccRecord { uuid, meta, dataset: text(&mut b) }
    }
}

/// The uuid at the front of any record: what a part is indexed by.
pub fn uuid_of(record: &[u8]) -> u128 {
    u128::from_le_bytes(record[..16].try_into().expect("16 bytes"))
}

/// The records of a part file read whole: `(offset, record)` of each, in order.
pub fn records(part: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at + 4 > part.len() {
            return None;
        }
        let start = at;
        let mut rest = &part[at..];
        let record = take_bytes(&mut rest);
        at = part.len() - rest.len();
        Some((start, record))
    })
}

/// The record at `offset` of a part read whole.
pub fn record_at(part: &[u8], offset: usize) -> &[u8] {
    let mut rest = &part[offset..];
    take_bytes(&mut rest)
}

fn take_u128(rest: &mut &[u8]) -> u128 {
    let (head, tail) = rest.split_at(16);
    *rest = tail;
    u128::from_le_bytes(head.try_into().expect("16 bytes"))
}

/// A string field. Written from `&str`, so it is UTF-8; a damaged scratch file reads as empty
/// rather than panicking.
fn text<'a>(rest: &mut &'a [u8]) -> &'a str {
    std::str::from_utf8(take_bytes(rest)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::refresh::fields::Fingerprinter;

    #[test]
    fn records_round_trip_through_one_part() {
        let f = Fingerprinter::default();
        let mut meta = Meta::default();
        meta.set(&f, 0, Some("CC0"));
        let old = OldRecord {
            uuid: 7 << 100 | 3,
            status: Status::Removed,
            batch: 12,
            row: 4,
            meta,
            server: "a.org",
            shard: "downloads/server_name=a.org/partition_id=12/shard-000001.h5",
            url: "http://a.org/1.jpg",
            dataset: "",
        };
        let new = NewRecord { uuid: 9, batch: 1, meta, server: "b.org", url: "http://b.org/é.jpg" };
        let occ = OccRecord { uuid: 5, meta: Meta::default(), dataset: "d-1" };
        let (mut scratch, mut part) = (Vec::new(), Vec::new());
        old.encode(&mut scratch, &mut part);
        new.encode(&mut scratch, &mut part);
        occ.encode(&mut scratch, &mut part);
        let got: Vec<(usize, &[u8])> = records(&part).collect();
        assert_eq!(got.len(), 3);
        assert_eq!(OldRecord::decode(got[0].1), old);
        assert_eq!(NewRecord::decode(record_at(&part, got[1].0)), new);
        assert_eq!(OccRecord::decode(got[2].1), occ);
        assert_eq!(uuid_of(got[1].1), 9);
    }
}
