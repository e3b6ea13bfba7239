//! `feed`: a host's rows reach its queue in windows, read off the event loop.
//!
//! A GBIF batch holds 10,000 rows and a rank runs hundreds of hosts: loading whole batches would
//! hold gigabytes of rows that wait for hours. The feed keeps the host's queue of rows ready to
//! send (about [`WINDOW_ROWS`], plus retries) and says which read comes next: open the next batch
//! (its committed rows and its row count), or the next window of the open batch. The actor runs
//! each read with [`perform`] on the blocking pool, so no file is read on the event loop, and
//! hands the result back. Rows the shards already hold are dropped as windows arrive; that set is
//! kept per open batch as 16-byte keys, not strings. With `--revalidate`, the stored images of
//! the open batch to ask about again are kept too (where each lies and its validators, about
//! 0.3 KB a row), each handed to its row's `Task` as its window arrives.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;

use super::row::Task;
use crate::actors::messages::HostFailure;
use crate::store::batches::{batch_id, batch_rows, read_batch_window, BatchRow};
use crate::store::shards::ledger::{scan_batch, Again, BatchLedger, StaleImage};

/// Rows read at a time: at the highest rate a host is allowed (40 req/s by default) a window
/// lasts over 6 s, far longer than reading it takes.
pub const WINDOW_ROWS: usize = 256;
/// The next window is asked for when fewer rows than this are queued, so the queue does not run
/// dry while a read is in flight.
pub const REFILL_BELOW: usize = WINDOW_ROWS / 2;

/// A read the actor should start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Read {
    /// The next batch: its ledger (what is committed) and its row count.
    Open { partition: u64 },
    /// Rows `offset..offset + len` of the open batch.
    Window { partition: u64, offset: u64, len: usize },
}

/// What a read brought back.
#[derive(Debug)]
pub enum ReadDone {
    Opened { partition: u64, rows: u64, ledger: Box<BatchLedger>, batch_id: String },
    Window { partition: u64, rows: Vec<BatchRow> },
}

/// What a window added to the queue.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fed {
    pub partition: u64,
    /// Rows queued (those not yet committed).
    pub queued: u64,
    /// Whether the batch has now been read to its end.
    pub batch_read: bool,
}

#[derive(Debug)]
struct OpenBatch {
    partition: u64,
    rows: u64,
    next_row: u64,
    done: HashSet<u128>,
    /// Rows being retried (`--retry-failed`), with the class of their committed failure.
    retries: HashMap<u128, String>,
    /// Stored images being revalidated (`--revalidate`), with where they lie and their
    /// validators.
    stale: HashMap<u128, StaleImage>,
}

/// The host's queue and where its reading stands.
#[derive(Debug, Default)]
pub struct Feed {
    batches: VecDeque<u64>,
    open: Option<OpenBatch>,
    /// Rows ready to send, in order; retries come back at the end.
    pub queue: VecDeque<Task>,
    reading: bool,
    /// Each batch's content id by partition, when the servers table has them.
    batch_ids: Option<Vec<String>>,
}

impl Feed {
    pub fn new(partitions: impl IntoIterator<Item = u64>, batch_ids: Option<Vec<String>>) -> Feed {
        Feed { batches: partitions.into_iter().collect(), batch_ids, ..Feed::default() }
    }

    /// The content id of the batch `read` opens, when the servers table has it (see [`perform`]).
    pub fn known_id(&self, read: Read) -> Option<String> {
        match read {
            Read::Open { partition } => self.batch_ids.as_ref()?.get(partition as usize).cloned(),
            Read::Window { .. } => None,
        }
    }

    /// The read to start now, if any: none while one is in flight, while enough rows are
    /// queued, or when every batch has been read.
    pub fn next_read(&mut self) -> Option<Read> {
        if self.reading || self.queue.len() >= REFILL_BELOW {
            return None;
        }
        let read = match &self.open {
            Some(b) if b.next_row < b.rows => {
                Read::Window { partition: b.partition, offset: b.next_row, len: WINDOW_ROWS }
            }
            _ => {
                self.open = None;
                Read::Open { partition: self.batches.pop_front()? }
            }
        };
        self.reading = true;
        Some(read)
    }

    /// A batch was opened: `rows` rows, of which `done` (uuids) are committed and skipped,
    /// `retries` (uuid to the class of its committed failure) are tried again, and `stale`
    /// (uuid to the stored image) are revalidated.
    pub fn opened(
        &mut self,
        partition: u64,
        rows: u64,
        done: &HashSet<String>,
        retries: &HashMap<String, String>,
        stale: HashMap<String, StaleImage>,
    ) {
        self.reading = false;
        let done = done.iter().map(|u| row_key(u)).collect();
        let retries = retries.iter().map(|(u, class)| (row_key(u), class.clone())).collect();
        let stale = stale.into_iter().map(|(u, image)| (row_key(&u), image)).collect();
        self.open = Some(OpenBatch { partition, rows, next_row: 0, done, retries, stale });
    }

    /// A window of the open batch arrived: its rows not yet committed join the queue.
    pub fn window(&mut self, partition: u64, rows: Vec<BatchRow>) -> Fed {
        self.reading = false;
        let Some(b) = self.open.as_mut().filter(|b| b.partition == partition) else {
            return Fed { partition, queued: 0, batch_read: true };
        };
        // A short window is the batch's end, whatever its metadata said.
        b.next_row = if rows.len() < WINDOW_ROWS { b.rows } else { b.next_row + rows.len() as u64 };
        let before = self.queue.len();
        for r in rows {
            let key = row_key(&r.uuid);
            if b.done.contains(&key) {
                continue;
            }
            let replaces = b.retries.get(&key).cloned();
            let stale = b.stale.remove(&key).map(Box::new);
            let (uuid, url, source_ids) = (r.uuid, r.url, r.source_ids);
            self.queue.push_back(Task {
                uuid,
                url,
                source_ids,
                partition,
                attempts: 0,
                last_status: 0,
                replaces,
                final_url: None,
                etag: None,
                last_modified: None,
                redirects: 0,
                stale,
            });
        }
        Fed { partition, queued: (self.queue.len() - before) as u64, batch_read: b.next_row >= b.rows }
    }

    /// A read failed (the run stops); nothing is in flight any more.
    pub fn read_failed(&mut self) {
        self.reading = false;
    }

    pub fn is_reading(&self) -> bool {
        self.reading
    }

    /// Nothing queued, nothing being read, nothing left to read.
    pub fn is_exhausted(&self) -> bool {
        !self.reading
            && self.queue.is_empty()
            && self.batches.is_empty()
            && self.open.as_ref().is_none_or(|b| b.next_row >= b.rows)
    }
}

/// A row's 16-byte key: prep's uuids parse as UUIDs; anything else is hashed to 128 bits.
fn row_key(uuid: &str) -> u128 {
    uuid::Uuid::parse_str(uuid).map(|u| u.as_u128()).unwrap_or_else(|_| {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(uuid.as_bytes());
        u128::from_le_bytes(digest[..16].try_into().expect("16 bytes"))
    })
}

/// Does `read` for `host`: the file I/O, on the blocking pool. `known_id` is the batch's
/// content id from the servers table; without one it is computed from the batch files.
pub fn perform(
    out: &Path,
    host: &str,
    read: Read,
    retry: Again,
    known_id: Option<String>,
) -> Result<ReadDone, HostFailure> {
    match read {
        Read::Open { partition } => {
            let read = |source| HostFailure::ReadBatch { partition, source };
            let rows = batch_rows(out, host, partition).map_err(read)?;
            let id = match known_id {
                Some(id) => id,
                None => batch_id(out, host, partition).map_err(read)?,
            };
            let ledger = scan_batch(out, host, partition, retry)
                .map_err(|source| HostFailure::ScanShards { partition, source })?;
            if let Some(was) = ledger.batch_ids.iter().find(|b| **b != id) {
                return Err(HostFailure::BatchChanged { partition, was: was.clone(), now: id });
            }
            Ok(ReadDone::Opened { partition, rows, ledger: Box::new(ledger), batch_id: id })
        }
        Read::Window { partition, offset, len } => {
            let rows = read_batch_window(out, host, partition, offset, len)
                .map_err(|source| HostFailure::ReadBatch { partition, source })?;
            Ok(ReadDone::Window { partition, rows })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(from: usize, to: usize) -> Vec<BatchRow> {
        (from..to)
            .map(|i| BatchRow { uuid: format!("row-{i}"), url: format!("http://a.org/{i}"), source_ids: vec![] })
            .collect()
    }

    #[test]
    fn batches_are_opened_then_read_in_windows_skipping_committed_rows() {
        let mut feed = Feed::new([3, 4], None);
        assert_eq!(feed.next_read(), Some(Read::Open { partition: 3 }));
        assert_eq!(feed.next_read(), None, "one read at a time");
        let done: HashSet<String> = ["row-1".to_string(), "row-300".to_string()].into();
        feed.opened(3, 300, &done, &HashMap::new(), HashMap::new());
        assert_eq!(feed.next_read(), Some(Read::Window { partition: 3, offset: 0, len: WINDOW_ROWS }));
        let fed = feed.window(3, rows(0, WINDOW_ROWS));
        assert_eq!(fed, Fed { partition: 3, queued: WINDOW_ROWS as u64 - 1, batch_read: false });
        assert_eq!(feed.next_read(), None, "the queue is full enough");
        feed.queue.drain(..200);
        assert_eq!(feed.next_read(), Some(Read::Window { partition: 3, offset: WINDOW_ROWS as u64, len: WINDOW_ROWS }));
        let fed = feed.window(3, rows(WINDOW_ROWS, 300));
        assert_eq!(fed, Fed { partition: 3, queued: 300 - WINDOW_ROWS as u64, batch_read: true });
        assert!(!feed.is_exhausted());
        feed.queue.clear();
        assert_eq!(feed.next_read(), Some(Read::Open { partition: 4 }));
        feed.opened(4, 0, &HashSet::new(), &HashMap::new(), HashMap::new());
        assert_eq!(feed.next_read(), None, "an empty batch needs no window, and no batch is left");
        assert!(feed.is_exhausted());
    }

    #[test]
    fn the_queue_holds_about_a_window_however_large_the_batch() {
        let mut feed = Feed::new([0], None);
        feed.next_read();
        feed.opened(0, 10_000, &HashSet::new(), &HashMap::new(), HashMap::new());
        let mut most = 0;
        let mut sent = 0;
        while let Some(read) = feed.next_read() {
            let Read::Window { offset, len, .. } = read else { panic!("{read:?}") };
            let end = (offset as usize + len).min(10_000);
            feed.window(0, rows(offset as usize, end));
            most = most.max(feed.queue.len());
            // The host sends until the queue drops below the refill mark.
            while feed.queue.len() >= REFILL_BELOW {
                feed.queue.pop_front();
                sent += 1;
            }
        }
        sent += feed.queue.len();
        assert_eq!(sent, 10_000, "every row passes through the queue once");
        assert!(most < WINDOW_ROWS + REFILL_BELOW, "at most {most} rows queued");
    }

    #[test]
    fn committed_rows_are_recognised_by_uuid_or_by_hash() {
        let uuid = "6f1c8a2e-1d0b-5c7e-9a41-2b3c4d5e6f70";
        assert_eq!(row_key(uuid), uuid::Uuid::parse_str(uuid).unwrap().as_u128());
        assert_eq!(row_key("not-a-uuid"), row_key("not-a-uuid"));
        assert_ne!(row_key("not-a-uuid"), row_key("not-a-uuid2"));
    }
}
